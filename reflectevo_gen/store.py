"""Exactly-once, resumable record output.

Work is cut into chunks of questions whose membership depends only on the configuration. A chunk's
records are written to `parts/chunk-NNNNNN.jsonl` through a temporary file, fsync and an atomic
rename, so a chunk file is either absent or complete: a run killed at any moment and restarted
redoes only unfinished chunks and ends with the same records as an uninterrupted run. Every record
carries a checksum of its content, verified on read, so a damaged file is detected, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from reflectevo.errors import UserError

VOLATILE = ("created_at", "content_hash")
_PART = re.compile(r"^chunk-(\d{6})\.jsonl$")


def content_hash(record: dict) -> str:
    stable = {k: v for k, v in record.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def seal(record: dict) -> dict:
    record["content_hash"] = content_hash(record)
    return record


def write_atomic(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def claim_folder(path: Path, settings: dict, what: str, advice: str) -> None:
    """Tie a resumable folder to the settings that made it: the first run writes them to `path`,
    a later run with other settings gets one error naming what differs (reusing its outputs would
    be silently wrong)."""
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they read back
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings:
            differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise UserError(f"{path.parent} holds {what} with other settings ({', '.join(differ)}); {advice}")
        return
    write_atomic(path, [json.dumps(settings, indent=1, ensure_ascii=False)])


class RecordStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"

    def chunk_path(self, chunk: int) -> Path:
        return self.parts / f"chunk-{chunk:06d}.jsonl"

    def done_chunks(self) -> set[int]:
        if not self.parts.is_dir():
            return set()
        return {int(m.group(1)) for p in self.parts.iterdir() if (m := _PART.match(p.name))}

    def write_chunk(self, chunk: int, records: list[dict]) -> None:
        write_atomic(self.chunk_path(chunk), [json.dumps(seal(r), ensure_ascii=False) for r in records])

    def clean_temporaries(self) -> None:
        if self.parts.is_dir():
            for p in self.parts.glob(".chunk-*.tmp-*"):
                p.unlink(missing_ok=True)

    def read(self) -> list[dict]:
        return read_records(self.folder)

    def read_chunk(self, chunk: int) -> list[dict] | None:
        path = self.chunk_path(chunk)
        return read_part(path) if path.exists() else None


def read_records(folder: str | os.PathLike) -> list[dict]:
    """All records of a run folder, in chunk order, checksums verified."""
    parts = Path(folder) / "parts"
    if not parts.is_dir():
        raise UserError(f"{folder}: not a generation run (no parts/ folder)")
    out = []
    for p in sorted(parts.iterdir()):
        if _PART.match(p.name):
            out += read_part(p)
    return out


def read_part(path: Path) -> list[dict]:
    """The records of one chunk file, checksums verified."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {n} is not valid JSON (damaged file)") from None
        if rec.get("content_hash") != content_hash(rec):
            raise UserError(f"{path}: line {n} fails its checksum (damaged or edited record)")
        out.append(rec)
    return out
