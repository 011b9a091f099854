"""Did moving reflect-then-retry into reflectevo_tasks/protocol.py change anything? Old and new code
side by side on the same BBH items, every mode.

    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv/bin/python scripts/protocol_equivalence.py \
        [--out scripts/protocol_equivalence.md] [--real --adapter DIR]

The code before the change (the lm-eval model and the generation pipeline at BEFORE) is read from git
history and loaded beside today's. Both run over the first 20 items of 3 BBH subtasks with an inner
model that answers from a hash of its prompt (right, wrong and unanswered trials, reflections and
one-stage replies all occur), in every mode, with and without a separate reflector. What must be
equal: every call into the inner model (its batches, prompts and settings, in order), every
trajectory and generation record, and the per-item outcomes the results file reports. Equal calls
to a deterministic model give equal replies, so this carries over to real models.

`--real` also runs the embedded model through both versions on the same items, built as lm_eval builds
a measured row (leaderboards/measured.sh: float32, batch 32, trial 1 shared from the single row), in
modes single, retry_only, oracle, intrinsic and oracle one_stage, and with a LoRA adapter trained by
`reflectevo train one_stage` as the reflector (DIR; keep it out of the repo). Token caps are 64 to keep
the CPU cost bearable. It takes most of an hour on two shared cores. Run it in a clean clone of the
commit to compare (`git clone --shared . /tmp/x`), since others may be editing this checkout.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BEFORE = "8c9d031"  # the last commit with the protocol written twice
SUBTASKS = ("date_understanding", "boolean_expressions", "word_sorting")
PER_SUBTASK = 20
PLUGIN_RUNS = [  # (label, options, separate reflector)
    ("single", {"mode": "single"}, False),
    ("retry_only", {"mode": "retry_only"}, False),
    ("oracle", {"mode": "oracle"}, False),
    ("intrinsic", {"mode": "intrinsic"}, False),
    ("oracle one_stage", {"mode": "oracle", "one_stage": True}, False),
    ("intrinsic one_stage", {"mode": "intrinsic", "one_stage": True}, False),
    ("oracle, separate reflector", {"mode": "oracle"}, True),
    ("oracle, reflector retries", {"mode": "oracle", "retry_by": "reflector"}, True),
    ("oracle one_stage, separate reflector", {"mode": "oracle", "one_stage": True}, True),
    ("oracle, chunks of 16, sampled reflections", {"mode": "oracle", "chunk_size": 16, "seed": 7,
                                                   "reflection_temperature": 0.7}, False),
]


def load_old(path: str, name: str):
    """`path` as it was at BEFORE, loaded as module `name` (its imports resolve to today's tree)."""
    source = subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    file = Path(tempfile.mkdtemp(prefix="before-")) / f"{name}.py"
    file.write_text(source, encoding="utf-8")
    import reflectevo.chunk_store

    sys.modules.setdefault("reflectevo_gen.store", reflectevo.chunk_store)  # where the chunk store was then
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


class HashLM:
    """An inner model whose reply is a function of the prompt alone, recording every call."""

    tokenizer = None
    tokenizer_name = "hash"
    rank, world_size = 0, 1
    TRIALS = ["So the answer is (A).", "So the answer is (B).", "So the answer is (C).", "So the answer is True.",
              "So the answer is False.", "So the answer is apple banana cherry.", "I am not sure."]

    def __init__(self, golds: dict[str, str]):
        self.golds = golds  # question text -> gold answer: about a third of the trials are right
        self.calls: list[list[tuple[str, dict]]] = []

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"

    def chat_template(self, chat_template=False):
        return "hash template"

    def get_model_info(self):
        return {"model_num_parameters": 0}

    def generate_until(self, requests, disable_tqdm=False):
        self.calls.append([(r.args[0], dict(r.args[1])) for r in requests])
        return [self.reply(ctx, kw) for ctx, kw in (r.args for r in requests)]

    def reply(self, context: str, kwargs: dict) -> str:
        h = int(hashlib.sha256((context + json.dumps(kwargs, sort_keys=True)).encode()).hexdigest(), 16)
        last = context.rsplit("<user>", 1)[1]
        gold = next((g for q, g in self.golds.items() if q in context), None)
        trial = f"So the answer is {gold}." if gold and h % 3 == 0 else self.TRIALS[h % len(self.TRIALS)]
        if "Corrected solution:" in last:
            return f"Reflection {h % 997}: I rushed.\n\nCorrected solution:\n{trial}"
        if "Write a reflection" in last:
            return f"Diagnosis {h % 997}: I misread a step. Plan: check each step."
        return trial


def hash_engine(name: str):
    from reflectevo_tasks.engine import Engine, EngineConfig
    from reflectevo_tasks.lm_eval_tasks import utils as U

    golds = {}
    for s in SUBTASKS:
        for doc in list(U.load_bbh(s)["test"])[:PER_SUBTASK]:
            q = U.question(dict(doc))
            golds[q.question] = q.answer
    return Engine(EngineConfig(model=name), lm=HashLM(golds))


def plugin_requests(per_subtask: int = PER_SUBTASK):
    from reflectevo_tasks.lm_eval_tasks import utils as U

    class Request:
        def __init__(self, doc, task):
            self.doc, self.task_name = doc, task
            self.args = ("unused", {"until": ["</s>", "Q:"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 256})

    out = []
    for s in SUBTASKS:
        docs = list(U.load_bbh(s)["test"])[:per_subtask]
        out += [Request(dict(d), f"reflectevo_bbh_{s}") for d in docs]
    return out


def compare_plugin(old_module) -> list[dict]:
    from harness_plugins.reflect_model import ReflectEvoLM

    rows = []
    for label, options, separate in PLUGIN_RUNS:
        results = {}
        for version, cls in (("before", old_module.ReflectEvoLM), ("after", ReflectEvoLM)):
            base = hash_engine("hash-base")
            reflector = hash_engine("hash-reflector") if separate else None
            model = cls.from_engines(base, reflector, **options)
            replies = model.generate_until(plugin_requests())
            info = model.get_model_info()["reflectevo"]
            results[version] = {
                "trajectories": replies,
                "calls": base.lm.calls + (reflector.lm.calls if reflector else []),
                "outcomes": info["outcomes"], "outcomes_flexible": info.get("outcomes_flexible"),
                "pooled": info["pooled"], "second_attempt": info.get("second_attempt"),
            }
        b, a = results["before"], results["after"]
        rows.append({"run": label, "docs": len(b["trajectories"]),
                     "requests": sum(len(c) for c in b["calls"]),
                     "second_attempts": sum('"trial2": {"from": "retry"' in t or '"from": "one_stage"' in t
                                            for t in b["trajectories"]),
                     **{k: a[k] == b[k] for k in ("calls", "trajectories", "outcomes", "outcomes_flexible", "pooled",
                                                 "second_attempt")}})
    return rows


def compare_generation(old_pipeline, tmp: Path) -> list[dict]:
    from reflectevo_gen import pipeline
    from reflectevo_gen.config import GenConfig
    from reflectevo.chunk_store import read_records

    rows = []
    for label, extra, separate in [("abc pool, 2 instructions x 2 samples", {"instruction_ids": "A1-B1-C1,A1-B2-C2",
                                                                             "reflections_per_instruction": 2,
                                                                             "reflection_temperature": 0.7}, False),
                                   ("sample:3 instructions, separate reflector", {"instruction_ids": "sample:3"}, True)]:
        records, calls = {}, {}
        for version, module in (("before", old_pipeline), ("after", pipeline)):
            gen = hash_engine("hash-base")
            refl = hash_engine("hash-reflector") if separate else gen
            cfg = GenConfig(output=str(tmp / f"{label}-{version}"), source="bbh:" + ",".join(SUBTASKS),
                            limit=3 * PER_SUBTASK, chunk_size=16, trial_max_new_tokens=64, reflection_max_new_tokens=48,
                            **extra)
            module.run(cfg, engines=module.Engines(gen, refl), show_progress=False)
            records[version] = [{k: v for k, v in r.items() if k not in ("created_at", "content_hash")}
                                for r in read_records(cfg.output)]
            calls[version] = gen.lm.calls + (refl.lm.calls if separate else [])
        rows.append({"run": label, "records": len(records["before"]),
                     "requests": sum(len(c) for c in calls["before"]),
                     "records_equal": records["after"] == records["before"], "calls_equal": calls["after"] == calls["before"]})
    return rows


REAL_CAPS = {"max_gen_toks": 64, "reflection_max_gen_toks": 64}  # measured rows: 128 (CPU cost, see the .md)
REAL_CHUNK = 64  # measured.sh's chunk_size: the 60 docs are one chunk
REAL_RUNS = [  # (label, the row's own options); "adapter": the trained reflector answers the second attempt
    ("single", {"mode": "single"}),
    ("retry_only", {"mode": "retry_only"}),
    ("oracle", {"mode": "oracle"}),
    ("intrinsic", {"mode": "intrinsic"}),
    ("oracle one_stage", {"mode": "oracle", "one_stage": True}),
    ("oracle one_stage, trained reflector", {"mode": "oracle", "one_stage": True, "adapter": True}),
]
REAL_RUNS.append(REAL_RUNS.pop(3))  # intrinsic last: it retries every doc, the most costly row


class Recorded:
    """The embedded model, computing each distinct generate_until call once. The code after the change
    is meant to make exactly the calls the code before made; a call equal to one made before (the same
    requests in the same order, so the same batches) is answered with the replies computed then, which
    greedy decoding on the same model would reproduce. A call that differs goes to the model. This
    halves the CPU cost, and the record on disk lets an interrupted run resume."""

    def __init__(self, lm, store: Path):
        self._lm, self._store = lm, store
        self._memo = {}
        if store.is_file():
            for line in store.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                self._memo[entry["key"]] = entry["replies"]
        self.keys: list[str] = []  # every call, in order
        self.computed = 0

    def __getattr__(self, name):  # everything but generation is the model's own (tokenizer, template...)
        return getattr(self._lm, name)

    def generate_until(self, requests, disable_tqdm=False):
        batch = [[r.args[0], r.args[1]] for r in requests]
        key = hashlib.sha256(json.dumps(batch, sort_keys=True, default=str).encode()).hexdigest()
        self.keys.append(key)
        if key not in self._memo:
            self._memo[key] = self._lm.generate_until(requests, disable_tqdm=disable_tqdm)
            self.computed += 1
            with self._store.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "replies": self._memo[key]}) + "\n")
        return list(self._memo[key])


