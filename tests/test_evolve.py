"""`reflectevo evolve`: the loop's configuration and its resumable publishing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fixtures import hub, hub_server, isolated_hub_client  # noqa: F401
from reflectevo.errors import UserError
from reflectevo_evolve.loop import LoopConfig, _check_or_write_loop_config, _publish_once, load_config

REPO = Path(__file__).resolve().parents[1]


def test_builtin_demo_loop_parses_and_overrides_apply():
    cfg = load_config(["--config", "demo", "--set", "gen.limit=7", "--set", "eval.limit=2", "--set", "baseline=false",
                       "--rounds", "2"])
    assert cfg.rounds == 2 and cfg.gen["limit"] == 7 and cfg.eval["limit"] == 2 and cfg.baseline is False
    assert cfg.setting == "one_stage" and cfg.data_repo == "local/demo-data" and cfg.adapter_repo == "local/demo-one_stage"


@pytest.mark.parametrize("sets, message", [
    (["gen.output=x"], "gen: output set by the loop itself"),
    (["train.dataset=a/b"], "train: dataset set by the loop itself"),
    (["gen.limt=3"], r"gen: unknown option\(s\) limt"),
    (["curate.ranking_mode=judge"], r"curate: unknown option\(s\) ranking_mode"),
    (["gen.limit=many"], "gen: limit: invalid int value: 'many'"),  # typed by gen run's own dataclass
    (["curate.max_pairs=[1]"], "curate: max_pairs"),
    (["eval.shots=3"], r"eval: unknown option\(s\) shots"),
    (["colour=blue"], r"--set: unknown option\(s\) colour for `reflectevo evolve`"),
    (["setting=sft_plus"], "setting: unknown 'sft_plus'"),
    (["setting=sft_qa"], "sft_qa trains the answering model, not a reflector"),
    (["hub=cloud"], "hub: expected one of loopback, endpoint"),
    (["rounds=0"], "--rounds: must be at least 1"),
    (["gen.limit"], "expected section.option=value"),
    (["model.limit=3"], "sections are gen, curate, train, eval"),
])
def test_bad_loop_options_are_one_clear_error(sets, message):
    with pytest.raises(UserError, match=message):
        load_config(["--config", "demo", *[a for s in sets for a in ("--set", s)]])


def test_unknown_loop_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: no such file"):
        load_config(["--config", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="bad.yaml: expected a YAML mapping"):
        load_config(["--config", str(bad)])


def test_empty_training_data_stops_the_round_with_advice(tmp_path):
    from reflectevo_evolve.loop import train

    cfg = load_config(["--config", "demo", "--workdir", str(tmp_path), "--setting", "dpo_pm"])
    with pytest.raises(UserError, match=r"round 2: curation left no d_pm rows to train dpo_pm on .*gen.limit"):
        train(cfg, 2, tmp_path / "round-2", {"repo": "local/demo-data", "sha": "0" * 40},
              {"d_plus": 3, "d_pm": 0}, None, "http://127.0.0.1:9")


def test_a_workdir_keeps_its_loop_settings(tmp_path):
    a = LoopConfig(workdir=str(tmp_path), gen={"limit": 5})
    _check_or_write_loop_config(a, tmp_path)
    _check_or_write_loop_config(LoopConfig(workdir=str(tmp_path), rounds=3, gen={"limit": 5}), tmp_path)  # more rounds: fine
    with pytest.raises(UserError, match=r"other settings \(gen\.limit\)"):
        _check_or_write_loop_config(LoopConfig(workdir=str(tmp_path), gen={"limit": 6}), tmp_path)


def test_a_token_in_the_loop_file_is_never_written_down(tmp_path):
    secret = "hf_loopSecret0123456789"
    _check_or_write_loop_config(LoopConfig(workdir=str(tmp_path), train={"hub_token": secret, "max_steps": 1}), tmp_path)
    written = (tmp_path / "loop.json").read_text()
    assert secret not in written and '"max_steps": 1' in written


def test_evaluation_resumes_chunk_by_chunk_in_its_round_folder(tmp_path):
    from reflectevo_evolve.loop import eval_model_args

    cfg = load_config(["--config", "demo", "--workdir", str(tmp_path)])
    args = eval_model_args(cfg, {"repo": "me/a", "sha": "abc"}, tmp_path / "round-1")
    assert f"chunk_size=64,resume={tmp_path / 'round-1' / 'eval-chunks'}" in args
    assert "reflector_peft=me/a,reflector_revision=abc" in args
    off = load_config(["--config", "demo", "--set", "eval.chunk_size=0", "--workdir", str(tmp_path)])
    assert "resume=" not in eval_model_args(off, None, tmp_path / "round-0")


def test_publish_once_reuses_only_its_own_interrupted_publish(hub, tmp_path):
    from reflectevo.hub.client import publish_folder

    repo = hub.repo("loop")
    content = tmp_path / "content"
    content.mkdir()
    (content / "a.txt").write_text("a")
    calls = []

    def publish():
        calls.append(1)
        return publish_folder(str(content), repo, "model", tag="round-1", token=hub.token, endpoint=hub.url)

    step_dir = tmp_path / "round-1"
    step_dir.mkdir()
    sha = _publish_once(step_dir, "train", repo, "model", "round-1", hub.url, publish)
    assert calls == [1]
    # killed after publishing, before the step's marker: the rerun finds its own tag and reuses it
    assert _publish_once(step_dir, "train", repo, "model", "round-1", hub.url, publish) == sha
    assert calls == [1]
    # another workdir (no record of starting that publish) must not adopt the tag
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserError, match="already has tag 'round-1'.*from another run"):
        _publish_once(other, "train", repo, "model", "round-1", hub.url, publish)


def test_round_r_generates_with_round_r_minus_1s_adapter_on_its_trial1(tmp_path, monkeypatch):
    """What the loop's generate step asks `gen run` for: round 1 generates trial 1 with the base model
    reflecting; round 2 reflects with round 1's adapter on round 1's stored trial 1."""
    import reflectevo_gen.pipeline as pipeline
    import reflectevo_evolve.loop as ev

    seen = []
    monkeypatch.setattr(pipeline, "run", lambda cfg: seen.append(cfg) or {"records": 0})
    cfg = load_config(["--config", "demo", "--workdir", str(tmp_path / "w"), "--rounds", "2"])
    ev.generate(cfg, 1, tmp_path / "w" / "round-1", None)
    ev.generate(cfg, 2, tmp_path / "w" / "round-2", {"repo": "local/demo-one_stage", "sha": "a" * 40})
    first, second = seen
    assert first.trial1_from is None and first.reflector_peft is None
    assert second.trial1_from == str(tmp_path / "w" / "round-1" / "gen")
    assert (second.reflector_peft, second.reflector_peft_revision) == ("local/demo-one_stage", "a" * 40)
    with pytest.raises(UserError, match="trial1_from"):  # the loop's to set, not a loop file's
        load_config(["--config", "demo", "--set", "gen.trial1_from=runs/x"]).check()


def test_round_r_reflects_and_trains_from_round_r_minus_1_and_a_rerun_resumes(tmp_path, monkeypatch):
    """The loop's wiring over two rounds, with each step replaced by a recorder (the real steps
    are covered by the end-to-end test below and by each package's own tests)."""
    import reflectevo_evolve.loop as ev

    results = sorted(str(p) for p in (REPO / "tests" / "data" / "lm_eval_results").glob("*.json"))
    calls: list[tuple] = []
    fail_at = {"step": ("train", 2)}

    def fake_generate(cfg, r, folder, reflector):
        calls.append(("gen", r, reflector and reflector["sha"]))
        return {"records": str(folder / "gen"), "summary": {"records": 4, "fixed_by_retry": 1}}

    def fake_curate(cfg, folder):
        calls.append(("curate", folder.name))
        return {"curated": str(folder / "curated"), "counts": {"d_plus": 1}}

    def fake_push(cfg, r, folder, endpoint):
        calls.append(("push_data", r))
        return {"repo": cfg.data_repo, "tag": f"round-{r}", "sha": f"data{r}"}

    def fake_train(cfg, r, folder, data, counts, previous, endpoint):
        if fail_at["step"] == ("train", r):
            raise UserError("killed")
        calls.append(("train", r, data["sha"], previous and previous["sha"]))
        return {"repo": cfg.adapter_repo, "tag": f"round-{r}", "sha": f"adapter{r}", "output_dir": str(folder / "train")}

    def fake_evaluate(cfg, folder, adapter, endpoint):
        calls.append(("eval", folder.name, adapter and adapter["sha"]))
        return {"results": results[len([c for c in calls if c[0] == "eval"]) % len(results)]}

    for name, fn in (("generate", fake_generate), ("curate", fake_curate), ("push_data", fake_push),
                     ("train", fake_train), ("evaluate", fake_evaluate)):
        monkeypatch.setattr(ev, name, fn)
    cfg = load_config(["--config", "demo", "--set", "baseline=true", "--workdir", str(tmp_path / "w"), "--rounds", "2"])
    with pytest.raises(UserError, match="killed"):
        ev.run_loop(cfg, log=lambda m: None)
    assert calls == [("eval", "round-0", None), ("gen", 1, None), ("curate", "round-1"), ("push_data", 1),
                     ("train", 1, "data1", None), ("eval", "round-1", "adapter1"),
                     ("gen", 2, "adapter1"), ("curate", "round-2"), ("push_data", 2)]
    calls.clear()
    fail_at["step"] = None
    report = ev.run_loop(cfg, log=lambda m: None)  # the same command again: only round 2's last steps run
    assert calls == [("train", 2, "data2", "adapter1"), ("eval", "round-2", "adapter2")]
    assert [r["adapter"]["sha"] for r in report["rounds"]] == ["adapter1", "adapter2"]
    assert report["leaderboard"]["rows"] == 3 and (tmp_path / "w" / "leaderboard" / "bbh.md").is_file()


