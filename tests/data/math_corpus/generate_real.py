"""Generate the real replies of the math corpus: trial-1 replies of the embedded model
(SmolLM2-135M-Instruct) on problems of the MATH test set, through the project's own engine.

Settings: the trial prompt of `reflectevo_tasks.prompts.trial_prompt` for a question of kind
math, greedy, float32, 384 new tokens. Problems are taken at a fixed stride through the 500 so
that every subject and level is met. Each finished batch is appended to `replies.jsonl`, so an
interrupted run resumes where it stopped.

Run from the repository root (slow: minutes per batch on a CPU):
    nice -n 10 python tests/data/math_corpus/generate_real.py [--stride 6] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from math_rows import MATH_FILE, load_problems  # noqa: E402

OUT = HERE / "replies.jsonl"
MAX_NEW_TOKENS = 384


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stride", type=int, default=6, help="take every N-th problem (default 6)")
    ap.add_argument("--batch", type=int, default=8, help="prompts per engine call (default 8)")
    args = ap.parse_args(argv)

    from reflectevo_tasks import answers as A
    from reflectevo_tasks import prompts
    from reflectevo_tasks.engine import Engine, EngineConfig, Sampling
    from reflectevo_tasks.questions import Question

    problems = load_problems()
    done = set()
    if OUT.exists():
        done = {json.loads(line)["index"] for line in OUT.read_text(encoding="utf-8").splitlines() if line.strip()}
    todo = [p for p in problems[::args.stride] if p["index"] not in done]
    if not todo:
        print(f"{OUT}: all {len(problems[::args.stride])} replies present")
        return
    engine = Engine(EngineConfig(dtype="float32", batch_size=args.batch))
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS)
    described = engine.describe()
    for start in range(0, len(todo), args.batch):
        part = todo[start:start + args.batch]
        qs = [Question(f"math/{p['index']}", "math", p["index"], p["problem"], p["gold"], A.MATH) for p in part]
        replies = engine.generate([prompts.trial_prompt(q) for q in qs], sampling)
        with OUT.open("a", encoding="utf-8") as f:
            for p, reply in zip(part, replies):
                f.write(json.dumps({
                    "index": p["index"], "source": f"{MATH_FILE} line={p['index'] + 1}", "turn": "trial1",
                    "model": described["model"], "model_revision": described["model_revision"],
                    "dtype": "float32", "max_new_tokens": MAX_NEW_TOKENS, "greedy": True,
                    "reply": reply,
                }, ensure_ascii=False) + "\n")
        print(f"{start + len(part)}/{len(todo)} replies written", flush=True)


if __name__ == "__main__":
    main()
