"""reflectevo train: recipes and options, prompt building, and bad input refused before training.

No model is trained here. Bad inputs must end in one UserError line (the CLI: exit 2, one line on
stderr) before any model is loaded; `load_base_model` is replaced by a trap to prove it.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import hub, hub_server  # noqa: E402,F401

from reflectevo_train.config import SETTINGS, parse_run  # noqa: E402


@pytest.fixture(scope="module")
def sample(tmp_path_factory, bbh_dir):
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path_factory.mktemp("train-sample"), bbh_dir, per_subtask=1))


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model gets loaded (errors must come first)."""
    import reflectevo_train.model as M

    def trap(*a, **k):
        raise AssertionError("a model was loaded before the input error")

    monkeypatch.setattr(M, "load_base_model", trap)


def _cli(argv, capsys) -> tuple[int, str]:
    from reflectevo.cli import main

    rc = main(["train", *argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def _write(folder, config, rows):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{config}.jsonl"), "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(folder)


# ----------------------------------------------------------------------------- recipes and options
def test_recipe_layers_and_cli_overrides(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("lora_r: 4\nlearning_rate: 3.0e-4\nmax_length: 512\n")
    run = parse_run("one_stage", ["--config", str(mine), "--config", "demo", "--dataset", "a/b@v1",
                                  "--learning_rate", "1e-3", "--gradient_accumulation_steps", "2"])
    assert run.model.model_name_or_path == "smollm2-135m-instruct"  # built-in recipe, first layer
    assert run.model.lora_r == 8  # demo (later layer) wins over mine
    assert run.training.max_length == 384
    assert run.training.learning_rate == 1e-3 and run.training.gradient_accumulation_steps == 2  # CLI last
    assert run.training.bf16 is False and run.training.gradient_checkpointing is False
    assert run.recipe["learning_rate"] == 1e-3 and run.recipe["dataset"] == "a/b@v1"
    assert type(run.training).__name__ == "SFTConfig"
    dpo = parse_run("dpo_pref", ["--dataset", "a/b", "--beta", "0.2"])
    assert type(dpo.training).__name__ == "DPOConfig" and dpo.training.beta == 0.2


def test_builtin_recipes_parse_for_every_setting():
    for name in SETTINGS:
        run = parse_run(name, ["--dataset", "a/b@v1", "--config", "demo"])
        assert run.model.use_peft is True and run.model.lora_target_modules
        assert run.training.bf16 is False and run.training.gradient_checkpointing is False
        assert run.training.output_dir.endswith(name)


@pytest.mark.parametrize("argv, needle", [
    (["one_stage"], "--dataset is required"),
    (["one_stage", "--dataset", "a/b", "--config", "nope"], "not a built-in recipe"),
    (["sft_qa", "--dataset", "a/b", "--beta", "0.1"], "--beta"),
    (["dpo_pm", "--dataset", "a/b", "--push_tag", "v1"], "--push_tag needs --push_to_repo"),
])
def test_bad_options_are_one_line_errors(argv, needle, capsys, no_model):
    rc, err = _cli(argv, capsys)
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err


def test_unknown_setting_and_help(capsys):
    from reflectevo.cli import main

    with pytest.raises(SystemExit):  # argparse choices
        main(["train", "three_stage"])
    capsys.readouterr()
    assert main(["train", "dpo_pm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--beta" in out and "--init_adapter" in out and "--lora_r" in out
    assert main(["train", "--help"]) == 0
    assert "two_stage" in capsys.readouterr().out


@pytest.mark.slow
def test_qlora_without_gpu_is_refused(sample, capsys, no_model):
    rc, err = _cli(["one_stage", "--dataset", sample, "--load_in_4bit", "true", "--use_cpu", "true"], capsys)
    assert rc == 2 and "QLoRA" in err and "GPU" in err, err


# ----------------------------------------------------------------------------- prompts and targets
@pytest.mark.slow
def test_no_training_prompt_contains_its_target(sample, embedded_model_dir):
    """Every stage of every setting: the rendered prompt never contains the text it is trained to
    write, and prompts come from the shared builders (same instruction as the evaluator's default)."""
    from transformers import AutoTokenizer

    from reflectevo_train import data as D
    from reflectevo_train.data import build_examples, load_rows, render

    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    seen = 0
    for name, setting in SETTINGS.items():
        rows = load_rows(sample, setting.default_config)
        for stage in setting.stages:
            examples, stats = build_examples(setting, stage, rows.rows, "default")
            assert examples and not stats.dropped, (name, stage, stats)
            for ex in examples:
                text = render(tok, ex.prompt)
                for target in D.targets(ex):
                    assert target.strip() and target.strip() not in text, (name, stage)
                    assert target not in text
                seen += 1
    assert seen >= 6 * 4


def test_leaking_row_is_dropped_and_counted(sample):
    from reflectevo_train.data import build_examples, load_rows

    rows = load_rows(sample, "d_plus").rows
    bad = dict(rows[0])
    bad["retry"] = bad["trial1"]  # the "corrected" attempt is the failed one, shown in the prompt
    examples, stats = build_examples(SETTINGS["two_stage"], "retry", [bad, rows[1]], "default")
    assert [e.row for e in examples] == [1] and stats.dropped == {"target_in_prompt": 1}


def test_prompts_are_the_evaluators(sample):
    """The same builder calls the evaluator makes (harness_plugins.reflect_model)."""
    from reflectevo_tasks import prompts as P
    from reflectevo_tasks.answers import WRONG
    from reflectevo_tasks.instructions import find_instruction
    from reflectevo_tasks.questions import Question
    from reflectevo_train.data import build_examples, load_rows

    row = load_rows(sample, "d_plus").rows[0]
    q = Question.from_dict(json.loads(row["question_json"]))
    ins = find_instruction("default")
    (one,), _ = build_examples(SETTINGS["one_stage"], "one_stage", [row], "default")
    assert one.prompt == P.one_stage_prompt(q, row["trial1"], ins, WRONG)
    corrected = row["retry"][len(P.REASONING_CUE):]
    assert one.completion == P.one_stage_target(row["reflection"], corrected)
    (refl,), _ = build_examples(SETTINGS["two_stage"], "reflection", [row], "default")
    assert refl.prompt == P.reflection_prompt(q, row["trial1"], ins, WRONG) and refl.completion == row["reflection"]
    (retry,), _ = build_examples(SETTINGS["two_stage"], "retry", [row], "default")
    assert retry.prompt == P.retry_prompt(q, row["trial1"], row["reflection"], WRONG)
    assert P.REASONING_CUE + retry.completion == row["retry"]  # the prefix is the prompt's, the rest is the target


# ----------------------------------------------------------------------------- bad data
def test_missing_columns_refused_before_training(tmp_path, sample, capsys, no_model):
    rows = [json.loads(line) for line in open(os.path.join(sample, "d_plus.jsonl"))]
    for r in rows:
        r.pop("reflection")
    folder = _write(tmp_path / "cols", "d_plus", rows)
    rc, err = _cli(["two_stage", "--dataset", folder, "--output_dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "missing column(s) reflection" in err and "two_stage" in err
    assert not os.path.exists(tmp_path / "out")


def test_empty_d_plus_refused(tmp_path, capsys, no_model):
    folder = _write(tmp_path / "empty", "d_plus", [])
    rc, err = _cli(["one_stage", "--dataset", folder, "--output_dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and "D+ is empty" in err and len(err.splitlines()) == 1, err


def test_missing_config_file_and_bad_json(tmp_path, sample, capsys, no_model):
    rc, err = _cli(["dpo_pm", "--dataset", str(tmp_path)], capsys)
    assert rc == 2 and "no d_pm.jsonl" in err, err
    folder = tmp_path / "badjson"
    folder.mkdir()
    (folder / "d_pm.jsonl").write_text('{"question_json": 1}\n{not json\n')
    rc, err = _cli(["dpo_pm", "--dataset", str(folder)], capsys)
    assert rc == 2 and "d_pm.jsonl:2" in err, err


def _publish_sample(hub, sample, empty_d_plus=False):
    from datasets import Dataset, DatasetDict

    from reflectevo.hub.client import publish_dataset

    configs = {}
    for c in ("d_plus", "d_pm"):
        rows = [json.loads(line) for line in open(os.path.join(sample, f"{c}.jsonl"))]
        ds = Dataset.from_dict({"question_id": []}) if (empty_d_plus and c == "d_plus") else Dataset.from_list(rows)
        configs[c] = DatasetDict({"train": ds})
    repo = hub.repo("traindata")
    sha = publish_dataset(configs, repo, "# test data\n", tag="v1", token=hub.token)
    return repo, sha


def test_unknown_revision_and_empty_hub_config_refused(hub, tmp_path, sample, capsys, no_model):
    repo, _ = _publish_sample(hub, sample, empty_d_plus=True)
    capsys.readouterr()  # upload progress bars
    rc, err = _cli(["dpo_pm", "--dataset", f"{repo}@no-such-tag", "--output_dir", str(tmp_path / "o")], capsys)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "no-such-tag" in err and repo in err and hub.token not in err
    # what `reflectevo gen push` publishes for an empty D+: a config with no rows
    rc, err = _cli(["one_stage", "--dataset", f"{repo}@v1", "--output_dir", str(tmp_path / "o")], capsys)
    assert rc == 2 and "D+ is empty" in err, err
    assert not os.path.exists(tmp_path / "o")


def test_init_adapter_unknown_revision_refused(hub, tmp_path, sample, capsys, no_model):
    rc, err = _cli(["dpo_pm", "--dataset", sample, "--init_adapter", "tester/nothing-here@v1",
                    "--output_dir", str(tmp_path / "o")], capsys)
    assert rc == 2 and "tester/nothing-here" in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_training_prompts_render_and_tokenize_like_the_evaluator(engine, sample):
    """No train/inference mismatch: for every stage of every setting, the text and the token ids the
    trainer uses for a prompt are exactly what the evaluation engine (lm-eval's HF model) produces."""
    from reflectevo_train.data import build_examples, encode_prompt, load_rows, render

    tok = engine.lm.tokenizer
    for name, setting in SETTINGS.items():
        rows = load_rows(sample, setting.default_config).rows[:2]
        for stage in setting.stages:
            examples, _ = build_examples(setting, stage, rows, "default")
            for ex in examples:
                text = render(tok, ex.prompt)
                assert text == engine.render(ex.prompt), (name, stage)
                assert encode_prompt(tok, text) == engine.lm.tok_encode(text), (name, stage)


@pytest.mark.slow  # a process that imports TRL and the trainers: 15 s of the fast tier otherwise
def test_python_m_entry_point_for_accelerate(tmp_path):
    """`accelerate launch ... -m reflectevo_train` runs this entry point; the shipped configs load."""
    import subprocess

    from accelerate.commands.config.config_args import load_config_from_file

    from reflectevo_train.config import ACCELERATE_DIR

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "reflectevo_train", "one_stage", "--max_rows", "0", "--dataset", "x"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--max_rows: must be at least 1" in proc.stderr, proc.stderr[-2000:]
    kinds = {load_config_from_file(str(ACCELERATE_DIR / f)).distributed_type.value
             for f in ("deepspeed_zero3.yaml", "fsdp.yaml")}
    assert kinds == {"DEEPSPEED", "FSDP"}


@pytest.mark.parametrize("n, batch, accum, epochs, warmup, expected", [
    (14, 2, 8, 2, 0.03, (2, 1)),   # the measured leaderboard's Dpref set with the dpo_pref recipe
    (50, 2, 8, 2, 0.03, (8, 1)),   # its D± set with the dpo_pm recipe
    (3, 1, 2, 1, 0, (2, 0)),
])
def test_optimizer_steps_match_the_trainers_count(tmp_path, n, batch, accum, epochs, warmup, expected):
    from transformers import TrainingArguments

    from reflectevo_train.run import optimizer_steps

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch, report_to=[],
                             gradient_accumulation_steps=accum, num_train_epochs=epochs, warmup_steps=warmup)
    assert optimizer_steps(n, args) == expected


# ----------------------------------------------------------------------------- what provenance lists as trained on
def test_training_items_list_every_trained_question_by_id_and_text(sample):
    """provenance.json's training_items: the distinct questions of the rows some stage trained on, so that a
    leaderboard can flag a row evaluated on them."""
    from reflectevo_tasks.bbh_split import text_hash
    from reflectevo_train.data import build_examples, load_rows
    from reflectevo_tasks.bbh_split import training_items
    from reflectevo_train.run import StageData, trained_rows

    rows = load_rows(sample, "d_plus").rows
    empty = {**rows[0], "reflection": ""}  # dropped by every stage: taught nothing
    rows = [empty, *rows, dict(rows[1])]  # and a second row of one question
    stages = [StageData(stage, build_examples(SETTINGS["two_stage"], stage, rows, "default")[0], None, {}, {})
              for stage in SETTINGS["two_stage"].stages]
    used = trained_rows(rows, stages)
    assert used == rows[1:]
    items = training_items(used)
    trained = rows[1:-1]
    assert items == {"count": len(trained), "question_ids": sorted(r["question_id"] for r in trained),
                     "text_sha256": sorted(text_hash(r["question"]) for r in trained), "complete": True}
    assert rows[0]["question_id"] in items["question_ids"]  # still there, through the row's other example


def test_training_items_of_rows_without_question_fields_are_marked_incomplete():
    from reflectevo_tasks.bbh_split import text_hash
    from reflectevo_tasks.bbh_split import training_items

    # the id and text come from question_json where the columns are missing
    rows = [{"question_json": json.dumps({"id": "bbh/navigate/40", "question": "Take 3 steps."})},
            {"question": "A question of my own?"}]
    hashes = sorted([text_hash("Take 3 steps."), text_hash("a question of  MY own?")])  # normalised text
    assert training_items(rows) == {"count": 2, "question_ids": ["bbh/navigate/40"], "text_sha256": hashes,
                                    "complete": False}
    assert training_items([{"prompt": "x"}]) == {"complete": False}
