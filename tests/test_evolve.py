"""`reflectevo evolve`: the loop's configuration and its resumable publishing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fixtures import hub, hub_server  # noqa: F401
from reflectevo.errors import UserError
from reflectevo.evolve import LoopConfig, _check_or_write_loop_config, _publish_once, load_config

REPO = Path(__file__).resolve().parents[1]


def test_builtin_demo_loop_parses_and_overrides_apply():
    cfg = load_config("demo", ["gen.limit=7", "eval.limit=2", "baseline=false"], {"rounds": 2, "workdir": None})
    assert cfg.rounds == 2 and cfg.gen["limit"] == 7 and cfg.eval["limit"] == 2 and cfg.baseline is False
    assert cfg.setting == "one_stage" and cfg.data_repo == "local/demo-data" and cfg.adapter_repo == "local/demo-one_stage"


@pytest.mark.parametrize("sets, message", [
    (["gen.output=x"], "gen: output set by the loop itself"),
    (["train.dataset=a/b"], "train: dataset set by the loop itself"),
    (["gen.limt=3"], r"gen: unknown option\(s\) limt"),
    (["curate.ranking_mode=judge"], r"curate: unknown option\(s\) ranking_mode"),
    (["eval.shots=3"], r"eval: unknown option\(s\) shots"),
    (["colour=blue"], r"unknown loop option\(s\) colour"),
    (["setting=sft_plus"], "setting: unknown 'sft_plus'"),
    (["hub=cloud"], "hub: expected one of loopback, endpoint"),
    (["rounds=0"], "--rounds: must be at least 1"),
    (["gen.limit"], "expected section.option=value"),
    (["model.limit=3"], "sections are gen, curate, train, eval"),
])
def test_bad_loop_options_are_one_clear_error(sets, message):
    with pytest.raises(UserError, match=message):
        load_config("demo", sets, {})


def test_unknown_loop_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: no such file"):
        load_config(str(tmp_path / "nope.yaml"), [], {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="bad.yaml: a loop file must be a YAML mapping"):
        load_config(str(bad), [], {})


def test_a_workdir_keeps_its_loop_settings(tmp_path):
    a = LoopConfig(workdir=str(tmp_path), gen={"limit": 5})
    _check_or_write_loop_config(a, tmp_path)
    _check_or_write_loop_config(LoopConfig(workdir=str(tmp_path), rounds=3, gen={"limit": 5}), tmp_path)  # more rounds: fine
    with pytest.raises(UserError, match=r"other settings \(gen\)"):
        _check_or_write_loop_config(LoopConfig(workdir=str(tmp_path), gen={"limit": 6}), tmp_path)


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
