"""leaderboards/pool_yield.py on the committed pool-generation chunks (issue #32's yield table)."""

import re
import shutil

from leaderboards import pool_yield

STORE = pool_yield.STORE


def _numbers(line: str) -> list[int]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    return [int(c.replace(",", "")) for c in cells[2:7]] + [int(cells[8])]


def test_yield_table_of_two_committed_chunks_adds_up(tmp_path, bbh_dir, embedded_model_dir):
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
    # replies at their cap, per turn: trial 1 once per question, a reflection and a retry per record
    caps = text.split("## Replies that reached their token cap")[1]
    turns = {}
    for line in caps.splitlines():
        m = re.match(r"\| (trial 1|reflection|retry) \| 256 \| (\d+) \| [\d.]+ \[[\d.]+, [\d.]+\] \((\d+)/(\d+)\) \|$", line)
        if m:
            assert m.group(2) == m.group(4), line
            turns[m.group(1)] = (int(m.group(3)), int(m.group(4)))
    assert set(turns) == {"trial 1", "reflection", "retry"}, caps
    stored = sum(c[2] for c in counts)  # the reflections column counts every stored reflection
    assert turns["trial 1"][1] == 32 and turns["reflection"][1] == turns["retry"][1] >= stored
    assert all(reached <= replies for reached, replies in turns.values())


def test_reply_tokens_count_the_text_after_the_prefix_as_the_plugin_does():
    class Words:  # one token per word, like a whitespace tokenizer
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    assert pool_yield.reply_tokens({"output": "Let's think. a b c", "reply_prefix": "Let's think."}, Words()) == 3
    assert pool_yield.reply_tokens({"output": "a b", "reply_prefix": ""}, Words()) == 2
    assert pool_yield.reply_tokens({"output": "Let's think.  ", "reply_prefix": "Let's think."}, Words()) == 0