def real_engines(adapter: str, record: Path):
    """The base model and the base model with the trained adapter, as measured.sh loads them (float32,
    batch 32, CPU), each behind its own record of replies."""
    from reflectevo_tasks.engine import Engine, EngineConfig, build_lm

    record.mkdir(parents=True, exist_ok=True)
    engines = {}
    for name, peft in (("base", None), ("reflector", adapter)):
        cfg = EngineConfig(dtype="float32", batch_size=32, device="cpu", peft=peft)
        engines[name] = Engine(cfg, lm=Recorded(build_lm(cfg), record / f"{name}.jsonl"))
    return engines


def run_real(cls, engines: dict, options: dict, folder: Path, shared: Path | None, items: int) -> dict:
    """One version over the items; each version keeps its own resume folders, and its rows take trial 1
    from its own single row (trial1_from=), as in measured.sh."""
    options = dict(options)
    reflector = engines["reflector"] if options.pop("adapter", False) else None
    marks = {name: len(e.lm.keys) for name, e in engines.items()}
    computed = sum(e.lm.computed for e in engines.values())
    start = time.perf_counter()
    model = cls.from_engines(engines["base"], reflector, **REAL_CAPS, **options, chunk_size=REAL_CHUNK,
                             resume=str(folder), **({"trial1_from": str(shared)} if shared else {}))
    replies = model.generate_until(plugin_requests(items))
    info = model.get_model_info()["reflectevo"]
    return {"trajectories": replies, "outcomes": info["outcomes"], "outcomes_flexible": info.get("outcomes_flexible"),
            "pooled": info["pooled"], "second_attempt": info.get("second_attempt"),
            "trial1_shared_docs": info["chunking"]["trial1_shared_docs"],
            "calls": {name: e.lm.keys[marks[name]:] for name, e in engines.items()},
            "computed": sum(e.lm.computed for e in engines.values()) - computed,
            "seconds": round(time.perf_counter() - start)}


