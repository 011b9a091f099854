"""BBH loading from the local release layout, CoT exemplars, and bad input."""

import json

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh


def test_all_subtasks_load_with_published_sizes(bbh_dir):
    qs = bbh.load_all(bbh_dir)
    assert len(qs) == 6511
    assert {q.source for q in qs} == {f"bbh/{s}" for s in bbh.SUBTASKS}
    assert len({q.id for q in qs}) == len(qs)


def test_every_gold_answer_is_scored_correct_in_canonical_form(bbh_dir):
    for q in bbh.load_all(bbh_dir):
        assert A.score(f"So the answer is {q.answer}.", q.answer, q.spec).correct, q.id


def test_choice_items_have_parsed_options(bbh_dir):
    q = bbh.load_subtask("date_understanding", bbh_dir, limit=1)[0]
    assert q.kind == A.CHOICE and q.options[0][0] == "A" and len(q.options) == 6
    ws = bbh.load_subtask("word_sorting", bbh_dir, limit=1)[0]
    assert ws.vocabulary == ("syndrome", "therefrom")


def test_cot_exemplars_match_lm_eval_copy(bbh_dir):
    for s in bbh.SUBTASKS:
        local = bbh.cot_exemplars(s, bbh_dir)
        assert len(local) == 3
        assert local == bbh._lm_eval_exemplars(s), s


def test_unknown_subtask_is_one_clear_error():
    with pytest.raises(UserError, match="unknown BBH subtask 'navigat'"):
        bbh.load_subtask("navigat")


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        bbh.load_subtask("navigate", tmp_path / "nope")


def test_malformed_file_names_file_and_problem(tmp_path):
    (tmp_path / "bbh").mkdir()
    (tmp_path / "bbh" / "navigate.json").write_text("{not json")
    with pytest.raises(UserError, match=r"navigate\.json: not valid JSON"):
        bbh.load_subtask("navigate", tmp_path)
    (tmp_path / "bbh" / "navigate.json").write_text(json.dumps({"examples": [{"input": "x"}]}))
    with pytest.raises(UserError, match=r"navigate\.json: example 0 lacks"):
        bbh.load_subtask("navigate", tmp_path)
    with pytest.raises(UserError, match=r"web_of_lies\.json: BBH file missing"):
        bbh.load_subtask("web_of_lies", tmp_path)


def test_two_answer_subtasks_are_those_with_two_possible_answers():
    folder = bbh.data_dir()
    if folder is None:
        pytest.skip("needs the BBH release folder (REFLECTEVO_BBH_DIR)")
    two = {s for s in bbh.SUBTASKS if len({q.answer for q in bbh.load_subtask(s, folder)}) == 2}
    assert two == set(bbh.TWO_ANSWER_SUBTASKS)
    # the per-question rule curation counts by: every item of those subtasks, and elsewhere only the
    # items that offer two options (27 of reasoning_about_colored_objects)
    per_item = {s: [bbh.has_two_answers(q) for q in bbh.load_subtask(s, folder)] for s in bbh.SUBTASKS}
    assert {s for s, v in per_item.items() if all(v)} == two
    assert {s: sum(v) for s, v in per_item.items() if s not in two and any(v)} == {"reasoning_about_colored_objects": 27}
