"""Publishing a curated folder as one Hub dataset repo: configs raw, d_plus, d_pm, d_pref, sft_qa,
a dataset card with the statistics table and the exact command, and a tag per run."""

from __future__ import annotations

import json
import shlex
import sys

import yaml

from reflectevo_gen.curate import CONFIGS, read_curated, stats_markdown
from reflectevo_tasks.provenance import package_versions


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


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

## Provenance

- tag: `{tag or 'none'}`
- models: `{json.dumps(models)}`
- package versions at publishing: `{json.dumps(package_versions())}`
- exact command: `{command}`
"""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body


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
