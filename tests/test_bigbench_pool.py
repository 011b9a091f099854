"""The BIG-bench pool: real task.json files, BBH items excluded, provenance of every item.

The first test that needs the pool downloads the bigbench sdist from the package index once
(358 MB) and caches the extracted task.json files and the pool file.
"""

import functools
import json
import re

import pytest

from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh, bigbench
from reflectevo_tasks.bigbench import BBHFilter, render_example


@pytest.fixture(scope="module")
def pool(bbh_dir):
    return bigbench.build_pool(50, bbh_dir)


def _norm(s):
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


@functools.lru_cache(maxsize=None)
def _examples(task):
    return json.loads((bigbench.tasks_dir() / task / "task.json").read_text())["examples"]


def test_pool_is_large_varied_and_interleaved(pool):
    assert pool.items > 20000 and pool.tasks > 500
    first = bigbench.load_pool(60)
    assert len({q.source for q in first}) == 60  # the first items cover different tasks
    kinds = {q.kind for q in bigbench.load_pool(3000)}
    assert {A.CHOICE, A.FREE_TEXT, A.YES_NO} <= kinds


def test_every_item_records_source_task_and_index(pool):
    for q in bigbench.load_pool(200):
        example = _examples(q.source.split("/", 1)[1])[q.index]
        assert _norm(example["input"]) in _norm(q.question), q.id
        if q.kind == A.CHOICE:
            gold_text = dict(q.options)[q.answer[1]]
            best = max(example["target_scores"], key=example["target_scores"].get)
            assert gold_text == best.strip()


def test_no_pool_item_is_a_bbh_item(pool, bbh_dir):
    """Independent check by substring: no pool item's raw input occurs inside a BBH question."""
    bbh_text = " || ".join(_norm(q.question) for q in bbh.load_all(bbh_dir))
    bbh_text += " || " + " || ".join(_norm(x) for x in bbh.exemplar_questions(bbh_dir))
    sources = {s.split("_")[0] for s in bbh.SUBTASKS}
    checked = 0
    for q in bigbench.load_pool():
        task = q.source.split("/", 1)[1]
        if task.split("/")[0].split("_")[0] not in sources:
            continue
        raw = _norm(_examples(task)[q.index]["input"])
        checked += 1
        assert not (len(raw.split()) >= 6 and raw in bbh_text), q.id
    assert checked > 500
    assert pool.excluded_bbh > 1000


def test_filter_catches_lightly_reworded_items():
    flt = BBHFilter(['Is the following sentence plausible? "Joe Burrow caught the back shoulder fade in the Superbowl."',
                     "The following paragraphs each describe a set of three objects arranged in a fixed order. "
                     "On a shelf, there are three books: a black book, an orange book, and a blue book. The blue book "
                     "is to the right of the orange book.\nOptions:\n(A) The black book is the leftmost"])
    assert flt.is_bbh("Determine plausibility.\n\nJoe Burrow caught the back shoulder fade in the Superbowl",
                      "Joe Burrow caught the back shoulder fade in the Superbowl")
    assert flt.is_bbh("On a shelf, there are three books: a black book, an orange book, and a blue book. "
                      "The blue book is to the right of the orange book.\nOptions:\n(A) x")
    assert not flt.is_bbh("On a shelf, there are three books: a red book, a green book, and a white book. "
                          "The white book is the leftmost.\nOptions:\n(A) x")


def test_rendering_rules():
    task_def = {"task_prefix": "Answer the question.", "example_input_prefix": "\nQ: "}
    mc = render_example("t", 3, task_def, {"input": "2+2?", "target_scores": {"4": 1, "5": 0, "6": 0}})
    assert mc.kind == A.CHOICE and mc.question.startswith("Answer the question.\n\n2+2?\nOptions:\n(A) ")
    assert dict(mc.options)[mc.answer[1]] == "4" and mc.id == "bigbench/t/3"
    yn = render_example("t", 0, {}, {"input": "Is it?", "target_scores": {"Yes": 0, "No": 1}})
    assert yn.kind == A.YES_NO and yn.answer == "No" and "- Yes\n- No" in yn.question
    assert render_example("t", 0, {}, {"input": "x", "target_scores": {"a": 1, "b": 1}}) is None  # two right answers
    num = render_example("t", 0, {}, {"input": "7*6?", "target": ["42"]})
    assert num.kind == A.INTEGER and num.answer == "42"
    assert render_example("t", 0, {}, {"input": "Translate: …", "target": " ".join(["w"] * 20)}) is None
