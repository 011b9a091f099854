"""A LoRA adapter merged into its base model's weights, served as a plain model.

Why: vLLM's CPU build runs a LoRA adapter about 4x slower per reply than the plain model (4.41x per
prompt, benchmarks/bench_adapter.py in benchmarks/RESULTS.md, 2026-12-02), and an engine without
LoRA kernels also scores prompts, which that build refuses with LoRA enabled. The merge is peft's
own `merge_and_unload` (W + scale * B @ A), done once per (model, model revision, adapter revision,
dtype) and kept in the cache; what comes out is the same function as base + adapter up to float
rounding, so greedy replies can differ where two tokens are almost tied (docs/results.md, "The
measured leaderboard", says how often they did).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from reflectevo.atomic_folder import replaced_on_success
from reflectevo.embedded_model import cache_root, model_revision, resolve_model
from reflectevo.errors import UserError

RECORD = "reflectevo_merge.json"  # written last: a folder without it is not a finished merge


def merge_key(model: str, revision: str | None, adapter_name: str, adapter_revision: str | None,
              dtype: str | None) -> dict:
    """What a merged folder is made of; its cache folder is named by the hash of this."""
    return {"model": model, "model_revision": model_revision(model, revision), "adapter": adapter_name,
            "adapter_revision": adapter_revision, "dtype": dtype or "auto"}


def merged_model_folder(model: str, revision: str | None, adapter_name: str, adapter_folder: str,
                        adapter_revision: str | None, dtype: str | None) -> str:
    """The folder of `model` (at `revision`) with the adapter merged in, made on first use.

    An adapter folder is recorded by the sha256 of its weights, so retraining it into the same
    folder gives another key and another merge, never a stale one."""
    key = merge_key(model, revision, adapter_name, adapter_revision, dtype)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    target = cache_root() / "merged" / digest
    if (target / RECORD).is_file():
        return str(target)
    # several processes of one launch (one per rank) may ask at once: one merges, the others wait for it
    with _waiting_lock(target.parent / f"{digest}.lock"):
        if not (target / RECORD).is_file():
            print(f"reflectevo: merging adapter {adapter_name} into {model} (once; kept in {target})",
                  file=sys.stderr, flush=True)
            _merge(key, revision, adapter_folder, target)
    return str(target)


@contextlib.contextmanager
def _waiting_lock(path: Path) -> Iterator[None]:
    """An exclusive flock that waits for its holder (the OS drops it when a holder dies). The file
    stays: unlinking it would let a waiter lock a file nobody else sees."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _merge(key: dict, revision: str | None, adapter_folder: str, target: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(key["model"])
    torch_dtype = "auto" if key["dtype"] == "auto" else getattr(torch, key["dtype"])
    try:
        base = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=torch_dtype)
        merged = PeftModel.from_pretrained(base, adapter_folder).merge_and_unload()
    except Exception as exc:  # a wrong base, a damaged adapter: one line that names both
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(f"adapter {key['adapter']}: cannot merge it into {key['model']} "
                        f"({type(exc).__name__}: {first})") from None
    with replaced_on_success(target) as work:
        merged.save_pretrained(work)
        AutoTokenizer.from_pretrained(source, revision=revision).save_pretrained(work)
        (Path(work) / RECORD).write_text(json.dumps({**key, "merged_by": "peft merge_and_unload"}, indent=1) + "\n")
