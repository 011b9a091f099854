"""Our verdicts against lm-eval's own `bbh_cot_zeroshot` scoring, at both levels, on recorded real
replies of the embedded model (tests/data/bbh_outputs.jsonl, made by record_bbh_outputs.py):
STRICT against lm-eval's "strict-match" filter, FLEXIBLE against its "flexible-extract" filter.

lm-eval's side is computed with its own code (tests/data/scoring_corpus/agreement.py builds it:
the subtask YAML loaded with lm-eval's YAML loader, so `!function utils.…` resolves to its
filters, and its `exact_match` metric with the task's ignore_case and regexes_to_ignore).

Every disagreement must fall into one of the explained classes below; an unexplained one fails.
The labelled corpus (tests/test_scoring_corpus.py) says which side is right on each reply.
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh

DATA = Path(__file__).with_name("data") / "bbh_outputs.jsonl"
sys.path.insert(0, str(DATA.parent / "scoring_corpus"))

from agreement import LM_EVAL_FILTERS, lm_eval_judge  # noqa: E402

# lm-eval's strict-match pattern: the rest of the line after these exact words, less one character
_LM_STRICT = re.compile(r"(?:The answer is |the answer is |The answer: |The final answer: )(.*)(?=.)")

CLASSES = {
    "we-refuse": "our statement names candidates without committing (hedge, ruled out, enumeration, options "
                 "in turn, list cut off): no answer; lm-eval's filter picks one of them",
    "lm-eval-finds-nothing": "lm-eval's pattern finds nothing (no \"The answer is \" in its exact forms, a bare "
                             "letter, a number in words, a word list over several lines); we read a committed answer",
    "lm-eval-first-marker": "strict-match takes the FIRST \"The answer is\" line; we read the LAST marker",
    "lm-eval-whole-line": "strict-match compares the whole rest of the line with the target (\"(D) Lolita\", "
                          "\"indeed (B)\", \"D\" for \"(D)\", \"Ye\" when the reply ends without a period); "
                          "we read the candidate in it",
    "marker-before-later-candidates": "flexible-extract takes the last candidate anywhere; we read the answer "
                                      "committed after the last marker, before options listed or echoed later",
    "no-committed-candidate": "we find no committed candidate (no marker at strict; at flexible the last unit "
                              "naming one is a step number, a determiner 'no', prose); lm-eval's filter takes "
                              "a stray match and it happens to be right",
    "structured-answer-line": "dyck / word sorting: lm-eval takes the last bracket run (often the echoed input) "
                              "or every listed word; we read the answer line",
    "integer-reading": "lm-eval takes the last digit run anywhere (a step number, a year); we read the number "
                       "committed after the marker or in the last unit",
}


def _classify(row, level, ours, pred):
    """Why we differ from lm-eval on one reply at one level; None when unexplained."""
    if ours.outcome == A.NO_ANSWER and ours.refusal:
        return "we-refuse"
    if pred in ("[invalid]", "") or not str(pred).strip():
        return "lm-eval-finds-nothing"
    if level == A.STRICT:
        hits = [m.group(1) for m in _LM_STRICT.finditer(row["reply"])]
        if len(hits) > 1 and hits[0].strip() != hits[-1].strip():
            return "lm-eval-first-marker"
        if ours.correct and hits:
            return "lm-eval-whole-line"
        if ours.outcome == A.NO_ANSWER:
            return "no-committed-candidate"
        return None
    if ours.method == "marker":
        return "marker-before-later-candidates"
    if ours.outcome == A.NO_ANSWER:
        return "no-committed-candidate"
    if row["subtask"] in ("dyck_languages", "word_sorting"):
        return "structured-answer-line"
    if row["subtask"] in ("object_counting", "multistep_arithmetic_two"):
        return "integer-reading"
    return None


@pytest.fixture(scope="module")
def rows():
    if not DATA.is_file():
        pytest.fail(f"{DATA} missing: run tests/data/record_bbh_outputs.py")
    return [json.loads(line) for line in DATA.read_text().splitlines()]


def test_recorded_set_covers_every_subtask(rows):
    assert {r["subtask"] for r in rows} == set(bbh.SUBTASKS)
    assert len(rows) >= 200


@pytest.mark.parametrize("level", A.LEVELS)
def test_agreement_with_lm_eval(rows, level):
    agree, unexplained, classes, lm_right = 0, [], Counter(), 0
    for row in rows:
        q = bbh.make_question(row["subtask"], row["index"], row["input"], row["target"])
        ours = A.score(row["reply"], q.answer, q.spec, level=level)
        pred, theirs = lm_eval_judge(row["subtask"], LM_EVAL_FILTERS[level])(row["reply"], row["input"], row["target"])
        lm_right += theirs
        if ours.correct == theirs:
            agree += 1
            continue
        why = _classify(row, level, ours, pred)
        classes[why] += 1
        if why is None:
            unexplained.append((row["subtask"], row["index"], ours.outcome, ours.extracted, pred, row["reply"][-200:]))
    print(f"{level} vs {LM_EVAL_FILTERS[level]}: agreement {agree}/{len(rows)} = {agree / len(rows):.3f}; "
          f"disagreements by class: {dict(classes)}")
    assert lm_right > 0, "lm-eval scored nothing right: its filters did not load or apply"
    assert set(classes) - {None} <= set(CLASSES)
    assert not unexplained, unexplained[:5]
