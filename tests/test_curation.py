"""Curation without a model: leak drops per answer kind, D+ deduplication, D± pairing spread,
Dpref margin threshold, the statistics table and the dataset card's metadata."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_gen import curate as C
from reflectevo_gen.publish import SIZE_CATEGORIES, curation_notes, dataset_card, size_category
from reflectevo_tasks import leaks

OPTIONS = [["A", "a red fox"], ["B", "a blue whale"], ["C", "a green frog"], ["D", "a grey owl"]]


def _question(n: int, kind: str = "choice") -> dict:
    if kind == "choice":
        text = f"Question {n}: which animal is the largest?\nOptions:\n" + "\n".join(f"({l}) {t}" for l, t in OPTIONS)
        return {"id": f"t/{n}", "source": "bigbench/toy", "index": n, "question": text, "answer": "(B)",
                "kind": "choice", "options": OPTIONS, "vocabulary": []}
    return {"id": f"t/{n}", "source": "bigbench/toy_yes_no", "index": n, "question": f"Question {n}: is a whale a fish?",
            "answer": "No", "kind": "yes_no", "options": [], "vocabulary": []}


def _records(n: int, reflections: list[tuple[str, str]], kind: str = "choice", t1: str = "So the answer is (A).") -> list[dict]:
    """One question's records: (reflection, retry) per reflection; trial 1 as given."""
    q = _question(n, kind)
    out = []
    for i, (refl, retry) in enumerate(reflections):
        out.append({"record_id": f"t/{n}#{i}", "question_id": q["id"], "source": q["source"], "index": n, "question": q,
                    "gold": q["answer"], "trial1": {"output": t1, "outcome": "wrong"},
                    "reflection": {"output": refl, "instruction_id": f"I{i}"}, "retry": {"output": retry, "outcome": "?"}})
    return out


RIGHT, WRONG = "Checking each size again. So the answer is (B).", "Checking again. So the answer is (C)."