def first_difference(before: list[str], after: list[str]) -> str:
    """Where two lists of trajectories first part: the doc and the turn, for the report."""
    for b, a in zip(before, after):
        if a == b:
            continue
        tb, ta = json.loads(b), json.loads(a)
        where = f"{tb.get('task')} doc {tb.get('id')}"
        for nb, na in zip(tb["turns"], ta["turns"]):
            if nb != na:
                return f"{where}, turn {nb['turn']}"
        if len(tb["turns"]) != len(ta["turns"]):
            return f"{where}: {len(tb['turns'])} turns before, {len(ta['turns'])} after"
        return f"{where}: same turns, other fields ({', '.join(k for k in tb if tb[k] != ta.get(k))})"
    return "" if len(before) == len(after) else f"{len(before)} trajectories before, {len(after)} after"


def second_attempt_outputs(trajectories: list[str]) -> dict:
    """(task, doc id) -> the outputs of every turn after trial 1."""
    out = {}
    for text in trajectories:
        t = json.loads(text)
        out[(t["task"], t["id"])] = [turn["output"] for turn in t["turns"][1:]]
    return out


def adapter_changed(base_run: dict, adapter_run: dict) -> int:
    """Docs whose second-attempt replies differ between the base model and the trained reflector on the
    same prompts: the adapter is live (with none, the row would only repeat the base model's)."""
    base, trained = second_attempt_outputs(base_run["trajectories"]), second_attempt_outputs(adapter_run["trajectories"])
    return sum(1 for key, outs in trained.items() if outs and outs != base.get(key))


