"""reflectevo train end to end on the embedded model, one test per setting.

Each test trains >= 3 optimizer steps (per stage) on a tiny hand-built set over real BBH questions,
then checks: finite loss; labels are -100 exactly on the prompt tokens (token by token, on the
trainer's own data and collator); the result is published to the loopback Hub at a tag and
reloading it there gives bit-identical LoRA weights that change the model's logits; the model card
and provenance say what was trained on what. Small on purpose: batch 1, 3 rows, max_length 384,
LoRA r 8.
"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import hub, hub_server  # noqa: E402,F401

pytestmark = pytest.mark.slow

IGNORE = -100


@pytest.fixture(scope="module")
def sample(tmp_path_factory, bbh_dir):
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path_factory.mktemp("train-sample"), bbh_dir, per_subtask=1))


def _publish(hub, sample) -> tuple[str, str]:
    from datasets import Dataset, DatasetDict

    from reflectevo.hub.client import publish_dataset

    configs = {}
    for c in ("d_plus", "d_pm", "d_pref", "sft_qa"):
        rows = [json.loads(line) for line in open(os.path.join(sample, f"{c}.jsonl"))]
        configs[c] = DatasetDict({"train": Dataset.from_list(rows)})
    repo = hub.repo("refl-data")
    return repo, publish_dataset(configs, repo, "# hand-built test data\n", tag="data-v1", token=hub.token)


@pytest.fixture(scope="module")
def _published_data() -> dict:
    return {}


@pytest.fixture
def published(hub, sample, _published_data) -> tuple[str, str]:
    """The sample published to the session's loopback Hub at tag data-v1, by the first test that asks:
    four settings train on it, and the repo outlives each test's client (the server is the session's)."""
    if "repo" not in _published_data:
        _published_data["repo"] = _publish(hub, sample)
    return _published_data["repo"]


def _base(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def _lora_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def _train(setting, argv, keep=True):
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import train

    return train(parse_run(setting, argv), keep_trainers=keep)


def _common(dataset, out, repo=None):
    argv = ["--config", "demo", "--dataset", dataset, "--output_dir", str(out), "--max_rows", "3",
            "--per_device_train_batch_size", "1", "--max_steps", "3", "--logging_steps", "1"]
    if repo:
        argv += ["--push_to_repo", repo, "--push_tag", "v1"]
    return argv


# ------------------------------------------------------------------------------------- checks
def _check_sft_labels(trainer, stage_data):
    """labels == -100 exactly on the prompt tokens of the first example, token by token."""
    from reflectevo_train.data import encode_completion, encode_prompt, render

    tok = trainer.processing_class
    ex = stage_data.examples[0]
    rendered = render(tok, ex.prompt)
    p, c = encode_prompt(tok, rendered), encode_completion(tok, ex.completion)
    row = trainer.train_dataset[0]
    ids, labels = list(row["input_ids"]), list(row["labels"])
    assert ids == (p + c)[: len(ids)] and len(ids) > len(p)
    for i, (t, lab) in enumerate(zip(ids, labels)):
        if i < len(p):
            assert lab == IGNORE, f"prompt token {i} has a label"
        else:
            assert lab == t, f"completion token {i} is masked"
    assert tok.decode(p) == rendered  # the prompt part is exactly the rendered prompt
    assert tok.decode(ids[len(p):]).startswith(ex.completion[:20])
    batch = trainer.data_collator([row])  # what the model is given
    assert batch["labels"][0].tolist() == labels and batch["input_ids"][0].tolist() == ids


def _check_dpo_labels(trainer, stage_data):
    from reflectevo_train.data import encode_completion, encode_prompt, render

    tok = trainer.processing_class
    ex = stage_data.examples[0]
    rendered = render(tok, ex.prompt)
    p = encode_prompt(tok, rendered)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    for i, target in enumerate((ex.chosen, ex.rejected)):  # row 0 chosen, row 1 rejected
        c = encode_completion(tok, target)
        ids, mask = batch["input_ids"][i].tolist(), batch["completion_mask"][i].tolist()
        assert ids[: len(p) + len(c)] == p + c
        labels = batch["input_ids"][i].masked_fill(batch["completion_mask"][i] == 0, IGNORE).tolist()  # as TRL does
        assert labels[: len(p)] == [IGNORE] * len(p)
        assert labels[len(p): len(p) + len(c)] == c and mask[len(p): len(p) + len(c)] == [1] * len(c)
        assert all(x == IGNORE for x in labels[len(p) + len(c):])  # padding
    assert tok.decode(p) == rendered


def _check_steps_and_loss(result, stages):
    assert [m["stage"] for m in result.stages] == list(stages)
    for m in result.stages:
        assert m["global_step"] >= 3 and len(m["losses"]) >= 3
        assert m["loss_finite"] and math.isfinite(m["train_loss"]) and all(math.isfinite(x) for x in m["losses"])


def _check_reload(hub, result, repo, model_dir, prompt_text):
    """Reload from the Hub at the tag: bit-identical LoRA weights, and logits differ from the base."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    trained = _lora_state(result.trainers[-1].accelerator.unwrap_model(result.trainers[-1].model))
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(prompt_text, return_tensors="pt", add_special_tokens=False)["input_ids"][:, -96:]
    base = _base(model_dir)
    with torch.no_grad():
        base_logits = base(ids).logits
    reloaded = PeftModel.from_pretrained(base, repo, revision="v1").eval()
    got = _lora_state(reloaded)
    assert got.keys() == trained.keys() and got
    for k in got:
        assert got[k].dtype == trained[k].dtype and torch.equal(got[k], trained[k]), k
    with torch.no_grad():
        adapted = reloaded(ids).logits
    assert not torch.equal(adapted, base_logits) and (adapted - base_logits).abs().max().item() > 0
    files = set(hub.api.list_repo_files(repo, revision="v1"))
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "provenance.json"} <= files
    assert not any(f.startswith(("stage1/", "checkpoint-", "ref/")) for f in files) and "training_args.bin" not in files
    return reloaded


