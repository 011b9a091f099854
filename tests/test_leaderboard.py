"""The leaderboard rebuilt from recorded lm-eval results files agrees with those files, and its
statistics are the ones the method asks for (exact paired tests, retry-only as the baseline)."""

import hashlib
import json
import math
import re
from pathlib import Path

import pytest

from hub_fixtures import hub, hub_server  # noqa: F401
from leaderboards.build import build, portable_path, row_from_results, subtask_deltas, trained_part
from reflectevo.errors import UserError
from reflectevo_tasks.bbh import SUBTASKS, TWO_ANSWER_SUBTASKS
from reflectevo_tasks.stats import items_needed

DATA = Path(__file__).with_name("data") / "lm_eval_results"
ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "leaderboards" / "measured"


def _group_value(data, metric):
    """Size-weighted mean of per-subtask values, as lm-eval aggregates groups."""
    n = data["n-samples"]
    tasks = [t for t in data["results"] if t.startswith("reflectevo_bbh_")]
    total = sum(n[t]["effective"] for t in tasks)
    return sum(data["results"][t][f"{metric},none"] * n[t]["effective"] for t in tasks) / total, total


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
def test_rows_match_the_results_files(name):
    """Version-1 files without per-item outcomes: every number from the per-subtask values."""
    data = json.loads((DATA / name).read_text())
    row = row_from_results(DATA / name)
    for metric in ("acc_t1", "acc_t2", "delta", "no_answer_t1", "no_answer_t2"):
        value, n = _group_value(data, metric)
        assert row[metric] == pytest.approx(value, abs=1e-9) and row["n"] == n
    pooled = data["config"]["reflectevo"]["pooled"]["reflectevo_bbh"]
    assert row["fix_rate"] == pytest.approx(pooled["fix_rate"]) and row["wrong_to_right"] == pooled["wrong_to_right"]
    # oracle mode: a right trial 1 is never retried, so no break rate and no test of Δ against 0
    assert row["mode"] == "oracle" and row["break_rate"] is None and row["right_to_wrong"] is None
    assert row["delta_p"] is None and row["delta_within_noise"] is None
    # version 1: one level (the old scorer), no per-item split of the fixes
    assert row["scorer_version"] == 1 and row["flexible"] is None and row["fix_readable_rate"] is None
    lo, hi = row["acc_t1_ci"]
    assert lo <= row["acc_t1"] <= hi and row["delta_ci"][0] <= row["delta"] <= row["delta_ci"][1]
    assert row["base_revision"].startswith("sha256:")
    assert row["command"].startswith("REFLECTEVO_BBH_DIR=") and "lm_eval --model reflectevo" in row["command"]
    for sub, values in row["subtasks"].items():
        assert values["acc_t1"] == pytest.approx(data["results"][f"reflectevo_bbh_{sub}"]["acc_t1,none"])
        assert values["two_answer"] == (sub in TWO_ANSWER_SUBTASKS)


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
    # the recorded command trained into /tmp/fresh/main/runs/...: written from the checkout's runs/ on
    assert "--output_dir runs/evolve/round-1/train " in adapter["train_command"]
    assert "| tracking_shuffled_objects_five_objects | no |" in md and "| navigate | yes |" in md
    assert "--tasks reflectevo_bbh " in md or "--tasks reflectevo_bbh --limit" in md
    assert json.loads((tmp_path / "bbh.json").read_text())[0]["n"] == rows[0]["n"]
    for png in ("bbh_t1_t2.png", "bbh_subtask_delta.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no retry_only row: Δ alone would not say whether reflection helped, so each row says what is missing
    skipped = json.loads((tmp_path / "bbh_comparisons.json").read_text())["not_compared"]
    assert sum("no retry_only row of the same answering model" in line for line in skipped) == 3


def _measured_files() -> list[str]:
    order = ["base-single", "base-retry_only", "base-oracle", "base-intrinsic", "base-one_stage",
             "one_stage", "two_stage", "dpo_pm", "dpo_pref", "sft_qa"]
    for folder in (MEASURED, MEASURED / "v1"):  # the current rows, else the superseded version-1 rows
        found = [str(folder / f"{n}.json") for n in order if (folder / f"{n}.json").is_file()]
        if found:
            return found
    return []


def _results_files(folder: Path) -> list[Path]:
    """The lm-eval results files of a folder: every JSON file but the cap hits counted beside them."""
    return sorted(p for p in folder.glob("*.json") if p.name != "cap_hits.json")


def test_subtask_delta_plot_leaves_out_rows_without_a_second_attempt(tmp_path):
    """The measured rows: mode single has no Δ (it used to be drawn as -Acc@t1); each bar has its interval."""
    files = _measured_files()
    if not files:
        pytest.skip("no measured rows committed")
    rows = build(files, str(tmp_path))
    names, bars, intervals = subtask_deltas(rows)
    with_t2 = [(i, r) for i, r in enumerate(rows, 1) if r.get("acc_t2") is not None]
    assert len(bars) == len(with_t2) < len(rows)
    for (i, r), (label, vals) in zip(with_t2, bars.items()):
        assert label.startswith(f"#{i} ")
        for name, val, (lo, hi) in zip(names, vals, intervals[label]):
            cell = r["subtasks"][name]
            assert val == pytest.approx(100 * (cell["acc_t2"] - cell["acc_t1"]))
            assert lo <= val <= hi and hi > lo


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
    # the project's license, not another one
    card = Path(hub.api.hf_hub_download(repo, "README.md", repo_type="dataset", revision="v1",
                                        cache_dir=str(tmp_path / "cache"))).read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "license: mit" not in card
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
    root = ROOT / "leaderboards"
    files = _results_files(root / "measured")
    if not files:
        pytest.skip("no measured rows committed yet")
    committed = json.loads((root / "bbh.json").read_text())
    assert sorted(r["results_file"] for r in committed) == [f.name for f in files]
    spec = json.loads((root / "bbh_comparisons.json").read_text())["compare"]
    findings = root / "findings.md"
    build([str(root / "measured" / r["results_file"]) for r in committed], str(tmp_path), compare=spec,
          findings=findings if findings.is_file() else None)
    for name in ("bbh.json", "bbh_comparisons.json", "bbh.md"):
        assert (tmp_path / name).read_text() == (root / name).read_text(), name


def test_committed_test_split_leaderboard_matches_its_results_files(tmp_path):
    """leaderboards/test-split/{bbh.md, bbh.json, bbh_comparisons.json} (issue #32's board, written by
    leaderboards/test_split.sh as each row finishes) are exactly a rebuild from its rows/*.json."""
    board = ROOT / "leaderboards" / "test-split"
    files = _results_files(board / "rows") if (board / "rows").is_dir() else []
    if not files:
        pytest.skip("no test-split rows committed yet")
    committed = json.loads((board / "bbh.json").read_text())
    assert sorted(r["results_file"] for r in committed) == [f.name for f in files]
    spec = json.loads((board / "bbh_comparisons.json").read_text())["compare"]
    findings = board / "findings.md"
    build([str(board / "rows" / r["results_file"]) for r in committed], str(tmp_path), compare=spec,
          findings=findings if findings.is_file() else None)
    for name in ("bbh.json", "bbh_comparisons.json", "bbh.md"):
        assert (tmp_path / name).read_text() == (board / name).read_text(), name


# ---------------------------------------------------------------- results files in both formats

REVISION = {s: "sha256:" + f"{i:02d}" * 32 for i, s in enumerate(["date_understanding", "navigate", "ruin_names",
                                                                  "sports_understanding"])}
REVISION.update({s: "sha256:" + "ab" * 32 for s in SUBTASKS if s not in REVISION})
BASE = {"model": "smollm2-135m-instruct", "model_revision": "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "adapter": None,
        "adapter_revision": None, "adapter_training": None, "engine": "hf", "dtype": "float32", "batch_size": "32"}


def _adapter(setting: str, where="/work/main/runs/measured/train") -> dict:
    """A reflector (or base) adapter trained here, recorded with absolute paths as older plugins did."""
    return {"model": BASE["model"], "model_revision": BASE["model_revision"], "adapter": f"{where}/{setting}",
            "adapter_revision": "sha256:" + "ad" * 32,
            "adapter_training": {"setting": setting, "method": "sft", "dataset": "/work/main/runs/measured/curated/d_plus.jsonl",
                                 "dataset_config": "d_plus", "dataset_revision": None, "init_adapter": None,
                                 "command": f"reflectevo train {setting} --dataset /work/main/runs/measured/curated "
                                            f"--output_dir {where}/{setting}"}}


def _split(code: str, mode: str) -> tuple[str, str | None]:
    return (code, None) if mode == "single" else (code[0], code[-1])


def _metrics(codes: list[str], mode: str, suffix: str = "") -> dict:
    """lm-eval's per-subtask values, as process_results and the mean aggregation give them."""
    n = len(codes)
    pairs = [_split(c, mode) for c in codes]
    out = {f"acc_t1{suffix},none": sum(a == "1" for a, _ in pairs) / n,
           f"no_answer_t1{suffix},none": sum(a == "n" for a, _ in pairs) / n}
    if mode != "single":
        out[f"acc_t2{suffix},none"] = sum(b == "1" for _, b in pairs) / n
        out[f"no_answer_t2{suffix},none"] = sum(b == "n" for _, b in pairs) / n
        if not suffix:
            right1 = sum(a == "1" for a, _ in pairs)
            w2r = sum(a != "1" and b == "1" for a, b in pairs)
            r2w = sum(a == "1" and b != "1" for a, b in pairs)
            out.update({"delta,none": (w2r - r2w) / n, "wrong_to_right,none": w2r / n, "right_to_wrong,none": r2w / n,
                        "fix_rate,none": w2r / (n - right1) if n > right1 else None,
                        "break_rate,none": r2w / right1 if right1 and mode not in ("oracle", "retry_only") else None})
    return out


def _pooled(codes: dict[str, list[str]], mode: str) -> dict:
    every = [c for cs in codes.values() for c in cs]
    pairs = [_split(c, mode) for c in every]
    n, right1 = len(pairs), sum(a == "1" for a, _ in pairs)
    out = {"docs": n, "subtasks": len(codes), "acc_t1": right1 / n, "no_answer_t1": sum(a == "n" for a, _ in pairs) / n}
    if mode != "single":
        w2r = sum(a != "1" and b == "1" for a, b in pairs)
        r2w = sum(a == "1" and b != "1" for a, b in pairs)
        out.update(acc_t2=sum(b == "1" for _, b in pairs) / n, no_answer_t2=sum(b == "n" for _, b in pairs) / n,
                   wrong_to_right=w2r, right_to_wrong=r2w, delta=(w2r - r2w) / n)
    return out


def results_dict(codes: dict[str, list[str]], mode: str = "oracle", flexible: dict | None = None, version: int = 2,
                 one_stage: bool = False, reflector="same as base", base: dict | None = None,
                 family: str = "reflectevo_bbh") -> dict:
    """An lm-eval results file as the reflectevo model writes it. `codes`: subtask -> one outcome code per
    doc at the headline level. Version 2 (design-18): one character per attempt, '1' right, '0' wrong
    with a readable answer, 'n' no answer, a right trial 1 in oracle / retry_only mode never retried
    ('1'); `flexible` the same at the flexible level. Version 1 (no `scoring`): '1'/'0' only, at the old
    scorer, and a right trial 1 carried over as trial 2 ('11')."""
    tasks = {s: f"{family}_{s}" for s in codes}
    results, n_samples, datasets, outcomes, flex_outcomes, second = {}, {}, {}, {}, {}, {}
    for s, cs in codes.items():
        t = tasks[s]
        results[t] = {"name": t, "alias": t, "sample_len": len(cs), **_metrics(cs, mode)}
        if version >= 2 and flexible:
            results[t].update(_metrics(flexible[s], mode, "_flexible"))
        n_samples[t] = {"original": 250, "effective": len(cs)}
        datasets[t] = {"docs": len(cs), "dataset": "BBH release (local folder)", "dataset_revision": REVISION[s],
                       "dataset_location": "../../../work/shared/data/bbh" if version >= 2 else "/work/shared/data/bbh",
                       "fewshot": False}
        outcomes[t] = {f"bbh/{s}/{i}": c for i, c in enumerate(cs)}
        second[t] = sorted(f"bbh/{s}/{i}" for i, c in enumerate(cs) if len(c) == 2 and (mode == "intrinsic" or c[0] != "1"))
        if flexible:
            flex_outcomes[t] = {f"bbh/{s}/{i}": c for i, c in enumerate(flexible[s])}
    # lm-eval reports the group beside its subtasks, with the same metric names
    results[family] = {"name": family, "alias": family, "acc_t1,none": 0.0}
    adapter = base.get("adapter") if base else (reflector.get("adapter") if isinstance(reflector, dict) else None)
    model_args = {"base": "hf", "pretrained": "smollm2-135m-instruct", "dtype": "float32", "max_gen_toks": 128,
                  "chunk_size": 64, "resume": "/work/main/runs/measured/resume/x", "mode": mode,
                  **({"peft" if base else "reflector_peft": adapter} if adapter else {}),
                  **({"one_stage": True} if one_stage else {})}
    block = {
        "protocol": {"mode": mode, "one_stage": one_stage, "retry_by": "base",
                     "instruction": {"id": "default", "pool": "reflectevo-default", "pool_version": "1", "text": "…"},
                     "feedback": "gold verdict", "seed": None},
        "base": {**BASE, **(base or {})}, "reflector": reflector, "datasets": datasets,
        "samples": sum(len(c) for c in codes.values()),
        "chunking": {"chunk_size": 64, "resume": "/work/main/runs/measured/resume/x", "reused_chunks": 0},
        "outcomes": outcomes,
        "versions": {"reflectevo": "0.1.0", "lm_eval": "0.4.13"},
    }
    if version >= 2:
        block["scoring"] = {"headline": "strict", "levels": ["strict", "flexible"], "version": version}
        block["second_attempt"] = second
        block["pooled"] = {family: {"strict": _pooled(codes, mode),
                                              **({"flexible": _pooled(flexible, mode)} if flexible else {})}}
        if flexible:
            block["outcomes_flexible"] = flex_outcomes
    else:
        block["pooled"] = {family: _pooled(codes, mode)}
    return {"results": results, "n-samples": n_samples,
            "config": {"model": "reflectevo", "model_args": model_args, "batch_size": "32", "device": "cpu",
                       "limit": 20.0, "reflectevo": block}}


def write(tmp_path, name: str, codes, **kw) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(results_dict(codes, **kw)))
    return path


