"""Combining the output folders of sharded runs (`--shard i/N` on N machines) into one run."""

from __future__ import annotations

import json
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_gen.store import RecordStore, read_records, write_atomic


def merge(inputs: list[str], output: str) -> dict:
    if not inputs:
        raise UserError("merge: no input folders")
    idents, shards = [], []
    for folder in inputs:
        cfg_path = Path(folder) / "run_config.json"
        summary_path = Path(folder) / "summary.json"
        if not cfg_path.is_file():
            raise UserError(f"{folder}: not a generation run (no run_config.json)")
        if not summary_path.is_file():
            raise UserError(f"{folder}: run not finished (no summary.json); resume it first")
        ident = json.loads(cfg_path.read_text())["identity"]
        summary = json.loads(summary_path.read_text())
        if len(RecordStore(folder).done_chunks()) != summary["chunks"]:
            raise UserError(f"{folder}: incomplete ({summary['chunks']} chunks expected)")
        shards.append(ident.pop("shard"))
        idents.append(ident)
    for folder, ident in zip(inputs[1:], idents[1:]):
        diff = sorted(k for k in ident if ident[k] != idents[0].get(k))
        if diff:
            raise UserError(f"{folder}: inconsistent with {inputs[0]} in {', '.join(diff)}")
    if len(set(shards)) != len(shards):
        raise UserError(f"merge: shard given twice ({', '.join(shards)})")
    seen: dict[str, str] = {}
    merged = []
    for folder in inputs:
        for rec in read_records(folder):
            owner = seen.setdefault(rec["question_id"], folder)
            if owner != folder:
                raise UserError(f"merge: question {rec['question_id']} is in both {owner} and {folder}")
            merged.append(rec)
    out = Path(output)
    store = RecordStore(out)
    if store.done_chunks():
        raise UserError(f"{output}: already holds records; merge into a new folder")
    merged.sort(key=lambda r: r["record_id"])
    # records are copied unchanged (their checksums stay valid); one part per input shard
    for n, folder in enumerate(inputs):
        write_atomic(store.chunk_path(n), [json.dumps(r, ensure_ascii=False) for r in merged if seen[r["question_id"]] == folder])
    ns = sorted({int(s.split("/")[1]) for s in shards})
    complete = len(ns) == 1 and len(shards) == ns[0]
    write_atomic(out / "run_config.json", [json.dumps({"identity": {**idents[0], "shard": "merged:" + ",".join(sorted(shards))},
                                                       "config_hash": None, "merged_from": inputs}, indent=1)])
    summary = {"merged_from": inputs, "shards": sorted(shards), "all_shards_present": complete, "records": len(merged),
               "questions": len(seen)}
    write_atomic(out / "summary.json", [json.dumps(summary, indent=1)])
    return summary
