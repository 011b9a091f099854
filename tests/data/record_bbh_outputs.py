"""Record real replies of the embedded model to BBH items, for the scorer agreement test.

Run from the repository root:  REFLECTEVO_BBH_DIR=../shared/data/bbh python tests/data/record_bbh_outputs.py
It writes tests/data/bbh_outputs.jsonl (subtask, index, input, target, reply). Items are the
first PER_SUBTASK of every subtask; replies are greedy zero-shot CoT with our trial prompt.

The labelled scoring corpus (tests/data/scoring_corpus) holds hand labels for replies of this file:
after recording again, its build_real.py refuses the labels whose reply changed until they are
labelled again.
"""

import json
import sys
from pathlib import Path

from reflectevo_tasks import bbh, prompts
from reflectevo_tasks.engine import Engine, Sampling

PER_SUBTASK = int(sys.argv[1]) if len(sys.argv) > 1 else 8
OUT = Path(__file__).with_name("bbh_outputs.jsonl")


def main() -> None:
    questions = bbh.load_all(limit_per_subtask=PER_SUBTASK)
    engine = Engine(batch_size=16)
    replies = engine.generate([prompts.trial_prompt(q) for q in questions], Sampling(max_new_tokens=256))
    tmp = OUT.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for q, r in zip(questions, replies):
            f.write(json.dumps({"subtask": q.source.split("/")[1], "index": q.index, "input": q.question,
                                "target": q.answer, "reply": r}) + "\n")
    tmp.replace(OUT)
    print(f"wrote {len(questions)} replies to {OUT}")


if __name__ == "__main__":
    main()
