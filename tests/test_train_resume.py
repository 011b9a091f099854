"""A training run stopped after a checkpoint and resumed ends where the uninterrupted run ends.

leaderboards/test_split.sh trains for hours on a CPU, longer than a working session, and goes on with
a stopped run (`--resume true`, or the Trainer's `--resume_from_checkpoint` for one-stage settings).
What makes that honest: the same steps, data order and weights, a loss record that covers every step
once, finished stages reused rather than trained again, and a folder begun by another run refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

from reflectevo.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory, bbh_dir):
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path_factory.mktemp("resume-sample"), bbh_dir, per_subtask=1))


def _train(setting, argv) -> tuple:
    """(result, the optimizer steps this call took, stage after stage)."""
    from transformers import TrainerCallback

    from reflectevo_train.config import parse_run
    from reflectevo_train.run import train

    taken = []

    class Count(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            taken.append(state.global_step)

    return train(parse_run(setting, argv), callbacks=[Count()]), taken


def _argv(sample, out, *extra):
    return ["--config", "demo", "--dataset", sample, "--output_dir", str(out), "--max_rows", "4",
            "--per_device_train_batch_size", "1", "--max_steps", "4", "--logging_steps", "1",
            "--save_strategy", "steps", "--save_steps", "2", *extra]


def _weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def _cut(whole, cut, *kept):
    """A copy of what a run stopped at some point leaves: its identity record and the folders kept."""
    cut.mkdir()
    shutil.copy(whole / "run_identity.json", cut / "run_identity.json")
    for part in kept:
        shutil.copytree(whole / part, cut / part)


@pytest.mark.parametrize("setting, how", [("dpo_pm", "--resume"), ("one_stage", "--resume_from_checkpoint")])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(setting, how, sample, embedded_model_dir, tmp_path):
    whole, steps = _train(setting, _argv(sample, tmp_path / "whole"))
    assert steps == [1, 2, 3, 4] and (tmp_path / "whole" / "checkpoint-2").is_dir()
    cut = tmp_path / "cut"
    _cut(tmp_path / "whole", cut, "checkpoint-2")  # stopped after its step-2 checkpoint
    extra = ["--resume", "true"] if how == "--resume" else ["--resume_from_checkpoint", str(cut / "checkpoint-2")]
    resumed, steps = _train(setting, _argv(sample, cut, *extra))
    assert steps == [3, 4]  # steps 1 and 2 came from the checkpoint
    assert _same(_weights(tmp_path / "whole"), _weights(cut))
    assert not _same(_weights(cut / "checkpoint-2"), _weights(cut))  # steps 3 and 4 were trained, not skipped
    (m1,), (m2,) = whole.provenance["metrics"]["stages"], resumed.provenance["metrics"]["stages"]
    assert m2["global_step"] == m1["global_step"] == 4
    assert m2["losses"] == m1["losses"] and len(m1["losses"]) == 4  # every step's loss once
    assert json.loads((cut / "provenance.json").read_text())["metrics"]["optimizer_steps"] == 4


def test_two_stage_resumes_in_either_stage_and_reuses_a_finished_first_stage(sample, embedded_model_dir, tmp_path):
    whole, steps = _train("two_stage", _argv(sample, tmp_path / "whole"))
    assert steps == [1, 2, 3, 4, 1, 2, 3, 4] and (tmp_path / "whole" / "stage1" / "stage_done.json").is_file()
    expected = _weights(tmp_path / "whole")
    # stopped in stage 2, after its step-2 checkpoint: stage 1 is not trained again
    _cut(tmp_path / "whole", tmp_path / "in2", "stage1", "checkpoint-2")
    in2, steps = _train("two_stage", _argv(sample, tmp_path / "in2", "--resume", "true"))
    assert steps == [3, 4] and _same(expected, _weights(tmp_path / "in2"))
    # stopped in stage 1, after its step-2 checkpoint
    (tmp_path / "in1").mkdir()
    shutil.copy(tmp_path / "whole" / "run_identity.json", tmp_path / "in1")
    shutil.copytree(tmp_path / "whole" / "stage1" / "checkpoint-2", tmp_path / "in1" / "stage1" / "checkpoint-2")
    in1, steps = _train("two_stage", _argv(sample, tmp_path / "in1", "--resume", "true"))
    assert steps == [3, 4, 1, 2, 3, 4] and _same(expected, _weights(tmp_path / "in1"))
    kept = ("stage", "examples", "global_step", "losses", "loss_points", "steps_after_warmup")
    for r in (in1, in2):  # each stage's record covers all of its steps, once (time and mean loss are per process)
        assert [{k: m[k] for k in kept} for m in r.provenance["metrics"]["stages"]] == \
               [{k: m[k] for k in kept} for m in whole.provenance["metrics"]["stages"]]
    # the reused stage's record is the one it wrote when it finished
    assert in2.provenance["metrics"]["stages"][0] == whole.provenance["metrics"]["stages"][0]


def test_a_folder_begun_by_another_run_is_refused_and_a_fresh_run_clears_old_checkpoints(sample, embedded_model_dir,
                                                                                          tmp_path):
    out = tmp_path / "out"
    _train("dpo_pm", _argv(sample, out, "--max_steps", "2"))
    assert (out / "checkpoint-2").is_dir()
    with pytest.raises(UserError, match=r"--resume: .* was begun by another run \(--learning_rate: 5e-05 then, 0.001 now\)"):
        _train("dpo_pm", _argv(sample, out, "--max_steps", "2", "--learning_rate", "0.001", "--resume", "true"))
    assert (out / "checkpoint-2").is_dir()  # refused before anything was touched
    _, steps = _train("dpo_pm", _argv(sample, out, "--max_steps", "1", "--save_strategy", "no"))
    assert steps == [1] and not list(out.glob("checkpoint-*"))  # no later resume can pick up the old run's
