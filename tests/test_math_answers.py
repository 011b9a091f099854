"""The math answer kind (reflectevo_tasks.math_answers) against its labelled corpus
(tests/data/math_corpus), its time limit, and the 500 golds of the MATH test problems.

Every WRITTEN case must be scored as labelled at both levels. The REAL replies (stored, not
regenerated) must agree with their labels at 98% or more at each level, every disagreement
classified in agreement.md, which must be current.
"""

import dataclasses
import multiprocessing
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectevo_tasks import answers as A
from reflectevo_tasks import math_answers as MA
from reflectevo_tasks import math_equivalence as ME
from reflectevo_tasks import prompts
from reflectevo_tasks.math_latex import parse_answer
from reflectevo_tasks.questions import Question

CORPUS = Path(__file__).with_name("data") / "math_corpus"
sys.path.insert(0, str(CORPUS))

import math_agreement as agreement  # noqa: E402  (a name of its own: the BBH corpus has an agreement.py)
import math_rows  # noqa: E402

ROWS = math_rows.load()
WRITTEN = [r for r in ROWS if r["origin"] == "written"]
REAL = [r for r in ROWS if r["origin"] == "real"]
SPEC = A.AnswerSpec(A.MATH)
MATH_FILE = math_rows.math_path()
needs_math = pytest.mark.skipif(not MATH_FILE.is_file(), reason=f"no MATH test file at {MATH_FILE}")
TOWER = r"9^{9^{9^{9}}}"

# What each rule allows: (strict has an answer, flexible has an answer, both levels read the same)
RULE_SHAPE = {
    "B1": (True, True, True), "M1": (True, True, True), "M2": (True, True, True),
    "B2": (False, False, True), "B3": (False, False, True), "B4": (False, False, True),
    "M3": (False, False, True), "M4": (False, False, True), "M5": (False, False, True),
    "F2": (False, False, True), "F3": (False, False, True), "N1": (False, False, True),
    "F1": (False, True, False),
}


def test_corpus_size_and_coverage():
    assert len(WRITTEN) >= 80 and len(REAL) >= 60
    assert set(math_rows.RULE_IDS) <= {r["rule"] for r in ROWS}
    notes = " ".join(r["note"] for r in WRITTEN)
    for rule in [f"E{i}" for i in range(1, 10)] + ["T1"]:
        assert rule in notes, f"no written case for comparison rule {rule}"
    for r in REAL:
        assert r["source"].startswith("math/math_test.jsonl line=") and r["turn"] == "trial1", r["id"]
        assert r["model"] == "smollm2-135m-instruct" and r["model_revision"].startswith("sha256:"), r["id"]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["id"])
def test_labels_have_the_shape_their_rule_gives(row):
    rule = row["rule"] if row["rule"] != "L1" else row["note"].split(":")[0]
    assert rule in RULE_SHAPE, f"{row['id']}: a long case's note must start with the rule its ending follows"
    strict, flexible = row["expected_strict"], row["expected_flexible"]
    has_strict, has_flexible, same = RULE_SHAPE[rule]
    assert (strict["answer"] is not None) == has_strict and (flexible["answer"] is not None) == has_flexible
    if same:
        assert strict == flexible


def test_corpus_errors_name_the_row():
    with pytest.raises(ValueError, match="row-3: expected_strict verdict 'correct' does not fit answer None"):
        math_rows.check_row(dict(WRITTEN[0], expected_strict={"verdict": "correct", "answer": None}), "row-3")
    with pytest.raises(ValueError, match="row-4: unknown rule 'Z9'"):
        math_rows.check_row(dict(WRITTEN[0], rule="Z9"), "row-4")
    with pytest.raises(ValueError, match="row-5: missing gold"):
        math_rows.check_row({k: v for k, v in WRITTEN[0].items() if k != "gold"}, "row-5")


@pytest.mark.parametrize("level", A.LEVELS)
@pytest.mark.parametrize("row", WRITTEN, ids=lambda r: r["id"])
def test_written_case(row, level):
    verdict, agreed = agreement.scorer_label(row, level)
    assert agreed, (f"{row['rule']} {row['note']}: label {row[f'expected_{level}']}, scorer {verdict.outcome} "
                    f"{verdict.extracted!r} ({verdict.refusal}); reply {row['reply'][-120:]!r}")


@pytest.mark.parametrize("level", A.LEVELS)
def test_real_replies_agree_with_their_labels(level):
    missed = [(r["id"], r["rule"]) for r in REAL if not agreement.scorer_label(r, level)[1]]
    rate = 1 - len(missed) / len(REAL)
    print(f"{level}: {len(REAL) - len(missed)}/{len(REAL)} real replies as labelled ({rate:.1%}); {missed}")
    assert rate >= 0.98, missed
    unclassified = [m for m in missed if (m[0], level) not in agreement.CLASSES]
    assert not unclassified, f"disagreements without a class in agreement.CLASSES: {unclassified}"


