"""Running `python -m reflectevo_train` under a multi-process launcher (accelerate launch, torchrun).

Three things the libraries do not do for us:
* On a machine without a GPU, transformers' TrainingArguments set up accelerate for a GPU unless
  told to use the CPU; under torchrun (which `accelerate launch --multi_gpu` uses) every rank then
  trains the whole data set alone as "rank 0" and they all write the same output folder. We tell
  accelerate to use the CPU, so the ranks form one gloo group and split the data.
* `accelerate launch --cpu --num_processes N` starts one process unless mpirun is used, without a
  word; the environment it leaves (a rendezvous address, no world size) gives that away.
* Every rank prints the libraries' warnings and progress bars; only rank 0 should.
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


def prepare() -> None:
    """Call first thing in a process started by a launcher, before transformers is imported."""
    check_single_cpu_launch()
    if world_size() > 1 and not _has_accelerator():
        os.environ[USE_CPU_ENV] = "true"
    if rank() > 0:
        quiet_this_rank()


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


def describe(args) -> dict:
    """What provenance records about the processes that trained (from the Trainer's arguments)."""
    n = int(getattr(args, "world_size", 1) or 1)
    per_device = int(args.per_device_train_batch_size)
    accumulation = int(args.gradient_accumulation_steps)
    state = getattr(args, "distributed_state", None)
    kind = getattr(getattr(state, "distributed_type", None), "value", None)
    return {"world_size": n, "distributed_type": kind or "NO",
            "backend": getattr(state, "backend", None) if n > 1 else None,
            "per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation,
            "effective_batch_size": per_device * accumulation * n}