class FakeScores:
    """Stands in for the ranking model: the log-likelihood is read off the reflection text."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores

    def loglikelihood(self, requests):
        out = []
        for prompt, _ in requests:
            text = str(prompt.as_list() if hasattr(prompt, "as_list") else prompt)
            out.append(next(v for k, v in self.scores.items() if k in text))
        return out


def test_spread_pairs_use_distinct_chosen_and_rejected():
    for k, m, cap in itertools.product(range(0, 7), range(0, 7), range(0, 6)):
        pairs = C.spread_pairs(k, m, cap)
        assert len(pairs) == len(set(pairs)) == min(cap, k * m), (k, m, cap)
        assert all(0 <= i < k and 0 <= j < m for i, j in pairs)
        if pairs:
            assert len({i for i, _ in pairs}) == min(k, len(pairs)), (k, m, cap, pairs)
            assert len({j for _, j in pairs}) == min(m, len(pairs)), (k, m, cap, pairs)
    assert C.spread_pairs(1, 5, 4) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert C.spread_pairs(5, 5, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert C.spread_pairs(3, 3, 4) == C.spread_pairs(3, 3, 4)  # deterministic


def test_spread_combinations_do_not_all_share_the_first():
    assert C.spread_combinations(4, 3) == [(0, 1), (1, 2), (2, 3)]
    for n, cap in itertools.product(range(0, 7), range(0, 8)):
        pairs = C.spread_combinations(n, cap)
        assert len(pairs) == len(set(pairs)) == min(cap, n * (n - 1) // 2)
        assert all(i < j < n for i, j in pairs)


def _curate(records, engine=None, **opts):
    return C.curate(records, C.CurateOptions(**opts), engine)


def test_leaks_are_dropped_and_counted_per_answer_kind():
    records = _records(1, [("The correct option is B, the whale.", RIGHT),
                           ("Diagnosis: I compared the wrong sizes. Plan: list each animal's size.", RIGHT),
                           ("Option (B) can be ruled out too quickly; check every option.", WRONG)])
    records += _records(2, [("It should be No. Whales are mammals.", "So the answer is No."),
                            ("There was no check of the definition. Plan: define fish first.", "So the answer is Yes.")],
                        kind="yes_no", t1="So the answer is Yes.")
    result = _curate(records)
    stats = result["stats"]
    assert stats["leaks_by_kind"] == {"choice": 1, "yes_no": 1}
    assert stats["reflections_by_kind"] == {"choice": 3, "yes_no": 2}
    assert stats["leaking_reflections_dropped"] == 2
    kept = {r["reflection"] for r in result["d_plus"]} | {r["chosen"] for r in result["d_pm"]} | {r["rejected"] for r in result["d_pm"]}
    assert "The correct option is B, the whale." not in kept and "It should be No. Whales are mammals." not in kept
    assert "Option (B) can be ruled out too quickly; check every option." in kept  # ruling out is not a leak
    f = stats["leak_filter"]
    assert f["filter"] == "reflectevo_tasks.leaks.asserts_gold" and f["labelled_reflections"] == leaks.MEASURED_ERROR["rows"]
    assert (f["missed_leaks"], f["false_drops"]) == (leaks.MEASURED_ERROR["missed"], leaks.MEASURED_ERROR["false_drops"])


def test_d_plus_keeps_the_first_of_copied_retries():
    records = _records(1, [("Diagnosis: sizes were compared by name. Plan: compare lengths in metres.", RIGHT),
                           ("Diagnosis: I guessed. Plan: reason from each animal's weight first.", RIGHT + "  "),
                           ("Diagnosis: I skipped the owl. Plan: read every option once.", "Reading slowly. So the answer is (B).")])
    result = _curate(records, engine=FakeScores({"sizes were": -1.0, "I guessed": -2.0, "skipped the owl": -3.0}))
    assert [r["record_id"] for r in result["d_plus"]] == ["t/1#0", "t/1#2"]
    assert result["stats"]["d_plus_duplicates_dropped"] == 1


def test_d_pm_pairs_spread_over_chosen_and_rejected():
    right = [(f"Diagnosis {w}: the {w} step was skipped. Plan: do the {w} step.", f"Try {w}. So the answer is (B).")
             for i, w in enumerate(["first", "second", "third", "fourth", "fifth"])]
    wrong = [(f"Reflection {w}: a {w} idea about colour. Plan: think about {w} colours.", WRONG)
             for w in ["red", "green", "blue", "grey", "pink"]]
    scores = {f"the {w} step": -float(i) for i, w in enumerate(["first", "second", "third", "fourth", "fifth"])}
    result = _curate(_records(1, right + wrong), engine=FakeScores(scores))
    pairs = [(r["chosen_record_id"], r["rejected_record_id"]) for r in result["d_pm"]]
    assert len(pairs) == 4 and len({c for c, _ in pairs}) == 4 and len({w for _, w in pairs}) == 4
    assert result["stats"]["d_pm_distinct_chosen"] == 4 and result["stats"]["d_pm_distinct_rejected"] == 4


def test_dpref_pairs_below_the_margin_are_dropped_and_counted():
    reflections = [("Diagnosis: one. Plan: weigh each animal.", RIGHT), ("Diagnosis: two. Plan: measure each animal.", RIGHT),
                   ("Diagnosis: three. Plan: rank the animals by length.", RIGHT)]
    engine = FakeScores({"one.": -5.00, "two.": -5.05, "three.": -6.0})
    result = _curate(_records(1, reflections), engine=engine, min_margin=0.1)
    stats = result["stats"]
    # candidates (one, two), (two, three), (one, three): margins 0.05, 0.95, 1.0
    assert stats["dpref_candidates"] == 3 and stats["dpref_low_margin_dropped"] == 1 and len(result["d_pref"]) == 2
    assert all(r["score_chosen"] - r["score_rejected"] >= 0.1 for r in result["d_pref"])
    assert _curate(_records(1, reflections), engine=engine, min_margin=0.0)["stats"]["dpref_low_margin_dropped"] == 0
    assert stats["options"]["min_margin"] == 0.1
    with pytest.raises(UserError, match="min_margin"):
        _curate(_records(1, reflections), engine=engine, min_margin=-1)


def test_default_margin_is_the_measured_noise():
    assert C.CurateOptions().min_margin == C.MARGIN_NOISE > 0


def test_relaid_variants_change_only_white_space():
    text = "Diagnosis: a.  Then b.\n\nPlan: c."
    variants = C._relaid(text)
    assert variants and all(v != text and v.split() == text.split() for v in variants)
    assert C._relaid("one") == []


def test_statistics_table_carries_every_count(tmp_path):
    records = _records(1, [("The correct option is B.", RIGHT), ("Diagnosis: I guessed. Plan: compare sizes.", WRONG)])
    result = _curate(records)
    C.write_curated(result, tmp_path, "test")
    stats = json.loads((tmp_path / "stats.json").read_text())
    for key in ("leaks_by_kind", "reflections_by_kind", "d_plus_duplicates_dropped", "d_pm_distinct_chosen",
                "d_pm_distinct_rejected", "dpref_candidates", "dpref_ties_dropped", "dpref_low_margin_dropped", "leak_filter"):
        assert key in stats, key
    md = (tmp_path / "stats.md").read_text()
    assert "choice 1 of 2 (50.0%)" in md and "Gold-leak filter `reflectevo_tasks.leaks.asserts_gold`" in md
    assert f"measured on {leaks.MEASURED_ERROR['rows']} labelled real reflections" in md


def test_size_categories_are_hub_values():
    hub_values = json.loads((Path(__import__("datasets").__file__).parent / "utils" / "resources"
                             / "size_categories.json").read_text())
    names = [name for _, name in SIZE_CATEGORIES] + ["n>1T"]
    assert set(names) <= set(hub_values)
    assert size_category(0) == "n<1K" and size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"
    assert size_category(999_999) == "100K<n<1M" and size_category(1_000_000) == "1M<n<10M"
    assert size_category(10**12) == "n>1T"
    for n in (0, 5, 10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9, 10**10, 10**11, 10**12 - 1, 10**13):
        assert size_category(n) in hub_values


def test_dataset_card_states_the_filter_error_and_leaks_per_kind():
    records = _records(1, [("The correct option is B.", RIGHT), ("Diagnosis: I guessed. Plan: compare sizes.", WRONG)])
    curated = _curate(records)
    card = dataset_card(curated, "me/data", "v1", "reflectevo gen push ...")
    meta = card.split("---")[1]
    assert "size_categories:\n- n<1K" in meta
    e = leaks.MEASURED_ERROR
    assert f"{e['missed']} of {e['leaks']} labelled leaks missed" in card
    assert f"{e['false_drops']} of {e['keeps']} labelled non-leaks dropped" in card
    assert "per answer kind: choice: 1 of 2" in card
    # the split that evaluation keeps for itself, with its rule's hash
    from reflectevo_tasks import bbh_split

    assert "## Evaluation split" in card and f"version {bbh_split.SPLIT_VERSION}" in card
    assert bbh_split.rule_hash()[:16] in card and bbh_split.RULE in card
    # a folder curated before these counts existed still gets a card, saying what is unknown
    old = {k: v for k, v in curated["stats"].items() if k not in ("leak_filter", "leaks_by_kind", "reflections_by_kind",
                                                                   "d_plus_duplicates_dropped")}
    assert "error was not measured" in curation_notes(old) and "per answer kind not recorded" in curation_notes(old)
    from reflectevo_gen.publish import split_notes

    assert split_notes({k: v for k, v in curated["stats"].items() if k != "bbh_split"}).startswith("Not recorded")


def test_curating_a_curated_folder_again_reads_its_raw_records_and_refuses_doubled_rows(tmp_path):
    """`gen curate --input <curated folder>` curates its raw records again (after a scorer change);
    a doubled row or bytes that are not UTF-8 are one error naming the file."""
    import shutil

    from reflectevo.errors import UserError
    from reflectevo_gen.curate import read_raw_records

    src = Path(__file__).resolve().parents[1] / "leaderboards" / "measured" / "training-data" / "raw.jsonl"
    folder = tmp_path / "curated"
    folder.mkdir()
    shutil.copy(src, folder / "raw.jsonl")
    records = read_raw_records(folder)
    assert len(records) == len(src.read_text(encoding="utf-8").splitlines())
    assert isinstance(records[0]["question"], dict) and isinstance(records[0]["trial1"]["output"], str)
    lines = (folder / "raw.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "raw.jsonl").write_text("\n".join(lines + lines[:1]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="appears 2 times"):
        read_raw_records(folder)
    (folder / "raw.jsonl").write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(UserError, match="not UTF-8"):
        read_raw_records(folder)


def test_ranking_engine_keeps_the_runs_engine_options(tmp_path, monkeypatch):
    # vLLM on CPU only starts with the run's own options (enforce_eager, max_model_len): the ranking
    # engine is rebuilt from run_config.json and must not drop them
    import reflectevo_tasks.engine as E

    built = []
    monkeypatch.setattr(E, "Engine", lambda cfg: built.append(cfg) or cfg)
    (tmp_path / "run_config.json").write_text(json.dumps({"identity": {
        "model": "m", "engine": "vllm", "dtype": "float32", "model_revision": "r1",
        "model_args": "enforce_eager=True,max_model_len=2048"}}))
    engine = C.run_judge(str(tmp_path), batch_size=4)
    assert not built  # loaded on first use only
    assert engine.model == "m"
    (cfg,) = built
    assert (cfg.engine, cfg.revision, cfg.batch_size) == ("vllm", "r1", 4)
    assert cfg.model_args == {"enforce_eager": True, "max_model_len": 2048}


def test_rows_on_two_answer_questions_are_counted_apart(tmp_path):
    """A yes/no question's fix may be elimination (the verdict "incorrect" names the gold): the
    statistics count each config's rows on such questions, and what is left without them."""
    records = _records(1, [("Diagnosis: sizes were compared by name. Plan: compare lengths.", RIGHT),
                           ("Diagnosis: I skipped the owl. Plan: read every option once.", WRONG)])
    records += _records(2, [("There was no check of the definition. Plan: define fish first.", "So the answer is No."),
                            ("Diagnosis: I trusted the word. Plan: check what a fish is.", "So the answer is Yes.")],
                        kind="yes_no", t1="So the answer is Yes.")
    records += _records(3, [("Diagnosis: I answered without looking. Plan: weigh each animal.", RIGHT)])
    records[-1]["question"]["options"] = OPTIONS[:2]  # a choice between two: two answers as well
    records[-1]["question"]["question"] = records[-1]["question"]["question"].split("\n(C)")[0]
    result = _curate(records)
    assert len(result["d_plus"]) == 3 and len(result["d_pm"]) == 2
    assert result["stats"]["two_answer_rows"] == {"d_plus": 2, "d_pm": 1, "d_pref": 0, "sft_qa": 0}
    C.write_curated(result, tmp_path, "test")
    md = (tmp_path / "stats.md").read_text()
    assert "d_plus 2 of 3 (1 without them), d_pm 1 of 2 (1 without them), d_pref 0 of 0 (0 without them)" in md
