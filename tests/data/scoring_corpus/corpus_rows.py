"""Shared helpers for the scoring corpus: the canonical gold, the label of an answer, the question
fields of a BBH item, and reading the corpus back with each row's answer spec.

Canonical forms and verdicts follow RULES.md section 0 and are written here independently of
reflectevo_tasks.answers, so that the corpus can judge that module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("real.jsonl", "written.jsonl")
VERDICTS = ("correct", "wrong", "no_answer")
RULE_IDS = ("M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "N1", "L1")
KINDS = ("choice", "true_false", "yes_no", "valid_invalid", "integer", "dyck", "word_sort", "free_text")
REQUIRED = ("id", "origin", "source", "kind", "question", "gold", "reply", "expected_strict",
            "expected_flexible", "rule")


def canonical_gold(gold: str, kind: str) -> str:
    """The gold answer in the corpus's canonical form (RULES.md section 0)."""
    g = gold.strip()
    if kind == "choice":
        m = re.fullmatch(r"\(?([A-Za-z])\)?", g)
        if not m:
            raise ValueError(f"choice gold {gold!r} is not a letter (text golds are left out of the corpus)")
        return f"({m.group(1).upper()})"
    if kind in ("true_false", "yes_no"):
        return g.capitalize()
    if kind == "valid_invalid":
        return g.lower()
    if kind == "integer":
        return str(int(g))
    if kind == "dyck":
        return " ".join(c for c in g if c in "()[]{}<>")
    if kind == "word_sort":
        return " ".join(g.lower().split())
    if kind == "free_text":
        return free_text_form(g)
    raise ValueError(f"unknown kind {kind!r}")


def free_text_form(text: str) -> str:
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def label(answer: str | None, gold_canon: str) -> dict:
    """A label from the answer a reader took from the reply: the verdict follows from it alone."""
    if answer is None:
        return {"verdict": "no_answer", "answer": None}
    return {"verdict": "correct" if answer == gold_canon else "wrong", "answer": answer}


def question_fields(key: str) -> dict:
    """'bbh:<subtask>/<index>' -> the fields a corpus row keeps for a BBH item."""
    from reflectevo_tasks import bbh

    subtask, index = key.split(":", 1)[1].split("/")
    q = bbh.load_subtask(subtask, limit=int(index) + 1)[int(index)]
    return {"spec_from": "bbh", "subtask": subtask, "index": int(index), "kind": q.kind,
            "question": q.question, "gold": q.answer}


def spec_of(row: dict):
    """The answer spec of a row, rebuilt with the project's own code; like every question's spec it
    carries the question's text (the flexible level does not credit what the reply copies from it)."""
    from reflectevo_tasks import bbh
    from reflectevo_tasks.answers import AnswerSpec

    if row.get("spec_from") == "bbh":
        return bbh.make_question(row["subtask"], row["index"], row["question"], row["gold"]).spec
    return AnswerSpec(row["kind"], tuple(tuple(o) for o in row.get("options") or ()),
                      tuple(row.get("vocabulary") or ()), question=row["question"])


def check_row(row: dict, where: str) -> None:
    """One clear error for a malformed row."""
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if row["origin"] not in ("real", "written"):
        raise ValueError(f"{where}: origin {row['origin']!r} is neither real nor written")
    if row["rule"] not in RULE_IDS:
        raise ValueError(f"{where}: unknown rule {row['rule']!r}")
    if row["kind"] not in KINDS:
        raise ValueError(f"{where}: unknown kind {row['kind']!r}")
    gold = canonical_gold(row["gold"], row["kind"])
    for level in ("expected_strict", "expected_flexible"):
        lab = row[level]
        if not isinstance(lab, dict) or lab.get("verdict") not in VERDICTS:
            raise ValueError(f"{where}: {level} must be {{'verdict': one of {VERDICTS}, 'answer': ...}}")
        if lab != label(lab.get("answer"), gold):
            raise ValueError(f"{where}: {level} verdict {lab['verdict']!r} does not follow from answer "
                             f"{lab.get('answer')!r} and gold {gold!r}")


def load(files=FILES) -> list[dict]:
    rows, ids = [], set()
    for name in files:
        path = HERE / name
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc})") from None
            check_row(row, where)
            if row["id"] in ids:
                raise ValueError(f"{where}: duplicate id {row['id']}")
            ids.add(row["id"])
            rows.append(row)
    return rows
