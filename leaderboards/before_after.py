"""What the scoring change of 2026-12-01 (scorer version 1 -> 2) removed, measured on the same replies.

    python leaderboards/before_after.py [--out leaderboards/measured/BEFORE_AFTER.md]

Scorer version 1 is read from git history (`reflectevo_tasks/answers.py` at V1_COMMIT), so both
versions score the very same texts:
- the measured rows' stored trajectories (leaderboards/measured/resume/<row>): answers credited at
  trial 1 and fixes at trial 2 under each version;
- the measured training data's raw records (leaderboards/measured/training-data/raw.jsonl): the
  retries each version counts as fixed (what D+ is built from), beside the curated counts that the
  committed statistics of each curation report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
V1_COMMIT = "0713302"  # the last commit scored by version 1
RESUME = REPO / "leaderboards" / "measured" / "resume"
RAW = REPO / "leaderboards" / "measured" / "training-data" / "raw.jsonl"


def scorer_v1():
    """reflectevo_tasks.answers as of V1_COMMIT, loaded as a separate module."""
    source = subprocess.run(["git", "show", f"{V1_COMMIT}:reflectevo_tasks/answers.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="scorer-v1-"))
    path = folder / "answers_v1.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("answers_v1", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["answers_v1"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _spec_pair(q, v1):
    """The question's answer spec for both scorers (their AnswerSpec classes differ)."""
    return q.spec, v1.AnswerSpec(q.spec.kind, q.spec.options, q.spec.vocabulary)


def row_counts(folder: Path, v1) -> dict:
    """Trial-1 credit and trial-2 fixes of one stored row under both scorer versions."""
    from reflectevo.chunk_store import RecordStore
    from reflectevo_tasks import answers as v2

    store = RecordStore(folder)
    c = Counter()
    for number in sorted(store.done_chunks()):
        for record in store.read_chunk(number):
            t = json.loads(record["trajectory"])
            task, doc_id = json.loads(record["key"])[:2]
            subtask, index = doc_id.split("/")[1], int(doc_id.split("/")[2])
            q = _question(subtask, index)
            spec2, spec1 = _spec_pair(q, v1)
            t1 = t["trial1"]["reply"]
            right1 = {1: v1.score(t1, q.answer, spec1).correct, 2: v2.score(t1, q.answer, spec2).correct}
            c["docs"] += 1
            c["t1_right_v1"] += right1[1]
            c["t1_right_v2"] += right1[2]
            c["t1_right_v1_only"] += right1[1] and not right1[2]
            t2 = t.get("trial2") or {}
            if t2.get("reply") is not None:
                c["retried"] += 1
                right2 = {1: v1.score(t2["reply"], q.answer, spec1).correct,
                          2: v2.score(t2["reply"], q.answer, spec2).correct}
                c["fixes_v1"] += right2[1] and not right1[1]
                c["fixes_v2"] += right2[2] and not right1[2]
                c["fixes_v1_only"] += (right2[1] and not right1[1]) and not (right2[2] and not right1[2])
    return dict(c)


_BBH_CACHE: dict = {}


def _question(subtask: str, index: int):
    from reflectevo_tasks import bbh

    if subtask not in _BBH_CACHE:
        _BBH_CACHE[subtask] = bbh.load_subtask(subtask)
    return _BBH_CACHE[subtask][index]


def raw_counts(v1) -> dict:
    """Retries of the training data's raw records that each version counts as fixed."""
    from reflectevo_tasks import answers as v2
    from reflectevo_tasks.questions import Question

    c = Counter()
    for line in RAW.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        q = Question.from_dict(json.loads(r["question"]))
        spec2, spec1 = _spec_pair(q, v1)
        t1 = json.loads(r["trial1"])["output"]
        c["records"] += 1
        wrong1 = {1: not v1.score(t1, q.answer, spec1).correct, 2: not v2.score(t1, q.answer, spec2).correct}
        if not r.get("retry") or r["retry"] == "null":
            continue
        retry = json.loads(r["retry"])["output"]
        fixed = {k: wrong1[k] and (v1 if k == 1 else v2).score(retry, q.answer, spec1 if k == 1 else spec2).correct
                 for k in (1, 2)}
        c["reflections"] += 1
        c["fixed_v1"] += fixed[1]
        c["fixed_v2"] += fixed[2]
        c["fixed_v1_only"] += fixed[1] and not fixed[2]
    return dict(c)


