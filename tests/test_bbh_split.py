"""BBH's split into a test split (evaluation) and a generation pool: the committed manifest and the
power calculation behind its size, the sources built on it, and the refusal of test items by
generation and curation."""

import json
import sys
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import bbh, bbh_split
from reflectevo_tasks.questions import Question
from reflectevo_tasks.sources import load_questions

REPO = Path(__file__).resolve().parents[1]


def test_committed_manifest_is_what_the_rule_builds(bbh_dir):
    built = bbh_split.build_manifest(bbh_dir)
    assert built == json.loads(bbh_split.MANIFEST_PATH.read_text())
    assert built["totals"] == {"items": 6511, "test": 918, "pool": 5589, "dropped_duplicates": 4}


def test_power_report_regenerates_and_sets_the_size():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bbh_split_power as power
    finally:
        sys.path.pop(0)
    lines, per_subtask = power.calculation(json.loads(power.COMPARISONS.read_text()))
    assert per_subtask == bbh_split.TEST_PER_SUBTASK
    assert power.REPORT.read_text() == power.report(lines, per_subtask)
    # every comparison that can show 3 points is covered by the chosen size
    assert all(x["needed"] <= per_subtask * len(bbh.SUBTASKS) for x in lines if x["needed"])
    assert any(x["needed"] is None for x in lines)  # and those that cannot are listed, not dropped


def test_sides_are_disjoint_by_id_and_text_and_cover_bbh(bbh_dir):
    test = load_questions("bbh-test", bbh_dir=bbh_dir).questions
    pool = load_questions("bbh-pool", bbh_dir=bbh_dir).questions
    everything = load_questions("bbh", bbh_dir=bbh_dir).questions
    assert len(test) == 918 and len(pool) == 5589
    assert not {q.id for q in test} & {q.id for q in pool}
    test_texts = {bbh_split.normalise(q.question) for q in test}
    pool_texts = [bbh_split.normalise(q.question) for q in pool]
    assert not test_texts & set(pool_texts) and len(set(pool_texts)) == len(pool_texts)
    dropped = {q.id for q in everything} - {q.id for q in test} - {q.id for q in pool}
    assert dropped == {"bbh/causal_judgement/104", "bbh/causal_judgement/119", "bbh/sports_understanding/155",
                       "bbh/sports_understanding/227"}
    # the 540 items measured before the split (the first 20 of each subtask) are test items
    assert {f"bbh/{s}/{i}" for s in bbh.SUBTASKS for i in range(20)} <= {q.id for q in test}
    assert not any(bbh_split.in_test_split(q) for q in pool)
    assert all(bbh_split.in_test_split(q) for q in test)


def test_pool_order_interleaves_subtasks_and_filters_like_other_sources(bbh_dir):
    first = load_questions("bbh-pool", limit=27, bbh_dir=bbh_dir).questions
    assert [q.source for q in first] == [f"bbh/{s}" for s in bbh.SUBTASKS]
    assert all(q.index == bbh_split.TEST_PER_SUBTASK for q in first)
    some = load_questions("bbh-pool:navigate,snarks", bbh_dir=bbh_dir).questions
    assert {q.source for q in some} == {"bbh/navigate", "bbh/snarks"} and len(some) == 216 + 144
    yes_no = load_questions("bbh-pool", limit=10, bbh_dir=bbh_dir, kinds="yes_no").questions
    assert len(yes_no) == 10 and {q.kind for q in yes_no} == {"yes_no"}
    assert [q.id for q in load_questions("bbh-test:navigate", limit=3, bbh_dir=bbh_dir).questions] == \
        ["bbh/navigate/0", "bbh/navigate/1", "bbh/navigate/2"]
    with pytest.raises(UserError, match="unknown BBH subtask 'navigat'"):
        load_questions("bbh-pool:navigat", bbh_dir=bbh_dir)


