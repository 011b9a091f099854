"""leaderboards/pool_yield.py on the committed pool-generation chunks (issue #32's yield table)."""

import re
import shutil

from leaderboards import pool_yield

STORE = pool_yield.STORE


def _numbers(line: str) -> list[int]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    return [int(c.replace(",", "")) for c in cells[2:7]] + [int(cells[8])]


def test_yield_table_of_two_committed_chunks_adds_up(tmp_path, bbh_dir):
    store = tmp_path / "store"
    (store / "parts").mkdir(parents=True)
    shutil.copy(STORE / "run_config.json", store)
    for packed in sorted((STORE / "parts").glob("chunk-*.jsonl.gz"))[:2]:
        shutil.copy(packed, store / "parts")
    pool_yield.main(["--store", str(store)])
    text = (store / "yield.md").read_text()
    assert text.startswith("# Pool generation yield (2 chunks committed)")
    per_subtask = text.split("## Per subtask")[1].split("##")[0]
    rows = [line for line in per_subtask.splitlines() if line.startswith("| ") and not line.startswith("| subtask")]
    counts = [_numbers(line) for line in rows]
    assert sum(c[0] for c in counts) == 32  # two chunks of 16 questions, each in one subtask's row
    for line, (questions, wrong, reflections, leaked, fixes, d_plus) in zip(rows, counts):
        # 2 instructions x 2 reflections per failure; a verdict re-read as right takes its reflections out
        assert wrong <= questions and reflections <= 4 * wrong, line
        assert leaked + fixes <= reflections and d_plus <= fixes, line
    total = next(line for line in text.splitlines() if line.startswith("| all |"))
    assert _numbers(total) == [sum(col) for col in zip(*counts)]
    two = [c for line, c in zip(rows, counts) if "(two-answer)" in line]
    two_line = next(line for line in text.splitlines() if line.startswith("| two-answer subtasks |"))
    assert _numbers(two_line) == [sum(col) for col in zip(*two)]
    assert re.search(r"\| choice \| \d+ \|", text)  # the per-kind table names its kinds
