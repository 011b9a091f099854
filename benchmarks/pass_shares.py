"""How a `reflectevo gen run` spent its time per pass (trial 1, reflections, retries), read from its
progress bar in a log (the bar names the pass a chunk is in and tqdm stamps each redraw with the
elapsed time). Used to size what `--trial1_from` saves a second round: the trial-1 pass.

    python benchmarks/pass_shares.py runs/test-split-pool-gen.log [more logs...]

A pass's time runs from the redraw that names it to the next redraw that names another; a log that
was cut off, or a run restarted within one log, loses the pass it was in. Several logs (one per
resumed session) are summed.
"""

from __future__ import annotations

import re
import sys

PASSES = ("trial 1", "reflections", "retries")
# "[01:02:03<..." or "[02:34<...", optionally followed by "now=<pass>: <count>"
_REDRAW = re.compile(r"\[(\d+(?::\d+){1,2})<[^\]]*?(?:now=(trial 1|reflections|retries):[^\]]*)?\]")


def seconds(stamp: str) -> int:
    total = 0
    for part in stamp.split(":"):
        total = total * 60 + int(part)
    return total


def pass_seconds(text: str) -> dict[str, int]:
    spent = dict.fromkeys(PASSES, 0)
    current, since = None, 0
    for m in _REDRAW.finditer(text):
        at, name = seconds(m.group(1)), m.group(2) or "between chunks"
        if at < since:  # the clock restarted: a new process (a resumed run) began its own bar
            current, since = name, at
        elif name != current:
            if current in spent:
                spent[current] += at - since
            current, since = name, at
    return spent


def main(paths: list[str]) -> None:
    spent = dict.fromkeys(PASSES, 0)
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for name, s in pass_seconds(fh.read()).items():
                spent[name] += s
    total = sum(spent.values()) or 1
    for name in PASSES:
        print(f"{name:12s} {spent[name]:7d} s  {100 * spent[name] / total:5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
