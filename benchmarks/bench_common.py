"""What every benchmark row must carry so that it can be compared with another one: the CPU (model,
family/model, the vector and bf16 flags that decide which kernels run), the load on the machine
before and after, and the vLLM scheduler limits where vLLM ran.

Rows measured on different CPUs have been mixed up in RESULTS.md before (a Zen 3 labelled Zen 4);
reading these from the machine at run time, instead of writing them by hand, prevents that.
"""

from __future__ import annotations

import os
import time
from typing import Any

# The flags that change which matmul kernels torch and vLLM use on x86 (and NEON on Arm).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "asimd")


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """Model name, family/model numbers and kernel flags of the first processor listed."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                key = key.strip()
                if not sep:
                    if fields:  # a blank line ends the first processor's block
                        break
                    continue
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    return {
        "cpu": fields.get("model name", "?"),
        "family_model": f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": [f for f in KERNEL_FLAGS if f in flags],
        "native_bf16": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16")) or "none",
    }


def loadavg() -> str:
    """The 1/5/15-minute load averages: other jobs on the machine slow every row, and say so."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def vllm_scheduler(lm: Any) -> dict | None:
    """max_num_seqs / max_num_batched_tokens of the vLLM engine under an lm-eval vllm model: how many
    sequences one step may carry and how many tokens (prefill included) it may process."""
    llm = getattr(lm, "model", None)
    config = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    sched = getattr(config, "scheduler_config", None)
    if sched is None:
        return None
    return {"max_num_seqs": sched.max_num_seqs, "max_num_batched_tokens": sched.max_num_batched_tokens,
            "chunked_prefill": getattr(sched, "enable_chunked_prefill", None)}


class Timer:
    """Wall seconds of a with-block, kept in `seconds`."""

    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
