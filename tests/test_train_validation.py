"""reflectevo train: the held-out validation slice (--validation_fraction), the step floor
(--min_steps_after_warmup) and the loss curves every run draws (issue #32, item 3)."""

from __future__ import annotations

import json
import os

import pytest

from reflectevo.errors import UserError
from reflectevo_train.validation import epochs_for_min_steps, keep_fraction, question_key, split_validation


def _rows(questions: int, per_question: int = 3) -> list[dict]:
    return [{"question_id": f"bbh/x/{q}", "question": f"question {q}", "reflection": f"r{k}"}
            for q in range(questions) for k in range(per_question)]


def test_validation_holds_out_whole_questions_the_same_way_every_time():
    rows = _rows(20)
    train, held = split_validation(rows, 0.25, seed=42)
    assert sorted(train + held) == list(range(60)) and not set(train) & set(held)
    held_q = {question_key(rows[i]) for i in held}
    assert len(held_q) == 5 and len(held) == 15  # a question's rows all go one way
    assert not held_q & {question_key(rows[i]) for i in train}
    assert train == sorted(train)  # the training rows keep their order
    assert split_validation(rows, 0.25, seed=42) == (train, held)
    assert split_validation(list(reversed(rows)), 0.25, seed=42)[1] != held  # positions differ, questions not:
    assert {question_key(r) for r in (list(reversed(rows))[i] for i in split_validation(list(reversed(rows)), 0.25, 42)[1])} == held_q
    assert split_validation(rows, 0.25, seed=7)[1] != held  # another seed, another slice
    assert split_validation(rows, 0.0, seed=42) == (list(range(60)), [])


def test_validation_slice_bounds():
    assert len(split_validation(_rows(3, 1), 0.01, 0)[1]) == 1  # at least one question
    assert len(split_validation(_rows(3, 1), 0.9, 0)[0]) == 1  # at least one left to train on
    with pytest.raises(UserError, match="at least 2"):
        split_validation(_rows(1), 0.5, 0)
    no_ids = [{"question": "same text"}, {"question": "same text"}, {"question": "other"}]
    assert {question_key(r) for r in no_ids} == {"text:same text", "text:other"}


def test_data_fraction_keeps_whole_questions_and_a_smaller_share_lies_inside_a_larger_one():
    rows = _rows(40)
    train, held = split_validation(rows, 0.1, seed=42)
    shares = {f: keep_fraction(rows, train, f, seed=42) for f in (0.25, 0.5, 1.0)}
    questions = {f: {question_key(rows[i]) for i in kept} for f, kept in shares.items()}
    assert shares[1.0] == train and [len(questions[f]) for f in (0.25, 0.5)] == [9, 18]  # of 36 questions
    assert questions[0.25] < questions[0.5] < questions[1.0]  # nested: a scaling curve adds data
    assert all(len(kept) == 3 * len(questions[f]) for f, kept in shares.items())  # every row of a question
    assert all(kept == sorted(kept) for kept in shares.values()) and not set(shares[1.0]) & set(held)
    assert keep_fraction(rows, train, 0.25, seed=42) == shares[0.25]
    assert keep_fraction(rows, train, 0.25, seed=7) != shares[0.25]
    assert len({question_key(rows[i]) for i in keep_fraction(rows, train, 0.001, 42)}) == 1  # at least one


def test_data_fraction_is_recorded_and_named_on_the_card(tmp_path, bbh_dir, embedded_model_dir):
    from reflectevo_train.card import model_card
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import prepare_data, provenance
    from reflectevo_train.sample import write_sample

    sample = write_sample(tmp_path / "sample", bbh_dir, per_subtask=4)
    argv = ["--dataset", str(sample), "--model_name_or_path", embedded_model_dir, "--output_dir", str(tmp_path / "o"),
            "--validation_fraction", "0.2"]
    whole, _, _ = prepare_data(parse_run("one_stage", argv))
    run = parse_run("one_stage", [*argv, "--data_fraction", "0.5"])
    half, stages, _ = prepare_data(run)
    assert half.held_out == whole.held_out  # the same validation slice for every share
    kept, of = half.fraction_of_questions
    assert of == len({question_key(r) for r in whole.rows}) and kept == round(of / 2)
    assert {question_key(r) for r in half.rows} < {question_key(r) for r in whole.rows}
    assert whole.fraction_of_questions is None and len(stages[0].dataset) == len(half.rows)
    metrics = [{"stage": "one_stage", "examples": 1, "global_step": 1, "steps_after_warmup": 1, "eval_loss_points": [],
                "train_loss": 0.0, "loss_finite": True, "train_runtime": 1.0}]
    prov = provenance(run, half.source, metrics, "lora_adapter", None, held_out=half.held_out,
                      fraction_of_questions=half.fraction_of_questions)
    assert prov["data_fraction"] == {"fraction": 0.5, "questions": kept, "of_questions": of}
    assert f"trained on {kept} of its {of} training questions (--data_fraction 0.5" in model_card(prov, run.setting, "o", None)
    assert "data_fraction" not in provenance(parse_run("one_stage", argv), whole.source, metrics, "lora_adapter", None)


