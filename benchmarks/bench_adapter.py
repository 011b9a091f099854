"""What a LoRA adapter costs an engine, served as LoRA or merged into the weights (merge_adapter).

The same BBH trial prompts (greedy) go through three engines built one after another in this
process: the plain model, the model with the adapter as LoRA, and the model with the adapter merged
(reflectevo_tasks.merged_adapter, into a fresh cache folder so the merge itself is timed). Reported
per engine: start seconds, generation wall seconds, generated tokens, tokens/s and seconds per
prompt (the merged engine's start includes the merge); and how many replies the merged engine shares
character for character with the LoRA one (float rounding may part them at near ties).

    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv-vllm/bin/python benchmarks/bench_adapter.py \
        --adapter runs/measured/train/one_stage [--engine vllm] [--prompts 64] [--max-new-tokens 128]

Prints the CPU, one JSON object and a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import Timer, cpu_description, loadavg  # noqa: E402
from bench_generate import trial_prompts  # noqa: E402


def build(engine_name: str, dtype: str, batch: int, adapter: str | None, merge: bool):
    from reflectevo_tasks.engine import Engine, EngineConfig

    model_args = {"enforce_eager": True, "max_model_len": 4096} if engine_name == "vllm" else {}
    with Timer() as t:
        engine = Engine(EngineConfig(engine=engine_name, dtype=dtype, batch_size=batch, peft=adapter,
                                     merge_adapter=merge, model_args=model_args))
    return engine, t.seconds


def close(engine) -> None:
    """End a vLLM engine's processes: they outlive a deleted engine, and an idle worker still takes
    part of a core, which the next engine's timing would pay for."""
    core = getattr(getattr(getattr(engine.lm, "model", None), "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()


def generate(engine, prompts, max_new: int) -> tuple[list[str], dict]:
    from reflectevo_tasks.engine import Sampling

    load_before = loadavg()
    with Timer() as t:
        replies = engine.generate(prompts, Sampling(max_new_tokens=max_new))
    tokens = sum(engine.count_tokens(r[len(p.reply_prefix):]) for p, r in zip(prompts, replies))
    return replies, {"wall_s": round(t.seconds, 2), "generated_tokens": tokens,
                     "tokens_per_s": round(tokens / t.seconds, 1), "s_per_prompt": round(t.seconds / len(prompts), 3),
                     "load_before": load_before, "load_after": loadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="a LoRA adapter folder on the embedded model")
    ap.add_argument("--engine", default="vllm", choices=("hf", "vllm"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    from reflectevo_tasks import merged_adapter

    cache = Path(tempfile.mkdtemp(prefix="bench-merge-"))
    merged_adapter.cache_root = lambda: cache  # time the merge, not a cached one
    print(json.dumps(cpu_description()), flush=True)
    prompts = trial_prompts(args.prompts)
    rows, replies = {}, {}
    for name, adapter, merge in (("plain", None, False), ("lora", args.adapter, False), ("merged", args.adapter, True)):
        engine, start_s = build(args.engine, args.dtype, args.batch_size, adapter, merge)
        replies[name], rows[name] = generate(engine, prompts, args.max_new_tokens)
        rows[name]["start_s"] = round(start_s, 1)  # includes the merge for `merged`
        close(engine)
    same = sum(a == b for a, b in zip(replies["lora"], replies["merged"]))
    changed = sum(a != b for a, b in zip(replies["plain"], replies["lora"]))
    result = {"engine": args.engine, "dtype": args.dtype, "batch_size": args.batch_size, "prompts": len(prompts),
              "max_new_tokens": args.max_new_tokens, "adapter": args.adapter, "cpu": cpu_description(),
              "rows": rows, "merged_equals_lora": same, "lora_differs_from_plain": changed,
              "lora_vs_merged_s_per_prompt": round(rows["lora"]["s_per_prompt"] / rows["merged"]["s_per_prompt"], 2)}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)
    print(f"\n| {args.engine}, {len(prompts)} BBH trial prompts, {args.dtype}, batch {args.batch_size}, "
          f"{args.max_new_tokens} new tokens | start s | wall s | tokens | tokens/s | s/prompt | load before→after |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['start_s']} | {r['wall_s']} | {r['generated_tokens']} | {r['tokens_per_s']} | "
              f"{r['s_per_prompt']} | {r['load_before']} → {r['load_after']} |")
    print(f"\nmerged = LoRA on {same}/{len(prompts)} replies; LoRA differs from plain on {changed}; "
          f"LoRA / merged seconds per prompt: {result['lora_vs_merged_s_per_prompt']}x")


if __name__ == "__main__":
    main()
