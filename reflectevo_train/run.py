"""One training run: data -> prompts -> tokens -> TRL trainer(s) -> adapter, card, provenance, push."""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflectevo.errors import UserError
from reflectevo_tasks import bbh_split
from reflectevo_train.config import SETTINGS, ParsedRun, Setting, build_parser, get_setting, parse_run
from reflectevo_train.resume import IDENTITY_FILE, begin, finished_stage, identity, last_checkpoint, mark_finished
from reflectevo_train.validation import (LOSS_CURVES_FILE, epochs_for_min_steps, keep_fraction, loss_points,
                                         plot_loss_curves, question_key, split_validation)

PROVENANCE_FILE = "provenance.json"
PUSH_RECORD = "push.json"
STAGE1_DIR = "stage1"
# what is published from the output folder (checkpoints, stage folders and pickles stay local)
_PUBLISH_SKIP_DIRS = {STAGE1_DIR, "runs", "checkpoints"}
_PUBLISH_SKIP_FILES = {"training_args.bin", PUSH_RECORD, IDENTITY_FILE}


@dataclass
class StageData:
    name: str
    examples: list
    dataset: Any  # tokenized datasets.Dataset
    build: dict
    tokens: dict
    eval_dataset: Any = None  # the held-out rows' examples, tokenized (None without --validation_fraction)


@dataclass
class TrainResult:
    output_dir: str
    setting: str
    provenance: dict | None  # None on ranks other than 0 (rank 0 writes and publishes for the run)
    stages: list[dict]
    artifact_kind: str
    push: dict | None = None
    trainers: list = field(default_factory=list, repr=False)  # kept only with keep_trainers=True
    stage_data: list = field(default_factory=list, repr=False)


# --------------------------------------------------------------------------------------- trainers
def _dpo_trainer_class():
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer that takes prompt_ids / chosen_ids / rejected_ids as we tokenized them (prompt and
        completions separately, as at inference) instead of re-tokenizing concatenated strings."""

        def _prepare_dataset(self, dataset, *args, **kwargs):
            if "prompt_ids" in (getattr(dataset, "column_names", None) or []):
                return dataset
            return super()._prepare_dataset(dataset, *args, **kwargs)

    return PretokenizedDPOTrainer


def _stage_args(training_args, output_dir: str):
    import copy

    args = copy.deepcopy(training_args)
    args.output_dir = output_dir
    return args


# Fewer optimizer steps than this after warmup leave an adapter close to its start: LoRA's B matrices
# start at zero and Adam moves each weight by about the learning rate per step. Small curated sets hit
# this with the paper-scale recipes (14 Dpref pairs at 2 x 8 per step and 2 epochs: 2 steps, the first
# in warmup at learning rate 0).
FEW_STEPS = 10


def optimizer_steps(n_examples: int, args) -> tuple[int, int]:
    """(optimizer steps, of which warmup) that the Trainer will take on `n_examples` with `args`."""
    if args.max_steps and args.max_steps > 0:
        total = int(args.max_steps)
    else:
        batches = math.ceil(n_examples / (args.per_device_train_batch_size * max(1, args.world_size)))
        total = math.ceil(math.ceil(batches / args.gradient_accumulation_steps) * args.num_train_epochs)
    return total, int(args.get_warmup_steps(total))


# validation points per stage when the recipe does not set eval_steps: enough for a curve, few enough
# that evaluating the held-out rows stays a small share of the run
EVAL_POINTS = 20


def apply_step_floor(args, n_examples: int, min_after_warmup: int) -> float | None:
    """Raise `args.num_train_epochs` until the stage takes `min_after_warmup` optimizer steps after
    warmup (--min_steps_after_warmup); returns the recipe's epochs when raised, else None."""
    if min_after_warmup <= 0 or (args.max_steps and args.max_steps > 0):
        return None
    import copy

    probe = copy.copy(args)

    def steps_for(epochs):
        probe.num_train_epochs = epochs
        return optimizer_steps(n_examples, probe)

    before = float(args.num_train_epochs)
    after = epochs_for_min_steps(steps_for, before, min_after_warmup)
    if after == before:
        return None
    args.num_train_epochs = after
    return before


