"""reflectevo_train: teach a small model to reflect, with TRL (settings I-IV of ReflectEvo + a baseline).

    reflectevo train SETTING --dataset NAMESPACE/NAME@REVISION [--config RECIPE ...] [--option value ...]

SETTING (data config read by default):
  one_stage  I.  SFT on D+ (d_plus): prompt = one_stage_prompt(question, failed trial 1, instruction,
                 "incorrect"); target = reflection, then "Corrected solution:" and the corrected retry
  two_stage  II. SFT on D+ (d_plus) in two stages on ONE adapter (see below)
  dpo_pm     III. DPO on D± (d_pm): prompt = reflection_prompt(...); chosen / rejected = reflections
  dpo_pref   IV. DPO on Dpref (d_pref): same prompt; pairs ranked by a judge or by log-likelihood
  sft_qa     baseline: SFT on question -> correct chain-of-thought answer (sft_qa)

Configuration follows TRL's scripts: our ScriptArguments, TRL's ModelConfig and TRL's SFTConfig or
DPOConfig, parsed by trl.TrlParser. The built-in recipe `recipes/<SETTING>.yaml` (the embedded
SmolLM2-135M-Instruct, LoRA r16 on q/k/v/o, fp32, CPU-friendly) is always the first layer; each
`--config FILE` is layered on top in order (`--config demo` names the built-in tiny-scale
override `recipes/demo.yaml`); command-line flags come last, and every TRL / transformers
training argument is a flag (`reflectevo train one_stage --help` lists them all).

Data. `--dataset NAMESPACE/NAME@REVISION` pulls one config of a Hub dataset published by
`reflectevo gen push` at that branch, tag or sha (`reflectevo.hub.client.pull_dataset`; the resolved
commit sha is recorded), or `--dataset FOLDER` reads `FOLDER/<config>.jsonl` of a curated folder.
Missing columns, an empty set, an unknown revision or an unreadable row stop the run with one
error line before any model is loaded. Prompts come from `reflectevo_tasks.prompts`, the builders
generation and evaluation use, with the recipe's `instruction` (default `default`, the evaluator's
default), rendered with the model's own chat template plus the prompt's reply prefix, exactly as
`reflectevo_tasks.engine.Engine.render` does; the loss covers completion tokens only. A row whose
prompt contains its own target is dropped (counted in the provenance).

Model. PEFT LoRA by default (`lora_r`, `lora_alpha`, `lora_dropout`, `lora_target_modules`);
`--use_peft false` fine-tunes every weight; `--load_in_4bit true` is QLoRA and needs a CUDA GPU
and bitsandbytes (a clear error otherwise). `--init_adapter FOLDER|NAME/ID@REV` starts from an
adapter, typically an SFT adapter before DPO: mode `continue` (default) keeps training it and DPO's
reference is a frozen copy of it (so the reference is the SFT model); mode `merge` merges it into
the base first, trains a fresh adapter on top (reference = the merged SFT model) and saves the merged
full model. Seeds are fixed (`--seed`, default 42) and the data order follows from them.
A stopped run goes on with `--resume true` in the same output folder (with a `save_strategy` that
writes checkpoints; the recipes save none): stages it finished are reused, the stage it was in continues
from its newest complete checkpoint, and a folder begun with other options or data is refused
(`reflectevo_train/resume.py`). The Trainer's own `--resume_from_checkpoint PATH` works for the
single-stage settings.

Two-stage (setting II) is organised as ONE adapter trained in sequence: stage 1 creates a LoRA
adapter and trains it on question + failed attempt -> reflection (saved to OUTPUT/stage1, kept
local); stage 2 reloads base + that adapter and keeps training it on question + failed attempt +
reflection -> corrected attempt (the retry prompt of the evaluator), with a fresh optimizer and the
same training arguments. The final adapter in OUTPUT is evaluated as the reflector:

    lm_eval --model reflectevo --model_args base=hf,pretrained=BASE,reflector_peft=ADAPTER --tasks reflectevo_bbh

(add `retry_by=reflector` so the adapter also writes the retry, the skill stage 2 trained; without
it the untrained base retries, as the paper's Generator). One-stage adapters add `one_stage=true`.

Output (`--output_dir`): the adapter (or full model), the tokenizer, README.md (model card with YAML
metadata: base_model, library_name, license (when the base's is known), language, pipeline_tag,
datasets, tags, the recipe and the training metrics, and the exact lm_eval command), provenance.json
(base model + revision, dataset repo + resolved sha, setting, recipe, seed, package versions). The
adapter's `base_model_name_or_path` is the base's Hub id (HuggingFaceTB/SmolLM2-135M-Instruct for the
embedded model, whose conversion revision, the GGUF's sha256, stays in provenance.json), so PEFT's
AutoPeftModelForCausalLM finds the base by name outside this toolkit. `--push_to_repo NAME/ID --push_tag TAG` publishes it as
one commit plus tag (`reflectevo.hub.client.publish_folder`, token from `--hub_token` (flag or recipe)
else HF_TOKEN, endpoint from HF_ENDPOINT or `--hub_endpoint`); the published card names the repo and
tag in its command. The token is used, never written: not to the recorded command or recipe, the card,
provenance.json, nor the saved training arguments.

Scale. Multi-GPU runs go through accelerate with the shipped configs:

    accelerate launch --config_file reflectevo_train/accelerate/deepspeed_zero3.yaml \\
        -m reflectevo_train one_stage --dataset NAME/ID@run-1 --model_name_or_path BIG/MODEL --bf16 true
    accelerate launch --config_file reflectevo_train/accelerate/fsdp.yaml -m reflectevo_train dpo_pm ...

(set `num_processes` in the file, or `--num_processes N`, to the number of GPUs). Only the main
process writes the card and provenance and pushes. The CPU tests run single-process.
"""

__all__ = ["SETTINGS"]

from reflectevo_train.config import SETTINGS  # noqa: E402
