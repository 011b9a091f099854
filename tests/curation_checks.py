"""Checks that hold for every curated result, shared by the test files that curate a real run
(tests/test_gen_pipeline.py: the demo generation; tests/test_gen_scripted.py: the scripted one)."""

import json

from reflectevo_gen.curate import CONFIGS
from reflectevo_tasks.answers import score
from reflectevo_tasks.questions import Question


def check_curated_configs(result: dict, folder, questions: int) -> None:
    """Every config has rows (so each check below is exercised on real rows) and each config's
    rows are what its definition says; `folder` holds the written result, for `questions` questions."""
    assert set(CONFIGS) <= set(result)
    assert all(result[c] for c in CONFIGS), {c: len(result[c]) for c in CONFIGS}
    for row in result["d_plus"]:
        q = Question.from_dict(json.loads(row["question_json"]))
        assert not score(row["trial1"], q.answer, q.spec).correct
        assert score(row["retry"], q.answer, q.spec).correct
    pairs = set()
    for row in result["d_pm"]:
        assert row["chosen"] != row["rejected"]
        key = (row["question_id"], row["chosen"], row["rejected"])
        assert key not in pairs
        pairs.add(key)
    raw = {r["record_id"]: r for r in result["raw"]}
    for row in result["d_pm"] + result["d_pref"]:
        a, b = raw[row["chosen_record_id"]], raw[row["rejected_record_id"]]
        assert a["question_id"] == b["question_id"] == row["question_id"] and a["trial1"] == b["trial1"]
    for row in result["d_pref"]:
        assert row["ranking"] == "loglik" and row["score_chosen"] > row["score_rejected"]
    for row in result["sft_qa"]:
        q = Question.from_dict(json.loads(row["question_json"]))
        assert score(row["answer"], q.answer, q.spec).correct
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["questions"] == questions and len(stats["per_source"]) == len({r["source"] for r in result["raw"]})
    assert "| source task |" in (folder / "stats.md").read_text()