def warn_if_few_steps(stage: str, n_examples: int, args, show: bool = True) -> int:
    """Warn when the run is too short to move the model (when `show`: rank 0 speaks for all ranks);
    returns its warmup steps (for provenance)."""
    total, warmup = optimizer_steps(n_examples, args)
    if show and total - warmup < FEW_STEPS:
        print(f"warning: stage '{stage}': {n_examples} examples give {total} optimizer step(s), {warmup} of them "
              f"warmup: the model will barely move from where it starts. For a small set, lower "
              f"--gradient_accumulation_steps or raise --num_train_epochs.", file=sys.stderr)
    return warmup


def _loss_history(trainer) -> list[float]:
    return [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]


def _unwrap(trainer):
    return trainer.accelerator.unwrap_model(trainer.model)


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


# --------------------------------------------------------------------------------------- the run
def prepare_data(run: ParsedRun, tokenizer=None) -> tuple[Any, list[StageData], Any]:
    """Load and check the rows, build every stage's examples and tokens (no model needed).

    Returns (rows with their source, stage data, tokenizer). All input errors surface here.
    """
    from reflectevo_tasks.instructions import find_instruction
    from reflectevo_train import data as D
    from reflectevo_train.model import load_tokenizer

    s, sa, ta = run.setting, run.script, run.training
    config = sa.dataset_config or s.default_config
    token = run.token()
    rows = D.load_rows(sa.dataset, config, sa.dataset_split, token=token, endpoint=sa.hub_endpoint)
    where = f"dataset {D.describe_source(rows.source)}"
    D.check_rows(rows, s, where)
    if sa.exclude_two_answer:
        D.drop_two_answer_rows(rows, where)
    if sa.max_rows:
        rows.rows = rows.rows[: sa.max_rows]
    train_idx, held_idx = split_validation(rows.rows, sa.validation_fraction, ta.seed)
    if sa.data_fraction < 1:
        before = len({question_key(rows.rows[i]) for i in train_idx})
        train_idx = keep_fraction(rows.rows, train_idx, sa.data_fraction, ta.seed)
        rows.fraction_of_questions = (len({question_key(rows.rows[i]) for i in train_idx}), before)
    rows.rows, rows.held_out = [rows.rows[i] for i in train_idx], [rows.rows[i] for i in held_idx]
    instruction = find_instruction(sa.instruction)
    tok = tokenizer if tokenizer is not None else load_tokenizer(run.model)
    truncation = getattr(ta, "truncation_mode", "keep_start")
    tokenize = D.tokenize_preferences if s.is_dpo else D.tokenize_sft
    stages = []
    for stage in s.stages:
        examples, built = D.build_examples(s, stage, rows.rows, instruction, where)
        ds, st = tokenize(examples, tok, ta.max_length, truncation)
        if len(ds) == 0:
            raise UserError(f"{where}: no usable example for {s.name} stage '{stage}' "
                            f"(rows {built.rows}, dropped {built.dropped}, prompts over max_length "
                            f"{st.dropped_prompt_too_long})")
        eval_ds = None
        if rows.held_out:
            held, _ = D.build_examples(s, stage, rows.held_out, instruction, f"{where} (validation rows)")
            eval_ds, _ = tokenize(held, tok, ta.max_length, truncation)
            if len(eval_ds) == 0:
                raise UserError(f"{where}: the {len(rows.held_out)} validation row(s) give stage '{stage}' no "
                                f"usable example; raise --validation_fraction or set it to 0")
        stages.append(StageData(stage, examples, ds, built.as_dict(), st.as_dict(), eval_ds))
    return rows, stages, tok


def _starting_model(run: ParsedRun, stage_index: int, prev_dir: str | None, init):
    """The model a stage starts from: base (+ init adapter) (+ the previous stage's result)."""
    from reflectevo_train.model import attach_init_adapter, load_base_model

    sa, ma, ta = run.script, run.model, run.training
    token = run.token()
    if stage_index > 0 and not ma.use_peft:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(prev_dir, dtype="auto")
    model = load_base_model(ma, ta)
    if init is not None and (sa.init_adapter_mode == "merge" or stage_index == 0):
        model = attach_init_adapter(model, init, sa.init_adapter_mode, token)
    if stage_index > 0:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, prev_dir, is_trainable=True)
    if _is_peft(model):  # adapters loaded from elsewhere name their base portably; while training, use this one
        from reflectevo_train.model import model_path

        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = model_path(ma)
    return model