# ---------------------------------------------------------------------------------- end to end
# The README's demo loop itself (same generation and training settings, so this test also checks that
# the demo's generation yields D+ rows to train on), evaluated on 2 items instead of 27, plus round 0.
TINY_LOOP = ["name=tiny", "baseline=true", "eval.tasks=reflectevo_bbh_test_navigate,reflectevo_bbh_test_sports_understanding",
             "eval.model_args=max_gen_toks=32,reflection_max_gen_toks=32"]  # short turns: the checks are of the loop


@pytest.mark.slow
def test_evolve_runs_one_round_end_to_end_and_a_rerun_redoes_nothing(tmp_path, isolated_hub_client, demo_generation):
    """The loop's gen step starts from a copy of the session's demo generation (conftest; the records
    tests/test_gen_pipeline.py checks), as from a run killed after its last chunk: the same records
    made again would be ~7 minutes of the same work. The step must take the copy for its own run
    (the loop's gen settings are the demo's, or resuming refuses) and generate nothing more; every
    later step runs as in a fresh workdir."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from leaderboards.build import row_from_results
    from reflectevo.hub.server import serve_in_thread

    workdir = tmp_path / "evo"
    gen_cfg, gen_summary = demo_generation
    shutil.copytree(gen_cfg.output, workdir / "round-1" / "gen")
    cmd = [str(Path(sys.executable).with_name("reflectevo")), "evolve", "--config", "demo", "--workdir", str(workdir)]
    cmd += [a for s in TINY_LOOP for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # the adapter download goes to this test's own cache
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    report = json.loads((workdir / "report.json").read_text())
    rd = report["rounds"][0]
    summary = rd["gen"]["summary"]
    assert summary["resumed_chunks"] == summary["chunks"] == gen_summary["chunks"]  # resumed, nothing generated
    assert summary["records"] == gen_summary["records"] and summary["questions"] == 16
    assert "round-1 gen: running" in first.stderr  # the step itself ran (and wrote its marker below)
    assert rd["curate"]["counts"]["d_plus"] > 0
    assert f"dataset   local/tiny-data@round-1 = {rd['data']['sha']}" in out
    assert f"adapter   local/tiny-one_stage@round-1 = {rd['adapter']['sha']}" in out
    for step in ("gen", "curate", "push_data", "train", "eval"):
        assert (workdir / "round-1" / f"{step}.json").is_file()
    table = [line for line in out.splitlines() if line.startswith("| ") and "smollm2" in line]
    assert len(table) == 2  # round 0 (the base model reflecting by prompt) and round 1 (the adapter)
    rows = json.loads((workdir / "leaderboard" / "bbh.json").read_text())
    for row, results in zip(rows, [report["baseline"]["results"], rd["eval"]["results"]]):
        again = row_from_results(results)
        assert row["acc_t1"] == again["acc_t1"] and row.get("acc_t2") == again.get("acc_t2") and row["n"] == 2
    adapter_row = rows[1]
    assert adapter_row["adapter"] == "local/tiny-one_stage" and adapter_row["adapter_revision"] == rd["adapter"]["sha"]
    assert adapter_row["setting"] == "one_stage" and adapter_row["train_data_revision"] == rd["data"]["sha"]
    # round 1 is compared with round 0 item by item (the same items in both), under the same protocol
    assert all((row["mode"], row["one_stage"]) == (rows[0]["mode"], rows[0]["one_stage"]) for row in rows)
    (c,) = json.loads((workdir / "leaderboard" / "bbh_comparisons.json").read_text())["comparisons"]
    assert (c["row"], c["against"], c["n"]) == (2, 1, 2) and c["final"] == adapter_row["acc_t2"]
    # the loop's Hub repos (kept under the workdir) hold the tagged commits it printed
    token = "hf_" + "0" * 40
    server = serve_in_thread(str(workdir / "hub"), [token], user="local")
    try:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=server.url, token=token)
        data_tags = {t.name: t.target_commit for t in api.list_repo_refs("local/tiny-data", repo_type="dataset").tags}
        model_tags = {t.name: t.target_commit for t in api.list_repo_refs("local/tiny-one_stage").tags}
    finally:
        server.stop()
    assert data_tags == {"round-1": rd["data"]["sha"]} and model_tags == {"round-1": rd["adapter"]["sha"]}
    # the same command again: every step is found done, nothing is generated, trained or published
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("done earlier") == 6 and "running" not in second.stderr
    assert [line for line in second.stdout.splitlines() if line.startswith("| ") and "smollm2" in line] == table


def test_evaluation_engine_is_one_option(tmp_path):
    from reflectevo_evolve.loop import eval_model_args

    hf = load_config(["--config", "demo", "--workdir", str(tmp_path)])
    assert eval_model_args(hf, None, tmp_path / "round-0").startswith("base=hf,")
    vllm = load_config(["--config", "demo", "--set", "eval.engine=vllm", "--workdir", str(tmp_path)])
    args = eval_model_args(vllm, None, tmp_path / "round-0")
    assert args.startswith("base=vllm,") and "base=hf" not in args
    with pytest.raises(UserError, match="eval: engine must be hf or vllm, not 'tgi'"):
        load_config(["--config", "demo", "--set", "eval.engine=tgi", "--workdir", str(tmp_path)])


def test_the_vllm_layer_switches_engines_and_keeps_the_loop(tmp_path):
    from reflectevo_evolve.loop import eval_model_args

    demo = load_config(["--config", "demo", "--workdir", str(tmp_path)])
    both = load_config(["--config", "demo", "--config", "vllm", "--workdir", str(tmp_path)])
    assert both.gen == {**demo.gen, "engine": "vllm"}
    assert both.eval == {**demo.eval, "engine": "vllm"}
    assert both.train == demo.train
    assert eval_model_args(both, None, tmp_path / "round-0").startswith("base=vllm,")


def test_a_stopped_training_step_goes_on_with_resume(tmp_path, monkeypatch):
    """A round whose training was stopped (its train folder exists) asks `reflectevo train` to go on
    (--resume true: from the checkpoints, where the loop's train options save any); a first attempt does not."""
    import reflectevo_evolve.loop as ev
    import reflectevo_train.run as run

    seen = []
    monkeypatch.setattr(run, "train", lambda parsed: seen.append(parsed) or type("R", (), {"push": {"sha": "b" * 40}})())
    monkeypatch.setattr(ev, "_publish_once", lambda folder, step, repo, kind, tag, endpoint, fn: fn())
    cfg = load_config(["--config", "demo", "--workdir", str(tmp_path / "w")])
    data = {"repo": "local/demo-data", "sha": "0" * 40}
    folder = tmp_path / "w" / "round-1"
    ev.train(cfg, 1, folder, data, {"d_plus": 3}, None, "http://127.0.0.1:9")
    (folder / "train").mkdir(parents=True)  # what a stopped attempt leaves
    made = ev.train(cfg, 1, folder, data, {"d_plus": 3}, None, "http://127.0.0.1:9")
    assert [p.script.resume for p in seen] == [False, True] and "--resume true" in made["command"]
    with pytest.raises(UserError, match="resume"):  # the loop's to set, not a loop file's
        load_config(["--config", "demo", "--set", "train.resume=true"]).check()
