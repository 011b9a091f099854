"""A tiny hand-written curated set over real BBH questions, for smoke runs, tests and benchmarks.

The attempts, reflections and retries are short templates written for this purpose, not model
outputs; they have the columns `reflectevo gen curate` writes, so every setting can run on them:

    python -c "from reflectevo_train.sample import write_sample; write_sample('runs/sample')"
    reflectevo train one_stage --config demo --dataset runs/sample
"""

from __future__ import annotations

import json
from pathlib import Path

from reflectevo_tasks import answers as A
from reflectevo_tasks.prompts import ANSWER_LINE, REASONING_CUE

SUBTASKS = ("boolean_expressions", "sports_understanding", "date_understanding", "web_of_lies")

_DIAGNOSES = (
    "The attempt jumped to its conclusion without working through the statements one at a time, so "
    "the final answer does not follow from the facts in the question.",
    "The attempt checked only part of the question and ignored a condition that changes the result, "
    "so its answer is inconsistent with what was asked.",
    "The attempt guessed after one quick look and never verified the intermediate steps, which is "
    "where the reasoning went wrong.",
)
_PLANS = (
    "Next time, restate what is asked, evaluate each part in order, write down every intermediate "
    "result, and compare the final result with each option before answering.",
    "Next time, list every condition of the question first, check each one explicitly, and only then "
    "choose the answer that satisfies all of them.",
)


def _wrong_answer(q) -> str:
    if q.kind == A.CHOICE:
        letters = [letter for letter, _ in q.options] or list("ABCD")
        gold = q.answer.strip("() ")
        return "(" + next(x for x in letters if x != gold) + ")"
    flips = {"true": "False", "false": "True", "yes": "No", "no": "Yes", "valid": "invalid", "invalid": "valid"}
    return flips.get(q.answer.strip().lower(), "unknown")


def _gold(q) -> str:
    return q.answer.strip().capitalize() if q.kind in (A.TRUE_FALSE, A.YES_NO) else q.answer.strip()


def sample_rows(bbh_dir: str | None = None, per_subtask: int = 2) -> dict[str, list[dict]]:
    """{config: rows} for d_plus, d_pm, d_pref and sft_qa (one row per question in each)."""
    from reflectevo_tasks.bbh import load_subtask

    out: dict[str, list[dict]] = {"d_plus": [], "d_pm": [], "d_pref": [], "sft_qa": []}
    n = 0
    for sub in SUBTASKS:
        for q in load_subtask(sub, bbh_dir, limit=per_subtask):
            wrong, gold = _wrong_answer(q), _gold(q)
            trial1 = f"{REASONING_CUE} At a quick glance the statement seems to hold. {ANSWER_LINE} {wrong}."
            reflection = f"{_DIAGNOSES[n % len(_DIAGNOSES)]} {_PLANS[n % len(_PLANS)]}"
            weaker = f"{_DIAGNOSES[(n + 1) % len(_DIAGNOSES)]} Be more careful."
            retry = (f"{REASONING_CUE} Working through the question part by part and checking every "
                     f"condition, the consistent result is {gold}. {ANSWER_LINE} {gold}.")
            common = {"question_id": q.id, "source": q.source, "question": q.question, "gold": q.answer,
                      "kind": q.kind, "question_json": json.dumps(q.to_dict(), ensure_ascii=False), "trial1": trial1}
            out["d_plus"].append({**common, "reflection": reflection, "retry": retry, "instruction_id": "default",
                                  "record_id": f"sample-{n}"})
            out["d_pm"].append({**common, "chosen": reflection, "rejected": "The answer is wrong. Try again.",
                                "chosen_record_id": f"sample-{n}", "rejected_record_id": f"sample-{n}-r"})
            out["d_pref"].append({**common, "chosen": reflection, "rejected": weaker, "ranking": "loglik",
                                  "score_chosen": -1.0, "score_rejected": -2.0,
                                  "chosen_record_id": f"sample-{n}", "rejected_record_id": f"sample-{n}-w"})
            out["sft_qa"].append({**common, "answer": retry})
            n += 1
    return out


def write_sample(folder: str | Path, bbh_dir: str | None = None, per_subtask: int = 2) -> Path:
    """Write the sample as a curated folder (`<config>.jsonl` + a minimal stats.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(bbh_dir, per_subtask)
    for config, items in rows.items():
        (folder / f"{config}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                                                encoding="utf-8")
    (folder / "raw.jsonl").write_text("", encoding="utf-8")
    stats = {"per_source": [], "questions": len(rows["d_plus"]), "reflections": len(rows["d_plus"]),
             "share_fixed": 1.0, "leaking_reflections_dropped": 0, "dpref_ties_dropped": 0,
             "options": {"max_pairs": 1, "near_duplicate": 0.8, "ranking": "loglik"},
             "counts": {c: len(v) for c, v in rows.items()}, "source_run": "reflectevo_train.sample"}
    (folder / "stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    return folder
