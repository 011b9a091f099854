"""Shared helpers of the math corpus: the MATH problems with their gold answers, and reading the
corpus rows back with one clear error per malformed row.

The gold is read here with its own brace matching, independently of
reflectevo_tasks.math_answers, so that the corpus can judge that module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
MATH_FILE = "math/math_test.jsonl"
VERDICTS = ("correct", "wrong", "no_answer")


def math_path() -> Path:
    """The MATH test file: REFLECTEVO_MATH_FILE, else beside the BBH folder's parent (shared/data)."""
    env = os.environ.get("REFLECTEVO_MATH_FILE")
    if env:
        return Path(env)
    bbh = os.environ.get("REFLECTEVO_BBH_DIR")
    base = Path(bbh).resolve().parent if bbh else HERE.parents[3] / "shared" / "data"
    return base / MATH_FILE


def last_boxed(solution: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) of a worked solution."""
    start = max(solution.rfind("\\boxed"), solution.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = solution.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(solution)):
        if solution[i] == "{":
            depth += 1
        elif solution[i] == "}":
            depth -= 1
            if depth == 0:
                return solution[open_at + 1:i]
    return None


def load_problems(path: Path | None = None) -> list[dict]:
    """The problems in file order, each with `index` (0-based line) and `gold`."""
    path = path or math_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MATH test file not found (set REFLECTEVO_MATH_FILE or REFLECTEVO_BBH_DIR)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        rec = json.loads(line)
        gold = last_boxed(rec["solution"])
        if gold is None:
            raise ValueError(f"{path}:{n + 1}: solution has no complete \\boxed{{...}}")
        out.append({"index": n, "problem": rec["problem"], "gold": gold, "level": rec.get("level"),
                    "type": rec.get("type")})
    return out


# ---------------------------------------------------------------- corpus rows

FILES = ("real.jsonl", "written.jsonl")
RULE_IDS = ("B1", "B2", "B3", "B4", "M1", "M2", "M3", "M4", "M5", "F1", "F2", "F3", "N1", "L1")
REQUIRED = ("id", "origin", "source", "question", "gold", "reply", "expected_strict", "expected_flexible", "rule")


def check_row(row: dict, where: str) -> None:
    """One clear error for a malformed row: a label is {"verdict", "answer"}, and the answer is
    null exactly when the verdict is no_answer (the verdict itself is the reader's judgement of
    the answer against the gold, by README.md's comparison rules)."""
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if row["origin"] not in ("real", "written"):
        raise ValueError(f"{where}: origin {row['origin']!r} is neither real nor written")
    if row["rule"] not in RULE_IDS:
        raise ValueError(f"{where}: unknown rule {row['rule']!r}")
    for level in ("expected_strict", "expected_flexible"):
        lab = row[level]
        if not isinstance(lab, dict) or lab.get("verdict") not in VERDICTS or set(lab) != {"verdict", "answer"}:
            raise ValueError(f"{where}: {level} must be {{'verdict': one of {VERDICTS}, 'answer': text or null}}")
        if (lab["answer"] is None) != (lab["verdict"] == "no_answer"):
            raise ValueError(f"{where}: {level} verdict {lab['verdict']!r} does not fit answer {lab['answer']!r}")


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