def test_a_changed_bbh_release_is_refused(bbh_dir, tmp_path):
    folder = tmp_path / "bbh-copy"
    (folder / "bbh").mkdir(parents=True)
    for s in bbh.SUBTASKS:
        data = json.loads((Path(bbh_dir) / "bbh" / f"{s}.json").read_text())
        if s == "navigate":
            data["examples"][40]["input"] += " Take one more step."
        (folder / "bbh" / f"{s}.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="bbh/navigate/40 differs from the one the split was built from"):
        load_questions("bbh-pool:navigate", bbh_dir=str(folder))
    assert len(load_questions("bbh-pool:snarks", bbh_dir=str(folder)).questions) == 144


def test_generation_refuses_test_items_by_id_and_by_text(bbh_dir, tmp_path):
    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import plan_questions

    assert GenConfig().source == "bbh-pool"
    with pytest.raises(UserError, match=r"source 'bbh:navigate': 34 question\(s\) are in the BBH test split "
                                        r"\(bbh/navigate/0, .* and 29 more\).*bbh-pool"):
        plan_questions(GenConfig(source="bbh:navigate", bbh_dir=bbh_dir))
    questions, _ = plan_questions(GenConfig(limit=4, bbh_dir=bbh_dir))
    assert [q.id for q in questions] == ["bbh/boolean_expressions/34", "bbh/causal_judgement/34",
                                         "bbh/date_understanding/34", "bbh/disambiguation_qa/34"]
    # the same text under another name (a dataset that copied BBH) is still a test item
    test_item = load_questions("bbh-test:snarks", limit=1, bbh_dir=bbh_dir).questions[0]
    copied = Question(id="custom/snarks/0", source="custom/snarks", index=0, question=test_item.question.upper() + "  ",
                      answer=test_item.answer, kind=test_item.kind, options=test_item.options)
    with pytest.raises(UserError, match=r"1 question\(s\) are in the BBH test split \(custom/snarks/0\)"):
        bbh_split.refuse_test_items([copied], "spec.yaml")


def test_curation_refuses_test_items_and_records_the_split(bbh_dir):
    from reflectevo_gen.curate import curate

    def record(q: Question) -> dict:
        return {"record_id": f"{q.id}#0", "question_id": q.id, "source": q.source, "question": q.to_dict(),
                "gold": q.answer, "trial1": {"output": f"The answer is {q.answer}."}, "reflection": None,
                "retry": None, "models": "{}"}

    pool_item = load_questions("bbh-pool:web_of_lies", limit=1, bbh_dir=bbh_dir).questions[0]
    test_item = load_questions("bbh-test:web_of_lies", limit=1, bbh_dir=bbh_dir).questions[0]
    stats = curate([record(pool_item)])["stats"]
    assert stats["bbh_split"]["version"] == bbh_split.SPLIT_VERSION
    assert stats["bbh_split"]["rule_sha256"] == bbh_split.rule_hash()
    with pytest.raises(UserError, match=r"curation input.*\(bbh/web_of_lies/0\)"):
        curate([record(pool_item), record(test_item)])


def test_lm_eval_test_family_reads_the_test_split(bbh_dir):
    from reflectevo_tasks.lm_eval_tasks.utils import load_bbh

    docs = load_bbh("word_sorting", bbh_split="test", bbh_dir=bbh_dir)["test"]
    assert len(docs) == bbh_split.TEST_PER_SUBTASK
    assert [d["index"] for d in docs] == list(range(bbh_split.TEST_PER_SUBTASK))  # doc id == BBH index
    assert {d["group"] for d in docs} == {"reflectevo_bbh_test"}
    assert len(load_bbh("word_sorting", bbh_dir=bbh_dir)["test"]) == 250
    with pytest.raises(UserError, match="bbh_split: expected"):
        load_bbh("word_sorting", bbh_fewshot=True, bbh_split="test", bbh_dir=bbh_dir)


def test_item_text_hash_needs_no_data():
    assert bbh_split.item_text_hash("bbh/navigate/0") in bbh_split._test_sets()[1]
    assert bbh_split.item_text_hash("bbh/navigate/9999") is None
    assert bbh_split.item_text_hash("bigbench/navigate/0") is None
    assert bbh_split.normalise("  Is  THIS\tthe same?\n") == "is this the same?"
    assert bbh_split.normalise("( ( )") != bbh_split.normalise("( )")  # brackets are content in Dyck items
