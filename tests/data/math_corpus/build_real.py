"""Write real.jsonl: the real replies of replies.jsonl, each with its question, its gold and the
labels a reader gave it under README.md (labels_real.txt), never labels from a scorer.

labels_real.txt has one line per reply:
    index|rule|strict verdict|strict answer|flexible verdict|flexible answer|note
with "-" for no answer; `index` is the problem's 0-based line in the MATH file. Every reply must
have exactly one label line, and every label line a reply.

Run from the repository root:
    python tests/data/math_corpus/build_real.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from math_rows import check_row, load_problems  # noqa: E402

REPLIES = HERE / "replies.jsonl"
LABELS = HERE / "labels_real.txt"
OUT = HERE / "real.jsonl"


def read_labels() -> dict[int, dict]:
    out = {}
    for n, line in enumerate(LABELS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("|", 6)  # the note, last, may hold "|" itself
        if len(parts) != 7:
            raise SystemExit(f"{LABELS}:{n}: expected 7 fields "
                             f"(index|rule|strict verdict|strict answer|flexible verdict|flexible answer|note), got {len(parts)}")
        index, rule, sv, sa, fv, fa, note = parts
        if not index.isdigit():
            raise SystemExit(f"{LABELS}:{n}: index {index!r} is not a number")
        if int(index) in out:
            raise SystemExit(f"{LABELS}:{n}: a second label for index {index}")
        out[int(index)] = {"rule": rule, "note": note,
                           "expected_strict": {"verdict": sv, "answer": None if sa == "-" else sa},
                           "expected_flexible": {"verdict": fv, "answer": None if fa == "-" else fa}}
    return out


def main() -> None:
    problems = {p["index"]: p for p in load_problems()}
    labels = read_labels()
    rows = []
    for n, line in enumerate(REPLIES.read_text(encoding="utf-8").splitlines(), 1):
        rec = json.loads(line)
        index = rec["index"]
        if index not in labels:
            raise SystemExit(f"{LABELS}: no label for the reply to problem {index} ({REPLIES}:{n})")
        p = problems[index]
        row = {"id": f"real/math/{index}", "origin": "real", "source": rec["source"], "turn": rec["turn"],
               "index": index, "level": p["level"], "type": p["type"],
               "model": rec["model"], "model_revision": rec["model_revision"],
               "question": p["problem"], "gold": p["gold"], "reply": rec["reply"], **labels.pop(index)}
        check_row(row, f"{LABELS} index {index}")
        rows.append(row)
    if labels:
        raise SystemExit(f"{LABELS}: labels for replies that do not exist: {sorted(labels)}")
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} real replies")


if __name__ == "__main__":
    main()
