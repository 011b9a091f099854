"""Model card (README.md with YAML metadata) and provenance record of a training run."""

from __future__ import annotations

import json
import shlex

import yaml

from reflectevo.embedded_model import EMBEDDED_SHORT_NAME, UPSTREAM_ID
from reflectevo_train.config import Setting

TWO_STAGE_NOTE = (
    "Two-stage training (setting II) produces ONE adapter: stage 1 trains a fresh LoRA adapter on "
    "question + failed attempt -> reflection; stage 2 loads that adapter and keeps training it on "
    "question + failed attempt + reflection -> corrected attempt (fresh optimizer, same data order "
    "seed). The stage-1 adapter is kept locally in `stage1/` but not published. Evaluate it as the "
    "reflector (`reflector_peft=`); add `retry_by=reflector` to let it also write the retry, the "
    "skill stage 2 taught it (without it the untrained base writes the retry, the paper's Generator)."
)


def eval_command(setting: Setting, base: str, artifact: str, revision: str | None, full_model: bool) -> str:
    """The lm-eval command that evaluates a trained reflector on BBH."""
    args = ["base=hf", f"pretrained={base}"]
    if setting.adapter_role == "base":  # the answering model itself: it answers, reflects and retries
        args.append(f"pretrained={artifact}" if full_model else f"peft={artifact}")
        if full_model:
            args.remove(f"pretrained={base}")
        if revision:
            args.append(f"revision={revision}" if full_model else f"peft_revision={revision}")
        return f"lm_eval --model reflectevo --model_args {','.join(args)} --tasks reflectevo_bbh"
    if full_model:
        args.append(f"reflector={artifact}")
    else:
        args.append(f"reflector_peft={artifact}")
    if revision:
        args.append(f"reflector_revision={revision}")
    if setting.eval_options:
        args.append(setting.eval_options)
    return f"lm_eval --model reflectevo --model_args {','.join(args)} --tasks reflectevo_bbh"


# Licenses of base models we know; the card states a license only when the base's is known here.
KNOWN_LICENSES = {UPSTREAM_ID: "apache-2.0"}


def card_base_model(model_name: str) -> str:
    """Hub id of the base model, for the card's `base_model` and the adapter's
    `base_model_name_or_path`: the embedded model's upstream for our short name, which only this
    toolkit resolves (the conversion's own revision is kept in provenance.json)."""
    return UPSTREAM_ID if model_name == EMBEDDED_SHORT_NAME else model_name


