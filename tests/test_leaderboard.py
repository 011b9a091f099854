"""The leaderboard rebuilt from recorded lm-eval results files agrees with those files."""

import json
from pathlib import Path

import pytest

from hub_fixtures import hub, hub_server  # noqa: F401
from leaderboards.build import build, row_from_results, subtask_deltas
from reflectevo.errors import UserError

DATA = Path(__file__).with_name("data") / "lm_eval_results"


def _group_value(data, metric):
    """Size-weighted mean of per-subtask values, as lm-eval aggregates groups."""
    n = data["n-samples"]
    tasks = [t for t in data["results"] if t.startswith("reflectevo_bbh_")]
    total = sum(n[t]["effective"] for t in tasks)
    return sum(data["results"][t][f"{metric},none"] * n[t]["effective"] for t in tasks) / total, total


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
def test_rows_match_the_results_files(name):
    data = json.loads((DATA / name).read_text())
    row = row_from_results(DATA / name)
    for metric in ("acc_t1", "acc_t2", "delta"):
        value, n = _group_value(data, metric)
        assert row[metric] == pytest.approx(value, abs=1e-9) and row["n"] == n
    pooled = data["config"]["reflectevo"].get("pooled", {}).get("reflectevo_bbh")
    if pooled:
        assert row["fix_rate"] == pytest.approx(pooled["fix_rate"]) and row["break_rate"] == pytest.approx(pooled["break_rate"])
    lo, hi = row["acc_t1_ci"]
    assert lo <= row["acc_t1"] <= hi and row["delta_ci"][0] <= row["delta"] <= row["delta_ci"][1]
    assert row["base_revision"].startswith("sha256:") and row["mode"] == "oracle"
    assert row["command"].startswith("REFLECTEVO_BBH_DIR=") and "lm_eval --model reflectevo" in row["command"]
    for sub, values in row["subtasks"].items():
        assert values["acc_t1"] == pytest.approx(data["results"][f"reflectevo_bbh_{sub}"]["acc_t1,none"])