def _check_card_and_provenance(hub, result, repo, data_repo=None, data_sha=None, extra_eval=""):
    import yaml
    from huggingface_hub import ModelCard

    prov = result.provenance
    assert prov["setting"] == result.setting and prov["seed"] == 42
    assert prov["base_model"]["name"] == "smollm2-135m-instruct"
    assert prov["base_model"]["revision"].startswith("sha256:")
    assert {"trl", "peft", "transformers", "torch"} <= set(prov["package_versions"])
    assert prov["recipe"]["lora_r"] == 8 and prov["recipe"]["max_steps"] == 3
    with open(os.path.join(result.output_dir, "provenance.json")) as fh:
        assert json.load(fh)["setting"] == result.setting
    if data_repo:
        assert prov["dataset"]["repo_id"] == data_repo and prov["dataset"]["sha"] == data_sha
        assert prov["dataset"]["revision"] == "data-v1"
    card = ModelCard.load(repo, repo_type="model", token=hub.token)
    meta = yaml.safe_load(card.content.split("---")[1])
    assert meta["library_name"] == "peft" and meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "reflectevo" in meta["tags"] and result.setting in meta["tags"]
    assert meta["reflectevo"]["recipe"]["max_steps"] == 3
    assert meta["reflectevo"]["training_metrics"]["optimizer_steps"] >= 3
    if data_repo:
        assert meta["datasets"] == [data_repo] and meta["reflectevo"]["dataset"]["sha"] == data_sha
    role = "peft" if result.setting == "sft_qa" else "reflector_peft"  # sft_qa's adapter answers, it does not reflect
    revision = "peft_revision" if result.setting == "sft_qa" else "reflector_revision"
    cmd = ("lm_eval --model reflectevo --model_args base=hf,pretrained=smollm2-135m-instruct,"
           f"{role}={repo},{revision}=v1{extra_eval} --tasks reflectevo_bbh")
    assert cmd in card.text, card.text
    with open(os.path.join(result.output_dir, "README.md")) as fh:
        assert f"{role}={result.output_dir}" in fh.read()