@pytest.mark.parametrize("argv, needle", [
    (["--data_fraction", "0"], "--data_fraction: expected a share in (0, 1]"),
    (["--data_fraction", "1.5"], "--data_fraction: expected a share in (0, 1]"),
    (["--validation_fraction", "1"], "--validation_fraction: expected a share in [0, 1)"),
    (["--validation_fraction", "-0.1"], "--validation_fraction: expected a share in [0, 1)"),
    (["--min_steps_after_warmup", "-1"], "--min_steps_after_warmup: must be 0 or more"),
])
def test_bad_validation_options_are_refused(argv, needle):
    from reflectevo_train.config import parse_run

    with pytest.raises(UserError, match=needle.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_run("one_stage", ["--dataset", "x", *argv])


def test_step_floor_raises_epochs_to_the_fewest_that_reach_it(tmp_path):
    from transformers import TrainingArguments

    from reflectevo_train.run import apply_step_floor, optimizer_steps

    def args(**kw):
        return TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, report_to=[],
                                 gradient_accumulation_steps=8, num_train_epochs=2, warmup_steps=0.03, **kw)

    a = args()  # 14 Dpref pairs with the dpo_pref recipe: 2 steps, 1 of them warmup
    assert apply_step_floor(a, 14, 30) == 2.0
    total, warmup = optimizer_steps(14, a)
    assert total - warmup >= 30 and a.num_train_epochs == 31.0
    a.num_train_epochs = 30
    total, warmup = optimizer_steps(14, a)
    assert total - warmup < 30  # one epoch fewer would not do
    big = args()
    assert apply_step_floor(big, 1000, 30) is None and big.num_train_epochs == 2  # already enough
    fixed = args(max_steps=5)
    assert apply_step_floor(fixed, 14, 30) is None and fixed.num_train_epochs == 2  # --max_steps wins
    assert epochs_for_min_steps(lambda e: (int(e * 3), 0), 0.5, 7) == 3.0
    with pytest.raises(UserError, match="not reached"):
        epochs_for_min_steps(lambda e: (1, 1), 1, 1, limit=5)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_model_dir) -> str:
    """A 2-layer Llama with the embedded model's tokenizer: the training code path, in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed

    set_seed(0)
    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=2048)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["one_stage", "dpo_pref"])
def test_training_with_a_validation_slice_and_a_step_floor(setting, tiny_model, bbh_dir, tmp_path):
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import train
    from reflectevo_train.sample import write_sample

    sample = write_sample(tmp_path / "sample", bbh_dir, per_subtask=2)
    out = tmp_path / "out"
    result = train(parse_run(setting, [
        "--dataset", str(sample), "--model_name_or_path", tiny_model, "--output_dir", str(out),
        "--validation_fraction", "0.3", "--min_steps_after_warmup", "8", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
        "--max_length", "384", "--lora_r", "4", "--lora_alpha", "8"]))
    prov = json.loads((out / "provenance.json").read_text())
    (stage,) = prov["metrics"]["stages"]
    # 6 training examples a step: one epoch gives 6 steps (1 of warmup), so the floor of 8 takes 2 epochs
    assert stage["num_train_epochs_raised_from"] == 1.0 and stage["num_train_epochs"] == 2.0
    assert stage["steps_after_warmup"] == stage["global_step"] - stage["warmup_steps"] >= 8
    assert prov["metrics"]["min_steps_after_warmup"] == stage["steps_after_warmup"]
    # the held-out questions: measured during training, never trained on
    val = prov["validation"]
    assert val["fraction"] == 0.3 and val["rows"] == stage["validation_examples"] == 2
    held = set(val["items"]["question_ids"])
    assert len(held) == 2 and not held & set(prov["training_items"]["question_ids"])
    assert len(prov["training_items"]["question_ids"]) == 6
    steps = [p[0] for p in stage["eval_loss_points"]]
    assert len(steps) >= 8 and steps == sorted(steps) and steps[-1] == stage["global_step"]
    assert len(stage["loss_points"]) == stage["global_step"]
    assert prov["metrics"]["final_eval_loss"] == [stage["eval_loss_points"][-1][1]]
    png = (out / "loss_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    card = (out / "README.md").read_text()
    assert "2 rows of 2 questions held out (--validation_fraction 0.3, seed 42)" in card
    assert f"| {stage['global_step']} ({stage['steps_after_warmup']}) |" in card
    assert result.provenance == prov


def test_exclude_two_answer_leaves_out_those_questions_and_says_how_many(tmp_path, bbh_dir, embedded_model_dir):
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import prepare_data, provenance
    from reflectevo_train.sample import SUBTASKS, write_sample

    from reflectevo_tasks.bbh import TWO_ANSWER_SUBTASKS

    sample = write_sample(tmp_path / "sample", bbh_dir, per_subtask=2)
    argv = ["--dataset", str(sample), "--model_name_or_path", embedded_model_dir, "--output_dir", str(tmp_path / "o")]
    everything, _, _ = prepare_data(parse_run("one_stage", argv))
    run = parse_run("one_stage", [*argv, "--exclude_two_answer", "true"])
    rows, stages, _ = prepare_data(run)
    kept = {r["question_id"].split("/")[1] for r in rows.rows}
    assert kept == {s for s in SUBTASKS if s not in TWO_ANSWER_SUBTASKS} == {"date_understanding"}
    assert rows.two_answer_excluded == len(everything.rows) - len(rows.rows) > 0
    assert len(stages[0].dataset) == len(rows.rows)
    metrics = [{"global_step": 1, "steps_after_warmup": 1, "eval_loss_points": [], "train_loss": 0.0, "loss_finite": True}]
    prov = provenance(run, rows.source, metrics, "lora_adapter", None, rows_excluded=rows.two_answer_excluded)
    assert prov["two_answer_rows_excluded"] == rows.two_answer_excluded
    only_two = tmp_path / "two"
    only_two.mkdir()
    (only_two / "d_plus.jsonl").write_text("".join(line for line in (sample / "d_plus.jsonl").read_text().splitlines(True)
                                                   if "date_understanding" not in line))
    with pytest.raises(UserError, match="every one of its .* rows is on a question with two possible answers"):
        prepare_data(parse_run("one_stage", ["--dataset", str(only_two), "--exclude_two_answer", "true",
                                             "--model_name_or_path", embedded_model_dir]))