def train(run: ParsedRun, keep_trainers: bool = False, callbacks: list | None = None) -> TrainResult:
    """Run every stage of the setting, save the result, write card and provenance, push if asked.

    `keep_trainers` keeps the trainers and tokenized stage data on the result (tests);
    `callbacks` are extra `transformers.TrainerCallback`s given to every stage's trainer."""
    from reflectevo.hub.client import configure_endpoint_env

    configure_endpoint_env(run.script.hub_endpoint)
    from reflectevo_train.model import check_model_options, resolve_init_adapter

    sa, ma, ta = run.script, run.model, run.training
    check_model_options(ma, ta)
    out_dir = os.path.abspath(ta.output_dir)
    init = resolve_init_adapter(sa.init_adapter, run.token(), sa.hub_endpoint) if sa.init_adapter else None
    rows, stages, tok = prepare_data(run)
    begin(out_dir, identity(run, rows.source, init), sa.resume, clear=not (sa.resume or ta.resume_from_checkpoint),
          write=ta.process_index == 0)
    if ma.use_peft and ta.ddp_find_unused_parameters is None:
        # transformers searches a wrapped (PEFT) model for unused parameters on every step under
        # data parallelism, then warns on every rank that there were none: every LoRA weight is used
        ta.ddp_find_unused_parameters = False

    trainers, stage_metrics = [], []
    prev_dir = None
    for i, sd in enumerate(stages):
        last = i == len(stages) - 1
        stage_dir = out_dir if last else os.path.join(out_dir, STAGE1_DIR if i == 0 else f"stage{i + 1}")
        done = finished_stage(stage_dir) if sa.resume and not last else None
        if done is not None:  # an interrupted run finished this stage: its saved adapter starts the next
            print(f"reflectevo train: stage {sd.name} finished before; reusing {stage_dir}", file=sys.stderr)
            stage_metrics.append(done)
            prev_dir = stage_dir
            continue
        # a checkpoint belongs to one trainer: --resume finds the stage's own; the Trainer's option
        # --resume_from_checkpoint is offered only where the setting has one stage
        checkpoint = last_checkpoint(stage_dir) if sa.resume else None
        if checkpoint is None and len(stages) == 1:
            checkpoint = ta.resume_from_checkpoint
        trainer, metrics, artifact_kind = train_stage(run, i, sd, tok, stage_dir, prev_dir, init, callbacks,
                                                      checkpoint=checkpoint, final=last)
        if not last and trainer.is_world_process_zero():
            mark_finished(stage_dir, metrics)
        stage_metrics.append(metrics)
        if keep_trainers:
            trainers.append(trainer)
        if not last:
            prev_dir = stage_dir
            del trainer
            gc.collect()

    prov, push = None, None
    if trainer.is_world_process_zero():  # one provenance, one card, one publication per run
        from reflectevo_train.launch import describe

        prov = provenance(run, rows.source, stage_metrics, artifact_kind, init, describe(trainer.args),
                          bbh_split.training_items(trained_rows(rows.rows, stages)), rows.held_out,
                          rows.two_answer_excluded, rows.fraction_of_questions)
        plot_loss_curves(stage_metrics, os.path.join(out_dir, LOSS_CURVES_FILE),
                         f"{run.setting.name}: training and validation loss")
        write_card_and_provenance(out_dir, run, prov)
        if sa.push_to_repo:
            push = publish(out_dir, run, prov)
    return TrainResult(out_dir, run.setting.name, prov, stage_metrics, artifact_kind, push,
                       trainers if keep_trainers else [], stages if keep_trainers else [])


