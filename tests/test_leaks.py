"""The gold-leak filter: measured on labelled real reflections, plus hand-written edge cases.

The labelled set (tests/data/leak_labels/labels.jsonl, rules in RULES.md) holds 293 reflections of
the embedded model from the measured training-data run: every reflection the old filter dropped,
every one the new filter drops, every integer / yes-no / true-false reflection, and a sample of the
kept multiple-choice ones. Each row's label was decided by reading it against the rules.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflectevo_tasks import answers as A
from reflectevo_tasks import leaks as L

LABELS = Path(__file__).parent / "data" / "leak_labels" / "labels.jsonl"
MAX_MISSED = 0.02  # of the labelled leaks
MAX_FALSE_DROPS = 0.05  # of the labelled keeps


def _rows() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def _spec(row: dict) -> A.AnswerSpec:
    return A.AnswerSpec(row["kind"], tuple(tuple(o) for o in row["options"]))


def measure(classify) -> dict:
    """Missed leaks and false drops of `classify(row) -> bool` on the labelled set."""
    rows = _rows()
    leaks = [r for r in rows if r["label"] == "drop"]
    keeps = [r for r in rows if r["label"] == "keep"]
    missed = [r["record_id"] for r in leaks if not classify(r)]
    false_drops = [r["record_id"] for r in keeps if classify(r)]
    return {"rows": len(rows), "leaks": len(leaks), "keeps": len(keeps), "missed": missed, "false_drops": false_drops}


def test_labelled_set_is_well_formed():
    rows = _rows()
    assert len(rows) >= 150
    assert len({r["record_id"] for r in rows}) == len(rows)
    rules = (Path(__file__).parent / "data" / "leak_labels" / "RULES.md").read_text()
    for r in rows:
        assert r["label"] in ("drop", "keep"), r["record_id"]
        assert r["rule"][0] == ("D" if r["label"] == "drop" else "K"), r["record_id"]
        assert f"**{r['rule']} " in rules, r["rule"]
    kinds = {r["kind"] for r in rows}
    assert {A.CHOICE, A.YES_NO, A.TRUE_FALSE, A.INTEGER} <= kinds


def test_filter_error_on_labelled_set_within_targets():
    m = measure(lambda r: L.asserts_gold(r["reflection"], r["gold"], _spec(r), r["question"]))
    assert len(m["missed"]) <= MAX_MISSED * m["leaks"], m["missed"]
    assert len(m["false_drops"]) <= MAX_FALSE_DROPS * m["keeps"], m["false_drops"]


def test_committed_results_match_the_measurement():
    """results.json (and leaks.MEASURED_ERROR) carry the numbers the dataset card quotes; they must be current."""
    results = json.loads((Path(__file__).parent / "data" / "leak_labels" / "results.json").read_text())
    m = measure(lambda r: L.asserts_gold(r["reflection"], r["gold"], _spec(r), r["question"]))
    assert results["new"] == {"rows": m["rows"], "leaks": m["leaks"], "keeps": m["keeps"],
                              "missed": len(m["missed"]), "false_drops": len(m["false_drops"])}
    assert L.MEASURED_ERROR == results["new"]


CHOICE4 = A.AnswerSpec(A.CHOICE, (("A", "a red fox"), ("B", "a blue whale"), ("C", "a green frog"), ("D", "none")))
SHORT = A.AnswerSpec(A.CHOICE, (("A", "12"), ("B", "7"), ("C", "Up"), ("D", "No")))
YES_NO = A.AnswerSpec(A.YES_NO)
TRUE_FALSE = A.AnswerSpec(A.TRUE_FALSE)
VALID = A.AnswerSpec(A.VALID_INVALID)
INTEGER = A.AnswerSpec(A.INTEGER)
SENTIMENT = A.AnswerSpec(A.CHOICE, (("A", "positive"), ("B", "negative"), ("C", "neutral")))

LEAKS = [  # (text, gold, spec, question)
    ("The correct option is B, because whales are mammals.", "(B)", CHOICE4, ""),
    ("Looking again, B is the right choice.", "(B)", CHOICE4, ""),
    ("The answer should have been B. The attempt rushed.", "(B)", CHOICE4, ""),
    ("The attempt picked (A). The correct answer is (B); next time read every option.", "(B)", CHOICE4, ""),
    ("(B) is correct since a whale is not a fish.", "(B)", CHOICE4, ""),
    ("We should have chosen option B.", "(B)", CHOICE4, ""),
    ("The answer is a blue whale. The attempt confused size with habitat.", "(B)", CHOICE4, ""),
    ("The answer is 7, not what the attempt wrote.", "(B)", SHORT, ""),
    ("Plan: compute carefully. The right answer is Up.", "(C)", SHORT, ""),
    ("The final answer is (B).\nPlan: check each step.", "(B)", CHOICE4, ""),
    ("Diagnosis: the attempt misread the question. It should be No. Plan: reread.", "No", YES_NO, ""),
    ("The correct answer is No, because the dates do not overlap. Next time compare the years.", "No", YES_NO, ""),
    ("The attempt said yes. Answer: No\nPlan: check the dates first.", "No", YES_NO, ""),
    ("Looking again, the statement is actually false. Check facts before answering.", "False", TRUE_FALSE, ""),
    ("So the argument is invalid. Next time test each premise.", "invalid", VALID, ""),
    ("The attempt added wrongly: 94 + 129 = 223.", "223", INTEGER, "94 + 129 ="),
    ("The correct result is 66, so the carry was lost.", "66", INTEGER, "21 + 45 ="),
    ("Overall the review's sentiment is negative, which the attempt missed.", "(B)", SENTIMENT,
     "Determine whether the opinion is positive, negative or neutral in terms of its sentiment."),
]

KEEPS = [
    ("Option (B) can be ruled out because whales are not fish.", "(B)", CHOICE4, ""),
    ("Plan: (a) reread the question, (b) check each option, (c) answer.", "(B)", CHOICE4, ""),
    ("The mistake was in step 3, where the attempt added instead of multiplying.", "3", INTEGER, "What is 1 + 2?"),
    ("The options were (A) 12, (B) 7, (C) Up and (D) No.", "(B)", SHORT, ""),
    ("The answer is not B.", "(B)", CHOICE4, ""),
    ("It could be (B) or (C); the attempt should weigh both.", "(B)", CHOICE4, ""),
    ("The correct answer is (C).", "(B)", CHOICE4, ""),
    ("The answer is (B). No, wait: the answer is (C).", "(B)", CHOICE4, ""),
    ("There was no mistake in the arithmetic; the error was in reading the question.", "No", YES_NO, ""),
    ("It is true that the attempt skipped a step.", "True", TRUE_FALSE, ""),
    ("Keep a positive attitude and reread the review word by word.", "(A)", SENTIMENT,
     "Determine whether the opinion is positive, negative or neutral in terms of its sentiment."),
    ("The attempt chose (D) none, which is wrong; check the habitat of each animal.", "(B)", CHOICE4, ""),
    ("", "(B)", CHOICE4, ""),
]


@pytest.mark.parametrize("text,gold,spec,question", LEAKS)
def test_hand_written_leaks_are_dropped(text, gold, spec, question):
    v = L.judge(text, gold, spec, question)
    assert v.leaks, v


@pytest.mark.parametrize("text,gold,spec,question", KEEPS)
def test_hand_written_non_leaks_are_kept(text, gold, spec, question):
    v = L.judge(text, gold, spec, question)
    assert not v.leaks, v


def test_a_wrong_answer_is_never_a_leak():
    """Only the gold counts: the same statements with a wrong answer are kept."""
    for text, gold, spec, question in LEAKS:
        if spec.kind == A.CHOICE:
            wrong = next(f"({l})" for l, _ in spec.options if f"({l})" != gold)
        elif spec.kind == A.INTEGER:
            wrong = str(int(gold) + 1)
        else:
            wrong = {"No": "Yes", "False": "True", "invalid": "valid"}[gold]
        assert not L.asserts_gold(text, wrong, spec, question), (text, wrong)


UNITS = [" ", "\n", "( ", "(a", "answer is ", "the answer to the ", "1 + ", "1,", "is 1 ", "A) ", "(B) ",
         "should be ", "correct ", "not ", "\u200f\U0001f600", "yes or ", "a blue "]


@pytest.mark.parametrize("unit", UNITS)
def test_100kB_reflection_is_fast(unit):
    """No catastrophic backtracking: 100 kB of any repeated piece is judged in well under a second
    on an idle core; the bound is 20 s because a shared CI machine can be ten times slower, while
    backtracking that is quadratic or worse in 100 kB takes minutes."""
    text = unit * (100_000 // len(unit)) + "\u0000"
    for spec, gold in ((CHOICE4, "(B)"), (SHORT, "(B)"), (YES_NO, "No"), (INTEGER, "223"), (TRUE_FALSE, "False")):
        start = time.perf_counter()
        L.asserts_gold(text, gold, spec, "94 + 129 =")
        assert time.perf_counter() - start < 20.0, (unit, spec.kind)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), gold=st.sampled_from(["(B)", "No", "7", "True"]),
       kind=st.sampled_from([A.CHOICE, A.YES_NO, A.INTEGER, A.TRUE_FALSE, A.DYCK, A.WORD_SORT, A.FREE_TEXT]))
def test_never_raises(text, gold, kind):
    spec = CHOICE4 if kind == A.CHOICE else A.AnswerSpec(kind)
    v = L.judge(text, gold, spec, text)
    assert v.error is None and v.leaks in (True, False)
    assert L.asserts_gold(None, gold, spec) is False  # type: ignore[arg-type]


# ---------------------------------------------------------------- BBH items (moved from the old
# mentions_answer test in test_answers.py, which goes with answers.mentions_answer)

def _bbh_dir():
    import os

    from reflectevo_tasks import bbh

    folder = Path(os.environ.get(bbh.ENV_DIR) or Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh")
    return folder if (folder / "bbh").is_dir() else None


def _bbh_item(sub: str, index: int):
    from reflectevo_tasks import bbh

    return bbh.load_subtask(sub, _bbh_dir())[index]


@pytest.mark.skipif(_bbh_dir() is None, reason="no local BBH release")
@pytest.mark.parametrize("sub,index,text,leaks", [
    ("date_understanding", 0, "I should have picked (B).", True),
    ("date_understanding", 0, "The correct option B was right there.", True),
    ("date_understanding", 0, "The answer is B, as the next day is Christmas.", True),
    ("date_understanding", 0, "Next time, add one day to Christmas Eve: 12/25/1937.", True),
    ("date_understanding", 0, "I should add one day to the given date and check the year carefully.", False),
    ("date_understanding", 0, "I picked (A) too quickly.", False),
    ("disambiguation_qa", 0, "The answer is a pronoun question; look at who could have the condition.", False),
    ("disambiguation_qa", 0, "Option A is right here.", True),
    ("geometric_shapes", 0, "Count the vertices: seven means a heptagon.", True),
    ("object_counting", 0, "There are 8 instruments.", True),
    ("object_counting", 0, "Count each instrument once; I counted eight.", True),
    ("object_counting", 0, "I counted 9, one too many.", False),
    ("multistep_arithmetic_two", 2, "The result was -50.", True),
    ("multistep_arithmetic_two", 2, "The result was 50.", False),
    ("sports_understanding", 0, "So the answer is No.", True),
    ("sports_understanding", 0, "There is no reason to doubt the player's sport.", False),
    ("dyck_languages", 0, "The closing part is ] ] here.", True),
    ("dyck_languages", 0, "Close each bracket in reverse order.", False),
    ("word_sorting", 0, "Sorted, it is syndrome therefrom.", True),
    ("word_sorting", 0, "Compare first letters, then second letters.", False),
    ("movie_recommendation", 163, "The movie is Monsters, Inc, by Pixar.", True),
    ("movie_recommendation", 163, "Look for animated family films.", False),
])
def test_bbh_items(sub, index, text, leaks):
    q = _bbh_item(sub, index)
    assert L.asserts_gold(text, q.answer, q.spec, q.question) is leaks
