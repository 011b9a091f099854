"""Processes started by a multi-process launcher (accelerate launch, torchrun), on a machine with or
without a GPU: what the environment says, and what the libraries must be told.

On a machine without a GPU, accelerate (under transformers' Trainer or lm-eval's hf model) sets up
for a GPU unless told to use the CPU; every process then calls itself rank 0 of 1 and does the whole
job alone. `use_cpu_if_no_accelerator` tells it, so the processes form one gloo group and share the
work. The training entry point and the lm-eval model both call it.
"""

from __future__ import annotations

import os
import warnings

from reflectevo.errors import UserError

# accelerate reads this when transformers' TrainingArguments first set up their device
USE_CPU_ENV = "ACCELERATE_USE_CPU"


def world_size() -> int:
    return _int_env("WORLD_SIZE", 1)


def rank() -> int:
    return _int_env("RANK", 0)


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UserError(f"the environment variable {name}={value!r} is not a whole number "
                        f"(it is set by the launcher: accelerate launch or torchrun)") from None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _has_accelerator() -> bool:
    import torch

    probe = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ... in one question
    if probe is not None:
        return bool(probe.is_available())
    return torch.cuda.is_available()


def check_single_cpu_launch() -> None:
    """Refuse `accelerate launch --cpu --num_processes N` (N > 1) without mpirun: it would train
    in one process while the user asked for N."""
    if world_size() > 1 or not _flag(USE_CPU_ENV) or not os.environ.get("MASTER_ADDR"):
        return
    if any(os.environ.get(v) for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")):
        return  # started by mpirun: accelerate reads the world size from these
    raise UserError(
        "accelerate launch --cpu with --num_processes > 1 started a single process (accelerate runs "
        "several CPU processes only through mpirun, --mpirun_hostfile). For N processes on this "
        "machine use `accelerate launch --multi_gpu --num_processes N -m reflectevo_train ...` or "
        "`torchrun --nproc_per_node N -m reflectevo_train ...`: without a GPU they train on the CPU "
        "(gloo). For one process, drop --num_processes.")


def use_cpu_if_no_accelerator() -> None:
    """Under a launcher of several processes on a machine without a GPU, make accelerate use the CPU
    (call before the first Accelerator or TrainingArguments is made)."""
    if world_size() > 1 and not _has_accelerator():
        os.environ[USE_CPU_ENV] = "true"


def quiet_this_rank() -> None:
    """Warnings and progress bars from rank 0 only (errors still print on every rank)."""
    for var in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ[var] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    warnings.filterwarnings("ignore")
    import logging

    for name in ("transformers", "trl", "peft", "accelerate", "datasets", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)


def is_main_process() -> bool:
    return rank() == 0


def is_main_process() -> bool:
    return rank() == 0
