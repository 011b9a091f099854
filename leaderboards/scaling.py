"""Data-scaling curves: one trained setting at several shares of its training data (`reflectevo train
--data_fraction`), its final accuracy against the share, beside the retry_only rows of the same
answering model, each with its 95% Wilson interval. Rows are grouped by everything but the share, so
a curve only joins rows that differ in how much data they saw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def data_share(r: dict) -> float:
    """The share of its training questions a trained row's adapter saw (1.0 when it recorded none)."""
    share = r.get("train_data_fraction")
    return float(share["fraction"]) if share else 1.0


def _curve_key(r: dict) -> tuple:
    return (r["setting"], r["mode"], bool(r["one_stage"]), r["base_model"], r["base_revision"],
            r.get("train_data"), r.get("train_data_revision"), json.dumps(r.get("train_init_adapter"), sort_keys=True),
            r.get("train_two_answer_excluded") is not None)


def scaling_groups(rows: list[dict], answering: Callable[[dict], tuple]) -> list[dict]:
    """Every setting trained at two or more data shares: {"setting", "points": [(share, row index)] by
    share, "against": [retry_only row indices of the same answering model]}. `answering(row)` names a
    row's answering model (a reflector row answers with its base model)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("setting"):
            groups.setdefault(_curve_key(r), []).append(i)
    out = []
    for key, members in groups.items():
        shares = sorted((data_share(rows[i]), i) for i in members)
        if len({s for s, _ in shares}) < 2:
            continue
        model = answering(rows[members[0]])
        against = [i for i, x in enumerate(rows) if x["mode"] == "retry_only" and answering(x) == model]
        out.append({"setting": key[0], "points": shares, "against": against})
    return out


def scaling_lines(rows: list[dict], groups: list[dict], label: Callable[[dict], str], pct: Callable,
                  bench: str) -> list[str]:
    """The markdown section: per curve, one line per share and per retry_only row it is drawn against."""
    if not groups:
        return []
    out = ["", "## Data scaling", "",
           "Final accuracy (Acc@t2) of one trained setting at several shares of its training questions "
           "(`--data_fraction`: a smaller share's questions are inside a larger one's), against the retry_only "
           "rows of the same answering model; in % with 95% Wilson intervals. "
           f"Plot: `{bench}_scaling_<setting>.png`.", "",
           "| setting | row | data share | training questions | N | Acc@t2 |", "|---|---|---|---|---|---|"]
    for g in groups:
        for share, i in g["points"]:
            r = rows[i]
            kept = r.get("train_data_fraction") or {}
            questions = f"{kept['questions']} of {kept['of_questions']}" if kept else "all"
            out.append(f"| {g['setting']} | #{i + 1} | {share:g} | {questions} | {r['n']} | "
                       f"{pct(r['acc_t2'], r['acc_t2_ci'])} |")
        for i in g["against"]:
            r = rows[i]
            out.append(f"| (against) | #{i + 1} {label(r)} | – | – | {r['n']} | {pct(r['acc_t2'], r['acc_t2_ci'])} |")
    return out


def plot_scaling(rows: list[dict], group: dict, path: Path, label: Callable[[dict], str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [100 * s for s, _ in group["points"]]
    ys = [100 * rows[i]["acc_t2"] for _, i in group["points"]]
    cis = [[100 * x for x in rows[i]["acc_t2_ci"]] for _, i in group["points"]]
    # max(0, ...): an interval end may miss its estimate by a rounding error (Wilson at 0 of n)
    err = [[max(0.0, y - lo) for y, (lo, _) in zip(ys, cis)], [max(0.0, hi - y) for y, (_, hi) in zip(ys, cis)]]
    ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, color="C1", label=f"{group['setting']} (Acc@t2)")
    for k, i in enumerate(group["against"]):
        r = rows[i]
        y, (lo, hi) = 100 * r["acc_t2"], (100 * x for x in r["acc_t2_ci"])
        ax.axhline(y, color=f"C{k + 2}", linewidth=1, label=f"#{i + 1} {label(r)}")
        ax.axhspan(lo, hi, color=f"C{k + 2}", alpha=0.12)
    ax.set_xlabel("share of the training questions (%)")
    ax.set_ylabel("Acc@t2 in % (95% Wilson interval)")
    ax.set_xticks(xs)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
