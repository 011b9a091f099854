"""Loading the base model, the tokenizer, a starting adapter, and the PEFT configuration."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from reflectevo.embedded_model import model_revision, resolve_model
from reflectevo.errors import UserError


def model_path(model_args) -> str:
    name = model_args.model_name_or_path
    if not name:
        raise UserError("--model_name_or_path is required (the built-in recipes use smollm2-135m-instruct)")
    return resolve_model(name)


def check_model_options(model_args, training_args) -> None:
    """Refuse option combinations that cannot work here, before anything is loaded."""
    quantized = bool(getattr(model_args, "load_in_4bit", False) or getattr(model_args, "load_in_8bit", False))
    if quantized:
        bits = 4 if model_args.load_in_4bit else 8
        if not model_args.use_peft:
            raise UserError(f"--load_in_{bits}bit (QLoRA) trains a LoRA adapter: set --use_peft true")
        import torch

        if not torch.cuda.is_available() or getattr(training_args, "use_cpu", False):
            raise UserError(f"--load_in_{bits}bit (QLoRA) needs a CUDA GPU and bitsandbytes; no GPU is available "
                            "here (train without it: plain LoRA or full fine-tuning)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError(f"--load_in_{bits}bit (QLoRA) needs bitsandbytes: pip install bitsandbytes")
    if model_args.use_peft and not model_args.lora_target_modules and not model_args.lora_target_parameters:
        raise UserError("--lora_target_modules is empty; name the modules to adapt (e.g. q_proj k_proj v_proj o_proj)")


def load_tokenizer(model_args):
    from transformers import AutoTokenizer

    path = model_path(model_args)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=model_args.model_revision)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of {model_args.model_name_or_path}: {exc}") from None
    if not getattr(tok, "chat_template", None):
        raise UserError(f"{model_args.model_name_or_path}: the tokenizer has no chat template; training prompts are "
                        "rendered with the model's own template, as evaluation does")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return "auto"
    return getattr(torch, name)


def load_base_model(model_args, training_args):
    from transformers import AutoModelForCausalLM

    path = model_path(model_args)
    kwargs: dict[str, Any] = {"revision": model_args.model_revision, "dtype": _dtype(model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if model_args.load_in_4bit or model_args.load_in_8bit:
        from trl import get_kbit_device_map, get_quantization_config

        kwargs["quantization_config"] = get_quantization_config(model_args)
        kwargs["device_map"] = get_kbit_device_map()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model {model_args.model_name_or_path}: {exc}") from None
    if model_args.load_in_4bit or model_args.load_in_8bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(training_args.gradient_checkpointing))
    return model


def peft_config(model_args):
    from trl import get_peft_config

    return get_peft_config(model_args)


@dataclass
class AdapterRef:
    ref: str  # as given
    location: str  # local folder or Hub repo id
    revision: str | None  # requested revision (Hub)
    sha: str | None  # resolved commit (Hub) or sha256 of the weights (folder)
    is_local: bool


def resolve_init_adapter(ref: str, token: str | None, endpoint: str | None) -> AdapterRef:
    path = os.path.expanduser(ref)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise UserError(f"--init_adapter {ref}: folder has no adapter_config.json")
        from pathlib import Path

        from reflectevo.embedded_model import file_sha256

        weights = [f for f in ("adapter_model.safetensors", "adapter_model.bin") if os.path.isfile(os.path.join(path, f))]
        sha = "sha256:" + file_sha256(Path(path) / weights[0]) if weights else None
        return AdapterRef(ref, os.path.abspath(path), None, sha, True)
    from reflectevo.hub.client import parse_repo_ref, resolve_revision

    r = parse_repo_ref(ref)
    sha = resolve_revision(r.repo_id, r.revision, "model", token=token, endpoint=endpoint)
    return AdapterRef(ref, r.repo_id, r.revision, sha, False)


def attach_init_adapter(model, adapter: AdapterRef, mode: str, token: str | None):
    """Load `adapter` onto `model`. continue: a trainable PeftModel; merge: the merged plain model."""
    from peft import PeftModel

    kwargs: dict[str, Any] = {}
    if not adapter.is_local:
        kwargs.update(revision=adapter.sha, token=token)
    try:
        peft_model = PeftModel.from_pretrained(model, adapter.location, is_trainable=(mode == "continue"), **kwargs)
    except Exception as exc:  # a wrong base, a missing file, a network error: one line
        raise UserError(f"--init_adapter {adapter.ref}: cannot load it onto the base model "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if mode == "merge":
        return peft_model.merge_and_unload()
    return peft_model


def base_revision(model_args) -> str | None:
    """The revision to record for the base model (the GGUF sha256 for the embedded model)."""
    name = model_args.model_name_or_path
    rev = model_revision(name, model_args.model_revision)
    if rev and rev.startswith("sha256:"):
        return rev
    if os.path.isdir(os.path.expanduser(name)):
        return rev if rev not in (None, "main") else None
    try:  # a Hub model: record the commit the revision points to now
        from reflectevo.hub.client import resolve_revision

        return resolve_revision(name, model_args.model_revision, "model")
    except Exception:
        return model_args.model_revision
