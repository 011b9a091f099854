"""Running `python -m reflectevo_train` under a multi-process launcher (accelerate launch, torchrun).

Three things the libraries do not do for us:
* On a machine without a GPU, transformers' TrainingArguments set up accelerate for a GPU unless
  told to use the CPU; under torchrun (which `accelerate launch --multi_gpu` uses) every rank then
  trains the whole data set alone as "rank 0" and they all write the same output folder. We tell
  accelerate to use the CPU (reflectevo.launcher), so the ranks form one gloo group and split the data.
* `accelerate launch --cpu --num_processes N` starts one process unless mpirun is used, without a
  word; the environment it leaves (a rendezvous address, no world size) gives that away.
* Every rank prints the libraries' warnings and progress bars; only rank 0 should.
"""

from __future__ import annotations

from reflectevo.launcher import check_single_cpu_launch, quiet_this_rank, rank, use_cpu_if_no_accelerator


def prepare() -> None:
    """Call first thing in a process started by a launcher, before transformers is imported."""
    check_single_cpu_launch()
    use_cpu_if_no_accelerator()
    if rank() > 0:
        quiet_this_rank()


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
