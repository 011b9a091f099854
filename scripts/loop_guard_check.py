"""Would ending a reply once it loops (reflectevo_tasks.loop_guard) change any verdict? Measured on
stored replies, before any engine uses the rule.

    .venv/bin/python scripts/loop_guard_check.py --cap_study runs/cap-study \
        --pool_chunks leaderboards/measured/pool-gen/parts --output leaderboards/measured/cap-study/loop_guard.json

For every stored answer turn (trial 1, retry) the generated part after the reply prefix is retokenised
with the model's tokenizer (as the plugin counts a reply), the rule finds where a loop completes, and
the reply cut there is scored at both levels against the reply as stored. Reflections are not scored
(their effect runs through the retry, which would have to be generated again): for them only the
tokens the rule would save are counted. A loop that completes only at the very end saves nothing and
is not counted as a cut.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness_plugins.reflect_model import generated_part  # noqa: E402
from reflectevo.chunk_store import write_atomic  # noqa: E402
from reflectevo_tasks import answers as A  # noqa: E402
from reflectevo_tasks import bbh  # noqa: E402
from reflectevo_tasks.loop_guard import MAX_PERIOD, MIN_PERIOD, REPEATS, loop_end  # noqa: E402
from reflectevo_tasks.questions import Question  # noqa: E402


@dataclass
class Tally:
    replies: int = 0
    cut: int = 0
    tokens: int = 0
    tokens_saved: int = 0
    changed: list = field(default_factory=list)  # (where, level, verdict as stored, verdict cut)

    def as_dict(self) -> dict:
        return {"replies": self.replies, "cut_by_the_rule": self.cut, "tokens": self.tokens,
                "tokens_saved": self.tokens_saved, "verdicts_changed": len(self.changed), "changes": self.changed}


def turns_of_cap_study(folder: Path):
    """(where, turn kind, question, reply prefix, reply) of every stored turn of a cap study."""
    from reflectevo.chunk_store import RecordStore

    for rec in RecordStore(folder).read():
        sub, index = rec["question_id"].split("/")[1], int(rec["question_id"].split("/")[2])
        q = _bbh_question(sub, index)
        t = rec["trial1"]
        yield f"{folder.name}:{rec['question_id']}:trial1", "answer", q, t["reply_prefix"], t["output"]
        if rec.get("reflection"):
            yield f"{folder.name}:{rec['question_id']}:reflection", "reflection", q, "", rec["reflection"]["output"]
            for cap, r in sorted(rec["retries"].items(), key=lambda kv: int(kv[0])):
                yield f"{folder.name}:{rec['question_id']}:retry@{cap}", "answer", q, r["reply_prefix"], r["output"]


def turns_of_gen_chunks(folder: Path):
    """The same for `gen run` records stored as chunk-*.jsonl[.gz]."""
    for path in sorted(folder.glob("chunk-*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if "record_id" not in rec:
                    continue  # the chunk's manifest line
                q = Question.from_dict(rec["question"])
                where = f"{folder.parent.name}:{rec['record_id']}"
                t = rec["trial1"]  # one per question, whichever of its records comes first
                yield f"{folder.parent.name}:{rec['question_id']}:trial1", "answer", q, t["reply_prefix"], t["output"]
                if rec.get("reflection"):
                    yield f"{where}:reflection", "reflection", q, "", rec["reflection"]["output"]
                    r = rec["retry"]
                    yield f"{where}:retry", "answer", q, r["reply_prefix"], r["output"]


def turns_of_trajectories(folder: Path):
    """The same for the lm-eval model's stored trajectories (a results file's resume folder)."""
    from leaderboards.build import stored_trajectories

    for (_task, qid), t in sorted(stored_trajectories(folder).items()):
        q = _bbh_question(qid.split("/")[1], int(qid.split("/")[2]))
        for turn in t["turns"]:
            kind = "reflection" if turn["turn"] == "reflection" else "answer"
            if turn["turn"] not in ("trial1", "reflection", "retry"):
                continue  # a one-stage reply is scored on its corrected part, not whole
            yield f"{folder.name}:{qid}:{turn['turn']}", kind, q, turn.get("reply_prefix") or "", turn["output"] or ""


_QUESTIONS: dict[str, dict] = {}


def _bbh_question(subtask: str, index: int):
    if subtask not in _QUESTIONS:
        _QUESTIONS[subtask] = {q.index: q for q in bbh.load_subtask(subtask)}
    return _QUESTIONS[subtask][index]


def check(turns, tokenizer) -> dict:
    tallies = {"answer": Tally(), "reflection": Tally()}
    periods = Counter()
    seen = set()
    for where, kind, q, prefix, reply in turns:
        if where in seen:  # a trial 1 shared by several records of one question is counted once
            continue
        seen.add(where)
        tally = tallies[kind]
        body = generated_part(reply, prefix)
        ids = tokenizer(body, add_special_tokens=False)["input_ids"]
        tally.replies += 1
        tally.tokens += len(ids)
        end = loop_end(ids)
        if end is None or end >= len(ids):
            continue
        tally.cut += 1
        tally.tokens_saved += len(ids) - end
        periods[_period(ids[:end])] += 1
        if kind != "answer":
            continue
        cut = prefix + tokenizer.decode(ids[:end]) if prefix and reply.startswith(prefix) else tokenizer.decode(ids[:end])
        for level in A.LEVELS:
            before = A.score(reply, q.answer, q.spec, level=level).outcome
            after = A.score(cut, q.answer, q.spec, level=level).outcome
            if before != after:
                tally.changed.append({"where": where, "level": level, "stored": before, "cut": after,
                                      "tokens": len(ids), "cut_at": end})
    return {"rule": {"min_period": MIN_PERIOD, "max_period": MAX_PERIOD, "repeats": REPEATS},
            "answer_turns": tallies["answer"].as_dict(), "reflections": tallies["reflection"].as_dict(),
            "loop_periods": dict(sorted(periods.items()))}


def _period(ids) -> int:
    """The block length of the loop that ends `ids` (the smallest that completes there)."""
    for p in range(MIN_PERIOD, MAX_PERIOD + 1):
        if len(ids) >= REPEATS * p and all(ids[-1 - i] == ids[-1 - i - p] for i in range((REPEATS - 1) * p)):
            return p
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap_study", action="append", default=[], help="a cap-study output folder (repeatable)")
    parser.add_argument("--pool_chunks", action="append", default=[],
                        help="a folder of gen run chunks, chunk-*.jsonl or .jsonl.gz (repeatable)")
    parser.add_argument("--trajectories", action="append", default=[],
                        help="a resume folder of the lm-eval model's stored trajectories (repeatable)")
    parser.add_argument("--output", default=None, help="write the report (JSON) here as well")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from reflectevo.embedded_model import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))  # the model every stored reply came from
    report = {}
    for folder in args.cap_study:
        report[folder] = check(turns_of_cap_study(Path(folder)), tok)
    for folder in args.pool_chunks:
        report[folder] = check(turns_of_gen_chunks(Path(folder)), tok)
    for folder in args.trajectories:
        report[folder] = check(turns_of_trajectories(Path(folder)), tok)
    text = json.dumps(report, indent=1)
    if args.output:
        write_atomic(Path(args.output), [text])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