# ------------------------------------------------------------------------------------- settings
def test_one_stage(hub, sample, published, embedded_model_dir, tmp_path, capsys):
    """Setting I through the `reflectevo` CLI, data pulled from the Hub by repo@tag."""
    from reflectevo.cli import main

    data_repo, data_sha = published
    repo = hub.repo("one-stage")
    out = tmp_path / "out"
    # once through the CLI (parse + train + push), then again in-process to inspect the trainer
    result = _train("one_stage", _common(f"{data_repo}@data-v1", out, repo))
    _check_steps_and_loss(result, ["one_stage"])
    _check_sft_labels(result.trainers[0], result.stage_data[0])
    assert result.push["tag"] == "v1" and result.push["sha"] == hub.api.model_info(repo, revision="v1").sha
    _check_card_and_provenance(hub, result, repo, data_repo, data_sha, extra_eval=",one_stage=true")
    _check_reload(hub, result, repo, embedded_model_dir, result.stage_data[0].examples[0].completion)
    # by epochs, not max_steps: the step count announced before training is the one the Trainer takes,
    # and a run that small is warned about
    capsys.readouterr()
    assert main(["train", "one_stage", "--config", "demo", "--dataset", sample, "--output_dir", str(tmp_path / "cli"),
                 "--max_rows", "3", "--per_device_train_batch_size", "1", "--max_steps", "-1",
                 "--num_train_epochs", "1", "--gradient_accumulation_steps", "2", "--lora_r", "2"]) == 0
    assert os.path.isfile(tmp_path / "cli" / "adapter_model.safetensors")
    stage = json.load(open(tmp_path / "cli" / "provenance.json"))["metrics"]["stages"][0]
    assert stage["global_step"] == math.ceil(stage["examples"] / 2) and stage["warmup_steps"] == 0
    assert f"{stage['examples']} examples give {stage['global_step']} optimizer step(s)" in capsys.readouterr().err


def test_two_stage_one_adapter(hub, sample, published, embedded_model_dir, tmp_path):
    """Setting II: stage 1 (reflection) then stage 2 (retry) on one adapter; only the final one is published."""
    import torch
    from safetensors.torch import load_file

    data_repo, data_sha = published
    repo = hub.repo("two-stage")
    result = _train("two_stage", _common(f"{data_repo}@data-v1", tmp_path / "out", repo))
    _check_steps_and_loss(result, ["reflection", "retry"])
    _check_sft_labels(result.trainers[0], result.stage_data[0])
    _check_sft_labels(result.trainers[1], result.stage_data[1])
    stage1 = load_file(os.path.join(result.output_dir, "stage1", "adapter_model.safetensors"))
    final = load_file(os.path.join(result.output_dir, "adapter_model.safetensors"))
    assert stage1.keys() == final.keys() and any(not torch.equal(stage1[k], final[k]) for k in final)
    _check_card_and_provenance(hub, result, repo, data_repo, data_sha)
    assert "ONE adapter" in open(os.path.join(result.output_dir, "README.md")).read()
    _check_reload(hub, result, repo, embedded_model_dir, result.stage_data[1].examples[0].completion)


def test_sft_qa_from_local_folder(hub, sample, embedded_model_dir, tmp_path):
    repo = hub.repo("sft-qa")
    result = _train("sft_qa", _common(sample, tmp_path / "out", repo))
    _check_steps_and_loss(result, ["answer"])
    _check_sft_labels(result.trainers[0], result.stage_data[0])
    assert result.provenance["dataset"]["kind"] == "local" and len(result.provenance["dataset"]["sha256"]) == 64
    _check_card_and_provenance(hub, result, repo)
    _check_reload(hub, result, repo, embedded_model_dir, result.stage_data[0].examples[0].completion)


