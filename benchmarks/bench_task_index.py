"""How long lm-eval's TaskManager() takes, with and without our task-index cache
(harness_plugins/task_index_cache.py): what every `lm_eval` command pays before it looks at --tasks.

    .venv/bin/python benchmarks/bench_task_index.py [--runs 3]

Each measurement is a fresh interpreter (as each `lm_eval` command is) that imports lm-eval and builds
one TaskManager() with its defaults (lm-eval's ~14,000 task files and ours): `parsed` with the cache
switched off, `first` with an empty cache folder (it parses, then writes the cache), `cached` after that.
Prints JSON: seconds per run and the median of each, with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import time
from lm_eval.tasks import TaskManager
from lm_eval.tasks._index import TaskIndex
start = time.perf_counter()
tm = TaskManager()
seconds = time.perf_counter() - start
last = getattr(TaskIndex.build, "last", None)
import json
print(json.dumps({"seconds": seconds, "tasks": len(tm.all_tasks), "parsed": last.parsed if last else None,
                  "reused": last.reused if last else None}))
"""


def one(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from bench_common import cpu_description, loadavg

    load_before = loadavg()
    results: dict[str, list[dict]] = {"parsed": [], "first": [], "cached": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "REFLECTEVO_CACHE": cache}
            results["parsed"].append(one({**env, "REFLECTEVO_LM_EVAL_INDEX_CACHE": "0"}))
            results["first"].append(one(env))
            results["cached"].append(one(env))
    report = {name: {"seconds": [round(r["seconds"], 2) for r in runs],
                     "median": round(statistics.median(r["seconds"] for r in runs), 2),
                     "tasks": runs[0]["tasks"], "parsed": runs[0]["parsed"], "reused": runs[0]["reused"]}
              for name, runs in results.items()}
    print(json.dumps({"machine": cpu_description(), "load_before": load_before, "load_after": loadavg(),
                      "runs": args.runs, **report}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