def test_agreement_report_is_current():
    text = agreement.generate()
    assert "unclassified" not in text
    assert text == agreement.OUT.read_text(encoding="utf-8"), "agreement.md is stale: run tests/data/math_corpus/math_agreement.py"


def test_no_credit_without_one_committed_answer():
    """The acceptance rule: a hedge, two different boxes, a cut-off answer never score."""
    for reply in (r"\boxed{3} and so \boxed{4}", "So the answer is 3 or 4.", r"So the answer is $\boxed{3",
                  r"So the answer is $3 +", r"So the answer is $\boxed{3 \text{ or } 4}$", "x = 3 or x = 4"):
        for level, verdict in A.score_levels(reply, "3", SPEC).items():
            assert verdict.outcome == A.NO_ANSWER, (reply, level, verdict)
            # a refusal with its reason; strict reads nothing at all in a reply without a marker
            assert verdict.refusal or (level == A.STRICT and verdict.method == "none"), (reply, level, verdict)


# ---------------------------------------------------------------- the hook into answers.py

def test_math_is_an_answer_kind_dispatched_by_answers():
    assert A.MATH in A.KINDS
    v = A.score(r"So the answer is $\boxed{\dfrac{2}{4}}$.", "0.5", SPEC)
    assert (v.outcome, v.extracted, v.method, v.level, v.gold) == (A.CORRECT, r"\frac{2}{4}", "marker", A.STRICT, "0.5")
    assert A.extract(r"So the answer is $\boxed{\dfrac{2}{4}}$.", SPEC) == A.Extraction(r"\frac{2}{4}", "marker")
    assert A.canonical_gold(r"x = \dfrac{1}{2}", SPEC) == r"\frac{1}{2}"
    assert set(A.score_levels("It is $7$.", "7", SPEC)) == set(A.LEVELS)
    assert A.score("It is $7$.", "7", SPEC, level=A.FLEXIBLE).correct


def test_trial_prompt_asks_for_a_boxed_answer():
    q = Question("math/0", "math", 0, "What is $1+1$?", "2", A.MATH)
    assert r"\boxed{}" in prompts.trial_prompt(q).messages[-1]["content"]


# ---------------------------------------------------------------- the time limit

def test_a_power_tower_is_not_equal_within_the_time_limit():
    ME.same_answer(parse_answer("1"), parse_answer("2"))  # the worker is up: its start is not timed
    start = time.monotonic()
    verdict = A.score(r"So the answer is $\boxed{8^{8^{8^{8}}}}$.", "1", SPEC)  # not the corpus tower: no cache
    elapsed = time.monotonic() - start
    assert verdict.outcome == A.WRONG and verdict.note.startswith(ME.TIMEOUT), verdict
    assert elapsed < ME.TIME_LIMIT_S + 3, elapsed
    # the killed worker is replaced: the next comparison is decided
    assert A.score(r"$\boxed{\sqrt{8}}$", r"2\sqrt2", SPEC).correct


