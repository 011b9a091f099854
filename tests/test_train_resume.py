"""A training killed after a checkpoint and resumed from it ends where the uninterrupted run ends.

leaderboards/test_split.sh trains DPO settings for hours on a CPU and resumes them from the last
checkpoint after an interruption (`--save_strategy steps` and `--resume_from_checkpoint`); this is
the property that makes that honest: the same steps, the same data order, the same weights, and a
loss record that covers every step once.
"""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory, bbh_dir):
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path_factory.mktemp("resume-sample"), bbh_dir, per_subtask=1))


def _train(setting, argv) -> tuple:
    """(result, the optimizer steps this call took)."""
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


@pytest.mark.parametrize("setting", ["dpo_pm", "one_stage"])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_weights(setting, sample, embedded_model_dir, tmp_path):
    whole, steps = _train(setting, _argv(sample, tmp_path / "whole"))
    assert steps == [1, 2, 3, 4]
    assert (tmp_path / "whole" / "checkpoint-2").is_dir()
    # a run killed after its step-2 checkpoint: only that checkpoint is left in its folder
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", cut / "checkpoint-2")
    resumed, steps = _train(setting, _argv(sample, cut, "--resume_from_checkpoint", str(cut / "checkpoint-2")))
    assert steps == [3, 4]  # steps 1 and 2 came from the checkpoint
    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(cut / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    start = load_file(str(cut / "checkpoint-2" / "adapter_model.safetensors"))
    assert any((start[k] != b[k]).any() for k in b)  # steps 3 and 4 were trained, not skipped
    (m1,), (m2,) = whole.provenance["metrics"]["stages"], resumed.provenance["metrics"]["stages"]
    assert m2["global_step"] == m1["global_step"] == 4
    assert m2["losses"] == m1["losses"] and len(m1["losses"]) == 4  # every step's loss once
    assert json.loads((cut / "provenance.json").read_text())["metrics"]["optimizer_steps"] == 4