def pooled_accuracy(outcomes: dict) -> tuple[int, int, int]:
    """(docs, right at trial 1, right at the last attempt) from per-item outcome codes."""
    codes = [c for task in outcomes.values() for c in task.values()]
    return len(codes), sum(c[0] == "1" for c in codes), sum(c[-1] == "1" for c in codes)


def compare_real(old_module, adapter: str, work: Path, record: Path, items: int, on_row) -> list[dict]:
    """The embedded model through both versions, every mode and one trained reflector (slow: minutes a
    row on two shared cores). `on_row(rows)` after each row, so an interrupted run leaves its rows."""
    from harness_plugins import reflect_model
    from harness_plugins.reflect_model import ReflectEvoLM

    print(f"[real] code after: {reflect_model.__file__}", file=sys.stderr, flush=True)
    engines = real_engines(adapter, record)
    rows, results = [], {}
    for label, options in REAL_RUNS:
        out = {}
        for version, cls in (("before", old_module.ReflectEvoLM), ("after", ReflectEvoLM)):
            folder = work / version / label.replace(" ", "_").replace(",", "")
            shared = None if label == "single" else work / version / "single"
            print(f"[real] {label}, {version}: {options} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
            out[version] = run_real(cls, engines, options, folder, shared, items)
        results[label] = out
        b, a = out["before"], out["after"]
        rows.append({
            "run": label, "docs": len(b["trajectories"]),
            "second_attempts": sum(len(ids) for ids in (b["second_attempt"] or {}).values()),
            "trial1_shared": b["trial1_shared_docs"], "accuracy": pooled_accuracy(b["outcomes"]),
            "accuracy_flexible": pooled_accuracy(b["outcomes_flexible"]),
            "model_calls": sum(len(k) for k in b["calls"].values()), "computed_after": a["computed"],
            **{k: a[k] == b[k] for k in ("calls", "trajectories", "outcomes", "outcomes_flexible", "pooled",
                                         "second_attempt")},
            "first_difference": first_difference(b["trajectories"], a["trajectories"]),
            "seconds": {v: out[v]["seconds"] for v in out},
        })
        if "trained reflector" in label:
            twin = label.split(",")[0]  # the same row with the base model reflecting (run before it)
            rows[-1]["adapter_changed"] = adapter_changed(results[twin]["after"], out["after"])
        print(f"[real] {label}: {rows[-1]}", file=sys.stderr, flush=True)
        on_row(rows)
    return rows


def real_section(rows, context) -> list[str]:
    """The embedded model's table, with what the reader needs to redo it: the code, the settings, the adapter."""
    caps = ", ".join(f"{k}={v}" for k, v in REAL_CAPS.items())
    lines = ["", "## The embedded model (SmolLM2-135M-Instruct, float32, CPU, batch 32)", "",
             f"Items: the first {context['items']} of each of the 3 subtasks ({3 * context['items']} docs)."
             + ("" if context["items"] == PER_SUBTASK else
                f" Fewer than the {PER_SUBTASK} of the sections above (`--real-items {context['items']}`), to fit "
                "the CPU time there was; the script's default is all of them."), "",
             f"Code after: commit `{context['head']}`, run in a clone of it ({context['tree']}). Both versions "
             "wrap the same engines (`from_engines`), with identical options: the row's own, "
             f"`{caps}` and `chunk_size={REAL_CHUNK}` with a resume folder each. The token caps are 64 for "
             "trial 1, the reflection and the retry (the measured rows use 128), to keep the CPU cost "
             "bearable; the comparison is of the code, so it needs equal caps, not the measured ones. As in "
             "measured.sh, every row but single takes trial 1 from the single row (`trial1_from=`), each "
             "version from its own single row: the single row compares trial-1 generation, the others the "
             "shared-trial-1 path and the second attempt.", "",
             "Each distinct call into the model is computed once (the script's `Recorded`): the code after "
             "made exactly the calls the code before made (column *same model calls*: the same requests, "
             "prompts and settings, in the same order, so the same batches) and got the replies computed "
             "for them; a differing call would have gone to the model (*calls computed for after*: 0 means "
             "none differed).", "",
             f"Trained reflector: {context['adapter']}", "",
             "| run | docs | trial 1 shared | second attempts | right t1 -> last (strict) | right t1 -> last (flexible) | "
             "model calls | calls computed for after | same model calls | same trajectories | same outcomes | "
             "same flexible outcomes | same pooled counts | same second-attempt list | seconds before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['docs']} | {r['trial1_shared']} | {r['second_attempts']} | "
                     f"{r['accuracy'][1]} -> {r['accuracy'][2]} | {r['accuracy_flexible'][1]} -> {r['accuracy_flexible'][2]} | "
                     f"{r['model_calls']} | {r['computed_after']} | {r['calls']} | "
                     f"{r['trajectories']} | {r['outcomes']} | {r['outcomes_flexible']} | {r['pooled']} | "
                     f"{r['second_attempt']} | {r['seconds']['before']} / {r['seconds']['after']} |")
    notes = [f"- {r['run']}: the trained reflector's second-attempt replies differ from the base model's on "
             f"{r['adapter_changed']} of {r['second_attempts']} docs (same prompts), so the adapter is in use."
             for r in rows if "adapter_changed" in r]
    notes += [f"- {r['run']}: first difference at {r['first_difference']}." for r in rows if r["first_difference"]]
    return lines + ([""] + notes if notes else [])


def render(plugin_rows, gen_rows, real_rows, real_context=None) -> str:
    lines = ["# Reflect-then-retry before and after it was written once", "",
             f"Written by `scripts/protocol_equivalence.py` (code before: commit `{BEFORE}`). Items: the first "
             f"{PER_SUBTASK} of BBH {', '.join(SUBTASKS)}. Inner model: replies that are a function of the prompt "
             "(see the script), so equal calls mean equal replies.", "",
             "## The lm-eval model", "",
             "| run | docs | inner requests | second attempts | same calls | same trajectories | same outcomes | "
             "same flexible outcomes | same pooled counts | same second-attempt list |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in plugin_rows:
        lines.append(f"| {r['run']} | {r['docs']} | {r['requests']} | {r['second_attempts']} | {r['calls']} | "
                     f"{r['trajectories']} | {r['outcomes']} | {r['outcomes_flexible']} | {r['pooled']} | "
                     f"{r['second_attempt']} |")
    lines += ["", "## The generation pipeline", "", "| run | records | inner requests | same records | same calls |",
              "|---|---|---|---|---|"]
    for r in gen_rows:
        lines.append(f"| {r['run']} | {r['records']} | {r['requests']} | {r['records_equal']} | {r['calls_equal']} |")
    if real_rows:
        lines += real_section(real_rows, real_context)
    return "\n".join(lines) + "\n"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.rstrip()


NEW_SIDE = ("reflectevo_tasks", "harness_plugins", "reflectevo_gen")  # where the code after the change lives


def tree_state() -> str:
    """Whether the code after the change is the committed one: others may be editing a checkout during a
    run (a clean clone of the commit avoids that: `git clone --shared`)."""
    changed = [line[3:] for line in git("status", "--porcelain", "--", *NEW_SIDE).splitlines()]
    if not changed:
        return f"working tree clean in {', '.join(NEW_SIDE)}"
    return f"uncommitted changes in {', '.join(changed)}"


def describe_adapter(folder: str) -> str:
    """How the trained reflector was made, from what `reflectevo train` wrote beside it."""
    path = Path(folder) / "provenance.json"
    if not path.is_file():
        return f"`{folder}` (no provenance.json: not written by `reflectevo train`)"
    prov = json.loads(path.read_text(encoding="utf-8"))
    steps = "; ".join(f"{m['stage']}: {m['global_step']} optimizer steps ({m.get('warmup_steps', 0)} warmup) on "
                      f"{m['examples']} examples, losses {[round(x, 3) for x in m.get('losses', [])]}"
                      for m in prov["metrics"]["stages"])
    data = prov["dataset"]
    return (f"`{folder}` (kept out of the repo), made by `{prov['command']}` (our trainer, setting "
            f"`{prov['setting']}`, LoRA r={prov['artifact']['lora']['r']}) on `{Path(data['path']).relative_to(REPO) if Path(data['path']).is_relative_to(REPO) else data['path']}` "
            f"(sha256 {data['sha256'][:12]}...); {steps}. Its quality is beside the point: the comparison is of the code.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "scripts" / "protocol_equivalence.md"))
    ap.add_argument("--real", action="store_true", help="also run the embedded model (minutes)")
    ap.add_argument("--adapter", help="with --real: a LoRA folder written by `reflectevo train` (the trained reflector)")
    ap.add_argument("--record", help="with --real: where the model's replies are kept (a rerun resumes from them)")
    ap.add_argument("--real-items", type=int, default=PER_SUBTASK, help="with --real: items per subtask")
    args = ap.parse_args(argv)
    if args.real and not (args.adapter and (Path(args.adapter) / "adapter_config.json").is_file()):
        ap.error(f"--real needs --adapter DIR holding a trained LoRA adapter (adapter_config.json); got {args.adapter!r}")
    old_plugin = load_old("harness_plugins/reflect_model.py", "reflect_model_before")
    old_pipeline = load_old("reflectevo_gen/pipeline.py", "pipeline_before")
    with tempfile.TemporaryDirectory() as tmp:
        plugin_rows = compare_plugin(old_plugin)
        gen_rows = compare_generation(old_pipeline, Path(tmp))
    real_rows, context = [], None
    if args.real:
        context = {"head": git("rev-parse", "--short", "HEAD"), "tree": tree_state(),
                   "adapter": describe_adapter(args.adapter), "items": args.real_items}
        record = Path(args.record or tempfile.mkdtemp(prefix="equiv-replies-"))
        with tempfile.TemporaryDirectory(prefix="equiv-real-") as tmp:
            def write_so_far(rows):  # the rows finished so far, should the run be cut off
                Path(args.out).write_text(render(plugin_rows, gen_rows, rows, context), encoding="utf-8")

            real_rows = compare_real(old_plugin, args.adapter, Path(tmp), record, args.real_items, write_so_far)
        if tree_state() != context["tree"]:  # someone committed or edited the new side while it ran
            context["tree"] += f" (at the end: {tree_state()})"
    text = render(plugin_rows, gen_rows, real_rows, context)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    same = all(all(v for k, v in r.items() if isinstance(v, bool)) for r in plugin_rows + gen_rows + real_rows)
    print("identical" if same else "DIFFERENT", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