def _one(tmp_path, name, subtask, codes, **kw) -> Path:
    return write(tmp_path, name, {subtask: codes}, **kw)


def _comparisons(folder: Path) -> dict:
    return json.loads((folder / "bbh_comparisons.json").read_text())


def _exact_p(b, c):
    """Exact McNemar p-value written out: doubled binomial tail of the smaller count under p = 1/2."""
    m = b + c
    return 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, k) for k in range(min(b, c) + 1)) / 2 ** m)


# ---------------------------------------------------------------- statistics in the table

def test_four_fixes_and_no_breaks_are_within_noise(tmp_path):
    """The review's case: an intrinsic row fixing 4 items and breaking none was called a difference by
    the normal interval; the exact test gives p = 0.125."""
    codes = ["01"] * 4 + ["00"] * 20 + ["11"] * 16
    rows = build([str(_one(tmp_path, "intrinsic", "date_understanding", codes, mode="intrinsic"))], str(tmp_path / "b"))
    (r,) = rows
    assert (r["wrong_to_right"], r["right_to_wrong"]) == (4, 0)
    assert r["delta_p"] == 0.125 and r["delta_within_noise"] is True and r["delta_ci"][0] < 0 < r["delta_ci"][1]
    # 4 discordant items: no split of so few can reach p < 0.05, so nothing is detectable at this N
    assert r["break_rate"] == 0.0 and r["delta_detectable"] is None
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 10.0 [" in md and "| 0.125 | yes | – |" in md


def test_rates_the_protocol_cannot_produce_are_dashes(tmp_path):
    docs = ["1", "0", "n", "0"]
    single = _one(tmp_path, "single", "date_understanding", docs, mode="single")
    retry = _one(tmp_path, "retry", "date_understanding", ["1", "01", "n1", "00"], mode="retry_only")
    rows = build([str(single), str(retry)], str(tmp_path / "b"), compare="")
    s, o = rows
    for key in ("acc_t2", "no_answer_t2", "delta", "delta_p", "fix_rate", "break_rate", "right_to_wrong"):
        assert s[key] is None, key
    # retry_only: Δ is the share fixed (Wilson interval), untested; nothing right is retried, so no break rate
    assert o["delta"] == 0.5 and o["delta_ci"][0] > 0 and o["delta_p"] is None and o["break_rate"] is None
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 1 | base, single | all (1 subtask) | 4 | 25.0 [" in md
    line = next(x for x in md.splitlines() if x.startswith("| 2 | base, retry_only | all") and "| 50.0 [" in x)
    assert line.endswith("| – | – | – |")  # p, within noise, detectable: Δ ≥ 0 by construction
    assert "Δ ≥ 0 by construction" in md
    fixes = next(x for x in md.splitlines() if x.startswith("| 2 | base, retry_only | all") and "(2/3)" in x)
    assert fixes.endswith("| – |")  # break rate


def test_a_retried_right_answer_in_a_gated_mode_is_an_error(tmp_path):
    path = _one(tmp_path, "bad", "date_understanding", ["10", "00"], mode="oracle")
    with pytest.raises(UserError, match="mode oracle, yet 1 items right at trial 1 are wrong at trial 2"):
        row_from_results(path)


@pytest.mark.parametrize("kept", ["1", "11"])
def test_new_format_gives_both_levels_no_answer_rates_and_split_fixes(tmp_path, kept):
    """`kept`: how a right trial 1 that was not retried is recorded (one attempt, or carried over as
    trial 2, as the plugin writes it); second_attempt lists the retried docs either way."""
    # headline: 10 right at t1; 4 readable wrong (2 fixed), 6 no answer (3 fixed, 1 now readable but wrong)
    strict = [kept] * 10 + ["01", "01", "00", "00"] + ["n1", "n1", "n1", "n0", "nn", "nn"]
    # which items get a second attempt is decided at the headline level: at the flexible level an item
    # right at trial 1 can be retried ("11", "10")
    flexible = [kept] * 10 + ["11", "01", "10", "00"] + ["01", "n1", "11", "00", "00", "n0"]
    path = write(tmp_path, "oracle", {"date_understanding": strict}, flexible={"date_understanding": flexible})
    r = row_from_results(path)
    assert r["scorer_version"] == 2 and r["headline_level"] == "strict"
    assert (r["acc_t1"], r["acc_t2"], r["no_answer_t1"], r["no_answer_t2"]) == (0.5, 0.75, 0.3, 0.1)
    assert (r["fixed_readable"], r["readable_wrong_t1"], r["fixed_no_answer"], r["no_answer_t1_count"]) == (2, 4, 3, 6)
    assert r["fix_readable_rate"] == 0.5 and r["fix_no_answer_rate"] == 0.5 and r["fix_rate"] == 0.5
    assert (r["flexible"]["acc_t1"], r["flexible"]["acc_t2"]) == (0.65, 0.75) and r["flexible"]["no_answer_t1"] == 0.1
    build([str(path)], str(tmp_path / "b"))
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 20 | 50.0 [" in md and "| 75.0 [" in md and "| 65.0 [" in md and "| 30.0 | 10.0 |" in md
    assert "(2/4) | 50.0 [" in md and "(3/6) | – |" in md  # the split fixes, then no break rate in oracle


def test_version_one_rows_cannot_tell_the_flexible_level_or_the_fix_split(tmp_path):
    path = write(tmp_path, "old", {"date_understanding": ["11", "01", "00", "00"]}, version=1)
    r = row_from_results(path)
    assert r["scorer_version"] == 1 and r["flexible"] is None and r["fixed_readable"] is None
    assert r["acc_t2"] == 0.5 and r["fix_rate"] == pytest.approx(1 / 3) and r["no_answer_t1"] == 0.0
    build([str(path)], str(tmp_path / "b"))
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| v1 | 4 | 25.0 [4.6, 69.9] | 50.0 [15.0, 85.0] |" in md  # the rows table, headline accuracies
    assert "| 1 | base, oracle | all (1 subtask) | 4 | 25.0 [" in md and "| 50.0 [15.0, 85.0] | – | – | 0.0 | 0.0 |" in md
    assert "| 1 | base, oracle | all (1 subtask) | 33.3 [6.1, 79.2] (1/3) | – | – | – |" in md


def test_outcomes_that_disagree_with_lm_eval_values_are_an_error(tmp_path):
    data = results_dict({"date_understanding": ["1", "01", "00"]})
    data["results"]["reflectevo_bbh_date_understanding"]["acc_t2,none"] = 1.0
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="date_understanding: the per-item outcomes give t2_right = 2, lm-eval's values 3"):
        row_from_results(path)


def test_pooled_rows_and_comparisons_are_repeated_without_the_two_answer_subtasks(tmp_path):
    codes_b = {"date_understanding": ["01"] * 6 + ["00"] * 4, "navigate": ["01"] * 8 + ["00"] * 2}
    codes_a = {"date_understanding": ["01"] * 1 + ["00"] * 9, "navigate": ["00"] * 10}
    retry = write(tmp_path, "retry", codes_a, mode="retry_only")
    oracle = write(tmp_path, "oracle", codes_b)
    rows = build([str(retry), str(oracle)], str(tmp_path / "b"))
    r = rows[1]
    assert r["n"] == 20 and r["acc_t2"] == 0.7 and r["two_answer_subtasks"] == ["navigate"]
    w = r["without_two_answer"]
    assert (w["subtasks"], w["n"], w["acc_t2"]) == (1, 10, 0.6)
    (c,) = _comparisons(tmp_path / "b")["comparisons"]
    assert (c["row"], c["against"], c["why"]) == (2, 1, "reflection against retry-only")
    assert (c["n"], c["only_row"], c["only_against"]) == (20, 13, 0) and c["p_value"] == pytest.approx(_exact_p(13, 0))
    w = c["without_two_answer"]
    assert (w["n"], w["only_row"], w["only_against"]) == (10, 5, 0)
    assert w["p_value"] == pytest.approx(_exact_p(5, 0)) == 0.0625 and w["within_noise"] is True
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 2 | base, oracle | w/o two-answer (1 subtask) | 10 | 0.0 [" in md
    assert "| reflection against retry-only | w/o two-answer | 10 | 60.0 | 10.0 | 50.0 [" in md
    assert "| 0.0625 | 5 | 0 | yes | – |" in md


def test_no_absolute_path_in_what_build_writes(tmp_path):
    trained = write(tmp_path, "trained", {"date_understanding": ["1", "01"]}, reflector=_adapter("two_stage"))
    sft = write(tmp_path, "sft", {"date_understanding": ["1", "00"]}, base=_adapter("sft_qa", "/home/someone/x/runs/t"))
    build([str(trained), str(sft)], str(tmp_path / "b"))
    for name in ("bbh.md", "bbh.json", "bbh_comparisons.json"):
        text = (tmp_path / "b" / name).read_text()
        assert not re.search(r"/(work|home|tmp)/", text), name
    rows = json.loads((tmp_path / "b" / "bbh.json").read_text())
    assert rows[0]["adapter"] == "runs/measured/train/two_stage"
    assert rows[1]["base_adapter"] == "runs/t/sft_qa" and "bbh" in rows[0]["datasets"][0]
    assert "--dataset runs/measured/curated --output_dir runs/measured/train/two_stage" in rows[0]["train_command"]


@pytest.mark.parametrize("path, expected", [("runs/x", "runs/x"), ("/somewhere/else/runs/a/b", "runs/a/b"),
                                            ("/data/bbh/navigate.json", "navigate.json"), ("local/demo-data", "local/demo-data"),
                                            ("../../../work/shared/data/bbh", "bbh"), ("../../x/runs/t/a", "runs/t/a"),
                                            (str(ROOT / "leaderboards" / "measured" / "x.json"), "leaderboards/measured/x.json")])
def test_portable_path(path, expected):
    assert portable_path(path) == expected


# ---------------------------------------------------------------- row against row

def _items(n, right):
    return ["0" + ("1" if right(i) else "0") for i in range(n)]


def test_rows_are_compared_item_by_item(tmp_path):
    # row A right on items 0-19; row B right on 10-49: B only 30, A only 10, on 100 items
    a = _one(tmp_path, "a", "date_understanding", _items(100, lambda i: i < 20))
    b = _one(tmp_path, "b", "date_understanding", _items(100, lambda i: 10 <= i < 50))
    build([str(a), str(b)], str(tmp_path / "board"), compare="b:1")
    (c,) = _comparisons(tmp_path / "board")["comparisons"]
    assert (c["row"], c["against"], c["n"], c["only_row"], c["only_against"], c["why"]) == (2, 1, 100, 30, 10, "asked")
    assert c["final"] == 0.4 and c["final_against"] == 0.2 and c["difference"] == pytest.approx(0.2)
    assert c["p_value"] == pytest.approx(_exact_p(30, 10), rel=1e-12) and c["within_noise"] is False
    assert c["difference_ci"][0] > 0 and c["without_two_answer"] is None  # no two-answer subtask here
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "## Row against row" in md and "| #2 base, oracle | #1 base, oracle | asked | all | 100 | 40.0 | 20.0 | 20.0 [" in md
    assert f"| {_exact_p(30, 10):.3g} | 30 | 10 | no |" in md
    # one item each way: p = 1
    even = _one(tmp_path, "even", "date_understanding", _items(100, lambda i: 1 <= i < 21))
    build([str(a), str(even)], str(tmp_path / "board2"), compare="2:1")
    (c,) = _comparisons(tmp_path / "board2")["comparisons"]
    assert (c["only_row"], c["only_against"], c["p_value"], c["within_noise"]) == (1, 1, 1.0, True)
    assert c["items_needed"] is None and "the test needs about" not in (tmp_path / "board2" / "bbh.md").read_text()
    # 3 against 1: within noise, and the notes say how many items the test would need to see 2 points
    close = _one(tmp_path, "close", "date_understanding", _items(100, lambda i: i < 23))
    build([str(a), str(close)], str(tmp_path / "board3"), compare="2:1")
    (c,) = _comparisons(tmp_path / "board3")["comparisons"]
    assert (c["only_row"], c["only_against"], c["within_noise"]) == (3, 0, True)
    assert c["items_needed"] == items_needed(0.03, 0.03) > 100
    assert (f"- #2 against #1: to see a difference of 3.0 points 80% of the time when 3 of 100 items differ, "
            f"the test needs about {c['items_needed']:,} items.") in (tmp_path / "board3" / "bbh.md").read_text()


def test_default_comparisons_answer_against_retry_only_and_the_base_model_under_the_same_protocol(tmp_path):
    sub = "date_understanding"
    one_stage_adapter = _adapter("one_stage")
    files = [
        _one(tmp_path, "single", sub, ["1", "0", "0", "0"], mode="single"),
        _one(tmp_path, "retry", sub, ["1", "01", "00", "00"], mode="retry_only"),
        _one(tmp_path, "oracle", sub, ["1", "01", "01", "00"]),
        _one(tmp_path, "intrinsic", sub, ["11", "01", "00", "00"], mode="intrinsic"),
        _one(tmp_path, "base-one_stage", sub, ["1", "01", "00", "00"], one_stage=True),
        _one(tmp_path, "one_stage", sub, ["1", "01", "01", "01"], one_stage=True, reflector=one_stage_adapter),
        _one(tmp_path, "two_stage", sub, ["1", "01", "01", "00"], reflector=_adapter("two_stage")),
        _one(tmp_path, "sft_qa", sub, ["1", "00", "00", "00"], base=_adapter("sft_qa")),
    ]
    build([str(f) for f in files], str(tmp_path / "b"))
    saved = _comparisons(tmp_path / "b")
    made = [(c["row"], c["against"], c["why"], c["measure"]) for c in saved["comparisons"]]
    retry, trained = "reflection against retry-only", "trained against the base model, same protocol"
    assert made == [(3, 2, retry, "final"),
                    (4, 2, retry, "final"), (4, 1, "intrinsic against single", "final"),
                    (5, 2, retry, "final"),
                    (6, 2, retry, "final"), (6, 5, trained, "final"),
                    (7, 2, retry, "final"), (7, 3, trained, "final"),
                    # sft_qa answers with its own adapter: its trial 1 is compared too
                    (8, 3, trained, "final"), (8, 3, trained, "trial 1")]
    # sft_qa answers with its own adapter: the base model's retry-only row is another answering model
    assert saved["not_compared"] == ["#8 sft_qa, oracle (reflection against retry-only): "
                                     "no retry_only row of the same answering model"]
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "- not compared: #8 sft_qa, oracle (reflection against retry-only)" in md
    # without a base-model one-stage row, the trained one-stage row is not compared with two-turn reflection
    build([str(f) for f in files if f.stem != "base-one_stage"], str(tmp_path / "c"))
    skipped = _comparisons(tmp_path / "c")["not_compared"]
    assert "#5 one_stage, oracle one-stage (trained against the base model, same protocol): " \
           "no base-model row in mode oracle one-stage" in skipped


def test_reflective_rows_are_also_compared_with_a_retry_of_the_same_budget(tmp_path):
    """A reflective row spends reflection cap + retry cap after trial 1, a retry_only row its retry cap:
    where a retry_only row was given the reflective row's budget, the default pairs include it, unmarked."""
    sub = "date_understanding"
    trial, stops = [_sampling(384, STOPS)], STOPS
    gen = {"retry": {"trial1": trial, "retry": [_sampling(384, stops)]},
           "retry_512": {"trial1": trial, "retry": [_sampling(512, stops)]},
           "oracle": {"trial1": trial, "reflection": [_sampling(128)], "retry": [_sampling(384, stops)]},
           "one": {"trial1": trial, "one_stage": [_sampling(512)]},
           "oracle_256": {"trial1": trial, "reflection": [_sampling(128)], "retry": [_sampling(128, stops)]}}
    codes = ["1", "01", "00", "00"]
    files = [_budgeted(tmp_path, "retry", {sub: codes}, gen["retry"], [], mode="retry_only"),
             _budgeted(tmp_path, "oracle", {sub: codes}, gen["oracle"], []),
             _budgeted(tmp_path, "one", {sub: ["1", "01", "01", "00"]}, gen["one"], [], one_stage=True),
             _budgeted(tmp_path, "retry_512", {sub: ["1", "01", "01", "01"]}, gen["retry_512"], [], mode="retry_only"),
             _budgeted(tmp_path, "oracle_256", {sub: codes}, gen["oracle_256"], [])]
    own = json.loads(files[3].read_text())  # the plugin records a retry cap of its own in the protocol block
    own["config"]["reflectevo"]["protocol"]["retry_max_gen_toks"] = 512
    files[3].write_text(json.dumps(own))
    rows = build([str(f) for f in files], str(tmp_path / "b"))
    assert [r["budgets"]["second_attempt"] for r in rows] == [384, 512, 512, 512, 256]
    assert [r.get("retry_cap") for r in rows] == [None, None, None, 512, None]
    saved = _comparisons(tmp_path / "b")["comparisons"]
    retry, same = "reflection against retry-only", "reflection against retry-only of the same budget"
    assert [(c["row"], c["against"], c["why"]) for c in saved] == [
        (2, 1, retry), (2, 4, same), (3, 1, retry), (3, 4, same), (5, 1, retry)]  # no 256-token retry_only row
    marks = {(c["row"], c["against"]): c["budgets_differ"] for c in saved}
    assert marks[(3, 1)] == "budgets differ: 512 vs 384" and marks[(3, 4)] is None and marks[(2, 4)] is None
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert f"| #3 base, oracle one-stage | #4 base, retry_only (retry cap 512) | {same} | all |" in md
    assert "#3 against #4: the rows differ in protocol" not in md


def test_trained_rows_show_their_optimizer_steps_and_data_share_where_recorded(tmp_path):
    sub = "date_understanding"
    full, quarter, old = _adapter("one_stage"), _adapter("one_stage", "/w/quarter"), _adapter("two_stage")
    full["adapter_training"]["min_steps_after_warmup"] = 31
    quarter["adapter_training"].update(min_steps_after_warmup=30,
                                       data_fraction={"fraction": 0.25, "questions": 10, "of_questions": 40})
    files = [_one(tmp_path, n, sub, ["1", "01", "00", "00"], one_stage=True, reflector=r)
             for n, r in (("full", full), ("quarter", quarter), ("old", old))]
    rows = build([str(f) for f in files], str(tmp_path / "b"), compare="")
    assert [r.get("train_steps_after_warmup") for r in rows] == [31, 30, None]
    assert rows[1]["train_data_fraction"]["questions"] == 10 and "train_data_fraction" not in rows[0]
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "- #1 one_stage, oracle one-stage: 31 optimizer steps after warmup (the fewest of its stages)." in md
    assert ("- #2 one_stage (25% of its data), oracle one-stage: 30 optimizer steps after warmup (the fewest of its "
            "stages), on 10 of 40 training questions (data fraction 0.25).") in md
    training = md.split("Training of the trained rows")[1].split("## Budgets")[0]
    assert "- #3 " not in training  # an adapter that recorded neither gives no line


def test_an_adapter_trained_otherwise_is_labelled_so_and_kept_off_the_scaling_curve(tmp_path):
    """A second self-evolution round trains on from round 1's adapter, a narrow variant without the
    two-answer rows: neither row may read as round 1's, nor join its data-share curve."""
    sub = "date_understanding"
    first, second, quarter, narrow = (_adapter("two_stage", f"/w/{n}") for n in ("r1", "r2", "q", "n"))
    # as reflectevo train records it (reflectevo_train/run.py: provenance)
    init = {"ref": "leaderboards/test-split/adapters/two_stage", "location": "leaderboards/test-split/adapters/two_stage",
            "revision": None, "sha": "sha256:" + "31" * 32, "mode": "continue"}
    second["adapter_training"]["init_adapter"] = init
    quarter["adapter_training"]["data_fraction"] = {"fraction": 0.25, "questions": 10, "of_questions": 40}
    narrow["adapter_training"]["two_answer_rows_excluded"] = 0  # asked for, though none was there: still said
    files = [_one(tmp_path, n, sub, ["1", "01", "00", "00"], reflector=a)
             for n, a in (("r1", first), ("r2", second), ("q", quarter), ("n", narrow))]
    rows = build([str(f) for f in files], str(tmp_path / "b"), compare="")
    assert rows[1]["train_init_adapter"] == init
    assert "train_init_adapter" not in rows[0]
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "#2 two_stage (continues two_stage), oracle" in md and "#3 two_stage (25% of its data), oracle" in md
    assert "#4 two_stage (without two-answer rows), oracle" in md and "#1 two_stage, oracle" in md
    scaling = md.split("## Data scaling")[1].split("## Reproduce")[0]
    assert [line.split(" | ")[1] for line in scaling.splitlines() if line.startswith("| two_stage")] == ["#3", "#1"]


def test_a_setting_trained_at_several_data_shares_gets_a_scaling_curve_against_retry_only(tmp_path):
    sub = "date_understanding"
    adapters = {}
    for share, questions in ((0.25, 10), (0.5, 20), (None, None)):
        a = _adapter("one_stage", f"/w/{share}")
        if share:
            a["adapter_training"]["data_fraction"] = {"fraction": share, "questions": questions, "of_questions": 40}
        adapters[share] = a
    files = [_one(tmp_path, "retry", sub, ["1", "01", "00", "00"], mode="retry_only"),
             _one(tmp_path, "q", sub, ["1", "00", "00", "00"], reflector=adapters[0.25]),
             _one(tmp_path, "h", sub, ["1", "01", "00", "00"], reflector=adapters[0.5]),
             _one(tmp_path, "f", sub, ["1", "01", "01", "00"], reflector=adapters[None]),
             _one(tmp_path, "other", sub, ["1", "01", "01", "01"], reflector=_adapter("two_stage"))]
    build([str(f) for f in files], str(tmp_path / "b"), compare="")
    md = (tmp_path / "b" / "bbh.md").read_text()
    scaling = md.split("## Data scaling")[1].split("## Reproduce")[0]
    lines = [line for line in scaling.splitlines() if line.startswith("| one_stage") or line.startswith("| (against)")]
    assert [line.split(" | ")[:5] for line in lines] == [
        ["| one_stage", "#2", "0.25", "10 of 40", "4"], ["| one_stage", "#3", "0.5", "20 of 40", "4"],
        ["| one_stage", "#4", "1", "all", "4"], ["| (against)", "#1 base, retry_only", "–", "–", "4"]]
    assert lines[0].endswith("| 25.0 [4.6, 69.9] |") and lines[2].endswith("| 75.0 [30.1, 95.4] |")
    assert "two_stage" not in scaling  # trained at one share only: no curve
    png = (tmp_path / "b" / "bbh_scaling_one_stage.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "b" / "bbh_scaling_two_stage.png").exists()
    build([str(files[0]), str(files[3])], str(tmp_path / "c"), compare="")  # one share: no section, no plot
    assert "## Data scaling" not in (tmp_path / "c" / "bbh.md").read_text()
    assert not list((tmp_path / "c").glob("*scaling*"))


def test_a_difference_of_model_and_protocol_together_is_flagged(tmp_path):
    """A trained one-stage reflector against the base model's two-turn reflection changes two things at
    once; against the base model asked the one-stage way, only the model."""
    codes = ["01"] * 4
    base_oracle = _one(tmp_path, "base-oracle", "date_understanding", codes)
    base_one_stage = _one(tmp_path, "base-one_stage", "date_understanding", codes, one_stage=True)
    trained = _one(tmp_path, "one_stage", "date_understanding", codes, one_stage=True, reflector=_adapter("one_stage"))
    build([str(base_oracle), str(base_one_stage), str(trained)], str(tmp_path / "board"), compare="3:1,3:2,2:1")
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "| #2 base, oracle one-stage | #1 base, oracle |" in md
    assert "- #3 against #1: the rows differ in protocol (oracle one-stage vs oracle) as well as in model" in md
    assert "#3 against #2:" not in md and "#2 against #1:" not in md


def test_a_row_without_a_second_attempt_is_compared_on_trial_one(tmp_path):
    single = _one(tmp_path, "single", "date_understanding", list("1100"), mode="single")
    oracle = _one(tmp_path, "oracle", "date_understanding", ["1", "1", "01", "00"])
    build([str(single), str(oracle)], str(tmp_path / "board"), compare="2:1")
    (c,) = _comparisons(tmp_path / "board")["comparisons"]
    assert (c["final"], c["final_against"], c["only_row"], c["only_against"]) == (0.75, 0.5, 1, 0)


def test_rows_of_different_scorer_versions_are_never_compared(tmp_path):
    old = write(tmp_path, "old", {"date_understanding": ["00", "01"]}, mode="retry_only", version=1)
    new = write(tmp_path, "new", {"date_understanding": ["00", "01"]})
    with pytest.raises(UserError, match=r"scored with different scorer versions \(v2 and v1\): not compared"):
        build([str(old), str(new)], str(tmp_path / "b"), compare="2:1")
    build([str(old), str(new)], str(tmp_path / "b"))
    saved = _comparisons(tmp_path / "b")
    assert saved["comparisons"] == [] and "scored with different scorer versions" in saved["not_compared"][0]
    assert "- not compared: #2 base, oracle (reflection against retry-only): rows #2 (new.json) and #1 (old.json) " \
           "were scored with different scorer versions" in (tmp_path / "b" / "bbh.md").read_text()


def test_comparisons_refuse_other_items_and_missing_outcomes(tmp_path):
    a = _one(tmp_path, "a", "date_understanding", ["01"] * 5)
    fewer = _one(tmp_path, "fewer", "date_understanding", ["01"] * 4)
    with pytest.raises(UserError, match=r"rows #2 \(fewer.json\) and #1 \(a.json\) were not run on the same items"):
        build([str(a), str(fewer)], str(tmp_path / "board"), compare="2:1")
    # the same doc ids from another dataset revision are other items
    data = results_dict({"date_understanding": ["01"] * 5})
    for d in data["config"]["reflectevo"]["datasets"].values():
        d["dataset_revision"] = "sha256:0000"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(data))
    with pytest.raises(UserError, match="not run on the same items"):
        build([str(a), str(moved)], str(tmp_path / "board"), compare="moved:a")
    # an older results file has no outcomes: an explicit comparison says so; the default one lists it as left out
    old = DATA / "results_oracle_limit1_all_subtasks.json"
    retry = write(tmp_path, "retry", {"date_understanding": ["01"] * 5}, mode="retry_only", version=1)
    with pytest.raises(UserError, match="no per-item outcomes"):
        build([str(retry), str(old)], str(tmp_path / "board"), compare="2:1")
    build([str(retry), str(old)], str(tmp_path / "board"))
    saved = _comparisons(tmp_path / "board")
    assert saved["comparisons"] == [] and "no per-item outcomes" in saved["not_compared"][0]
    assert "- not compared: #2 base, oracle (reflection against retry-only): " in (tmp_path / "board" / "bbh.md").read_text()


@pytest.mark.parametrize("spec, message", [("1-2", "is not ROW:AGAINST"), ("1:1", "compares a row with itself"),
                                           ("3:1", "'3' names no row"), ("nope:1", "'nope' names no row")])
def test_bad_compare_spec_is_one_clear_error(tmp_path, spec, message):
    a = _one(tmp_path, "a", "date_understanding", ["01"] * 2)
    b = _one(tmp_path, "b", "date_understanding", ["00"] * 2)
    with pytest.raises(UserError, match=message):
        build([str(a), str(b)], str(tmp_path / "board"), compare=spec)


def test_a_merged_adapter_is_labelled_as_merged():
    lora = trained_part(BASE, _adapter("one_stage", where="runs/measured/train"))
    merged = trained_part(BASE, {**_adapter("one_stage", where="runs/measured/train"), "adapter_merged": True})
    assert "merged" not in lora["reflector_label"]
    assert merged["reflector_label"] == lora["reflector_label"] + " (merged)"
    on_base = trained_part({**_adapter("sft_qa", where="runs/measured/train"), "adapter_merged": True}, "base")
    assert on_base["reflector_label"].endswith("(on the base) (merged)")


# ---------------------------------------------------------------- trained on the items it is evaluated on

def _trained_on(items) -> dict:
    """A two_stage reflector adapter whose provenance lists `items` as its training_items (None: an adapter
    trained before they were recorded)."""
    adapter = _adapter("two_stage")
    adapter["adapter_training"]["training_items"] = items
    return adapter


def _items_block(ids, hashes) -> dict:
    return {"count": len(ids), "question_ids": sorted(ids), "text_sha256": sorted(hashes), "complete": True}


def _overlap_board(tmp_path, items) -> tuple[list[dict], dict, str]:
    """Base retry-only and oracle rows and a trained oracle row, all on bbh/navigate/0-3, with the default
    comparisons: (rows, bbh_comparisons.json, bbh.md)."""
    sub = "navigate"
    files = [_one(tmp_path, "retry", sub, ["1", "01", "00", "00"], mode="retry_only"),
             _one(tmp_path, "oracle", sub, ["1", "01", "01", "00"]),
             _one(tmp_path, "trained", sub, ["1", "01", "01", "01"], reflector=_trained_on(items))]
    rows = build([str(f) for f in files], str(tmp_path / "b"))
    return rows, _comparisons(tmp_path / "b"), (tmp_path / "b" / "bbh.md").read_text()


def _involving(saved: dict, row: int) -> list[dict]:
    return [c for c in saved["comparisons"] if row in (c["row"], c["against"])]


@pytest.mark.parametrize("how", ["id", "text"])
def test_a_row_trained_on_its_evaluation_items_is_flagged_everywhere(tmp_path, how):
    from reflectevo_tasks.bbh_split import item_text_hash, text_hash

    if how == "id":  # one evaluated id among the training ids
        items = _items_block(["bbh/navigate/2", "bbh/navigate/150"], [text_hash("something else entirely")])
    else:  # another id, but the normalised text of an evaluated item
        items = _items_block(["my-data/q1"], [item_text_hash("bbh/navigate/0")])
    rows, saved, md = _overlap_board(tmp_path, items)
    assert rows[2]["train_eval_overlap"] == 1 and rows[2]["train_eval_overlap_checked"] is True
    # rows without an adapter are recorded as before
    assert not any(k.startswith("train_eval_overlap") for r in rows[:2] for k in r)
    assert "| two_stage ⚠ trained on 1 of its 4 evaluation items |" in md
    assert "- #3 two_stage, oracle: ⚠ trained on 1 of its 4 evaluation items" in md
    flagged = _involving(saved, 3)
    assert [(c["row"], c["against"]) for c in flagged] == [(3, 1), (3, 2)]
    assert all(c["overlap"] is True for c in flagged)
    assert [c for c in saved["comparisons"] if "overlap" in c] == flagged  # base rows against each other: not flagged
    assert md.count("| trained against the base model, same protocol ⚠ trained on evaluation items |") == 1
    assert md.count("| reflection against retry-only ⚠ trained on evaluation items |") == 1
    assert "- ⚠ #3 against #2: #3 trained on some of the items compared" in md
    assert "- ⚠ #3 against #1: #3 trained on some of the items compared" in md


def test_a_row_trained_on_other_items_is_not_flagged(tmp_path):
    from reflectevo_tasks.bbh_split import item_text_hash

    # the same subtask, items outside those evaluated, by id and by text
    items = _items_block(["bbh/navigate/4", "bbh/date_understanding/0"],
                         [item_text_hash("bbh/navigate/4"), item_text_hash("bbh/date_understanding/0")])
    rows, saved, md = _overlap_board(tmp_path, items)
    assert rows[2]["train_eval_overlap"] == 0 and rows[2]["train_eval_overlap_checked"] is True
    assert "train_eval_overlap_why" not in rows[2]
    # (budgets these synthetic files never recorded say "not recorded" too: the overlap's wording is checked)
    assert "⚠" not in md and "items not recorded" not in md and "partly recorded" not in md
    assert _involving(saved, 3) and not any("overlap" in c for c in saved["comparisons"])


def test_an_adapter_trained_before_training_items_were_recorded_is_not_checked(tmp_path):
    rows, saved, md = _overlap_board(tmp_path, None)
    r = rows[2]
    assert r["train_eval_overlap"] is None and r["train_eval_overlap_checked"] is False
    assert r["train_eval_overlap_why"] == "training items not recorded"
    assert "- #3 two_stage, oracle: training items not recorded, so whether its adapter was trained on its " \
           "evaluation items is not checked." in md
    assert "⚠" not in md and not any("overlap" in c for c in saved["comparisons"])


def test_overlap_needs_the_per_item_outcomes_and_counts_a_partial_record_as_a_lower_bound(tmp_path):
    items = _items_block(["bbh/navigate/1"], [])
    data = results_dict({"navigate": ["1", "01"]}, reflector=_trained_on(items))
    del data["config"]["reflectevo"]["outcomes"]
    path = tmp_path / "no-outcomes.json"
    path.write_text(json.dumps(data))
    r = row_from_results(path)
    assert (r["train_eval_overlap"], r["train_eval_overlap_checked"]) == (None, False)
    assert r["train_eval_overlap_why"] == "evaluated items not recorded (no per-item outcomes)"
    # a dataset without question ids on every row: what is listed still counts, but it is not a full check
    partial = {"question_ids": ["bbh/navigate/1"], "complete": False}
    r = row_from_results(_one(tmp_path, "partial", "navigate", ["1", "01"], reflector=_trained_on(partial)))
    assert (r["train_eval_overlap"], r["train_eval_overlap_checked"]) == (1, False)
    r = row_from_results(_one(tmp_path, "partial0", "navigate", ["1", "01"],
                              reflector=_trained_on({"question_ids": ["x/1"], "complete": False})))
    assert (r["train_eval_overlap"], r["train_eval_overlap_why"]) == (0, "training items partly recorded")


def test_training_items_of_an_older_adapter_come_from_its_committed_training_file(tmp_path):
    """An adapter trained before training_items were recorded is checked against its training file, if that
    file is in the checkout with the sha256 the adapter recorded; anything else stays unchecked."""
    from leaderboards.build import _items_of_local_data, _pool_of

    name = "leaderboards/measured/training-data/d_plus.jsonl"
    data = (ROOT / name).read_bytes()
    revision = "sha256:" + hashlib.sha256(data).hexdigest()
    items = _items_of_local_data({"dataset": name, "dataset_revision": revision})
    ids = {json.loads(line)["question_id"] for line in data.decode().splitlines() if line.strip()}
    assert items["complete"] and set(items["question_ids"]) == ids and items["count"] == len(ids)
    assert _pool_of([items]).startswith("BIG-bench pool")
    assert _items_of_local_data({"dataset": name, "dataset_revision": "sha256:" + "0" * 64}) is None  # edited since
    assert _items_of_local_data({"dataset": str(ROOT / name), "dataset_revision": revision}) is None  # not in the checkout
    assert _items_of_local_data({"dataset": "nowhere/d_plus.jsonl", "dataset_revision": revision}) is None
    assert _pool_of([{"question_ids": ["bbh/navigate/40"]}]) == "BBH generation pool (bbh-pool)"


def test_a_test_split_row_reads_its_subtasks_not_its_group(tmp_path):
    """reflectevo_bbh_test's group name starts like a subtask task of reflectevo_bbh (`reflectevo_bbh_` +
    `test`); the row must count the subtasks only, say it measured the test split, and give the group in
    its command."""
    codes = {"navigate": ["1", "00", "01", "n1"], "ruin_names": ["0n", "1"]}
    row = row_from_results(write(tmp_path, "split", codes, family="reflectevo_bbh_test"))
    assert row["split"] == "test" and sorted(row["subtasks"]) == ["navigate", "ruin_names"] and row["n"] == 6
    assert "--tasks reflectevo_bbh_test_navigate,reflectevo_bbh_test_ruin_names --limit" in row["command"]
    whole = row_from_results(write(tmp_path, "whole", {s: ["1"] for s in SUBTASKS}, family="reflectevo_bbh_test"))
    assert "--tasks reflectevo_bbh_test --limit" in whole["command"]
    assert row_from_results(write(tmp_path, "all", codes))["split"] == "all"


# ---------------------------------------------------------------- budgets: caps, stops, cap hits

def test_the_plugin_counts_replies_that_reach_their_cap_per_pass(tmp_path, monkeypatch):
    """Every pass records how many of its replies reached their own cap (within CAP_SLACK: the count
    retokenises). The scripted engine has no tokenizer, so it counts words; each item's reply is padded to
    its cap minus an offset: #0 at the cap, #1 at the edge of the slack, #2 one word short of it. The two
    subtasks ask for different caps, so one pass holds replies of two caps."""
    from harness_plugins.reflect_model import CAP_SLACK, ReflectEvoLM, reaches_cap
    from reflectevo_tasks import bbh
    from reflectevo_tasks.engine import Engine, EngineConfig
    from test_lm_eval_tasks import ScriptedLM, make_bbh_folder, requests_for

    folder = make_bbh_folder(tmp_path / "bbh_release")
    monkeypatch.setenv(bbh.ENV_DIR, str(folder))
    bbh.cot_exemplars.cache_clear()
    offset = {0: 0, 1: CAP_SLACK, 2: CAP_SLACK + 1}

    class PaddedLM(ScriptedLM):
        def generate_until(self, requests, disable_tqdm=False):
            out = []
            for r, reply in zip(requests, super().generate_until(requests)):
                context, kw = r.args
                index = int(self._question(context).split("#", 1)[1].split("]", 1)[0])
                words = kw["max_gen_toks"] - offset[index]
                out.append(" ".join(["x"] * (words - len(reply.split())) + [reply]))
            return out

    gold = {q.question: q.answer for s in ("boolean_expressions", "web_of_lies") for q in bbh.load_subtask(s, folder)}
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies")
    for r in reqs:
        r.args[1]["max_gen_toks"] = 12 if "boolean" in r.task_name else 16
    lm = ReflectEvoLM.from_engines(Engine(EngineConfig(model="padded"), lm=PaddedLM(gold)), reflection_max_gen_toks=20)
    lm.generate_until(reqs)
    bbh.cot_exemplars.cache_clear()
    # trial 1: #0 and #1 of both subtasks; #0 is right and never retried, so reflection and retry: #1 of each
    assert [(p["turn"], p["requests"], p["cap_hits"], p["cap_slack"]) for p in lm.passes] == \
        [("trial1", 6, 4, CAP_SLACK), ("reflection", 4, 2, CAP_SLACK), ("retry", 4, 2, CAP_SLACK)]
    assert reaches_cap(128 - CAP_SLACK, 128) and not reaches_cap(127 - CAP_SLACK, 128)
    assert lm.get_model_info()["reflectevo"]["passes"][0]["cap_hits"] == 4


STOPS = ["</s>", "Q:", "<|im_end|>"]


def _sampling(cap: int, stop=()) -> dict:
    return {"max_new_tokens": cap, "temperature": 0.0, "top_p": 1.0, "stop": list(stop)}


def _budgeted(tmp_path, name: str, codes, generation: dict, passes: list[tuple], chunking: dict | None = None,
              **kw) -> Path:
    """A results file with the plugin's generation block and pass records: `passes` (turn, requests,
    cap_hits or None for a pass recorded before cap hits were counted)."""
    data = results_dict(codes, **kw)
    block = data["config"]["reflectevo"]
    block["generation"] = generation
    block["passes"] = [{"turn": t, "model": "base", "requests": n, "inner_calls": 1, "prompt_tokens": 10 * n,
                        "generated_tokens": 5 * n, **({} if hits is None else {"cap_hits": hits, "cap_slack": 3}),
                        "seconds": 1.0} for t, n, hits in passes]
    block["chunking"].update(chunking or {})
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _cap_hits_file(tmp_path, entries: dict[Path, dict], revision: str = BASE["model_revision"]) -> Path:
    """A cap-hits file as scripts/cap_hits.py writes it: per results file its sha256 and per-turn counts."""
    out = {p.name: {"sha256": "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest(), "cap_slack": 3,
                    "resume": "leaderboards/measured/resume/x", "turns": turns,
                    "tokenizer": {"model": "smollm2-135m-instruct", "model_revision": revision}}
           for p, turns in entries.items()}
    path = tmp_path / "cap_hits.json"
    path.write_text(json.dumps(out))
    return path


def test_budgets_give_caps_stops_and_cap_hits_from_the_passes_else_from_the_cap_hits_file(tmp_path):
    from reflectevo_tasks.stats import wilson_interval

    sub = "date_understanding"
    retry = _budgeted(tmp_path, "retry", {sub: ["1", "01", "00", "00"]}, mode="retry_only",
                      generation={"trial1": [_sampling(128, STOPS)], "retry": [_sampling(128, STOPS)]},
                      passes=[("trial1", 3, 2), ("trial1", 1, 1), ("retry", 3, 1)])
    one = _budgeted(tmp_path, "one", {sub: ["1", "01", "01", "00"]}, one_stage=True,
                    generation={"trial1": [_sampling(128, STOPS)], "one_stage": [_sampling(256)]},
                    passes=[("trial1", 4, 1), ("one_stage", 3, None)])
    # its trial-1 passes: one counted by the plugin, one reused from a chunk stored before it counted
    partial = _budgeted(tmp_path, "partial", {sub: ["1", "01", "01", "00"]},
                        generation={"trial1": [_sampling(64, STOPS)], "reflection": [_sampling(128)],
                                    "retry": [_sampling(64, STOPS)]},
                        passes=[("trial1", 2, 1), ("trial1", 2, None), ("reflection", 3, None), ("retry", 3, None)])
    counted = _cap_hits_file(tmp_path, {one: {"one_stage": {"replies": 3, "cap_hits": 2}},
                                        partial: {"trial1": {"replies": 4, "cap_hits": 2},
                                                  "reflection": {"replies": 3, "cap_hits": 3},
                                                  "retry": {"replies": 2, "cap_hits": 0}}})
    partial.write_text(partial.read_text() + "\n")  # the file changed after it was counted: its entry is stale
    rows = build([str(retry), str(one), str(partial)], str(tmp_path / "b"), compare="2:1,3:2",
                 cap_hits_file=counted)
    trial1, retried = rows[0]["budgets"]["turns"]
    assert (trial1["turn"], trial1["max_new_tokens"], trial1["stop"], trial1["replies"], trial1["cap_hits"]) == \
        ("trial1", [128], [STOPS], 4, 3)
    assert trial1["cap_hit_rate"] == 0.75 and list(trial1["cap_hit_ci"]) == list(wilson_interval(3, 4))
    assert trial1["source"] == "the plugin's pass records" and trial1["cap_slack"] == 3
    assert (retried["replies"], retried["cap_hits"]) == (3, 1)
    one_stage = rows[1]["budgets"]["turns"][1]
    assert (one_stage["turn"], one_stage["max_new_tokens"], one_stage["stop"], one_stage["cap_hits"]) == \
        ("one_stage", [256], [[]], 2)
    assert one_stage["source"].startswith("cap_hits.json (retokenised from ") and rows[1]["budgets"]["turns"][0]["cap_hits"] == 1
    assert [t["cap_hits"] for t in rows[2]["budgets"]["turns"]] == [None, None, None]
    assert [(r["budgets"]["trial1_cap"], r["budgets"]["second_attempt"]) for r in rows] == [(128, 128), (128, 256),
                                                                                            (64, 192)]
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 1 | base, retry_only | trial 1 | 128 | `</s>`, `Q:`, `<\\|im_end\\|>` | 75.0 [" in md
    assert "(3/4) | the plugin's pass records |" in md
    assert "| 2 | base, oracle one-stage | one-stage reply | 256 | none | 66.7 [" in md
    assert "| 3 | base, oracle | reflection | 128 | none | not recorded | – |" in md
    assert "| 2 | base, oracle one-stage | 128 | 256 | its one reply's cap |" in md
    assert "| 3 | base, oracle | 64 | 192 | reflection cap + retry cap |" in md
    assert "at least cap − 3 tokens" in md
    # the budgets differ in both comparisons; the second also in its trial-1 cap
    first, second = _comparisons(tmp_path / "b")["comparisons"]
    assert first["budgets_differ"] == "budgets differ: 256 vs 128" and first["answering_models_differ"] is False
    assert first["budget_row"] == {"trial1_cap": 128, "second_attempt": 256}
    assert second["budgets_differ"] == "budgets differ: 192 vs 256; trial-1 caps differ: 64 vs 128"
    assert "| final | budgets differ: 256 vs 128 |" in md
    # the same budgets: nothing marked
    build([str(retry), str(retry)], str(tmp_path / "c"), compare="2:1", cap_hits_file=counted)
    (same,) = _comparisons(tmp_path / "c")["comparisons"]
    assert same["budgets_differ"] is None and "| final | – |" in (tmp_path / "c" / "bbh.md").read_text()


def test_a_cap_hits_entry_counted_with_another_models_tokenizer_is_not_used(tmp_path):
    path = _budgeted(tmp_path, "one", {"navigate": ["1", "01"]}, one_stage=True,
                     generation={"one_stage": [_sampling(256)]}, passes=[("one_stage", 1, None)])
    other = _cap_hits_file(tmp_path, {path: {"one_stage": {"replies": 1, "cap_hits": 1}}}, revision="sha256:" + "0" * 64)
    (row,) = build([str(path)], str(tmp_path / "b"), cap_hits_file=other)
    assert row["budgets"]["turns"][0]["cap_hits"] is None
    same = _cap_hits_file(tmp_path, {path: {"one_stage": {"replies": 1, "cap_hits": 1}}})
    (row,) = build([str(path)], str(tmp_path / "b"), cap_hits_file=same)
    assert row["budgets"]["turns"][0]["cap_hits"] == 1


def _stored(folder: Path, replies: dict[str, str | None], task="reflectevo_bbh_navigate") -> Path:
    """A resume folder holding one trajectory per doc id: its one-stage reply (None: no second attempt)."""
    from reflectevo.chunk_store import RecordStore

    records = []
    for doc, reply in replies.items():
        turns = [{"turn": "trial1", "reply_prefix": "Let's think step by step.", "sampling": _sampling(128, STOPS),
                  "output": "Let's think step by step. So the answer is Yes."}]
        if reply is not None:
            turns.append({"turn": "one_stage", "reply_prefix": "", "sampling": _sampling(256), "output": reply})
        records.append({"key": json.dumps([task, doc]),
                        "trajectory": json.dumps({"task": task, "id": doc, "turns": turns})})
    RecordStore(folder).write_chunk(0, records)
    return folder


def test_one_stage_rows_count_replies_without_the_heading_and_the_answers_credited_from_them(tmp_path):
    codes = {"navigate": ["1", "01", "01", "00", "0n"]}
    heading = "I misread it.\n\nCorrected solution:\nSo the answer is Yes."
    bare = "I misread it. So the answer is Yes."
    folder = _stored(tmp_path / "resume" / "one", {"bbh/navigate/0": None, "bbh/navigate/1": bare,
                                                   "bbh/navigate/2": heading, "bbh/navigate/3": bare,
                                                   "bbh/navigate/4": "Corrected solution"})
    path = _budgeted(tmp_path, "one", codes, one_stage=True, generation={"one_stage": [_sampling(256)]},
                     passes=[("one_stage", 4, 1)], chunking={"resume": str(folder)})
    rows = build([str(path)], str(tmp_path / "b"))
    s = rows[0]["one_stage_replies"]
    assert (s["replies"], s["without_heading"], s["credited"], s["credited_without_heading"]) == (4, 3, 2, 1)
    assert s["source"].startswith("resume trajectories (")
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 1 | base, oracle one-stage | 4 | 3 (75.0 [" in md and "| 2 | 1 of 2 | resume trajectories (" in md
    assert "a reply without the heading is scored whole" in md
    # a folder holding other items than the results file is not read as its replies
    _stored(tmp_path / "resume" / "fewer", {"bbh/navigate/1": bare})
    path = _budgeted(tmp_path, "fewer", codes, one_stage=True, generation={"one_stage": [_sampling(256)]},
                     passes=[("one_stage", 4, 1)], chunking={"resume": str(tmp_path / "resume" / "fewer")})
    gone = _budgeted(tmp_path, "gone", codes, one_stage=True, generation={"one_stage": [_sampling(256)]},
                     passes=[("one_stage", 4, 1)], chunking={"resume": str(tmp_path / "resume" / "nowhere")})
    two_stage = _one(tmp_path, "two", "navigate", ["1", "01", "01", "00", "0n"])
    rows = build([str(path), str(gone), str(two_stage)], str(tmp_path / "c"))
    assert rows[0]["one_stage_replies"]["without_heading"] is None
    assert "holds other items than the results file" in rows[0]["one_stage_replies"]["why"]
    assert rows[1]["one_stage_replies"]["why"] == "its resume trajectories are not in this checkout"
    assert rows[2]["one_stage_replies"] is None
    assert "| 2 | base, oracle one-stage | not recorded | not recorded | not recorded | not recorded | – (its resume " \
           "trajectories are not in this checkout) |" in (tmp_path / "c" / "bbh.md").read_text()


def test_rows_of_different_answering_models_are_also_compared_on_trial_one(tmp_path):
    sub = "date_understanding"
    # base: right at trial 1 on 0-19, fixed on 20-29; sft_qa: right at trial 1 on 0-9 and 40-44, fixed on 45-49
    base = _one(tmp_path, "base", sub, ["1"] * 20 + ["01"] * 10 + ["00"] * 70)
    sft = _one(tmp_path, "sft_qa", sub, ["1"] * 10 + ["00"] * 30 + ["1"] * 5 + ["01"] * 5 + ["00"] * 50,
               base=_adapter("sft_qa"))
    twin = _one(tmp_path, "twin", sub, ["1"] * 20 + ["01"] * 10 + ["00"] * 70, reflector=_adapter("two_stage"))
    build([str(base), str(sft), str(twin)], str(tmp_path / "b"), compare="2:1,3:1")
    final, trial1, same = _comparisons(tmp_path / "b")["comparisons"]
    assert (final["measure"], final["answering_models_differ"], final["only_row"], final["only_against"]) == \
        ("final", True, 10, 20)
    assert (trial1["row"], trial1["against"], trial1["measure"], trial1["answering_models_differ"]) == (2, 1, "trial 1", True)
    assert (trial1["final"], trial1["final_against"], trial1["only_row"], trial1["only_against"]) == (0.15, 0.2, 5, 10)
    assert trial1["p_value"] == pytest.approx(_exact_p(5, 10), rel=1e-12)
    # a trained reflector answers with the base model: no trial-1 comparison
    assert (same["row"], same["measure"], same["answering_models_differ"]) == (3, "final", False)
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| 15.0 | 20.0 | -5.0 [" in md and "| trial 1 | answering models differ |" in md
    assert "- #2 against #1: the answering models differ (smollm2-135m-instruct with " in md


def test_rows_that_share_one_trial_one_say_so(tmp_path):
    sub = "navigate"
    single = "leaderboards/measured/resume/base-single"
    files = [_budgeted(tmp_path, "single", {sub: ["1", "0", "0"]}, mode="single",
                       generation={"trial1": [_sampling(128, STOPS)]}, passes=[("trial1", 3, 1)],
                       chunking={"resume": single, "trial1_from": None}),
             _budgeted(tmp_path, "retry", {sub: ["1", "01", "00"]}, mode="retry_only",
                       generation={"retry": [_sampling(128, STOPS)]}, passes=[("retry", 2, 0)],
                       chunking={"resume": "leaderboards/measured/resume/r", "trial1_from": single}),
             _budgeted(tmp_path, "oracle", {sub: ["1", "00", "01"]}, generation={}, passes=[],
                       chunking={"resume": "leaderboards/measured/resume/o", "trial1_from": single}),
             # its own trial 1, which happens to score as the others' on every item
             _one(tmp_path, "alone", sub, ["1", "00", "00"]),
             _one(tmp_path, "other", sub, ["0", "00", "01"])]
    rows = build([str(f) for f in files], str(tmp_path / "b"))
    assert [r["trial1_shared"]["rows"] if r["trial1_shared"] else None for r in rows] == \
        [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3, 4], None]
    assert rows[0]["trial1_shared"]["how"] == "trial1_from" and rows[0]["trial1_shared"]["source"] == single
    assert rows[3]["trial1_shared"]["how"] == "identical trial-1 outcome codes"
    # a trial 1 taken from another row has that row's cap
    assert (rows[1]["budgets"]["trial1_cap"], rows[1]["budgets"]["trial1_cap_from"]) == (128, 1)
    md = (tmp_path / "b" / "bbh.md").read_text()
    assert "| shared: #1–#3 |" in md and "| same outcomes: #1–#4 |" in md and md.count("| own |") == 1
    assert f"- #1–#3 share one trial 1 (taken by trial1_from from {single})" in md
    assert "- #1–#4 have the same trial-1 outcome on every item (no shared trial 1 recorded)" in md
    assert "| 2 | base, retry_only | trial 1 | 128 | `</s>`, `Q:`, `<\\|im_end\\|>` | #1's replies | – |" in md
    assert "| 3 | base, oracle | – | not recorded | not recorded | not recorded | – |" in md


def _cap_hits_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cap_hits_script", ROOT / "scripts" / "cap_hits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cap_hits_script_counts_the_turns_a_run_generated_from_its_stored_trajectories(tmp_path):
    """scripts/cap_hits.py on a retry-only row that took its trial 1 from another run: only its retries are
    its own. A word-counting tokenizer stands in for the model's; the replies hold the cap, the cap minus the
    slack and one word less."""
    from harness_plugins.reflect_model import CAP_SLACK
    from reflectevo.chunk_store import RecordStore

    script, cap, prefix = _cap_hits_script(), 10, "Let's think step by step."
    lengths = {"bbh/navigate/0": None, "bbh/navigate/1": cap, "bbh/navigate/2": cap - CAP_SLACK,
               "bbh/navigate/3": cap - CAP_SLACK - 1}
    records = []
    for doc, words in lengths.items():
        turns = [{"turn": "trial1", "reply_prefix": prefix, "sampling": _sampling(cap, STOPS),
                  "output": prefix + " x" * cap}]  # at its cap, but another run's
        if words is not None:
            turns.append({"turn": "retry", "reply_prefix": prefix, "sampling": _sampling(cap, STOPS),
                          "output": prefix + " x" * words})
        records.append({"key": json.dumps(["reflectevo_bbh_navigate", doc]),
                        "trajectory": json.dumps({"task": "reflectevo_bbh_navigate", "id": doc, "turns": turns})})
    folder = tmp_path / "resume" / "retry"
    RecordStore(folder).write_chunk(0, records)

    def results(name, requests=3, sampling=_sampling(cap, STOPS)):
        return _budgeted(tmp_path, name, {"navigate": ["1", "01", "00", "00"]}, mode="retry_only",
                         generation={"retry": [sampling]}, passes=[("retry", requests, None)],
                         chunking={"resume": str(folder), "trial1_from": "leaderboards/measured/resume/base-single"})

    words = {json.dumps(BASE, sort_keys=True): (lambda text: len(text.split()),
                                                {"model": BASE["model"], "model_revision": BASE["model_revision"]})}
    path = results("retry")
    entry = script.entry_for(path, words)
    assert entry["turns"] == {"retry": {"max_new_tokens": [cap], "stop": [STOPS], "replies": 3, "cap_hits": 2,
                                        "near_cap": {str(-CAP_SLACK - 1): 1, str(-CAP_SLACK): 1, "0": 1}}}
    assert entry["sha256"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() and entry["cap_slack"] == CAP_SLACK
    # what it writes is what the leaderboard reads for that file
    counted = tmp_path / "cap_hits.json"
    counted.write_text(json.dumps({path.name: entry}))
    (row,) = build([str(path)], str(tmp_path / "b"), cap_hits_file=counted)
    assert row["budgets"]["turns"][0]["cap_hits"] == 2
    # the folder must hold as many replies as the passes made, in the sampling the file records
    with pytest.raises(UserError, match="holds 3 retry replies, its passes made 4"):
        script.entry_for(results("more", requests=4), words)
    with pytest.raises(UserError, match="not a sampling of the file's generation block"):
        script.entry_for(results("other", sampling=_sampling(cap + 1, STOPS)), words)


def test_committed_rows_have_every_turn_counted_for_cap_hits():
    """Every turn of every committed row has its cap hits: from its passes, or from cap_hits.json for that
    very file (its sha256), so bbh.md shows no 'not recorded' budget."""
    files = _results_files(MEASURED)
    if not files:
        pytest.skip("no measured rows committed")
    for f in files:
        row = row_from_results(f)
        assert row["budgets"]["turns"], f.name
        for t in row["budgets"]["turns"]:
            assert t["cap_hits"] is not None and 0 <= t["cap_hits"] <= t["replies"], (f.name, t)
        if row["one_stage"]:
            assert row["one_stage_replies"]["without_heading"] is not None, f.name


# ---------------------------------------------------------------- where the differences come from

def test_a_comparison_says_which_items_make_its_difference(tmp_path):
    """Each side's winning items, counted by the winner's trial 1 (no answer / wrong / right), answer kind,
    subtask and the two-answer subtasks, add up to the comparison's only_row / only_against."""
    # retry_only against oracle (shared trial 1): oracle recovers 2 no-answers and fixes 1 wrong answer on
    # date_understanding (choice), fixes 1 on navigate (yes_no, two-answer); retry_only fixes 1 on navigate
    retry = {"date_understanding": ["1", "n0", "n0", "00", "0n", "n1"], "navigate": ["00", "01", "1"]}
    oracle = {"date_understanding": ["1", "n1", "n1", "01", "0n", "n1"], "navigate": ["01", "00", "1"]}
    a = write(tmp_path, "retry", retry, mode="retry_only")
    b = write(tmp_path, "oracle", oracle)
    build([str(a), str(b)], str(tmp_path / "board"))
    (c,) = _comparisons(tmp_path / "board")["comparisons"]
    ahead, behind = c["sources"]["row_ahead"], c["sources"]["against_ahead"]
    assert (c["only_row"], c["only_against"]) == (ahead["items"], behind["items"]) == (4, 1)
    assert ahead["trial1"] == {"no_answer": 2, "wrong": 2, "right": 0} and ahead["two_answer"] == 1
    assert ahead["answer_kinds"] == {"choice": 3, "yes_no": 1}
    assert ahead["subtasks"] == {"date_understanding": 3, "navigate": 1}
    assert behind == {"items": 1, "trial1": {"no_answer": 0, "wrong": 1, "right": 0}, "two_answer": 1,
                      "answer_kinds": {"yes_no": 1}, "subtasks": {"navigate": 1}}
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert ("| #2 base, oracle | #1 base, retry_only | row | 4 | 2 | 2 | 0 | 1 | choice 3, yes_no 1 | "
            "date_understanding 3, navigate 1 |") in md
    assert "| #2 base, oracle | #1 base, retry_only | against | 1 | 0 | 1 | 0 | 1 | yes_no 1 | navigate 1 |" in md


def test_between_answering_models_an_answer_kept_counts_as_right_at_trial_one(tmp_path):
    """sft_qa changes trial 1: the items it wins because its own trial 1 was right are counted so."""
    base = _one(tmp_path, "base", "date_understanding", ["1", "1", "01", "00"])
    trained = _one(tmp_path, "sft", "date_understanding", ["00", "1", "1", "n1"], base=_adapter("sft_qa"))
    build([str(base), str(trained)], str(tmp_path / "board"), compare="2:1")
    c, on_trial1 = _comparisons(tmp_path / "board")["comparisons"]
    assert on_trial1["measure"] == "trial 1" and "sources" not in on_trial1  # the breakdown is of final answers
    assert c["sources"]["row_ahead"]["trial1"] == {"no_answer": 1, "wrong": 0, "right": 0}  # item 3 only
    assert c["sources"]["against_ahead"]["trial1"] == {"no_answer": 0, "wrong": 0, "right": 1}  # item 0
    # item 2: both right (the base model fixed it, sft_qa had it at trial 1): no side wins it
    assert (c["only_row"], c["only_against"]) == (1, 1)


def test_rows_are_pooled_per_answer_kind_with_their_fixes_split(tmp_path):
    codes = {"date_understanding": ["1", "n1", "01", "00"], "ruin_names": ["n1", "nn"],
             "navigate": ["1", "01"], "web_of_lies": ["00", "00"]}
    path = write(tmp_path, "oracle", codes)
    (row,) = build([str(path)], str(tmp_path / "board"))
    choice, yes_no = row["answer_kinds"]["choice"], row["answer_kinds"]["yes_no"]
    assert (choice["subtasks"], choice["n"], choice["fixed_no_answer"], choice["fixed_readable"]) == (2, 6, 2, 1)
    assert choice["acc_t1"] == pytest.approx(1 / 6) and choice["acc_t2"] == pytest.approx(4 / 6)
    assert (yes_no["subtasks"], yes_no["n"], yes_no["fixed_no_answer"], yes_no["fixed_readable"]) == (2, 4, 0, 1)
    assert choice["acc_t2_ci"][0] < choice["acc_t2"] < choice["acc_t2_ci"][1]
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "| # | row | choice | yes_no |" in md and "| | items (subtasks) | 6 (2) | 4 (2) |" in md
    assert "| 1 | base, oracle | 16.7 → 66.7 (2 + 1) | 25.0 → 50.0 (0 + 1) |" in md


def test_findings_come_first_and_bad_findings_files_are_one_clear_error(tmp_path):
    path = _one(tmp_path, "oracle", "date_understanding", ["1", "01", "00"])
    notes = tmp_path / "findings.md"
    notes.write_text("Nothing beats a retry here.\n\n### Where\n\nNowhere.\n")
    build([str(path)], str(tmp_path / "board"), findings=notes)
    md = (tmp_path / "board" / "bbh.md").read_text()
    assert "## Findings\n\nNothing beats a retry here.\n\n### Where\n\nNowhere.\n\n## Rows" in md
    assert "## Findings" not in _build_md(tmp_path, path)  # none asked: no section
    for text, message in (("", "the file is empty"), ("## Mine\n", "use ### or deeper headings")):
        notes.write_text(text)
        with pytest.raises(UserError, match=f"--findings {re.escape(str(notes))}: {message}"):
            build([str(path)], str(tmp_path / "bad"), findings=notes)
        assert not (tmp_path / "bad").exists()  # refused before anything is written
    with pytest.raises(UserError, match="cannot be read"):
        build([str(path)], str(tmp_path / "bad"), findings=tmp_path / "missing.md")


def _build_md(tmp_path, path) -> str:
    build([str(path)], str(tmp_path / "plain"))
    return (tmp_path / "plain" / "bbh.md").read_text()


CITATION = re.compile(r"\(#(\d+) vs #(\d+)(, trial 1)?(, w/o two-answer)?: ([+−-]?[\d.]+) \[([−-]?[\d.]+), ([−-]?[\d.]+)\] points, "
                      r"p = ([\d.e−-]+)\)")


def _cited(text: str) -> list[tuple]:
    return CITATION.findall(" ".join(text.split()))  # a citation may wrap across lines


@pytest.mark.parametrize("board", ["leaderboards", "leaderboards/test-split"])
def test_every_comparison_the_findings_cite_is_in_the_comparisons_file(board):
    """Findings cite a comparison as '(#B vs #A[, trial 1][, w/o two-answer]: D [L, H] points, p = P)'; each
    such citation is that comparison of bbh_comparisons.json, rounded as written."""
    folder = ROOT / board
    if not (folder / "findings.md").is_file():
        pytest.skip(f"{board}: no findings.md")
    text = (folder / "findings.md").read_text()
    saved = json.loads((folder / "bbh_comparisons.json").read_text())["comparisons"]
    cited = _cited(text)
    assert cited, f"{board}/findings.md cites no comparison in the '(#B vs #A: D [L, H] points, p = P)' form"
    # every '(#B vs #A' opens a citation in that form: none is left unchecked by a typo
    assert len(re.findall(r"\(#\d+ vs #\d+", " ".join(text.split()))) == len(cited), f"{board}/findings.md: a citation is not in the form"
    for b, a, trial1, narrow, d, lo, hi, p in cited:
        where = f"{board}/findings.md (#{b} vs #{a})"
        (c,) = [c for c in saved if (c["row"], c["against"], c["measure"]) == (int(b), int(a), "trial 1" if trial1 else "final")]
        c = c["without_two_answer"] if narrow else c
        for written, value in ((d, c["difference"]), (lo, c["difference_ci"][0]), (hi, c["difference_ci"][1])):
            assert abs(float(written.replace("−", "-")) - 100 * value) < 0.051, f"{where}: {written} vs {100 * value:.2f}"
        digits = len(p.replace("−", "-").split("e")[0].lstrip("0.").replace(".", "")) or 1
        assert float(f"{c['p_value']:.{digits}g}") == float(p.replace("−", "-")), f"{where}: p {p} vs {c['p_value']}"


def test_the_citation_form_is_read_as_written():
    text = "beats it (#5 vs #2: +5.2 [1.9, 9.3] points, p = 0.00013) but (#4 vs #1, w/o two-answer: −1.8 [−5.2, 0.4] points, p = 0.09)"
    assert _cited(text) == [("5", "2", "", "", "+5.2", "1.9", "9.3", "0.00013"),
                            ("4", "1", "", ", w/o two-answer", "−1.8", "−5.2", "0.4", "0.09")]
