"""Where a difference between two rows comes from.

A comparison (leaderboards/build.py) says by how much one row beats another and how sure that is; a
reader who wants to know why asks which items make the difference. This module answers from the
per-item outcome codes every results file carries: the items one row gets right and the other does
not, counted by what the winning row's own trial 1 was (no answer, a wrong answer, or already right),
by answer kind and by subtask. "No answer at trial 1" is a recovery (the second attempt committed to
an answer where the first committed to none), "wrong at trial 1" is a fix of a readable wrong answer,
"right at trial 1" an answer kept where the other row lost it (or, between different answering
models, got it wrong from the start).
"""

from collections import Counter

from reflectevo_tasks.bbh import ANSWER_KIND, TWO_ANSWER_SUBTASKS

TRIAL1 = {"n": "no_answer", "0": "wrong", "1": "right"}
TRIAL1_WORDS = {"no_answer": "no answer", "wrong": "wrong", "right": "right"}


def answer_kind(subtask: str, bench: str) -> str:
    """A BBH subtask's answer kind (reflectevo_tasks/bbh.py); MATH and MBPP have one kind each."""
    if bench == "bbh":
        return str(ANSWER_KIND.get(subtask, "other"))
    return {"math": "maths answer", "mbpp": "program"}.get(bench, bench)


def side(keys, codes: dict, subtask_of, bench: str) -> dict:
    """The items in `keys` (those one row wins) counted by that row's trial-1 verdict, by answer kind, by
    subtask (most first) and on the two-answer subtasks. `codes`: {item: (trial 1 code, final code)}."""
    trial1, kinds, subtasks = Counter(), Counter(), Counter()
    for key in keys:
        trial1[TRIAL1[codes[key][0]]] += 1
        name = subtask_of(key[0])
        subtasks[name] += 1
        kinds[answer_kind(name, bench)] += 1
    return {"items": len(keys), "trial1": {k: trial1[k] for k in TRIAL1.values()},
            "two_answer": sum(n for s, n in subtasks.items() if s in TWO_ANSWER_SUBTASKS) if bench == "bbh" else None,
            "answer_kinds": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            "subtasks": dict(sorted(subtasks.items(), key=lambda kv: (-kv[1], kv[0])))}


def difference_sources(codes_row: dict, codes_against: dict, subtask_of, bench: str) -> dict:
    """{'row_ahead': side, 'against_ahead': side} of two rows on the same items, on their final answers
    (the last attempt each made). The counts agree with the comparison's only_row / only_against."""
    def final(code: tuple) -> bool:
        return code[1] == "1"

    ahead = [k for k in codes_against if final(codes_row[k]) and not final(codes_against[k])]
    behind = [k for k in codes_against if final(codes_against[k]) and not final(codes_row[k])]
    return {"row_ahead": side(ahead, codes_row, subtask_of, bench),
            "against_ahead": side(behind, codes_against, subtask_of, bench)}


def _most(counts: dict, k: int = 4) -> str:
    items = list(counts.items())
    shown = ", ".join(f"{name} {n}" for name, n in items[:k])
    rest = sum(n for _, n in items[k:])
    return (shown + (f", others {rest}" if rest else "")) or "–"


def source_lines(compared: list[dict], label) -> list[str]:
    """The markdown section: one line per comparison and side that wins at least one item."""
    rows = [c for c in compared if c.get("sources")]
    if not rows:
        return []
    head = ["", "## Where the differences come from", ""]
    if not any(c["sources"][k]["items"] for c in rows for k in ("row_ahead", "against_ahead")):
        return head + ["No item is right in one compared row and not in the other."]
    out = head + [
           "For each comparison above (final answers, all items): the items one row gets right and the other does "
           "not, by the winning row's own trial 1 (no answer: a recovery; wrong: a fix of a readable wrong answer; "
           "right: an answer kept), on the two-answer subtasks, by answer kind and by subtask (most first).", "",
           "| row | against | ahead | items | t1 no answer | t1 wrong | t1 right | two-answer | answer kinds | subtasks |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        for who, key in (("row", "row_ahead"), ("against", "against_ahead")):
            s = c["sources"][key]
            if not s["items"]:
                continue
            t = s["trial1"]
            two = "–" if s["two_answer"] is None else str(s["two_answer"])
            out.append(f"| #{c['row']} {label(c['row'])} | #{c['against']} {label(c['against'])} | {who} | {s['items']} | "
                       f"{t['no_answer']} | {t['wrong']} | {t['right']} | {two} | {_most(s['answer_kinds'])} | "
                       f"{_most(s['subtasks'])} |")
    return out


def subtasks_by_kind(names, bench: str) -> dict[str, list[str]]:
    """{answer kind: its subtasks among `names`}, kinds sorted."""
    out = {}
    for name in names:
        out.setdefault(answer_kind(name, bench), []).append(name)
    return dict(sorted(out.items()))


def _kind_cell(s: dict) -> str:
    if s.get("acc_t2") is None:
        return f"{100 * s['acc_t1']:.1f}"
    cell = f"{100 * s['acc_t1']:.1f} → {100 * s['acc_t2']:.1f}"
    if s.get("fixed_no_answer") is None:  # a version-1 file cannot split its fixes
        return cell + f" (+{s['wrong_to_right']})"
    broken = f" − {s['right_to_wrong']}" if s.get("right_to_wrong") else ""
    return cell + f" ({s['fixed_no_answer']} + {s['fixed_readable']}{broken})"


def kind_lines(rows: list[dict], label) -> list[str]:
    """The markdown section: each row's accuracy per answer kind, and where its fixes came from."""
    kinds = sorted({k for r in rows for k in (r.get("answer_kinds") or {})})
    if len(kinds) < 2:
        return []
    sizes = {k: next(f"{r['answer_kinds'][k]['n']} ({r['answer_kinds'][k]['subtasks']})" for r in rows
                     if k in (r.get("answer_kinds") or {})) for k in kinds}
    out = ["", "## Per answer kind", "",
           "Acc@t1 → Acc@t2 in % at the headline level, pooled over the subtasks of each answer kind, with the "
           "row's fixes as (recoveries of no answer + fixes of wrong answers − breaks, where it has any); the "
           "intervals are in the JSON rows (answer_kinds).", "",
           "| # | row | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds),
           "| | items (subtasks) | " + " | ".join(sizes[k] for k in kinds) + " |"]
    for i, r in enumerate(rows, 1):
        cells = [_kind_cell(r["answer_kinds"][k]) if k in (r.get("answer_kinds") or {}) else "–" for k in kinds]
        out.append(f"| {i} | {label(i)} | " + " | ".join(cells) + " |")
    return out
