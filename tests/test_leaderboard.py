"""The leaderboard rebuilt from recorded lm-eval results files agrees with those files."""

import json
from pathlib import Path

import pytest

from hub_fixtures import hub, hub_server  # noqa: F401
from leaderboards.build import build, row_from_results
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


def test_committed_measured_leaderboard_matches_its_results_files():
    """leaderboards/bbh.json (and the bbh.md beside it) is rebuilt from leaderboards/measured/*.json."""
    root = Path(__file__).resolve().parent.parent / "leaderboards"
    files = sorted((root / "measured").glob("*.json"))
    if not files:
        pytest.skip("no measured rows committed yet")
    committed = json.loads((root / "bbh.json").read_text())
    assert sorted(r["results_file"] for r in committed) == [f.name for f in files]
    by_name = {r["results_file"]: r for r in committed}
    md = (root / "bbh.md").read_text()
    for f in files:
        fresh = json.loads(json.dumps(row_from_results(f)))  # tuples as lists, as in the JSON file
        assert by_name[f.name] == fresh
        assert fresh["command"] in md
