"""The labelled scoring corpus (tests/data/scoring_corpus) as the yardstick of the scorer.

Every WRITTEN case must be scored as labelled under both levels. The REAL replies must match
their labels too; where they do not, the failure lists them (the labels change only when
RULES.md says so). agreement.md, the committed report of how the scorer and lm-eval's own
`bbh_cot_zeroshot` filters agree with the labels, must be current.
"""

import sys
from collections import Counter
from pathlib import Path

import pytest

from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh

CORPUS = Path(__file__).with_name("data") / "scoring_corpus"
sys.path.insert(0, str(CORPUS))

import agreement  # noqa: E402
import corpus_rows  # noqa: E402

ROWS = corpus_rows.load()
WRITTEN = [r for r in ROWS if r["origin"] == "written"]
REAL = [r for r in ROWS if r["origin"] == "real"]

# The shape of the labels each rule allows: (strict has an answer, flexible has an answer,
# both levels read the same answer). None: the rule does not fix it.
RULE_SHAPE = {
    "M1": (True, True, True), "M2": (True, True, True), "M5": (True, True, True),
    "M6": (True, True, True), "M7": (True, True, True),
    "M3": (False, False, True), "M4": (False, False, True), "M8": (False, False, True), "F2": (False, False, True),
    "F3": (False, False, True), "F4": (False, False, True), "N1": (False, False, True),
    "F6": (False, False, True), "F7": (False, False, True), "F8": (False, False, True),
    "F1": (False, True, False), "F5": (False, True, False),
}


def _got(verdict) -> dict:
    return {"verdict": verdict.outcome, "answer": verdict.extracted if verdict.outcome != A.NO_ANSWER else None}


def _mismatches(rows, level):
    out = []
    for r in rows:
        got = _got(A.score(r["reply"], r["gold"], corpus_rows.spec_of(r), level=level))
        if got != r[f"expected_{level}"]:
            out.append((r["id"], r["rule"], r[f"expected_{level}"], got))
    return out


def test_corpus_size_and_coverage():
    assert len(ROWS) >= 400 and len(REAL) >= 250 and len(WRITTEN) >= 150
    assert {r["turn"] for r in REAL} == {"trial1", "retry", "one_stage"}
    real_bbh = [r for r in REAL if r.get("spec_from") == "bbh"]
    assert {r["subtask"] for r in real_bbh if r["turn"] == "trial1"} == set(bbh.SUBTASKS)
    assert {r["subtask"] for r in real_bbh if r["turn"] == "one_stage"} == set(bbh.SUBTASKS)
    pool = [r for r in REAL if r.get("spec_from") == "record"]
    assert {r["kind"] for r in pool} == {"choice", "integer", "yes_no", "true_false"}  # the pool's kinds
    assert {r["turn"] for r in pool} == {"trial1", "retry"}
    # math has its own corpus (tests/data/math_corpus), code its sandbox tests (tests/test_code_sandbox.py)
    assert {r["kind"] for r in WRITTEN} == set(A.KINDS) - {A.MATH, A.CODE}
    assert set(corpus_rows.RULE_IDS) <= {r["rule"] for r in ROWS}
    # the flexible level's non-answers (issue 32) are pinned by real replies, not only written ones
    assert {"F6", "F7", "F8"} <= {r["rule"] for r in REAL if r["id"].startswith("real/resume:")}
    for r in REAL:  # where each real reply came from
        assert r["source"] and "turn=" in r["source"], r["id"]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["id"])
def test_labels_have_the_shape_their_rule_gives(row):
    rule = row["rule"]
    if rule == "L1":  # long written cases follow the rule their note names
        rule = row["note"].split(":")[0]
        assert rule in RULE_SHAPE, f"{row['id']}: the note must start with the rule the ending follows"
    strict, flexible = row["expected_strict"]["answer"], row["expected_flexible"]["answer"]
    has_strict, has_flexible, same = RULE_SHAPE[rule]
    assert (strict is not None) == has_strict and (flexible is not None) == has_flexible, row["id"]
    if same:
        assert strict == flexible, row["id"]


def test_every_spec_rebuilds_with_the_projects_code():
    for r in ROWS:
        spec = corpus_rows.spec_of(r)
        assert spec.kind == r["kind"], r["id"]
        if r["kind"] == A.CHOICE:
            assert spec.options, f"{r['id']}: a choice question without options"
        if r["kind"] == A.WORD_SORT:
            assert spec.vocabulary, f"{r['id']}: a word-sort question without its list"


def test_corpus_errors_name_the_row():
    bad = dict(WRITTEN[0], expected_strict={"verdict": "correct", "answer": None})
    with pytest.raises(ValueError, match="row-7: expected_strict verdict"):
        corpus_rows.check_row(bad, "row-7")
    with pytest.raises(ValueError, match="unknown rule"):
        corpus_rows.check_row(dict(WRITTEN[0], rule="Z9"), "row-8")


@pytest.mark.parametrize("level", A.LEVELS)
@pytest.mark.parametrize("row", WRITTEN, ids=lambda r: r["id"])
def test_written_case(row, level):
    got = _got(A.score(row["reply"], row["gold"], corpus_rows.spec_of(row), level=level))
    assert got == row[f"expected_{level}"], f"{row['rule']} {row['note']}: reply {row['reply'][-120:]!r}"


@pytest.mark.parametrize("level", A.LEVELS)
def test_real_replies_match_their_labels(level):
    wrong = _mismatches(REAL, level)
    print(f"{level}: {len(REAL) - len(wrong)}/{len(REAL)} real replies as labelled; "
          f"by rule: {dict(Counter(w[1] for w in wrong))}")
    assert not wrong, "\n".join(f"{i} [{rule}] label {lab} scorer {got}" for i, rule, lab, got in wrong)


def test_agreement_report_is_current():
    text = agreement.generate()
    assert "unclassified" not in text, "a disagreement with lm-eval fits none of the named classes"
    current = agreement.OUT.read_text(encoding="utf-8")
    assert text == current, "agreement.md is stale: run tests/data/scoring_corpus/agreement.py"
