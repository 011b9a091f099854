"""Combining the output folders of sharded runs (`--shard i/N` on N machines) into one run."""

from __future__ import annotations

import json
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo.chunk_store import FolderLock, RecordStore, read_json_object, read_records, write_atomic, write_chunk_file


def _shard_run(folder: str) -> tuple[dict, str, str | None, dict]:
    """One finished shard folder's identity (without its shard), shard, config hash and summary."""
    cfg_path, summary_path = Path(folder) / "run_config.json", Path(folder) / "summary.json"
    if not cfg_path.is_file():
        raise UserError(f"{folder}: not a generation run (no run_config.json)")
    if not summary_path.is_file():
        raise UserError(f"{folder}: run not finished (no summary.json); resume it first")
    cfg, summary = read_json_object(cfg_path, "a run config"), read_json_object(summary_path, "a run summary")
    if "merged_from" in cfg or "merged_from" in summary:
        raise UserError(f"{folder}: already a merged folder; merge the shard folders it came from "
                        f"({', '.join(map(str, cfg.get('merged_from') or summary.get('merged_from') or []))})")
    ident = cfg.get("identity")
    if not isinstance(ident, dict) or "shard" not in ident or not isinstance(summary.get("chunks"), int):
        raise UserError(f"{folder}: run_config.json or summary.json lacks the fields of a generation run")
    if len(RecordStore(folder).done_chunks()) != summary["chunks"]:
        raise UserError(f"{folder}: incomplete ({summary['chunks']} chunks expected)")
    ident = dict(ident)
    return ident, ident.pop("shard"), cfg.get("config_hash"), summary


def merge(inputs: list[str], output: str) -> dict:
    if not inputs:
        raise UserError("merge: no input folders")
    runs = [_shard_run(folder) for folder in inputs]
    idents, shards = [r[0] for r in runs], [r[1] for r in runs]
    for folder, ident in zip(inputs[1:], idents[1:]):
        diff = sorted(k for k in set(ident) | set(idents[0]) if ident.get(k) != idents[0].get(k))
        if diff:
            raise UserError(f"{folder}: inconsistent with {inputs[0]} in {', '.join(diff)}")
    if len(set(shards)) != len(shards):
        raise UserError(f"merge: shard given twice ({', '.join(shards)})")
    seen: dict[str, str] = {}
    merged = []
    for folder, run in zip(inputs, runs):
        records = read_records(folder)  # checksums, manifests and config hashes checked here
        if isinstance(run[3].get("records"), int) and len(records) != run[3]["records"]:
            # also catches a lost line in chunks written before manifests existed
            raise UserError(f"{folder}: holds {len(records)} records, its summary.json says {run[3]['records']} "
                            "(lost or doubled lines)")
        for rec in records:
            owner = seen.setdefault(rec["question_id"], folder)
            if owner != folder:
                raise UserError(f"merge: question {rec['question_id']} is in both {owner} and {folder}")
            merged.append(rec)
    out = Path(output)
    store = RecordStore(out)
    if store.done_chunks() or (out / "run_config.json").exists():
        raise UserError(f"{output}: already holds a run; merge into a new folder")
    merged.sort(key=lambda r: r["record_id"])
    with FolderLock(out, "merge into another folder"):
        # records are copied unchanged (their checksums stay valid); one part per input shard
        for n, folder in enumerate(inputs):
            write_chunk_file(store.chunk_path(n), [r for r in merged if seen[r["question_id"]] == folder])
        ns = sorted({int(s.split("/")[1]) for s in shards})
        complete = len(ns) == 1 and len(shards) == ns[0]
        write_atomic(out / "run_config.json", [json.dumps({
            "identity": {**idents[0], "shard": "merged:" + ",".join(sorted(shards))}, "config_hash": None,
            # the shards' own hashes, which their records carry: a read checks each record against them
            "config_hashes": sorted({r[2] for r in runs}) if all(r[2] for r in runs) else [],
            "merged_from": inputs}, indent=1)])
        summary = {"merged_from": inputs, "shards": sorted(shards), "all_shards_present": complete,
                   "records": len(merged), "questions": len(seen)}
        write_atomic(out / "summary.json", [json.dumps(summary, indent=1)])
    return summary
