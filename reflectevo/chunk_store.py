"""Exactly-once, resumable record output: generation runs and the lm-eval model's resume folders.

Work is cut into chunks of questions whose membership depends only on the configuration. A chunk's
records are written to `parts/chunk-NNNNNN.jsonl` through a temporary file, fsync and an atomic
rename, so a chunk file is either absent or complete: a run killed at any moment and restarted
redoes only unfinished chunks and ends with the same records as an uninterrupted run.

What a read verifies:
- every line carries a checksum of its content, so a damaged or edited line is detected;
- the first line of a chunk is its manifest (record count and ids, checksummed too), so a lost or
  doubled line is an error naming the chunk. Chunks written before manifests existed are still
  read; one note per folder says they are unverified. A doubled record id is an error either way;
- in a folder with a `run_config.json`, every record's `config_hash` must be that run's, so chunks
  made with other settings cannot mix in silently.

One writer per folder: `FolderLock` holds an OS lock on `.writer.lock` for the whole run, so a second
writer fails at once, naming the holder, instead of deleting the first one's temporary files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections import Counter
from pathlib import Path

from reflectevo.errors import UserError

VOLATILE = ("created_at", "content_hash")
MANIFEST = "_chunk_manifest"
LOCK_NAME = ".writer.lock"
_PART = re.compile(r"^chunk-(\d{6})\.jsonl$")
_noted_unverified: set[str] = set()


def content_hash(record: dict) -> str:
    stable = {k: v for k, v in record.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def seal(record: dict) -> dict:
    record["content_hash"] = content_hash(record)
    return record


def record_key(record: dict) -> str:
    """What names a record inside its chunk: generation records have `record_id`, the lm-eval
    plugin's stored chunks `key`; anything else is named by its checksum."""
    return record.get("record_id") or record.get("key") or record.get("content_hash", "")


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


def write_chunk_file(path: Path, records: list[dict]) -> None:
    """A chunk file: its manifest line, then the records as they are (sealed already)."""
    manifest = seal({MANIFEST: {"version": 1, "count": len(records), "ids": [record_key(r) for r in records]}})
    write_atomic(path, [json.dumps(manifest, ensure_ascii=False)] + [json.dumps(r, ensure_ascii=False) for r in records])


def claim_folder(path: Path, settings: dict, what: str, advice: str) -> None:
    """Tie a resumable folder to the settings that made it: the first run writes them to `path`,
    a later run with other settings gets one error naming what differs (reusing its outputs would
    be silently wrong)."""
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they read back
    if path.is_file():
        old = read_json_object(path, "a settings file")
        if old != settings:
            raise UserError(f"{path.parent} holds {what} with other settings ({', '.join(_differences(old, settings))}); "
                            f"{advice}")
        return
    write_atomic(path, [json.dumps(settings, indent=1, ensure_ascii=False)])


