"""Did moving reflect-then-retry into reflectevo_tasks/protocol.py change anything? Old and new code
side by side on the same BBH items, every mode.

    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv/bin/python scripts/protocol_equivalence.py \
        [--out scripts/protocol_equivalence.md] [--real]

The code before the change (the lm-eval model and the generation pipeline at BEFORE) is read from git
history and loaded beside today's. Both run over the first 20 items of 3 BBH subtasks with an inner
model that answers from a hash of its prompt (right, wrong and unanswered trials, reflections and
one-stage replies all occur), in every mode, with and without a separate reflector. What must be
equal: every call into the inner model (its batches, prompts and settings, in order), every
trajectory and generation record, and the per-item outcomes the results file reports. Equal calls
to a deterministic model give equal replies, so this carries over to real models; `--real` also runs
the embedded model (oracle and retry_only, 128-token caps) on the same items through both versions.
"""

from __future__ import annotations

import argparse
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


def plugin_requests():
    from reflectevo_tasks.lm_eval_tasks import utils as U

    class Request:
        def __init__(self, doc, task):
            self.doc, self.task_name = doc, task
            self.args = ("unused", {"until": ["</s>", "Q:"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 256})

    out = []
    for s in SUBTASKS:
        docs = list(U.load_bbh(s)["test"])[:PER_SUBTASK]
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


def compare_real(old_module) -> list[dict]:
    """The embedded model through both versions (slow: a few minutes per mode on two cores)."""
    from harness_plugins.reflect_model import ReflectEvoLM
    from reflectevo_tasks.engine import Engine, EngineConfig

    engine = Engine(EngineConfig(dtype="float32", batch_size=32))
    rows = []
    for mode in ("oracle", "retry_only"):
        out, seconds = {}, {}
        for version, cls in (("before", old_module.ReflectEvoLM), ("after", ReflectEvoLM)):
            start = time.perf_counter()
            model = cls.from_engines(engine, mode=mode, max_gen_toks=128, reflection_max_gen_toks=128)
            model.generate_until(plugin_requests())
            seconds[version] = round(time.perf_counter() - start)
            info = model.get_model_info()["reflectevo"]
            out[version] = (info["outcomes"], info.get("outcomes_flexible"))
        rows.append({"mode": mode, "docs": sum(len(v) for v in out["before"][0].values()),
                     "outcomes_equal": out["after"] == out["before"], "seconds": seconds})
    return rows


def render(plugin_rows, gen_rows, real_rows) -> str:
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
        lines += ["", "## The embedded model (float32, 128-token caps, batch 32)", "",
                  "| mode | docs | same per-item outcomes (both levels) | seconds before / after |", "|---|---|---|---|"]
        for r in real_rows:
            lines.append(f"| {r['mode']} | {r['docs']} | {r['outcomes_equal']} | "
                         f"{r['seconds']['before']} / {r['seconds']['after']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "scripts" / "protocol_equivalence.md"))
    ap.add_argument("--real", action="store_true", help="also run the embedded model (minutes)")
    args = ap.parse_args(argv)
    old_plugin = load_old("harness_plugins/reflect_model.py", "reflect_model_before")
    old_pipeline = load_old("reflectevo_gen/pipeline.py", "pipeline_before")
    with tempfile.TemporaryDirectory() as tmp:
        plugin_rows = compare_plugin(old_plugin)
        gen_rows = compare_generation(old_pipeline, Path(tmp))
    real_rows = compare_real(old_plugin) if args.real else []
    text = render(plugin_rows, gen_rows, real_rows)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    same = all(all(v for k, v in r.items() if isinstance(v, bool)) for r in plugin_rows + gen_rows + real_rows)
    print("identical" if same else "DIFFERENT", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