def test_time_limit_holds_from_threads():
    """lm-eval may score from worker threads: each call returns within its limit, none hangs,
    and the comparisons queued behind a slow one are still decided."""
    ME.same_answer(parse_answer("1"), parse_answer("3"))  # the worker is up: its start is not timed
    results = {}

    def run(name, a, b, limit):
        t = time.monotonic()
        results[name] = (ME.same_answer(parse_answer(a), parse_answer(b), time_limit=limit), time.monotonic() - t)

    threads = [threading.Thread(target=run, args=("tower", "7^{7^{7^{7}}}", "3", 1.0)),
               threading.Thread(target=run, args=("root", r"\sqrt{12}", r"2\sqrt3", 5.0)),
               threading.Thread(target=run, args=("pi", r"\frac{\pi}{3}", "1.047", 5.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    tower, root, pi = results["tower"][0], results["root"][0], results["pi"][0]
    assert not tower.equal and tower.reason.startswith(ME.TIMEOUT)
    assert root == ME.Comparison(True) and pi == ME.Comparison(False)
    # its own limit, after waiting at most for the other two comparisons (each well under a second)
    assert results["tower"][1] < 1.0 + 8, results


def _compare_in_child(conn):
    conn.send(ME.same_answer(parse_answer(r"\frac{\sqrt{2}}{2}"), parse_answer(r"\frac{1}{\sqrt2}"), time_limit=20))
    conn.close()


def test_a_forked_child_uses_a_worker_of_its_own():
    assert ME.same_answer(parse_answer("0.25"), parse_answer(r"\frac14")).equal  # the parent's worker is up
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_compare_in_child, args=(child,))
    proc.start()
    assert parent.poll(60) and parent.recv() == ME.Comparison(True)
    proc.join(10)
    assert ME.same_answer(parse_answer("0.75"), parse_answer(r"\frac34")).equal  # still the parent's own


# ---------------------------------------------------------------- the 500 golds

@pytest.fixture(scope="module")
def problems():
    return math_rows.load_problems()


def _translated(form) -> str:
    if form.kind in ("seq", "set"):
        kinds = {_translated(i) for i in form.items}
        return "sympy" if kinds == {"sympy"} else "text"
    if form.kind == "expr":
        return "sympy" if form.sympy is not None else "text"
    if form.kind == "eq":
        return "sympy" if form.rhs is not None else "text"
    return "text"


@needs_math
def test_every_gold_is_correct_against_itself(problems):
    assert len(problems) == 500
    wrong = []
    for p in problems:
        for reply in (rf"So the answer is $\boxed{{{p['gold']}}}$.", rf"The final answer is \boxed{{ {p['gold']} }}"):
            verdict = A.score(reply, p["gold"], SPEC)
            if not verdict.correct:
                wrong.append((p["index"], p["gold"], verdict))
    assert not wrong, wrong[:5]


@needs_math
def test_golds_parse_and_equal_themselves_by_value(problems):
    """Each gold that translates to sympy is parsed by the worker and found equal to itself (the
    text is set apart so that the comparison cannot be settled by text); the rest are word
    answers and base numerals, compared by their normalised text."""
    def apart(form):
        return dataclasses.replace(form, key=form.key + " ", items=tuple(apart(i) for i in form.items))

    kinds = Counter()
    failed = []
    for p in problems:
        form = MA.gold_form(p["gold"])
        kind = _translated(form)
        kinds[kind] += 1
        if kind == "sympy":
            comparison = ME.same_answer(form, apart(form))
            if not comparison.equal:
                failed.append((p["gold"], comparison))
        else:
            assert form.kind in ("text", "base"), p["gold"]
    print(f"golds translated to sympy: {kinds['sympy']}/500; compared as text: {kinds['text']}")
    assert not failed, failed[:5]
    assert kinds["sympy"] >= 490


# ---------------------------------------------------------------- robustness

MATH_TOKENS = ["\\boxed{", "\\fbox{", "}", "{", "$", "$$", "\\(", "\\)", "\\[", "\\]", "\\frac", "\\dfrac", "\\sqrt",
               "\\pi", "\\infty", "\\cup", "\\pm", "\\text{", "\\left(", "\\right)", "^", "_", "(", ")", "[", "]",
               ",", ".", " ", "\n", "1", "2", "0.5", "x", "i", "=", "+", "-", "/", "!", " or ", " and ", "not ",
               "The answer is ", "Answer:", "Step 1:", "\\%", "^\\circ", "\\$", "**", "\u00bd", "\u221a", "\u03c0",
               "\\begin{pmatrix}", "\\\\", "\\end{pmatrix}", "&", "|", "a_1", "e"]
math_text = st.lists(st.sampled_from(MATH_TOKENS), max_size=40).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=st.one_of(math_text, st.text(max_size=200)), gold=st.sampled_from(["3", r"\frac12", "[2,5)", "1,-2", "x=5"]))
def test_any_reply_scores_without_raising(reply, gold):
    strict, flexible = (MA._read(reply, level)[0] for level in A.LEVELS)
    for ex in (strict, flexible):
        assert ex.method in ("marker", "fallback", "none")
        assert (ex.answer is None) == (ex.method == "none" or ex.refusal is not None)
        assert ex.answer is None or (isinstance(ex.answer, str) and ex.answer)
    assert strict.answer is None and strict.refusal is None or strict == flexible
    for level, verdict in A.score_levels(reply, gold, SPEC).items():
        assert verdict.outcome in (A.CORRECT, A.WRONG, A.NO_ANSWER) and verdict.level == level


ADVERSARIAL = ["{", "\\boxed{", "$", "(", "1,", "answer is ", "\\frac{", "x = ", "1 or ", "\\left(", "a", "**", "\n"]


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_100kB_reply_is_read_in_linear_time(unit):
    reply = (unit * (100_000 // len(unit) + 1))[:100_000]
    start = time.perf_counter()
    for level in A.LEVELS:
        MA.extract(reply + " 7", level)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, (repr(unit), elapsed)  # well under 1 s idle; 10 s for a loaded machine