def curated_counts() -> list[tuple[str, dict]]:
    """Rows per training config, step by step: as committed by scorer version 1 and the old curation;
    the new curation on the outcomes recorded at generation (version 1's verdicts); the new curation
    with the new scorer (the committed set now)."""
    from reflectevo_gen import curate as C
    from reflectevo_tasks import answers as A

    folder = RAW.parent
    old = json.loads(subprocess.run(["git", "show", f"{V1_COMMIT}:{folder.relative_to(REPO).as_posix()}/stats.json"],
                                    cwd=REPO, capture_output=True, text=True, check=True).stdout)
    records = C.read_raw_records(folder)
    from reflectevo_tasks.questions import Question

    stored = {}  # (gold, options, reply) -> the outcome recorded at generation
    for r in records:
        q = Question.from_dict(r["question"])
        for turn in ("trial1", "retry"):
            if r.get(turn):
                stored[(q.answer, q.spec.options, r[turn]["output"])] = r[turn]["outcome"]
    real = A.score

    def recorded(reply, gold, spec, level=None):
        v = real(reply, gold, spec, level)
        outcome = stored.get((gold, spec.options, reply), v.outcome)
        return A.Verdict(outcome, v.extracted, v.gold, v.method, v.f1, v.level, v.refusal)

    engine = C.run_judge(str(folder))
    A.score = recorded
    try:
        mid = C.curate(records, C.CurateOptions(), engine)
    finally:
        A.score = real
    now = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    return [("scorer v1, old curation (as committed before)", old["counts"] | {"leaks": old["leaking_reflections_dropped"]}),
            ("scorer v1 verdicts, new curation", {c: len(mid[c]) for c in C.CONFIGS}
             | {"leaks": mid["stats"]["leaking_reflections_dropped"]}),
            ("scorer v2, new curation (committed now)", now["counts"] | {"leaks": now["leaking_reflections_dropped"]})]


def report() -> str:
    v1 = scorer_v1()
    lines = ["# Before and after: scorer version 1 against version 2 on the same replies", "",
             f"Generated by `leaderboards/before_after.py` (scorer version 1 = `reflectevo_tasks/answers.py` at "
             f"{V1_COMMIT}; version 2 = strict, the headline level). Same replies, two scorers: what the old "
             "scorer credited that the new one does not.", "",
             "## Measured rows (stored trajectories)", "",
             "| row | docs | right at trial 1 (v1 → v2) | credited by v1 only | retried | fixes at trial 2 (v1 → v2) "
             "| fixes v1 only |", "|---|---|---|---|---|---|---|"]
    for folder in sorted(p for p in RESUME.iterdir() if (p / "parts").is_dir()) if RESUME.is_dir() else []:
        c = row_counts(folder, v1)
        lines.append(f"| {folder.name} | {c.get('docs', 0)} | {c.get('t1_right_v1', 0)} → {c.get('t1_right_v2', 0)} | "
                     f"{c.get('t1_right_v1_only', 0)} | {c.get('retried', 0)} | "
                     + (f"{c.get('fixes_v1', 0)} → {c.get('fixes_v2', 0)} | {c.get('fixes_v1_only', 0)} |"
                        if c.get("retried") else "– | – |"))
    lines += ["", "Fixes are counted on the retried items of the new run (v2 gates the retries: it retries items v1 "
              "would have taken as right). A row still being measured shows its stored chunks so far.", "",
              "## Training data (raw records of the measured generation run)", ""]
    c = raw_counts(v1)
    lines += ["| records | reflections retried | fixed by retry (v1 → v2) | counted fixed by v1 only |", "|---|---|---|---|",
              f"| {c['records']} | {c['reflections']} | {c['fixed_v1']} → {c['fixed_v2']} | {c['fixed_v1_only']} |", "",
              "Rows per training config, one change at a time (the new curation: the leak filter "
              "`reflectevo_tasks.leaks`, D+ without copied retries, D± spread over distinct reflections, Dpref "
              "pairs under the measured log-likelihood noise dropped):", "",
              "| curation | leak drops | D+ | D± | Dpref | sft_qa |", "|---|---|---|---|---|---|"]
    for name, n in curated_counts():
        lines.append(f"| {name} | {n['leaks']} | {n['d_plus']} | {n['d_pm']} | {n['d_pref']} | {n['sft_qa']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "leaderboards" / "measured" / "BEFORE_AFTER.md"))
    args = parser.parse_args(argv)
    text = report()
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
