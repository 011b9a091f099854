"""Generation pipeline throughput against (a) the same work one prompt per call (the authors'
pattern) and (b) plain batched generation of exactly the same prompts.

    python benchmarks/bench_gen.py [--questions 32] [--dtype float32] [--batch-size 32] [--engine hf] [--device cpu]

The pipeline runs on the first N questions of the BIG-bench pool. Its prompts (trial 1, reflection,
retry) are then replayed (b) as three plain batched engine calls and (a) one prompt per call on
a sample of them; (a) is reported as tokens/s and extrapolated to the full workload. Greedy
throughout (reflection temperature 0) so all three produce the same tokens. Peak RSS is read
from the process at the end. Targets: pipeline >= 8x (a), >= 85% of (b).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time

from reflectevo_gen.config import GenConfig
from reflectevo_gen.pipeline import Engines, run
from reflectevo.chunk_store import read_records
from reflectevo_tasks.engine import Engine, EngineConfig, Sampling
from reflectevo_tasks.prompts import Prompt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--dtype", default="float32")  # bf16 is emulated (slow) on CPUs without AVX512-BF16/AMX
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--single-sample", type=int, default=12, help="prompts replayed one per call for (a)")
    ap.add_argument("--engine", default="hf", help="hf or vllm (a GPU)")
    ap.add_argument("--device", default=None, help="cpu (default), cuda, …: the hf engine's device")
    args = ap.parse_args()

    engine = Engine(EngineConfig(engine=args.engine, dtype=args.dtype, batch_size=args.batch_size, device=args.device))
    engine.generate([Prompt(({"role": "user", "content": "hi"},))], Sampling(max_new_tokens=4))  # warm-up
    out = tempfile.mkdtemp(prefix="bench-gen-")
    cfg = GenConfig(output=out, limit=args.questions, reflection_temperature=0.0, reflections_per_instruction=1,
                    instruction_ids="sample:2", trial_max_new_tokens=args.max_new_tokens,
                    reflection_max_new_tokens=args.max_new_tokens, chunk_size=10_000, batch_size=args.batch_size,
                    dtype=args.dtype, engine=args.engine, device=args.device)
    t0 = time.perf_counter()
    run(cfg, engines=Engines(engine, engine), show_progress=False)
    pipeline_s = time.perf_counter() - t0
    records = read_records(out)
    shutil.rmtree(out)

    stages: dict[str, list[tuple[Prompt, str]]] = {"trial": [], "reflection": [], "retry": []}
    seen_trial = set()
    for r in records:
        if r["question_id"] not in seen_trial:
            seen_trial.add(r["question_id"])
            stages["trial"].append((Prompt(tuple(r["trial1"]["messages"]), r["trial1"]["reply_prefix"]), r["trial1"]["output"]))
        if r["reflection"]:
            stages["reflection"].append((Prompt(tuple(r["reflection"]["messages"]), r["reflection"]["reply_prefix"]), r["reflection"]["output"]))
            stages["retry"].append((Prompt(tuple(r["retry"]["messages"]), r["retry"]["reply_prefix"]), r["retry"]["output"]))
    sampling = Sampling(max_new_tokens=args.max_new_tokens)

    def gen_tokens(pairs):
        return sum(engine.count_tokens(o[len(p.reply_prefix):]) for p, o in pairs)

    total_tokens = sum(gen_tokens(v) for v in stages.values())
    reflections = len(stages["reflection"])

    t0 = time.perf_counter()
    batched_tokens = 0
    for pairs in stages.values():
        outs = engine.generate([p for p, _ in pairs], sampling)
        batched_tokens += sum(engine.count_tokens(o[len(p.reply_prefix):]) for (p, _), o in zip(pairs, outs))
    batched_s = time.perf_counter() - t0

    everything = [pair for pairs in stages.values() for pair in pairs]
    total = len(everything)
    step = max(1, total // args.single_sample)
    sample = everything[::step][: args.single_sample]  # spread over the three stages
    single_engine_bs = engine.lm.batch_size
    t0 = time.perf_counter()
    single_tokens = 0
    for p, _ in sample:
        o = engine.generate([p], sampling)[0]
        single_tokens += engine.count_tokens(o[len(p.reply_prefix):])
    single_s = time.perf_counter() - t0
    single_tps = single_tokens / single_s

    result = {
        "questions": args.questions, "dtype": args.dtype, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "prompts": total, "reflections": reflections, "generated_tokens": total_tokens, "engine_batch_size": single_engine_bs,
        "pipeline_s": round(pipeline_s, 1), "pipeline_tokens_per_s": round(total_tokens / pipeline_s, 1),
        "pipeline_reflections_per_min": round(60 * reflections / pipeline_s, 1),
        "batched_s": round(batched_s, 1), "batched_tokens_per_s": round(batched_tokens / batched_s, 1),
        "one_per_call_sample_prompts": len(sample), "one_per_call_tokens_per_s": round(single_tps, 1),
        "one_per_call_extrapolated_s": round(total_tokens / single_tps, 1),
        "one_per_call_reflections_per_min": round(60 * reflections / (total_tokens / single_tps), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    result["speedup_vs_one_per_call"] = round(result["pipeline_tokens_per_s"] / single_tps, 2)
    result["share_of_plain_batched"] = round(result["pipeline_tokens_per_s"] / result["batched_tokens_per_s"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
