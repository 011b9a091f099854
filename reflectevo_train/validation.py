"""A held-out validation slice of the training rows, the step floor, and the run's loss curves.

Validation holds out whole questions: a curated set has several rows per question (D+ one per fixed
reflection, D± pairs per failed attempt), and a held-out row whose question is also trained on would
measure memorisation, not generalisation. Which questions is decided by a hash of the question and
the seed, so the slice is the same on every machine, in every process of a data-parallel run, and for
every setting trained on the same set with the same seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math

from reflectevo.errors import UserError
from reflectevo_tasks.bbh_split import row_question

LOSS_CURVES_FILE = "loss_curves.png"


def question_key(row: dict) -> str:
    """What identifies a row's question: its id, else its text, else the row itself."""
    qid, text = row_question(row)
    return qid or (f"text:{text}" if text else "row:" + json.dumps(row, sort_keys=True, ensure_ascii=False))


def _hash_order(keys: list[str], salt: str) -> list[str]:
    """Question keys in an order fixed by a hash of salt and key alone (the same on every machine)."""
    return sorted(keys, key=lambda k: hashlib.sha256(f"{salt}\0{k}".encode("utf-8")).hexdigest())


def split_validation(rows: list[dict], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training row indices, validation row indices): about `fraction` of the distinct questions, at
    least one, held out with every row they have; the rest keep their order."""
    if fraction <= 0:
        return list(range(len(rows))), []
    keys = [question_key(r) for r in rows]
    distinct = list(dict.fromkeys(keys))
    if len(distinct) < 2:
        raise UserError(f"--validation_fraction {fraction}: the training set has {len(distinct)} distinct "
                        f"question(s); a validation slice needs at least 2 (one to hold out, one to train on)")
    n_held = min(len(distinct) - 1, max(1, round(fraction * len(distinct))))
    order = _hash_order(distinct, f"{seed}")
    held = set(order[:n_held])
    return [i for i, k in enumerate(keys) if k not in held], [i for i, k in enumerate(keys) if k in held]


def keep_fraction(rows: list[dict], indices: list[int], fraction: float, seed: int) -> list[int]:
    """The rows of about `fraction` of the distinct questions among `indices` (at least one), in their
    order. The questions are ranked by a hash of the question and the seed alone, so the set kept at a
    smaller fraction lies inside the set kept at a larger one: a data-scaling curve adds data, it does
    not swap it. The ranking differs from the validation split's, which is made first, on every row."""
    if fraction >= 1:
        return list(indices)
    keys = {i: question_key(rows[i]) for i in indices}
    distinct = list(dict.fromkeys(keys.values()))
    if not distinct:
        return []
    n_kept = max(1, round(fraction * len(distinct)))
    order = _hash_order(distinct, f"fraction\0{seed}")
    kept = set(order[:n_kept])
    return [i for i in indices if keys[i] in kept]


def epochs_for_min_steps(steps_for, epochs: float, min_after_warmup: int, limit: int = 10_000) -> float:
    """The recipe's epochs, or the fewest whole epochs above them whose run takes at least
    `min_after_warmup` optimizer steps after warmup. `steps_for(epochs)` -> (total steps, warmup steps)."""
    total, warmup = steps_for(epochs)
    if total - warmup >= min_after_warmup:
        return epochs
    e = max(1, math.ceil(epochs))
    while e <= limit:
        total, warmup = steps_for(e)
        if total - warmup >= min_after_warmup:
            return float(e)
        e += 1
    raise UserError(f"--min_steps_after_warmup {min_after_warmup}: not reached within {limit} epochs")


def loss_points(log_history: list[dict]) -> tuple[list[list[float]], list[list[float]]]:
    """([step, training loss] ..., [step, validation loss] ...) from a Trainer's log history."""
    train = [[int(e["step"]), float(e["loss"])] for e in log_history if "loss" in e and "step" in e]
    val = [[int(e["step"]), float(e["eval_loss"])] for e in log_history if "eval_loss" in e and "step" in e]
    return train, val


def plot_loss_curves(stages: list[dict], path: str, title: str) -> str:
    """One panel per stage: training loss per logged step, validation loss where it was measured."""
    import matplotlib

    matplotlib.use("Agg")  # no display; the file is the product
    import matplotlib.pyplot as plt

    from reflectevo.hub.store import atomic_write

    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.6), squeeze=False)
    for ax, st in zip(axes[0], stages):
        for points, label, style in ((st.get("loss_points") or [], "training", "-"),
                                     (st.get("eval_loss_points") or [], "validation", "o--")):
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label, markersize=4)
        warmup = st.get("warmup_steps") or 0
        if warmup:
            ax.axvline(warmup, color="grey", linewidth=0.8, linestyle=":", label="end of warmup")
        ax.set_title(f"stage {st['stage']}: {st['examples']} examples, {st['global_step']} steps", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path