def train_stage(run: ParsedRun, index: int, sd: StageData, tok, stage_dir: str, prev_dir: str | None, init,
                callbacks: list | None, checkpoint: str | None, final: bool) -> tuple[Any, dict, str]:
    """Train one stage from its starting model and save it: (trainer, metrics, artifact kind)."""
    from transformers import set_seed

    set_seed(run.training.seed)  # LoRA initialisation and data order depend on it
    model = _starting_model(run, index, prev_dir, init)
    args = _stage_args(run.training, stage_dir)
    if sd.eval_dataset is not None and "eval_strategy" not in run.recipe:
        from transformers.trainer_utils import IntervalStrategy

        args.eval_strategy, args.do_eval = IntervalStrategy.STEPS, True
    trainer = build_trainer(run, model, sd, tok, args, callbacks)
    # the step count needs the world size, which the trainer's arguments know once it is built
    epochs_from = apply_step_floor(trainer.args, len(sd.dataset), run.script.min_steps_after_warmup)
    if sd.eval_dataset is not None and "eval_strategy" not in run.recipe and "eval_steps" not in run.recipe:
        total, _ = optimizer_steps(len(sd.dataset), trainer.args)
        trainer.args.eval_steps = max(1, total // EVAL_POINTS)
    warmup = warn_if_few_steps(sd.name, len(sd.dataset), trainer.args, show=trainer.is_world_process_zero())
    if checkpoint:
        print(f"reflectevo train: stage {sd.name} resumes from {checkpoint}", file=sys.stderr)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = stage_metrics(sd, trainer, result, warmup)
    metrics["num_train_epochs"] = float(trainer.args.num_train_epochs)
    if epochs_from is not None:
        metrics["num_train_epochs_raised_from"] = epochs_from
    artifact_kind = _save(trainer, stage_dir, run, final=final)
    # the next stage loads what rank 0 saved, and rank 0 reads back the adapter config it wrote
    trainer.accelerator.wait_for_everyone()
    return trainer, metrics, artifact_kind


def build_trainer(run: ParsedRun, model, sd: StageData, tok, args, callbacks: list | None):
    """TRL's trainer for the setting: DPO for preference settings, SFT otherwise."""
    from reflectevo_train.model import peft_config

    ma = run.model
    pconf = peft_config(ma) if (ma.use_peft and not _is_peft(model)) else None
    if not run.setting.is_dpo:
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=sd.dataset, eval_dataset=sd.eval_dataset,
                          processing_class=tok, peft_config=pconf, callbacks=callbacks)
    ref_model = None
    if not ma.use_peft:  # full fine-tuning: the reference is a frozen copy of the starting model
        import copy

        ref_model = copy.deepcopy(model).eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)
    return _dpo_trainer_class()(model=model, ref_model=ref_model, args=args, train_dataset=sd.dataset,
                                eval_dataset=sd.eval_dataset, processing_class=tok, peft_config=pconf,
                                callbacks=callbacks)


def stage_metrics(sd: StageData, trainer, result, warmup: int) -> dict:
    """What the card and provenance say about one trained stage."""
    losses = _loss_history(trainer)
    train_points, eval_points = loss_points(trainer.state.log_history)
    return {
        "stage": sd.name, "examples": len(sd.dataset), "global_step": int(result.global_step),
        "epochs": float(trainer.state.epoch or 0.0),  # passes over the data, all processes together
        "warmup_steps": warmup, "steps_after_warmup": int(result.global_step) - warmup,
        "validation_examples": 0 if sd.eval_dataset is None else len(sd.eval_dataset),
        "loss_points": train_points, "eval_loss_points": eval_points,
        "train_loss": float(result.training_loss),
        "loss_finite": math.isfinite(float(result.training_loss)) and all(math.isfinite(x) for x in losses),
        "losses": losses, "train_runtime": float(result.metrics.get("train_runtime", 0.0)),
        "train_steps_per_second": result.metrics.get("train_steps_per_second"),
        "build": sd.build, "tokens": sd.tokens,
    }


def write_card_and_provenance(out_dir: str, run: ParsedRun, prov: dict) -> None:
    """provenance.json and the model card (README.md), each replaced whole so a kill leaves old or new."""
    from reflectevo.hub.store import atomic_write
    from reflectevo_train.card import model_card

    atomic_write(os.path.join(out_dir, PROVENANCE_FILE),
                 json.dumps(prov, indent=1, ensure_ascii=False).encode("utf-8"))
    atomic_write(os.path.join(out_dir, "README.md"), model_card(prov, run.setting, out_dir, None).encode("utf-8"))


