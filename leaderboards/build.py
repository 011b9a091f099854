"""Build `leaderboards/bbh.md`, `bbh.json` and PNG plots from lm-eval results files.

Each results file written by `lm_eval --model reflectevo … --tasks reflectevo_bbh` is one row.
Numbers are recomputed from the per-subtask values and sample counts in the file (no number is
typed in by hand): Acc@t1 and Acc@t2 with 95% Wilson intervals on pooled counts, Δ with a 95%
interval from its paired per-item distribution, fix and break rates on their subsets. Provenance
(base model and revision, reflector / adapter and revision, mode, instruction, dataset and
revision, package versions, N) comes from the file's `config.reflectevo` block.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks.stats import paired_difference, wilson_interval

PREFIXES = ("reflectevo_bbh_fewshot_", "reflectevo_bbh_")


def _subtask(task: str) -> tuple[str, bool] | None:
    for p in PREFIXES:
        if task.startswith(p):
            return task[len(p):], p == PREFIXES[0]
    return None


def read_results(path: str | Path) -> dict:
    """An lm-eval results file written through the reflectevo model (one clear error otherwise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable lm-eval results file ({exc})") from None
    if not isinstance(data.get("config", {}).get("reflectevo"), dict):
        raise UserError(f"{path}: no reflectevo provenance block (was it run with --model reflectevo?)")
    return data


def row_from_results(path: str | Path, data: dict | None = None) -> dict:
    """One leaderboard row; `data`: the file's contents when the caller has read it already."""
    path = Path(path)
    data = read_results(path) if data is None else data
    cfg = data["config"]
    prov = cfg["reflectevo"]
    subtasks, fewshot = {}, set()
    for task, res in data.get("results", {}).items():
        parsed = _subtask(task)
        if parsed is None or "acc_t1,none" not in res:
            continue
        name, fs = parsed
        fewshot.add(fs)
        n = int(data["n-samples"][task]["effective"])
        r1 = round(res["acc_t1,none"] * n)
        s = {"n": n, "t1_correct": r1}
        if "acc_t2,none" in res:
            s.update(t2_correct=round(res["acc_t2,none"] * n), wrong_to_right=round(res["wrong_to_right,none"] * n),
                     right_to_wrong=round(res["right_to_wrong,none"] * n))
        subtasks[name] = s
    if not subtasks:
        raise UserError(f"{path}: no reflectevo_bbh subtask results")
    n = sum(s["n"] for s in subtasks.values())
    r1 = sum(s["t1_correct"] for s in subtasks.values())
    has_t2 = all("t2_correct" in s for s in subtasks.values())
    proto, base = prov.get("protocol", {}), prov.get("base", {})
    row = {
        "results_file": path.name,
        "base_model": base.get("model"), "base_revision": base.get("model_revision"),
        "reflector": prov.get("reflector"), **trained_part(base, prov.get("reflector")),
        "mode": proto.get("mode"), "one_stage": proto.get("one_stage"),
        "instruction": (proto.get("instruction") or {}).get("id"),
        "fewshot": True in fewshot,
        "datasets": sorted({json.dumps({k: v for k, v in d.items() if k != "docs"}, sort_keys=True)
                            for d in (prov.get("datasets") or {}).values()}),
        "versions": prov.get("versions"), "seed": proto.get("seed"),
        "n": n, "n_per_subtask": sorted({s["n"] for s in subtasks.values()}),
        "acc_t1": r1 / n, "acc_t1_ci": wilson_interval(r1, n),
        "subtasks": {k: {"n": v["n"], "acc_t1": v["t1_correct"] / v["n"], "acc_t1_ci": wilson_interval(v["t1_correct"], v["n"]),
                         **({"acc_t2": v["t2_correct"] / v["n"], "acc_t2_ci": wilson_interval(v["t2_correct"], v["n"])}
                            if "t2_correct" in v else {})}
                     for k, v in sorted(subtasks.items())},
        "command": _command(cfg, data),
    }
    if has_t2:
        r2 = sum(s["t2_correct"] for s in subtasks.values())
        w2r = sum(s["wrong_to_right"] for s in subtasks.values())
        r2w = sum(s["right_to_wrong"] for s in subtasks.values())
        paired = paired_difference(w2r, r2w, n)
        delta, delta_ci = paired.difference, paired.ci
        row.update(acc_t2=r2 / n, acc_t2_ci=wilson_interval(r2, n), delta=delta, delta_ci=delta_ci,
                   fix_rate=w2r / (n - r1) if n > r1 else None, fix_ci=wilson_interval(w2r, n - r1),
                   break_rate=r2w / r1 if r1 else None, break_ci=wilson_interval(r2w, r1))
    return row


def item_outcomes(data: dict) -> dict | None:
    """{(task, dataset revision, doc id): right at the run's last attempt} from a results file's
    per-item outcomes, or None for a file written before the plugin recorded them."""
    prov = data["config"]["reflectevo"]
    outcomes = prov.get("outcomes")
    if outcomes is None:
        return None
    revision = {task: d.get("dataset_revision") for task, d in (prov.get("datasets") or {}).items()}
    return {(task, revision.get(task), doc): code[-1] == "1" for task, docs in outcomes.items() for doc, code in docs.items()}


def _row_index(ref: str, rows: list[dict]) -> int:
    """A row named by its number (1-based, as in the table) or by its results file name."""
    if ref.isdigit() and 1 <= int(ref) <= len(rows):
        return int(ref) - 1
    found = [i for i, r in enumerate(rows) if ref in (r["results_file"], r["results_file"].removesuffix(".json"))]
    if len(found) != 1:
        raise UserError(f"--compare: '{ref}' names {'no' if not found else 'more than one'} row "
                        f"(give a row number 1-{len(rows)} or a results file name)")
    return found[0]


def parse_comparisons(spec: str, rows: list[dict]) -> list[tuple[int, int]]:
    """'B:A,…' → [(row index, against row index)]."""
    pairs = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part.count(":") != 1:
            raise UserError(f"--compare: '{part}' is not ROW:AGAINST")
        b, a = (_row_index(x.strip(), rows) for x in part.split(":"))
        if a == b:
            raise UserError(f"--compare: '{part}' compares a row with itself")
        pairs.append((b, a))
    return pairs


def comparison(rows: list[dict], outcomes: list[dict | None], b: int, a: int) -> dict:
    """Row b against row a, item by item: the difference of their final accuracies (Acc@t2, or Acc@t1
    for a row without a second attempt) with a 95% interval on the paired differences."""
    for i in (a, b):
        if outcomes[i] is None:
            raise UserError(f"{rows[i]['results_file']}: no per-item outcomes in its provenance block "
                            "(written by an older plugin); rerun it (with resume= nothing is generated again)")
    ob, oa = outcomes[b], outcomes[a]
    if set(ob) != set(oa):
        raise UserError(f"rows #{b + 1} ({rows[b]['results_file']}) and #{a + 1} ({rows[a]['results_file']}) were not "
                        f"run on the same items (same tasks, dataset revisions and docs)")
    only_b = sum(ob[k] and not oa[k] for k in oa)
    only_a = sum(oa[k] and not ob[k] for k in oa)
    n = len(oa)
    paired = paired_difference(only_b, only_a, n)
    diff, ci = paired.difference, paired.ci
    return {"row": b + 1, "against": a + 1, "row_file": rows[b]["results_file"], "against_file": rows[a]["results_file"],
            "n": n, "final": sum(ob.values()) / n, "final_against": sum(oa.values()) / n,
            "difference": diff, "difference_ci": ci, "only_row": only_b, "only_against": only_a,
            "within_noise": ci[0] <= 0 <= ci[1]}


def comparisons(rows: list[dict], outcomes: list[dict | None], spec: str | None) -> tuple[list[dict], list[str]]:
    """The comparisons asked for ('' for none), or by default every row against row 1 where both hold the same items;
    (comparisons, why each default pair was left out)."""
    if spec is not None:  # '' asks for none
        return [comparison(rows, outcomes, b, a) for b, a in parse_comparisons(spec, rows)], []
    made, skipped = [], []
    for b in range(1, len(rows)):
        try:
            made.append(comparison(rows, outcomes, b, 0))
        except UserError as exc:
            skipped.append(f"#{b + 1} against #1: {exc}")
    return made, skipped


def _short(rev: str | None) -> str:
    if not rev:
        return "?"
    return rev[:19] if rev.startswith("sha256:") else rev[:12]


def trained_part(base: dict, reflector) -> dict:
    """What distinguishes a row besides mode: the reflector (or adapter) with its revision, and for
    an adapter trained here, its setting and its training data with revision (from the adapter's
    provenance.json, recorded by the plugin)."""
    who = base if base.get("adapter") else (reflector if isinstance(reflector, dict) else None)
    if who is None:
        return {"reflector_label": "same as base", "adapter": None, "adapter_revision": None,
                "setting": None, "train_data": None, "train_data_revision": None, "train_command": None}
    if who.get("adapter"):
        label = f"{who['adapter']}@{_short(who.get('adapter_revision'))}"
        if who is base:
            label += " (on the base)"
    else:
        label = f"{who.get('model')}@{_short(who.get('model_revision'))}"
    training = who.get("adapter_training") or {}
    data = training.get("dataset")
    if data and training.get("dataset_config"):
        data = f"{data}:{training['dataset_config']}"
    return {"reflector_label": label, "adapter": who.get("adapter"), "adapter_revision": who.get("adapter_revision"),
            "setting": training.get("setting"), "train_data": data, "train_data_revision": training.get("dataset_revision"),
            "train_command": training.get("command")}


def _command(cfg: dict, data: dict) -> str:
    args = cfg.get("model_args")
    if isinstance(args, str):
        args = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
    # resume= and trial1_from= say where stored chunks were kept or taken from; the same run without
    # them generates the same replies
    args = ",".join(f"{k}={v}" for k, v in (args or {}).items() if k not in ("resume", "trial1_from"))
    tasks = sorted(data.get("results", {}))
    from reflectevo_tasks.bbh import SUBTASKS

    groups = []
    for prefix, group in ((PREFIXES[0], "reflectevo_bbh_fewshot"), (PREFIXES[1], "reflectevo_bbh")):
        mine = [t for t in tasks if t.startswith(prefix) and t not in groups]
        tasks = [t for t in tasks if t not in mine]
        if len(mine) == len(SUBTASKS):
            groups.append(group)
        else:
            groups += mine
    limit = cfg.get("limit")
    parts = ["lm_eval", "--model", cfg.get("model", "reflectevo"), "--model_args", str(args), "--tasks", ",".join(groups)]
    if limit:
        parts += ["--limit", str(int(limit) if float(limit).is_integer() else limit)]
    # batch composition (padding) can change greedy replies, and the device decides where it runs
    for key in ("batch_size", "device"):
        if cfg.get(key) not in (None, ""):
            parts += [f"--{key}", str(cfg[key])]
    return "REFLECTEVO_BBH_DIR=../shared/data/bbh " + " ".join(shlex.quote(p) for p in parts)


def _pct(x, ci=None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _mode(r: dict) -> str:  # one_stage changes the protocol, so it is part of the mode a reader sees
    return f"{r['mode']}{' one-stage' if r['one_stage'] else ''}"


def _label(r: dict) -> str:
    who = r["setting"] or ("base" if r["reflector_label"] == "same as base" else r["reflector_label"])
    return f"{who}, {_mode(r)}"


def markdown(rows: list[dict], compared: list[dict] = (), skipped: list[str] = ()) -> str:
    out = ["# BIG-Bench Hard: reflect-then-retry", "",
           "Acc@t1 → Acc@t2 in % with 95% intervals (Wilson for accuracies and rates, normal on paired "
           "per-item differences for Δ). A Δ whose interval contains 0 is within noise. Fix rate: "
           "share of items wrong at t1 that are right at t2; break rate: share right at t1 that are wrong at t2.", "",
           "| # | base (revision) | reflector / adapter (revision) | setting | trained on (revision) | mode | instruction | N "
           "| Acc@t1 | Acc@t2 | Δ | fix rate | break rate | within noise? |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        noise = "–" if "delta_ci" not in r else ("yes" if r["delta_ci"][0] <= 0 <= r["delta_ci"][1] else "no")
        data = f"{r['train_data']}@{_short(r['train_data_revision'])}" if r["train_data"] else "–"
        out.append(f"| {i} | {r['base_model']} ({_short(r['base_revision'])}) | {r['reflector_label']} | {r['setting'] or '–'} | "
                   f"{data} | {_mode(r)} | "
                   f"{r['instruction']} | {r['n']} | {_pct(r['acc_t1'], r['acc_t1_ci'])} | {_pct(r.get('acc_t2'), r.get('acc_t2_ci'))} | "
                   f"{_pct(r.get('delta'), r.get('delta_ci'))} | {_pct(r.get('fix_rate'), r.get('fix_ci'))} | "
                   f"{_pct(r.get('break_rate'), r.get('break_ci'))} | {noise} |")
    names = sorted({s for r in rows for s in r["subtasks"]})
    out += ["", "## Per subtask", "",
            "Acc@t1 → Acc@t2 in % for each row (columns numbered as above). The 95% Wilson interval of "
            "every cell is in `bbh.json`; at the per-subtask N below, it is wide (the last column gives "
            "its half-width for a score of 50%), so per-subtask differences are mostly within noise.", "",
            "| subtask | " + " | ".join(f"#{i}" for i in range(1, len(rows) + 1)) + " | N | ±95% at 50% |",
            "|---|" + "---|" * (len(rows) + 2)]
    for name in names:
        cells, ns = [], set()
        for r in rows:
            v = r["subtasks"].get(name)
            if v is None:
                cells.append("–")
                continue
            ns.add(v["n"])
            cells.append(f"{100 * v['acc_t1']:.0f} → {100 * v['acc_t2']:.0f}" if "acc_t2" in v else f"{100 * v['acc_t1']:.0f}")
        n = min(ns) if ns else 0
        lo, hi = wilson_interval(n // 2, n) if n else (0.5, 0.5)
        half = 50 * (hi - lo)
        out.append(f"| {name} | " + " | ".join(cells) + f" | {'/'.join(str(x) for x in sorted(ns))} | {half:.0f} |")
    out += _comparison_lines(rows, compared, skipped)
    out += ["", "## Reproduce", ""]
    for i, r in enumerate(rows, 1):
        extra = ""
        if r.get("train_command"):
            extra = f"; adapter trained with `{r['train_command']}`"
        out.append(f"{i}. `{r['command']}` (results file `{r['results_file']}`, N per subtask {r['n_per_subtask']}{extra})")
    return "\n".join(out) + "\n"


def _comparison_lines(rows: list[dict], compared: list[dict], skipped: list[str]) -> list[str]:
    if not compared and not skipped:
        return []
    out = ["", "## Row against row", "",
           "Final accuracy (Acc@t2, or Acc@t1 for a row without a second attempt) of two rows on the same "
           "items, item by item: difference in points with a 95% interval on the paired per-item "
           "differences; 'only row' / 'only against' count the items one of the two gets right and the "
           "other does not. A difference whose interval contains 0 is within noise.", "",
           "| row | against | N | final (row) | final (against) | difference | only row | only against | within noise? |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in compared:
        row, against = rows[c["row"] - 1], rows[c["against"] - 1]
        out.append(f"| #{c['row']} {_label(row)} | #{c['against']} {_label(against)} | {c['n']} | "
                   f"{_pct(c['final'])} | {_pct(c['final_against'])} | {_pct(c['difference'], c['difference_ci'])} | "
                   f"{c['only_row']} | {c['only_against']} | {'yes' if c['within_noise'] else 'no'} |")
    for c in compared:
        row, against = rows[c["row"] - 1], rows[c["against"] - 1]
        if _mode(row) != _mode(against) and _model(row) != _model(against):
            out.append(f"- #{c['row']} against #{c['against']}: the rows differ in protocol ({_mode(row)} vs "
                       f"{_mode(against)}) as well as in model, so the difference is not the model's alone.")
    out += [f"- not compared: {line}" for line in skipped]
    return out


def _model(r: dict) -> tuple:
    return r["base_model"], r["base_revision"], r["reflector_label"], r["setting"]


def plots(rows: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.5))
    for i, r in enumerate(rows):
        t1, t2 = 100 * r["acc_t1"], 100 * r.get("acc_t2", r["acc_t1"])
        ax.annotate("", xy=(t2, i), xytext=(t1, i), arrowprops={"arrowstyle": "->"})
        ax.plot([t1], [i], "o", color="C0")
        ax.plot([t2], [i], "|", color="C0", markersize=12)
    # arrows do not widen the axes by themselves
    ends = [100 * r[k] for r in rows for k in ("acc_t1", "acc_t2") if r.get(k) is not None]
    ax.set_xlim(max(0.0, min(ends) - 5), min(100.0, max(ends) + 5))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(range(len(rows)), [f"#{i} {_label(r)}" for i, r in enumerate(rows, 1)])
    ax.set_xlabel("accuracy (%)  Acc@t1 → Acc@t2")
    fig.tight_layout()
    path = folder / "bbh_t1_t2.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    made.append(path)
    names, bars = subtask_deltas(rows)
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(names) + 1.5))
    width = 0.8 / max(1, len(bars))
    for i, (label, vals) in enumerate(bars.items()):
        ax.barh([j + i * width for j in range(len(names))], vals, height=width, label=label)
    ax.set_yticks([j + (len(bars) - 1) * width / 2 for j in range(len(names))], names, fontsize=7)
    ax.set_xlabel("Δ per subtask (points)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / "bbh_subtask_delta.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    made.append(path)
    return made


def subtask_deltas(rows: list[dict]) -> tuple[list[str], dict[str, list[float]]]:
    """Subtask names and, per row with a second attempt, its Δ in points on each (a row without one,
    such as mode single, has no Δ and is left out rather than drawn as -Acc@t1)."""
    names = sorted({s for r in rows for s in r["subtasks"]})
    bars = {}
    for i, r in enumerate(rows, 1):
        if r.get("acc_t2") is None:
            continue
        cells = [r["subtasks"].get(s, {}) for s in names]
        bars[f"#{i} {_label(r)}"] = [100 * (c["acc_t2"] - c["acc_t1"]) if c.get("acc_t2") is not None else 0.0
                                     for c in cells]
    return names, bars


def build(results: list[str], output_dir: str = "leaderboards", compare: str | None = None) -> list[dict]:
    """Rows from results files (in the order given), the comparisons between rows (`compare`: 'B:A,…'
    with row numbers or results file names; by default every row against row 1), written as
    bbh.md, bbh.json (rows), bbh_comparisons.json and PNG plots."""
    files = []
    for pattern in results:
        found = sorted(glob.glob(os.path.join(pattern, "**", "results_*.json"), recursive=True)) if os.path.isdir(pattern) else glob.glob(pattern)
        if not found:
            raise UserError(f"{pattern}: no lm-eval results files")
        files += found
    loaded = [read_results(f) for f in files]
    rows = [row_from_results(f, data) for f, data in zip(files, loaded)]
    compared, skipped = comparisons(rows, [item_outcomes(data) for data in loaded], compare)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bbh.json").write_text(json.dumps(rows, indent=1))
    (out / "bbh_comparisons.json").write_text(json.dumps({"compare": compare, "comparisons": compared,
                                                           "not_compared": skipped}, indent=1))
    (out / "bbh.md").write_text(markdown(rows, compared, skipped))
    plots(rows, out)
    return rows


def push(output_dir: str, repo_id: str, tag: str | None = None) -> str:
    """Publish the built leaderboard folder (tables, plots) as a Hub dataset repo, one commit."""
    from reflectevo.hub.client import publish_folder

    card = ("---\nlicense: mit\ntags: [reflectevo, leaderboard, bbh]\n---\n\n"
            + Path(output_dir, "bbh.md").read_text(encoding="utf-8"))
    return publish_folder(output_dir, repo_id, repo_type="dataset", tag=tag, card_text=card,
                          message="reflectevo leaderboard", token=os.environ.get("HF_TOKEN"))