def test_dpo_pref(hub, sample, published, embedded_model_dir, tmp_path):
    data_repo, data_sha = published
    repo = hub.repo("dpo-pref")
    result = _train("dpo_pref", _common(f"{data_repo}@data-v1", tmp_path / "out", repo))
    _check_steps_and_loss(result, ["preference"])
    _check_dpo_labels(result.trainers[0], result.stage_data[0])
    first = next(e for e in result.trainers[0].state.log_history if "rewards/margins" in e)
    assert abs(first["rewards/margins"]) < 1e-6  # before any update the policy is its reference (base, adapter off)
    _check_card_and_provenance(hub, result, repo, data_repo, data_sha)
    _check_reload(hub, result, repo, embedded_model_dir, result.stage_data[0].examples[0].chosen)


def test_dpo_pm_on_top_of_an_sft_adapter(hub, sample, published, embedded_model_dir, tmp_path):
    """Setting III starting from an adapter (`--init_adapter`, pulled from the Hub at a tag): the
    reference is the model WITH that adapter, and training continues the same adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    from reflectevo.hub.client import publish_folder

    # a stand-in SFT adapter: random (non-zero) LoRA weights, so "reference = base" would show
    torch.manual_seed(7)
    sft = get_peft_model(_base(embedded_model_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    with torch.no_grad():
        for name, p in sft.named_parameters():
            if "lora_" in name:
                p.mul_(0.2)
    sft_dir = tmp_path / "sft"
    sft.save_pretrained(str(sft_dir))
    start = _lora_state(sft)
    sft_repo = hub.repo("sft-adapter")
    publish_folder(str(sft_dir), sft_repo, "model", tag="sft-v1", token=hub.token)

    data_repo, data_sha = published
    repo = hub.repo("dpo-pm")
    argv = _common(f"{data_repo}@data-v1", tmp_path / "out", repo) + ["--init_adapter", f"{sft_repo}@sft-v1"]
    result = _train("dpo_pm", argv)
    _check_steps_and_loss(result, ["preference"])
    _check_dpo_labels(result.trainers[0], result.stage_data[0])
    log = result.trainers[0].state.log_history
    first = next(e for e in log if "rewards/margins" in e)
    assert abs(first["rewards/chosen"]) < 1e-6 and abs(first["rewards/margins"]) < 1e-6  # reference == SFT model at step 0
    assert result.provenance["init_adapter"]["mode"] == "continue"
    assert result.provenance["init_adapter"]["sha"] == hub.api.model_info(sft_repo, revision="sft-v1").sha
    reloaded = _check_reload(hub, result, repo, embedded_model_dir, result.stage_data[0].examples[0].chosen)
    got = _lora_state(reloaded)
    assert got.keys() == start.keys()  # the SFT adapter, continued (r 4 on q/v), not a fresh one
    assert any(not torch.equal(got[k], start[k]) for k in got)
    _check_card_and_provenance(hub, result, repo, data_repo, data_sha)


def test_dpo_merge_mode_saves_a_full_model(sample, embedded_model_dir, tmp_path):
    """`--init_adapter_mode merge`: the SFT adapter is merged into the base (the merged model is the
    DPO reference), a fresh adapter is trained on top and merged in, and the result is a full model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    sft = get_peft_model(_base(embedded_model_dir), LoraConfig(r=2, lora_alpha=4, target_modules=["v_proj"],
                                                                init_lora_weights=False))
    sft.save_pretrained(str(tmp_path / "sft"))
    argv = _common(sample, tmp_path / "out") + ["--init_adapter", str(tmp_path / "sft"), "--init_adapter_mode", "merge",
                                                "--max_steps", "1", "--max_rows", "1"]
    result = _train("dpo_pref", argv)
    first = next(e for e in result.trainers[0].state.log_history if "rewards/margins" in e)
    assert abs(first["rewards/margins"]) < 1e-6 and result.stages[0]["loss_finite"]
    assert result.artifact_kind == "full_model"
    merged = AutoModelForCausalLM.from_pretrained(result.output_dir)
    base = _base(embedded_model_dir)
    name = "model.layers.0.self_attn.v_proj.weight"
    assert not torch.equal(merged.state_dict()[name], base.state_dict()[name])
    card = open(os.path.join(result.output_dir, "README.md")).read()
    assert "library_name: transformers" in card and f"reflector={result.output_dir}" in card