def model_card(prov: dict, setting: Setting, artifact: str, revision: str | None) -> str:
    """README.md text: YAML metadata (base_model, library_name, license, language, pipeline_tag,
    datasets, tags, recipe, metrics),
    then what was trained and the exact command to evaluate it."""
    model_name = prov["base_model"]["name"]
    full_model = prov["artifact"]["kind"] == "full_model"
    data = prov["dataset"]
    meta = {"base_model": card_base_model(model_name)}
    if not full_model:
        meta["base_model_relation"] = "adapter"
    base_id = meta["base_model"]
    meta.update({
        "library_name": "transformers" if full_model else "peft",
        "license": KNOWN_LICENSES.get(base_id),
        "language": ["en"],  # BBH and BIG-bench questions, prompts and reflections are English
        "pipeline_tag": "text-generation",
        "tags": ["reflectevo", "self-reflection", "trl", setting.method, setting.name]
                + ([] if full_model else ["lora"]),
        "reflectevo": {
            "setting": setting.name,
            "base_model": {"name": model_name, "revision": prov["base_model"].get("revision")},
            "dataset": {k: data.get(k) for k in ("kind", "repo_id", "path", "config", "split", "revision", "sha", "sha256")
                        if data.get(k) is not None},
            "instruction": prov["instruction"],
            "seed": prov["seed"],
            "processes": prov.get("processes", {"world_size": 1}),
            "recipe": prov["recipe"],
            "training_metrics": prov["metrics"],
        },
    })
    if data.get("kind") == "hub":  # Hub ids only; the revision is under reflectevo.dataset
        meta["datasets"] = [data["repo_id"]]
    order = ("base_model", "base_model_relation", "library_name", "license", "language", "pipeline_tag", "datasets",
             "tags", "reflectevo")
    meta = {k: meta[k] for k in order if meta.get(k) is not None}
    command = eval_command(setting, model_name, artifact, revision, full_model)
    data_line = (f"`{data['repo_id']}` config `{data['config']}` at revision `{data.get('revision')}` "
                 f"(commit `{data.get('sha')}`)" if data.get("kind") == "hub"
                 else f"local file `{data.get('path')}` (sha256 `{data.get('sha256')}`)")
    base_line = f"`{model_name}`" + (f" (revision `{prov['base_model']['revision']}`)" if prov["base_model"].get("revision") else "")
    if model_name == EMBEDDED_SHORT_NAME:
        base_line += (f"; the embedded model of the reflectevo toolkit, a de-quantized GGUF of {UPSTREAM_ID}; "
                      "the revision is the GGUF's sha256")
    stages = "\n".join(f"| {s['stage']} | {s['examples']} | {s['global_step']} ({s.get('steps_after_warmup', '?')}) | "
                       f"{s['train_loss']:.4f} | {_last_eval(s)} | {s['train_runtime']:.1f} |"
                       for s in prov["metrics"]["stages"])
    validation = prov.get("validation") or {}
    held = (f"{validation['rows']} rows of {validation['items'].get('count', '?')} questions held out "
            f"(--validation_fraction {validation['fraction']}, seed {validation['seed']}), never trained on; "
            f"curves in `{validation['loss_curves']}`" if validation.get("rows")
            else f"none held out; training loss per step in `{validation.get('loss_curves', 'loss_curves.png')}`")
    share = prov.get("data_fraction")
    if share:
        held += (f"; trained on {share['questions']} of its {share['of_questions']} training questions "
                 f"(--data_fraction {share['fraction']}, a data-scaling run)")
    body = f"""
# ReflectEvo {setting.name}: {artifact}

`{setting.name}`: {setting.summary}.

Trained with the reflectevo toolkit (after Li et al., "ReflectEvo: Improving Meta Introspection of
Small LLMs by Learning Self-Reflection", arXiv 2505.16475) and TRL, as a
{'fully fine-tuned model' if full_model else 'LoRA adapter'}.

- base model: {base_line}
- data: {data_line}
- prompts: built with `reflectevo_tasks.prompts` (the builders the evaluator uses), rendered with the
  model's own chat template; instruction `{prov['instruction']['id']}`; loss on completion tokens only
- seed: {prov['seed']}
- processes: {_processes_line(prov.get('processes') or {})}

{TWO_STAGE_NOTE if setting.name == 'two_stage' else ''}

## Evaluate

```
{command}
```

Trial 1 comes from the base model; this model writes the reflections{' and the corrected solution (one reply)' if setting.name == 'one_stage' else ''}.

## Training

| stage | examples | optimizer steps (after warmup) | train loss | last validation loss | seconds |
|---|---|---|---|---|---|
{stages}

Validation: {held}.

Recipe (every option set by a recipe or on the command line):

```yaml
{yaml.safe_dump(prov['recipe'], sort_keys=False).rstrip()}
```

Command: `{prov['command']}`

Package versions: `{json.dumps(prov['package_versions'])}`
"""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def _processes_line(processes: dict) -> str:
    n = processes.get("world_size", 1)
    if n <= 1:
        return "1"
    return (f"{n} (data parallel, {processes.get('distributed_type')}; effective batch "
            f"{processes.get('effective_batch_size')} = {processes.get('per_device_train_batch_size')} per process "
            f"x {processes.get('gradient_accumulation_steps')} accumulation x {n})")


def command_line(setting: Setting, argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in ["reflectevo", "train", setting.name, *argv])


def _last_eval(stage: dict) -> str:
    points = stage.get("eval_loss_points") or []
    return f"{points[-1][1]:.4f} (step {points[-1][0]})" if points else "-"
