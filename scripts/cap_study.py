"""Issue #32, item 1: where does a longer token cap stop paying, turn by turn?

    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv/bin/python scripts/cap_study.py --output runs/cap-study
    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv-vllm/bin/python scripts/cap_study.py --engine vllm \
        --model_args enforce_eager=True --batch_size 128 --output runs/cap-study

Each turn is generated once, greedy, with the longest cap (the last of --caps) and scored as if cut at
every cap: a greedy reply cut at c tokens is the reply a c-token cap gives (same prompt, same stop
sequences). The cut is made on the reply retokenised with the model's tokenizer, as the lm-eval model
counts a reply's tokens (harness_plugins.reflect_model.generated_tokens); a reply "reaches" a cap by
the plugin's rule (reaches_cap). Verdicts are the strict, headline level (reflectevo_tasks.answers).

Questions: the first --per_subtask items of each subtask of BBH's generation pool (`bbh-pool`). The test
split is never read: caps chosen on it would be tuned on the items the leaderboard measures.

- trial 1 (the BBH tasks' stop sequences): per cap, right / no answer / reaching the cap.
- the questions wrong at trial 1 under --trial_cap (their reply cut there) get one oracle reflection
  (verdict "incorrect", the lm-eval model's default instruction, no stop sequences, as the plugin
  reflects); for each cap in --reflection_caps, one retry whose prompt holds the reflection cut at that
  cap. Per reflection cap and retry cap: fixed (right after the retry), no answer, reaching the cap.

Chunks of --chunk_size questions go to OUTPUT/parts as they finish (each record holds every raw reply,
so a scorer change re-scores without generating), a killed run resumes at its first missing chunk, and
OUTPUT/report.md and report.json are rebuilt from every finished chunk. OUTPUT/settings.json ties the
folder to its settings: a run with others is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness_plugins.reflect_model import CAP_SLACK, generated_part, generated_tokens, reaches_cap  # noqa: E402
from reflectevo.chunk_store import FolderLock, RecordStore, claim_folder, write_atomic  # noqa: E402
from reflectevo.errors import UserError  # noqa: E402
from reflectevo_tasks import answers as A, bbh_split, prompts  # noqa: E402
from reflectevo_tasks.engine import Engine, EngineConfig, Sampling, parse_model_args  # noqa: E402
from reflectevo_tasks.instructions import find_instruction  # noqa: E402
from reflectevo_tasks.stats import format_rate  # noqa: E402

TEMPLATE = ROOT / "reflectevo_tasks" / "lm_eval_tasks" / "_template_yaml"
OUTCOMES = (A.CORRECT, A.WRONG, A.NO_ANSWER)


@dataclass
class StudyConfig:
    output: str = "runs/cap-study"
    per_subtask: int = 12
    subtasks: str = ""  # comma-separated BBH subtasks; empty: all 27
    caps: str = "128,256,384,512,768"
    trial_cap: int = 256
    reflection_caps: str = "128,256,384,768"
    engine: str = "hf"
    model: str = "smollm2-135m-instruct"
    model_args: str = ""
    dtype: str = "float32"
    batch_size: int = 32
    chunk_size: int = 27
    bbh_dir: str = ""
    report_only: bool = False  # rebuild report.md / report.json from the finished chunks, generate nothing

    def cap_list(self) -> list[int]:
        return _ints(self.caps, "--caps")

    def reflection_cap_list(self) -> list[int]:
        caps = _ints(self.reflection_caps, "--reflection_caps")
        if max(caps) > self.cap_list()[-1]:
            raise UserError(f"--reflection_caps: {max(caps)} is above the longest cap of --caps ({self.cap_list()[-1]})")
        return caps

    def check(self) -> None:
        self.reflection_cap_list()
        if self.trial_cap not in self.cap_list():
            raise UserError(f"--trial_cap: {self.trial_cap} is not one of --caps ({self.caps})")
        for name in ("per_subtask", "batch_size", "chunk_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name}: must be at least 1, got {getattr(self, name)}")

    def identity(self) -> dict:
        """What the stored replies depend on (not the output folder, batch size or chunking's speed)."""
        return {k: v for k, v in asdict(self).items() if k not in ("output", "bbh_dir", "report_only")}


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated token counts, got {text!r}") from None
    if not values or values[0] < 1:
        raise UserError(f"{flag}: expected positive token counts, got {text!r}")
    return values


def task_stops() -> tuple[str, ...]:
    """The stop sequences of the BBH tasks' trial 1 and retry (their shared template), read from it."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    return tuple(yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=Loader)["generation_kwargs"]["until"])


def questions(cfg: StudyConfig):
    """The first `per_subtask` pool items of each subtask, in the pool's interleaved order."""
    chosen = [s.strip() for s in cfg.subtasks.split(",") if s.strip()] or None
    taken: dict[str, int] = {}
    out = []
    for q in bbh_split.pool_questions(cfg.bbh_dir or None, chosen):
        if taken.get(q.source, 0) < cfg.per_subtask:
            taken[q.source] = taken.get(q.source, 0) + 1
            out.append(q)
    return out


class Cutter:
    """A reply as a shorter cap would have left it: the generated part (after the reply prefix)
    retokenised, kept to `cap` tokens and decoded."""

    def __init__(self, tokenizer):
        self.tok = tokenizer

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def tokens(self, reply: str, prefix: str) -> int:
        return generated_tokens(reply, prefix, self.count)

    def cut(self, reply: str, prefix: str, cap: int) -> str:
        ids = self.tok(generated_part(reply, prefix), add_special_tokens=False)["input_ids"]
        return reply if len(ids) <= cap else prefix + self.tok.decode(ids[:cap])


def study_chunk(qs, engine: Engine, cutter: Cutter, cfg: StudyConfig) -> list[dict]:
    """Trial 1, reflection and retries for one chunk of questions, as one record per question."""
    caps, longest = cfg.cap_list(), cfg.cap_list()[-1]
    stops = task_stops()
    answer_turn = Sampling(max_new_tokens=longest, stop=stops)
    trials = [prompts.trial_prompt(q) for q in qs]
    replies = engine.generate(trials, answer_turn)
    records, wrong = [], []
    for q, p, reply in zip(qs, trials, replies):
        by_cap = {str(c): A.score(cutter.cut(reply, p.reply_prefix, c), q.answer, q.spec).outcome for c in caps}
        rec = {"record_id": q.id, "question_id": q.id, "subtask": q.source, "kind": q.kind,
               "trial1": {"reply_prefix": p.reply_prefix, "output": reply, "tokens": cutter.tokens(reply, p.reply_prefix),
                          "by_cap": by_cap},
               "reflection": None, "retries": None}
        records.append(rec)
        if by_cap[str(cfg.trial_cap)] != A.CORRECT:
            wrong.append((q, rec, cutter.cut(reply, p.reply_prefix, cfg.trial_cap), by_cap[str(cfg.trial_cap)]))
    if not wrong:
        return records
    instruction = find_instruction("default")
    asks = [prompts.reflection_prompt(q, attempt, instruction, verdict) for q, _, attempt, verdict in wrong]
    reflections = engine.generate(asks, Sampling(max_new_tokens=longest, stop=()))
    jobs = []
    for (q, rec, attempt, verdict), ask, reflection in zip(wrong, asks, reflections):
        rec["reflection"] = {"instruction_id": instruction.id, "attempt_cap": cfg.trial_cap, "output": reflection,
                             "tokens": cutter.tokens(reflection, ask.reply_prefix)}
        rec["retries"] = {}
        for rc in cfg.reflection_cap_list():
            text = cutter.cut(reflection, ask.reply_prefix, rc)
            jobs.append((q, rec, rc, prompts.retry_prompt(q, attempt, text, verdict)))
    retries = engine.generate([p for *_, p in jobs], answer_turn)
    for (q, rec, rc, p), reply in zip(jobs, retries):
        by_cap = {str(c): A.score(cutter.cut(reply, p.reply_prefix, c), q.answer, q.spec).outcome for c in caps}
        rec["retries"][str(rc)] = {"reply_prefix": p.reply_prefix, "output": reply,
                                   "tokens": cutter.tokens(reply, p.reply_prefix), "by_cap": by_cap}
    return records


def report(records: list[dict], cfg: StudyConfig) -> dict:
    """Counts per cap (trial 1), per reflection cap (reflections reaching it) and per reflection cap
    and retry cap (retries): what report.md shows, with Wilson intervals."""
    caps = cfg.cap_list()
    trial = {str(c): {"n": len(records),
                      **{o: sum(r["trial1"]["by_cap"][str(c)] == o for r in records) for o in OUTCOMES},
                      "reached": sum(reaches_cap(r["trial1"]["tokens"], c) for r in records)} for c in caps}
    wrong = [r for r in records if r["reflection"] is not None]
    reflection = {str(rc): {"n": len(wrong), "reached": sum(reaches_cap(r["reflection"]["tokens"], rc) for r in wrong)}
                  for rc in cfg.reflection_cap_list()}
    retry = {}
    for rc in cfg.reflection_cap_list():
        for c in caps:
            turns = [r["retries"][str(rc)] for r in wrong]
            retry[f"{rc}/{c}"] = {"n": len(turns), **{o: sum(t["by_cap"][str(c)] == o for t in turns) for o in OUTCOMES},
                                  "reached": sum(reaches_cap(t["tokens"], c) for t in turns)}
    return {"questions": len(records), "subtasks": len({r["subtask"] for r in records}),
            "settings": cfg.identity(), "cap_slack": CAP_SLACK, "trial1": trial, "reflection": reflection,
            "retry": retry}


def report_markdown(rep: dict, cfg: StudyConfig) -> str:
    s = cfg
    lines = [f"# Token caps per turn: {rep['questions']} pool questions ({rep['subtasks']} subtasks)", "",
             f"`scripts/cap_study.py`: model {s.model} ({s.engine}, {s.dtype}), greedy, each turn generated once "
             f"with a {s.cap_list()[-1]}-token cap and scored (strict) as if cut at each cap; a reply reaches a cap "
             f"at cap - {rep['cap_slack']} retokenised tokens or more. Rates with 95% Wilson intervals.", "",
             "## Trial 1", "", "| cap | right | no answer | reaching the cap |", "|---:|---|---|---|"]
    for c, row in rep["trial1"].items():
        lines.append(f"| {c} | {format_rate(row[A.CORRECT], row['n'])} | {format_rate(row[A.NO_ANSWER], row['n'])} | "
                     f"{format_rate(row['reached'], row['n'])} |")
    lines += ["", f"## Reflection and retry (the {next(iter(rep['reflection'].values()))['n']} questions wrong at "
              f"trial 1 under their trial-1 cap of {s.trial_cap} tokens)", "",
              "| reflection cap | reflections reaching it | retry cap | fixed | no answer after the retry | retries reaching the cap |",
              "|---:|---|---:|---|---|---|"]
    for key, row in rep["retry"].items():
        rc, c = key.split("/")
        refl = rep["reflection"][rc]
        lines.append(f"| {rc} | {format_rate(refl['reached'], refl['n'])} | {c} | {format_rate(row[A.CORRECT], row['n'])} | "
                     f"{format_rate(row[A.NO_ANSWER], row['n'])} | {format_rate(row['reached'], row['n'])} |")
    return "\n".join(lines) + "\n"


def write_report(store: RecordStore, cfg: StudyConfig) -> dict:
    rep = report(store.read(), cfg)
    out = Path(cfg.output)
    write_atomic(out / "report.json", [json.dumps(rep, indent=1)])
    write_atomic(out / "report.md", [report_markdown(rep, cfg).rstrip("\n")])
    return rep


def report_only(cfg: StudyConfig) -> dict:
    """The report of a study's finished chunks (while it runs, or after it stopped), with the settings
    its folder was made with: nothing is generated, the running study is not disturbed (chunks are
    written whole, reports replaced whole)."""
    out = Path(cfg.output)
    settings = out / "settings.json"
    if not settings.is_file():
        raise UserError(f"{out}: no cap study here (no settings.json)")
    made = StudyConfig(output=cfg.output, bbh_dir=cfg.bbh_dir, **json.loads(settings.read_text(encoding="utf-8")))
    store = RecordStore(out)
    rep = write_report(store, made)
    return {"chunks_finished": len(store.done_chunks()), **{k: rep[k] for k in ("questions", "subtasks")}}


def run(cfg: StudyConfig, engine: Engine | None = None, tokenizer=None) -> dict:
    if cfg.report_only:
        return report_only(cfg)
    cfg.check()
    qs = questions(cfg)
    out = Path(cfg.output)
    store = RecordStore(out)
    with FolderLock(out):
        claim_folder(out / "settings.json", cfg.identity(), "a cap study",
                     "give another --output, or the same settings to resume it")
        store.clean_temporaries()
        done = store.done_chunks()
        chunks = [qs[i:i + cfg.chunk_size] for i in range(0, len(qs), cfg.chunk_size)]
        todo = [i for i in range(len(chunks)) if i not in done]
        if todo:
            if engine is None:
                engine = Engine(EngineConfig(engine=cfg.engine, model=cfg.model, dtype=cfg.dtype,
                                             batch_size=cfg.batch_size, model_args=parse_model_args(cfg.model_args)))
            cutter = Cutter(tokenizer if tokenizer is not None else engine.lm.tokenizer)
            for i in todo:
                store.write_chunk(i, study_chunk(chunks[i], engine, cutter, cfg))
                print(f"cap study: chunk {i + 1} of {len(chunks)} written", file=sys.stderr, flush=True)
        rep = write_report(store, cfg)
    return {"chunks": len(chunks), "resumed_chunks": len(chunks) - len(todo), **{k: rep[k] for k in ("questions", "subtasks")}}


def parse_args(argv: list[str] | None = None) -> StudyConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(StudyConfig):
        parser.add_argument(f"--{f.name}", type=_flag if isinstance(f.default, bool) else type(f.default),
                            default=f.default)
    return StudyConfig(**vars(parser.parse_args(argv)))


def _flag(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    try:
        print(json.dumps(run(parse_args(argv)), indent=1))
    except UserError as exc:
        print(f"cap_study: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