def _save(trainer, folder: str, run: ParsedRun, final: bool) -> str:
    """Save a stage's result; returns the artifact kind ('lora_adapter' or 'full_model')."""
    model = _unwrap(trainer)
    if _is_peft(model):
        if "ref" in getattr(model, "peft_config", {}):  # DPO's frozen copy of a starting adapter
            model.delete_adapter("ref")
        if final and run.script.init_adapter and run.script.init_adapter_mode == "merge":
            merged = model.merge_and_unload()
            if trainer.is_world_process_zero():
                merged.save_pretrained(folder)
                trainer.processing_class.save_pretrained(folder)
            return "full_model"
        trainer.save_model(folder)
        if final and trainer.is_world_process_zero():
            from reflectevo_train.card import card_base_model

            _portable_adapter_config(folder, card_base_model(run.model.model_name_or_path))
        return "lora_adapter"
    trainer.save_model(folder)
    return "full_model"


def _portable_adapter_config(folder: str, base_name: str) -> None:
    """Record the base model by a name that resolves elsewhere (the Hub id, or the name the user gave),
    not this machine's cache path."""
    path = os.path.join(folder, "adapter_config.json")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    cfg["base_model_name_or_path"] = base_name
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=True)
        fh.write("\n")


def trained_rows(rows: list[dict], stages: list[StageData]) -> list[dict]:
    """The rows that gave some stage an example. A row every stage dropped taught nothing; a row whose
    example tokenization dropped (prompt over max_length) is kept, so that the list errs on the side
    of what the model might have seen."""
    used = sorted({ex.row for sd in stages for ex in sd.examples})
    return [rows[i] for i in used]


def provenance(run: ParsedRun, source: dict, stage_metrics: list[dict], artifact_kind: str, init,
               processes: dict | None = None, items: dict | None = None, held_out: list[dict] | None = None,
               rows_excluded: int = 0, fraction_of_questions: tuple[int, int] | None = None) -> dict:
    """What the adapter card and the evaluator's record say about a run; `items`: `training_items` of
    the rows it trained on (left out when not given); `held_out`: its validation rows;
    `fraction_of_questions`: (questions kept, of) under --data_fraction."""
    from reflectevo_tasks.instructions import find_instruction
    from reflectevo_tasks.provenance import package_versions, utc_now
    from reflectevo_train.card import card_base_model, command_line, eval_command
    from reflectevo_train.config import RECIPES_DIR
    from reflectevo_train.model import base_revision

    s, sa, ma, ta = run.setting, run.script, run.model, run.training
    ins = find_instruction(sa.instruction)
    lora = None
    adapter_cfg = os.path.join(os.path.abspath(ta.output_dir), "adapter_config.json")
    if artifact_kind == "lora_adapter" and os.path.isfile(adapter_cfg):  # what was saved (an init adapter's own shape)
        with open(adapter_cfg, encoding="utf-8") as fh:
            c = json.load(fh)
        tm = c.get("target_modules")
        lora = {"r": c.get("r"), "alpha": c.get("lora_alpha"), "dropout": c.get("lora_dropout"),
                "target_modules": sorted(tm) if isinstance(tm, list) else tm,
                "use_rslora": c.get("use_rslora"), "use_dora": c.get("use_dora")}
    files = [f"builtin:{Path(f).stem}" if Path(f).parent == RECIPES_DIR else f for f in run.recipe_files]
    out_dir = os.path.abspath(ta.output_dir)
    return {
        "schema": "reflectevo.train/1",
        "created": utc_now(),
        "setting": s.name,
        "method": s.method,
        "stages": list(s.stages),
        "base_model": {"name": ma.model_name_or_path, "hub_id": card_base_model(ma.model_name_or_path),
                       "revision": base_revision(ma), "dtype": ma.dtype,
                       "quantization": "4bit" if ma.load_in_4bit else "8bit" if ma.load_in_8bit else None},
        "init_adapter": None if init is None else {"ref": init.ref, "location": init.location, "revision": init.revision,
                                                   "sha": init.sha, "mode": sa.init_adapter_mode},
        "dataset": source,
        **({"training_items": items} if items is not None else {}),
        "two_answer_rows_excluded": rows_excluded if sa.exclude_two_answer else None,
        # only where a share was asked for: a run on the whole set records what it always did
        **({"data_fraction": {"fraction": sa.data_fraction, "questions": fraction_of_questions[0],
                              "of_questions": fraction_of_questions[1]}} if fraction_of_questions else {}),
        "validation": {"fraction": sa.validation_fraction, "seed": ta.seed, "rows": len(held_out or []),
                       "items": bbh_split.training_items(held_out) if held_out else None,
                       "loss_curves": LOSS_CURVES_FILE},
        "instruction": {"id": ins.id, "pool": ins.pool, "pool_version": ins.pool_version, "text": ins.text},
        "seed": ta.seed,
        "data_seed": ta.data_seed,
        # data parallelism changes the effective batch and so the optimisation: record how many trained
        "processes": processes or {"world_size": 1},
        "recipe": run.recipe,
        "recipe_files": files,
        "command": command_line(s, run.argv),
        "artifact": {"kind": artifact_kind, "lora": lora if artifact_kind == "lora_adapter" else None},
        "metrics": {"stages": stage_metrics, "train_loss": stage_metrics[-1]["train_loss"],
                    "optimizer_steps": sum(m["global_step"] for m in stage_metrics),
                    "min_steps_after_warmup": min(m["steps_after_warmup"] for m in stage_metrics),
                    "final_eval_loss": [m["eval_loss_points"][-1][1] if m["eval_loss_points"] else None
                                        for m in stage_metrics],
                    "loss_finite": all(m["loss_finite"] for m in stage_metrics)},
        "evaluation": {"command": eval_command(s, ma.model_name_or_path, out_dir, None, artifact_kind == "full_model")},
        "package_versions": package_versions(),
    }


