"""No committed file under leaderboards/ or benchmarks/ names a path of the machine that made it
(issue 20): results, tables, cards and stored trajectories name things by repo and revision or by
paths relative to the repository."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# absolute paths under the roots where checkouts, homes and temporary folders live
ABSOLUTE = re.compile(r"(?<![\w.:/-])/(?:work|home|root|tmp|Users|mnt|opt|var|private|srv|scratch)/[\w.@+-]+")
TEXT = (".md", ".json", ".jsonl", ".txt", ".csv", ".yaml", ".yml", ".tsv")


def committed_files():
    out = subprocess.run(["git", "ls-files", "leaderboards", "benchmarks"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return [REPO / p for p in out if p.endswith(TEXT)]


def test_no_absolute_machine_paths_in_committed_results():
    files = committed_files()
    assert files, "no committed results found (is this a git checkout?)"
    hits = []
    for path in files:
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            m = ABSOLUTE.search(line)
            if m:
                hits.append(f"{path.relative_to(REPO)}:{n}: {m.group(0)}")
    assert not hits, "absolute paths in committed files:\n" + "\n".join(hits[:20])


def test_the_pattern_finds_what_it_must():
    assert ABSOLUTE.search('"resume": "/work/main/runs/x"') and ABSOLUTE.search("at /tmp/pytest-1/out")
    assert not ABSOLUTE.search("https://huggingface.co/datasets/x") and not ABSOLUTE.search("runs/work/x")
