"""Where a reply starts going round in circles: the first point at which its last tokens are one block
repeated several times in a row.

About a third of the embedded model's replies never end on their own: they repeat a sentence or a
paragraph until whatever token cap is set, so a longer cap buys mostly more repetition. Ending a reply
once it has repeated itself would save that generation; `scripts/loop_guard_check.py` measures, on
stored replies, how much it would save and whether it would change any verdict.

The rule, on token ids: a loop completes at position t when ids[t - R*P : t] is R copies of one block
of P tokens, MIN_PERIOD <= P <= MAX_PERIOD (R = REPEATS). Equivalently the P tokens before each of the
last (R - 1) * P positions are the same tokens again, which is what the scan counts, one pass per
period.
"""

from __future__ import annotations

import numpy as np

# Chosen on stored replies (scripts/loop_guard_check.py; docs/results.md gives the figures): with blocks
# of 4+ tokens repeated 3 times the rule also cut replies that left the loop and went on to answer
# (a list of options each "is incorrect because ...", then the answer); blocks of 16+ tokens written 4
# times in a row changed no verdict there, and still cut most of the tokens spent in loops.
MIN_PERIOD = 16
MAX_PERIOD = 256
REPEATS = 4


def loop_end(ids, min_period: int = MIN_PERIOD, max_period: int = MAX_PERIOD, repeats: int = REPEATS) -> int | None:
    """The smallest t at which ids[:t] ends in `repeats` copies of one block of min_period..max_period
    tokens, or None when the sequence never does."""
    a = np.asarray(ids, dtype=np.int64)
    n = len(a)
    best = None
    for p in range(min_period, min(max_period, n // repeats) + 1):
        need = (repeats - 1) * p  # positions in a row equal to the token p before them
        same = a[p:] == a[:-p]  # same[i]: a[i + p] == a[i]
        if same.sum() < need:
            continue
        # length of the run of equal positions ending at each index
        idx = np.arange(len(same))
        breaks = np.where(~same, idx, -1)
        last_break = np.maximum.accumulate(breaks)
        run = idx - last_break
        hits = np.nonzero(run >= need)[0]
        if len(hits):
            t = int(hits[0]) + p + 1  # same[i] covers a[i + p]: the run ends at token i + p
            best = t if best is None else min(best, t)
    return best


class LoopWatch:
    """The same rule, one token at a time (for a generation loop): `push(token)` says whether the
    sequence pushed so far has just completed a loop."""

    def __init__(self, min_period: int = MIN_PERIOD, max_period: int = MAX_PERIOD, repeats: int = REPEATS):
        self.min_period, self.max_period, self.repeats = min_period, max_period, repeats
        self.ids: list[int] = []
        self.runs = np.zeros(max_period + 1, dtype=np.int64)  # runs[p]: trailing positions equal to p back
        self.periods = np.arange(max_period + 1)

    def push(self, token: int) -> bool:
        self.ids.append(int(token))
        n = len(self.ids)
        ids = np.asarray(self.ids[-(self.max_period + 1):], dtype=np.int64)
        back = np.full(self.max_period + 1, -1, dtype=np.int64)
        reach = min(self.max_period, n - 1)
        back[1:reach + 1] = ids[-2::-1][:reach]  # back[p] = the token p positions before this one
        equal = back == token
        equal[0] = False
        self.runs = np.where(equal, self.runs + 1, 0)
        p = self.periods[self.min_period:]
        done = (self.runs[self.min_period:] >= (self.repeats - 1) * p) & (n >= self.repeats * p)
        return bool(done.any())