def test_build_writes_tables_and_plots(tmp_path):
    rows = build([str(DATA)], str(tmp_path))
    md = (tmp_path / "bbh.md").read_text()
    assert md.count("| smollm2-135m-instruct") == len(rows) == 3
    # a trained adapter's row names it with its commit, its setting and its training data at its commit
    adapter = next(r for r in rows if r["adapter"])
    assert adapter["reflector_label"] == f"local/demo-one_stage@{adapter['adapter_revision'][:12]}"
    assert adapter["setting"] == "one_stage" and adapter["train_data"] == "local/demo-data:d_plus"
    assert f"local/demo-data:d_plus@{adapter['train_data_revision'][:12]}" in md
    assert "reflectevo train one_stage" in adapter["train_command"] and adapter["train_command"] in md
    assert "| tracking_shuffled_objects_five_objects |" in md  # the per-subtask table
    assert "--tasks reflectevo_bbh " in md or "--tasks reflectevo_bbh --limit" in md
    assert json.loads((tmp_path / "bbh.json").read_text())[0]["n"] == rows[0]["n"]
    for png in ("bbh_t1_t2.png", "bbh_subtask_delta.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_subtask_delta_plot_leaves_out_rows_without_a_second_attempt():
    """The committed measured rows: mode single has no Δ (it used to be drawn as -Acc@t1)."""
    rows = json.loads((Path(__file__).resolve().parent.parent / "leaderboards" / "bbh.json").read_text())
    names, bars = subtask_deltas(rows)
    with_t2 = [(i, r) for i, r in enumerate(rows, 1) if r.get("acc_t2") is not None]
    assert len(bars) == len(with_t2) < len(rows)
    for (i, r), (label, vals) in zip(with_t2, bars.items()):
        assert label.startswith(f"#{i} ")
        for name, val in zip(names, vals):
            cell = r["subtasks"][name]
            assert val == pytest.approx(100 * (cell["acc_t2"] - cell["acc_t1"]))


def test_non_reflectevo_file_is_a_clear_error(tmp_path):
    f = tmp_path / "results_x.json"
    f.write_text(json.dumps({"results": {}, "config": {"model": "hf"}}))
    with pytest.raises(UserError, match="no reflectevo provenance"):
        row_from_results(f)


def test_cli_builds_and_pushes_to_a_results_dataset(hub, tmp_path, monkeypatch, capsys):
    from reflectevo.cli import main

    monkeypatch.setenv("HF_TOKEN", hub.token)
    repo = hub.repo("board")
    out = tmp_path / "board"
    assert main(["leaderboard", "build", str(DATA), "--output", str(out), "--push_to_repo", repo, "--push_tag", "v1"]) == 0
    assert "3 rows" in capsys.readouterr().out
    files = set(hub.api.list_repo_files(repo, repo_type="dataset", revision="v1"))
    assert {"bbh.md", "bbh.json", "bbh_t1_t2.png", "bbh_subtask_delta.png", "README.md"} <= files
    assert main(["leaderboard", "build", str(tmp_path / "nothing-here"), "--output", str(out)]) != 0
    assert "no lm-eval results files" in capsys.readouterr().err


def test_reproduce_command_leaves_out_where_stored_chunks_were_kept():
    from leaderboards.build import _command

    cfg = {"model": "reflectevo", "limit": 20.0, "batch_size": "32", "device": "cpu",
           "model_args": "base=hf,pretrained=m,chunk_size=64,resume=runs/x/resume/a,trial1_from=runs/x/resume/s,mode=oracle"}
    cmd = _command(cfg, {"results": {"reflectevo_bbh_navigate": {}}})
    assert "model_args base=hf,pretrained=m,chunk_size=64,mode=oracle " in cmd
    assert "resume" not in cmd and "trial1_from" not in cmd and cmd.endswith("--limit 20 --batch_size 32 --device cpu")


def test_committed_measured_leaderboard_matches_its_results_files(tmp_path):
    """leaderboards/bbh.md, bbh.json and bbh_comparisons.json are exactly a rebuild from
    leaderboards/measured/*.json, in the committed row order with the committed comparisons."""
    root = Path(__file__).resolve().parent.parent / "leaderboards"
    files = sorted((root / "measured").glob("*.json"))
    if not files:
        pytest.skip("no measured rows committed yet")
    committed = json.loads((root / "bbh.json").read_text())
    assert sorted(r["results_file"] for r in committed) == [f.name for f in files]
    spec = json.loads((root / "bbh_comparisons.json").read_text())["compare"]
    build([str(root / "measured" / r["results_file"]) for r in committed], str(tmp_path), compare=spec)
    for name in ("bbh.json", "bbh_comparisons.json", "bbh.md"):
        assert (tmp_path / name).read_text() == (root / name).read_text(), name


# ---------------------------------------------------------------- row against row

def _with_outcomes(tmp_path, name: str, codes: dict, source="results_oracle_limit1_all_subtasks.json", **prov) -> Path:
    """A copy of a recorded results file whose provenance block holds the given per-item outcomes."""
    data = json.loads((DATA / source).read_text())
    block = data["config"]["reflectevo"]
    outcomes: dict = {}
    for (task, doc), code in codes.items():
        outcomes.setdefault(task, {})[doc] = code
    block["outcomes"] = outcomes
    block.update(prov)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _items(n):
    return [("reflectevo_bbh_navigate", f"bbh/navigate/{i}") for i in range(n)]


def test_rows_are_compared_item_by_item(tmp_path):
    items = _items(100)
    # row A right on items 0-19; row B right on 10-49: B only 30, A only 10, on 100 items
    a = _with_outcomes(tmp_path, "a", {k: "0" + ("1" if i < 20 else "0") for i, k in enumerate(items)})
    b = _with_outcomes(tmp_path, "b", {k: "0" + ("1" if 10 <= i < 50 else "0") for i, k in enumerate(items)})
    build([str(a), str(b)], str(tmp_path / "board"), compare="b:1")
    saved = json.loads((tmp_path / "board" / "bbh_comparisons.json").read_text())
    (c,) = saved["comparisons"]
    assert (c["row"], c["against"], c["n"], c["only_row"], c["only_against"]) == (2, 1, 100, 30, 10)
    assert c["final"] == 0.4 and c["final_against"] == 0.2 and c["difference"] == pytest.approx(0.2)
    # per-item differences: 30 of +1, 10 of -1, 60 of 0 -> variance 0.4 - 0.04 = 0.36
    half = 1.959964 * (0.36 / 100) ** 0.5
    assert c["difference_ci"] == pytest.approx([0.2 - half, 0.2 + half]) and c["within_noise"] is False
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "## Row against row" in md and "| #2 base, oracle | #1 base, oracle | 100 | 40.0 | 20.0 | 20.0 [" in md
    # the same items, the other way round and almost even: within noise
    even = _with_outcomes(tmp_path, "even", {k: "0" + ("1" if 1 <= i < 21 else "0") for i, k in enumerate(items)})
    build([str(a), str(even)], str(tmp_path / "board2"))  # default: every row against row 1
    (c,) = json.loads((tmp_path / "board2" / "bbh_comparisons.json").read_text())["comparisons"]
    assert (c["only_row"], c["only_against"], c["within_noise"]) == (1, 1, True)
    assert c["difference"] == 0 and "| #2 base, oracle | #1 base, oracle | 100 | 20.0 | 20.0 | 0.0 [" in (tmp_path / "board2" / "bbh.md").read_text()


def test_a_difference_of_model_and_protocol_together_is_flagged(tmp_path):
    """A trained one-stage reflector against the base model's two-turn reflection changes two things at
    once; against the base model asked the one-stage way, only the model."""
    items = _items(4)
    codes = {k: "01" for k in items}
    one_stage = {"mode": "oracle", "one_stage": True, "retry_by": "base"}
    adapter = {"model": "smollm2-135m-instruct", "model_revision": "sha256:" + "0" * 64,
               "adapter": "runs/train/one_stage", "adapter_revision": "sha256:" + "1" * 64}
    base_oracle = _with_outcomes(tmp_path, "base-oracle", codes)
    base_one_stage = _with_outcomes(tmp_path, "base-one_stage", codes, protocol=one_stage)
    trained = _with_outcomes(tmp_path, "one_stage", codes, protocol=one_stage, reflector=adapter)
    build([str(base_oracle), str(base_one_stage), str(trained)], str(tmp_path / "board"), compare="3:1,3:2,2:1")
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "| #2 base, oracle one-stage | #1 base, oracle |" in md
    assert "- #3 against #1: the rows differ in protocol (oracle one-stage vs oracle) as well as in model" in md
    assert "#3 against #2:" not in md and "#2 against #1:" not in md


def test_a_row_without_a_second_attempt_is_compared_on_trial_one(tmp_path):
    items = _items(4)
    single = _with_outcomes(tmp_path, "single", {k: c for k, c in zip(items, "1100")})
    oracle = _with_outcomes(tmp_path, "oracle", {k: c for k, c in zip(items, ["11", "11", "01", "00"])})
    build([str(single), str(oracle)], str(tmp_path / "board"), compare="2:1")
    (c,) = json.loads((tmp_path / "board" / "bbh_comparisons.json").read_text())["comparisons"]
    assert (c["final"], c["final_against"], c["only_row"], c["only_against"]) == (0.75, 0.5, 1, 0)


def test_comparisons_refuse_other_items_and_missing_outcomes(tmp_path):
    a = _with_outcomes(tmp_path, "a", {k: "01" for k in _items(5)})
    fewer = _with_outcomes(tmp_path, "fewer", {k: "01" for k in _items(4)})
    with pytest.raises(UserError, match=r"rows #2 \(fewer.json\) and #1 \(a.json\) were not run on the same items"):
        build([str(a), str(fewer)], str(tmp_path / "board"), compare="2:1")
    # the same doc ids from another dataset revision are other items
    other = json.loads((DATA / "results_oracle_limit1_all_subtasks.json").read_text())["config"]["reflectevo"]["datasets"]
    other = {t: {**d, "dataset_revision": "sha256:0000"} for t, d in other.items()}
    moved = _with_outcomes(tmp_path, "moved", {k: "01" for k in _items(5)}, datasets=other)
    with pytest.raises(UserError, match="not run on the same items"):
        build([str(a), str(moved)], str(tmp_path / "board"), compare="moved:a")
    # an older results file has no outcomes: an explicit comparison says so; the default one lists it as left out
    old = DATA / "results_oracle_limit1_all_subtasks.json"
    with pytest.raises(UserError, match="no per-item outcomes"):
        build([str(a), str(old)], str(tmp_path / "board"), compare="2:1")
    build([str(a), str(old)], str(tmp_path / "board"))
    saved = json.loads((tmp_path / "board" / "bbh_comparisons.json").read_text())
    assert saved["comparisons"] == [] and "no per-item outcomes" in saved["not_compared"][0]
    assert "- not compared: #2 against #1: " in (tmp_path / "board" / "bbh.md").read_text()


@pytest.mark.parametrize("spec, message", [("1-2", "is not ROW:AGAINST"), ("1:1", "compares a row with itself"),
                                           ("3:1", "'3' names no row"), ("nope:1", "'nope' names no row")])
def test_bad_compare_spec_is_one_clear_error(tmp_path, spec, message):
    a = _with_outcomes(tmp_path, "a", {k: "01" for k in _items(2)})
    b = _with_outcomes(tmp_path, "b", {k: "00" for k in _items(2)})
    with pytest.raises(UserError, match=message):
        build([str(a), str(b)], str(tmp_path / "board"), compare=spec)