def publish(out_dir: str, run: ParsedRun, prov: dict) -> dict:
    """Publish the output folder (adapter or model, tokenizer, provenance, card) as one commit + tag."""
    from reflectevo.hub.client import current_endpoint, publish_folder
    from reflectevo_train.card import model_card

    sa = run.script
    token = run.token()
    card = model_card(prov, run.setting, sa.push_to_repo, sa.push_tag)
    with tempfile.TemporaryDirectory(prefix="reflectevo-train-push-") as staging:
        for name in sorted(os.listdir(out_dir)):
            src = os.path.join(out_dir, name)
            if name in _PUBLISH_SKIP_FILES or name == "README.md" or name.startswith("checkpoint-"):
                continue
            if os.path.isdir(src):
                if name in _PUBLISH_SKIP_DIRS:
                    continue
                shutil.copytree(src, os.path.join(staging, name))
                continue
            try:
                os.link(src, os.path.join(staging, name))
            except OSError:
                shutil.copy2(src, os.path.join(staging, name))
        sha = publish_folder(staging, sa.push_to_repo, "model", tag=sa.push_tag,
                             message=f"reflectevo train {run.setting.name}" + (f" ({sa.push_tag})" if sa.push_tag else ""),
                             token=token, private=sa.push_private, endpoint=sa.hub_endpoint, card_text=card)
    record = {"repo_id": sa.push_to_repo, "tag": sa.push_tag, "sha": sha,
              "endpoint": (sa.hub_endpoint or current_endpoint()).rstrip("/")}
    with open(os.path.join(out_dir, PUSH_RECORD), "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
    return record


# --------------------------------------------------------------------------------------- entry
USAGE = """usage: reflectevo train SETTING [--config RECIPE ...] [--option value ...]

settings:
""" + "\n".join(f"  {n:<10} {s.summary}" for n, s in SETTINGS.items()) + """

`reflectevo train SETTING --help` lists every option (ours, TRL's ModelConfig and SFTConfig/DPOConfig).
"""


def main(argv: list[str] | None = None, prog: str = "reflectevo train") -> int:
    """`<setting> [options]`: parse, train, print a summary. UserError propagates (the CLI prints it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    setting: Setting = get_setting(argv[0])
    rest = argv[1:]
    if "-h" in rest or "--help" in rest:
        build_parser(setting, prog).print_help()
        return 0
    from reflectevo_train import launch

    launch.prepare()  # before the training arguments set up their device
    run = parse_run(setting.name, rest, prog)
    result = train(run)
    if result.provenance is None:  # another rank than 0: rank 0 reports for the run
        return 0
    summary = {"output_dir": result.output_dir, "setting": result.setting, "artifact": result.artifact_kind,
               "dataset": result.provenance["dataset"].get("sha") or result.provenance["dataset"].get("sha256"),
               "stages": [{k: m[k] for k in ("stage", "examples", "global_step", "train_loss")} for m in result.stages],
               "push": result.push, "evaluate": result.provenance["evaluation"]["command"]}
    print(json.dumps(summary, indent=1))
    return 0
