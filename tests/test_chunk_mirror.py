"""leaderboards/chunk_mirror.sh: the finished chunks of a long run mirrored, gzipped, into a committed
store and unpacked back into a fresh run folder, which the run then resumes from."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

MIRROR = Path(__file__).resolve().parents[1] / "leaderboards" / "chunk_mirror.sh"


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", f'source "{MIRROR}"\n{script}'], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_pack_then_unpack_round_trips_each_finished_chunk_once(tmp_path):
    run = tmp_path / "run" / "parts"
    run.mkdir(parents=True)
    (run.parent / "settings.json").write_text('{"seed": 0}')
    for i in range(2):
        (run / f"chunk-00000{i}.jsonl").write_text(f'{{"record_id": "q{i}"}}\n')
    (run / ".chunk-000002.jsonl.tmp-1").write_text("half")  # a chunk still being written: not finished
    assert bash("pack_chunks run store settings.json", tmp_path).returncode == 0
    packed = sorted(p.name for p in (tmp_path / "store" / "parts").iterdir())
    assert packed == ["chunk-000000.jsonl.gz", "chunk-000001.jsonl.gz"]
    assert (tmp_path / "store" / "settings.json").read_text() == '{"seed": 0}'
    first = (tmp_path / "store" / "parts" / "chunk-000000.jsonl.gz").read_bytes()
    assert gzip.decompress(first) == b'{"record_id": "q0"}\n'

    # packed once: a second pass leaves the committed bytes alone, even if the run's copy changed
    (run / "chunk-000000.jsonl").write_text("changed\n")
    assert bash("pack_chunks run store settings.json", tmp_path).returncode == 0
    assert (tmp_path / "store" / "parts" / "chunk-000000.jsonl.gz").read_bytes() == first

    # a fresh checkout: the store unpacked into an empty run folder, settings file included
    assert bash("unpack_chunks store fresh settings.json", tmp_path).returncode == 0
    fresh = tmp_path / "fresh"
    assert sorted(p.name for p in (fresh / "parts").iterdir()) == ["chunk-000000.jsonl", "chunk-000001.jsonl"]
    assert (fresh / "parts" / "chunk-000000.jsonl").read_text() == '{"record_id": "q0"}\n'
    assert (fresh / "settings.json").read_text() == '{"seed": 0}'


def test_gzip_is_deterministic_and_unpack_keeps_what_the_run_has(tmp_path):
    for name in ("a", "b"):
        parts = tmp_path / name / "parts"
        parts.mkdir(parents=True)
        (parts / "chunk-000000.jsonl").write_text('{"x": 1}\n')
    os.utime(tmp_path / "b/parts/chunk-000000.jsonl", (1_000_000, 1_000_000))  # the same chunk, written another day
    assert bash("pack_chunks a sa; pack_chunks b sb", tmp_path).returncode == 0
    assert (tmp_path / "sa/parts/chunk-000000.jsonl.gz").read_bytes() == \
        (tmp_path / "sb/parts/chunk-000000.jsonl.gz").read_bytes()  # -n: no name or time in the header
    (tmp_path / "a/parts/chunk-000000.jsonl").write_text("the run's own\n")
    assert bash("unpack_chunks sa a", tmp_path).returncode == 0
    assert (tmp_path / "a/parts/chunk-000000.jsonl").read_text() == "the run's own\n"
    assert not list((tmp_path / "a/parts").glob("*.unpacking"))