def _differences(old: dict, new: dict) -> list[str]:
    """The keys whose values differ; inside a setting that is itself a table, its keys too (`gen.seed`)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{sub}" for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
        else:
            out.append(k)
    return out


class FolderLock:
    """An exclusive OS lock (flock) on `<folder>/.writer.lock`, held while one process writes the
    folder. The OS drops it when the holder dies, so a killed run never leaves the folder locked;
    the file's text (pid, host, start time) only serves the refusal message."""

    def __init__(self, folder: str | os.PathLike, advice: str = "wait for it to finish or use another folder"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.advice = advice
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a writer that is just starting"
                os.close(fd)
                raise UserError(f"{self.folder}: another process is writing here ({holder}); {self.advice}") from None
            # a releasing holder unlinks the file: a lock on an unlinked file guards nothing, so retry
            if _same_file(fd, self.path):
                break
            os.close(fd)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        if _same_file(self.fd, self.path):
            self.path.unlink()  # while still locked, so no one else can be holding this file
        os.close(self.fd)
        self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


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
        write_chunk_file(self.chunk_path(chunk), [seal(r) for r in records])

    def clean_temporaries(self) -> None:
        """Only safe while holding the folder's FolderLock: another writer's files look the same."""
        if self.parts.is_dir():
            for p in self.parts.glob(".chunk-*.tmp-*"):
                p.unlink(missing_ok=True)

    def read(self) -> list[dict]:
        return read_records(self.folder)

    def read_chunk(self, chunk: int) -> list[dict] | None:
        path = self.chunk_path(chunk)
        if not path.exists():
            return None
        records, verified = read_chunk_file(path, allowed_config_hashes(self.folder))
        if not verified:
            _note_unverified(self.parts, [path.name])
        return records


def read_json_object(path: Path, what: str = "a JSON object") -> dict:
    """A JSON file that must hold one object; anything else is one error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not {what} that can be read ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not {what} (a JSON object expected)")
    return data


def allowed_config_hashes(folder: str | os.PathLike) -> set[str] | None:
    """The config hashes a folder's records may carry: its run's, or for a merged folder its
    shards'; None where the folder names none (lm-eval resume folders, older merges)."""
    path = Path(folder) / "run_config.json"
    if not path.is_file():
        return None
    cfg = read_json_object(path, "a run config")
    if cfg.get("config_hash"):
        return {cfg["config_hash"]}
    if cfg.get("config_hashes"):
        return set(cfg["config_hashes"])
    return None


def read_records(folder: str | os.PathLike) -> list[dict]:
    """All records of a run folder, in chunk order, every check above applied."""
    parts = Path(folder) / "parts"
    if not parts.is_dir():
        raise UserError(f"{folder}: not a generation run (no parts/ folder)")
    allowed = allowed_config_hashes(folder)
    out, unverified = [], []
    for p in sorted(parts.iterdir()):
        if _PART.match(p.name):
            records, verified = read_chunk_file(p, allowed)
            out += records
            if not verified:
                unverified.append(p.name)
    _note_unverified(parts, unverified)
    return out


def read_part(path: Path) -> list[dict]:
    """The records of one chunk file, checksums and manifest verified."""
    return read_chunk_file(path)[0]


def read_chunk_file(path: Path, allowed_hashes: set[str] | None = None) -> tuple[list[dict], bool]:
    """The records of one chunk file, and whether a manifest vouched for their count and ids."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}; damaged file)") from None
    records, manifest = [], None
    for n, line in enumerate(text.splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {n} is not valid JSON (damaged file)") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}: line {n} is not a JSON object (damaged file)")
        if rec.get("content_hash") != content_hash(rec):
            raise UserError(f"{path}: line {n} fails its checksum (damaged or edited record)")
        if MANIFEST in rec:
            if n != 1:
                raise UserError(f"{path}: line {n} is a chunk manifest; only line 1 may be (damaged file)")
            manifest = rec[MANIFEST]
            continue
        if allowed_hashes is not None and rec.get("config_hash") not in allowed_hashes:
            raise UserError(f"{path}: line {n} ({record_key(rec)}) was made with other settings (config_hash "
                            f"{str(rec.get('config_hash'))[:12]}, not this folder's run_config.json); "
                            "chunks of different runs are mixed here")
        records.append(rec)
    _check_counts(path, records, manifest)
    return records, manifest is not None


def _check_counts(path: Path, records: list[dict], manifest: dict | None) -> None:
    have = Counter(record_key(r) for r in records)
    doubled = sorted(k for k, c in have.items() if c > 1)
    if manifest is None:
        if doubled:
            raise UserError(f"{path}: record {doubled[0]} appears {have[doubled[0]]} times (a doubled line)")
        return
    listed = Counter(manifest.get("ids", []))
    if have == listed and len(records) == manifest.get("count"):
        return
    lost, extra = sorted((listed - have).elements()), sorted((have - listed).elements())
    detail = "; ".join(f"{what} {len(ids)}: {', '.join(ids[:3])}{' …' if len(ids) > 3 else ''}"
                       for what, ids in (("lost", lost), ("extra or doubled", extra)) if ids)
    raise UserError(f"{path}: holds {_records(len(records))}, its manifest lists {manifest.get('count')} ({detail})")


def _records(n: int) -> str:
    return f"{n} record{'' if n == 1 else 's'}"


def _note_unverified(parts: Path, names: list[str]) -> None:
    """One note per folder per process: these chunks predate manifests, so a lost line there
    would go unnoticed (their checksums and ids are still checked)."""
    if not names or str(parts) in _noted_unverified:
        return
    _noted_unverified.add(str(parts))
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    print(f"note: {parts}: {shown} written without a record manifest (by an older version): "
          "a lost line there cannot be detected", file=sys.stderr)
