"""Publishing a curated folder as one Hub dataset repo: configs raw, d_plus, d_pm, d_pref, sft_qa,
a dataset card with the statistics table and the exact command, and a tag per run."""

from __future__ import annotations

import json
import shlex
import sys

import yaml

from reflectevo_gen.curate import CONFIGS, read_curated, stats_markdown
from reflectevo_tasks.provenance import package_versions


# The Hub's size_categories values (huggingface_hub's dataset card metadata), smallest first; a
# value outside this list is not recognised by the Hub's filters.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                   (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"))


def size_category(n: int) -> str:
    """The Hub's size category for n rows."""
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>1T"


def dataset_card(curated: dict, repo_id: str, tag: str | None, command: str) -> str:
    stats = curated["stats"]
    counts = {c: len(curated[c]) for c in CONFIGS}
    sources = sorted({row["source"].split("/")[0] for row in stats["per_source"]})
    meta = {
        "license": "apache-2.0",
        "task_categories": ["text-generation", "question-answering"],
        "language": ["en"],
        "tags": ["reflectevo", "self-reflection", "synthetic"],
        "source_datasets": [{"bigbench": "google/bigbench", "bbh": "SaylorTwift/bbh"}.get(s, s) for s in sources],
        "size_categories": [size_category(counts["raw"])],
        "pretty_name": f"ReflectEvo self-reflections ({repo_id})",
    }
    first = next(iter(curated["raw"]), None)
    models = json.loads(first["models"]) if first and isinstance(first.get("models"), str) else {}
    body = f"""
# Self-reflection data: {repo_id}

Generated with the ReflectEvo toolkit (after Li et al., arXiv 2505.16475). A model answered each
question with chain of thought (trial 1, greedy); wrong answers were checked against the gold
answer, the reflector wrote self-reflections steered by an instruction pool (shown the question,
its failed attempt and the verdict, never the gold answer), and the generator retried once with
trial 1 and the reflection in context (greedy).

## Configs

| config | rows | what a row is |
|---|---|---|
| `raw` | {counts['raw']} | one generation record per (question, reflection), with all messages, outputs, verdicts and provenance |
| `d_plus` | {counts['d_plus']} | trial 1 wrong, retry right: question, failed attempt, reflection, corrected retry |
| `d_pm` | {counts['d_pm']} | D±: same question and trial 1; chosen reflection led to a right retry, rejected to a wrong one |
| `d_pref` | {counts['d_pref']} | both reflections led to a right retry; ranked by `{stats['options']['ranking']}` |
| `sft_qa` | {counts['sft_qa']} | question and a correct trial-1 answer (SFT baseline) |

## Statistics

{stats_markdown(stats, counts)}

## Evaluation split

{split_notes(stats)}

## What curation dropped

{curation_notes(stats)}

## Provenance

- tag: `{tag or 'none'}`
- models: `{json.dumps(models)}`
- package versions at publishing: `{json.dumps(package_versions())}`
- exact command: `{command}`
"""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body


def split_notes(stats: dict) -> str:
    """Which BBH items evaluation keeps for itself: curation refused them, so the card can say so."""
    split = stats.get("bbh_split")
    if not split:
        return "Not recorded (curated before the BBH split existed)."
    return (f"No row is an item of BBH's test split `{split['split']}` version {split['version']} "
            f"(rule sha256 `{split['rule_sha256'][:16]}…`; {split['test_items']} test items, {split['pool_items']} "
            f"pool items): generation and curation refuse test items by id and by normalised text. "
            f"Rule: {split['rule']}.")


def curation_notes(stats: dict) -> str:
    """The card's account of the filters: the gold-leak filter with its measured error, the leak
    drops per answer kind, and the other drops, so a reader can judge the sets' biases."""
    lines = []
    f = stats.get("leak_filter")
    by_kind = stats.get("leaks_by_kind")
    if f:
        lines.append(f"- Reflections that assert the gold answer were dropped by `{f['filter']}`. Its error on "
                     f"{f['labelled_reflections']} real reflections labelled by hand ({f['labelled_set']}): "
                     f"{f['missed_leaks']} of {f['labelled_leaks']} labelled leaks missed, "
                     f"{f['false_drops']} of {f['labelled_keeps']} labelled non-leaks dropped.")
    else:
        lines.append("- Reflections that state the gold answer were dropped by a filter whose error was not measured "
                     "(curated before the leak filter carried its measurement).")
    if by_kind is not None:
        refl = stats.get("reflections_by_kind", {})
        per_kind = ", ".join(f"{k}: {n} of {refl.get(k, '?')}" for k, n in by_kind.items()) or "none"
        lines.append(f"- Dropped as leaks, per answer kind: {per_kind}.")
    else:
        lines.append(f"- Dropped as leaks: {stats.get('leaking_reflections_dropped', 0)} (per answer kind not recorded).")
    if "d_plus_duplicates_dropped" in stats:
        lines.append(f"- D+ rows dropped because their retry copied an earlier row's retry for the same question: "
                     f"{stats['d_plus_duplicates_dropped']}.")
        lines.append(f"- D± pairs use {stats['d_pm_distinct_chosen']} distinct chosen and "
                     f"{stats['d_pm_distinct_rejected']} distinct rejected reflections.")
        lines.append(f"- Dpref: {stats['dpref_candidates']} candidate pairs, {stats['dpref_ties_dropped']} tied, "
                     f"{stats['dpref_low_margin_dropped']} with a score margin below "
                     f"{stats['options'].get('min_margin')} (the measured noise of the ranking) dropped.")
    return "\n".join(lines)


def to_dataset_dicts(curated: dict) -> dict:
    from datasets import Dataset, DatasetDict

    out = {}
    for c in CONFIGS:
        rows = curated[c]
        ds = Dataset.from_list(rows) if rows else Dataset.from_dict({"question_id": []})
        out[c] = DatasetDict({"train": ds})
    return out


def push(curated_folder: str, repo_id: str, tag: str | None = None, private: bool = False,
         token: str | None = None, endpoint: str | None = None, command: str | None = None) -> str:
    from reflectevo.hub.client import publish_dataset

    curated = read_curated(curated_folder)
    command = command or " ".join(shlex.quote(a) for a in ["reflectevo", *sys.argv[1:]])
    card = dataset_card(curated, repo_id, tag, command)
    return publish_dataset(to_dataset_dicts(curated), repo_id, card, tag, message=f"reflectevo gen push {tag or ''}".strip(),
                           token=token, private=private, endpoint=endpoint, default_config="d_plus")
