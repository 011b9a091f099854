"""Engine throughput on the embedded model: generated tokens/s at batch 1, 8, 32 in fp32 and bf16,
and peak RSS, through our Engine (lm-eval's `hf` model underneath).

Each setting runs in a fresh subprocess so its peak RSS is its own. Prompts are BBH zero-shot CoT
trial prompts (greedy). Batch 1 uses 8 prompts, batch 8 and 32 use two full batches.

    REFLECTEVO_BBH_DIR=../shared/data/bbh python benchmarks/bench_generate.py [--max-new-tokens 128]

Prints a JSON line per setting and a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SETTINGS = [(dtype, b) for dtype in ("float32", "bfloat16") for b in (1, 8, 32)]


def cpu_description() -> dict:
    """CPU model and whether it computes bf16 natively (without it, torch emulates bf16 matmuls)."""
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(),
            "native_bf16": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16")) or "none"}


def prompts_for(batch: int) -> int:
    # enough prompts for two full batches at 8 and 32; batch 1 gets 8 prompts (it is slow)
    return 8 if batch == 1 else 2 * batch


def run_one(dtype: str, batch: int, max_new: int) -> dict:
    from reflectevo_tasks import bbh, prompts
    from reflectevo_tasks.engine import Engine, EngineConfig, Sampling

    # round-robin over subtasks, so every setting sees the same mix of prompt lengths from its first item on
    per_task = [bbh.load_subtask(s, limit=3) for s in bbh.SUBTASKS]
    qs = [qs[i] for i in range(3) for qs in per_task][: prompts_for(batch)]
    engine = Engine(EngineConfig(batch_size=batch, dtype=dtype))
    plist = [prompts.trial_prompt(q) for q in qs]
    engine.generate(plist[:1], Sampling(max_new_tokens=8))  # warm-up
    t0 = time.perf_counter()
    replies = engine.generate(plist, Sampling(max_new_tokens=max_new))
    wall = time.perf_counter() - t0
    tokens = sum(engine.count_tokens(r[len(p.reply_prefix):]) for r, p in zip(replies, plist))
    prompt_tokens = sum(engine.count_tokens(engine.render(p)) for p in plist)
    return {"dtype": dtype, "batch": batch, "prompts": len(plist), "max_new_tokens": max_new,
            "prompt_tokens": prompt_tokens, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "generated_tokens": tokens, "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, default=256, help="the project's trial-1 length by default")
    ap.add_argument("--settings", default=None, metavar="DTYPE:BATCH,…",
                    help="subset to run, e.g. float32:1,float32:32 (default: fp32 and bf16 at batch 1, 8, 32)")
    ap.add_argument("--one", nargs=2, metavar=("DTYPE", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.max_new_tokens)))
        return
    settings = [(d, int(b)) for d, b in (x.split(":") for x in args.settings.split(","))] if args.settings else SETTINGS
    print(json.dumps(cpu_description()), flush=True)
    rows = []
    for dtype, batch in settings:
        out = subprocess.run([sys.executable, __file__, "--one", dtype, str(batch), "--max-new-tokens", str(args.max_new_tokens)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr[-3000:])
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = {r["dtype"]: r["tokens_per_s"] for r in rows if r["batch"] == 1}
    if not base or not any(r["batch"] == 32 for r in rows):
        return
    best32 = max((r for r in rows if r["batch"] == 32), key=lambda r: r["tokens_per_s"])
    print("\n| dtype | batch | prompts | generated tokens | wall s | tokens/s | vs batch 1 (same dtype) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['batch']} | {r['prompts']} | {r['generated_tokens']} | {r['wall_s']} | "
              f"{r['tokens_per_s']} | {(str(round(r['tokens_per_s'] / base[r['dtype']], 1)) + 'x') if r['dtype'] in base else '–'} | {r['peak_rss_mb']} |")
    best1 = max(base.values())
    print(f"\nbest batch-32 setting: {best32['dtype']} at {best32['tokens_per_s']} tokens/s = "
          f"{best32['tokens_per_s'] / best1:.1f}x the best batch-1 throughput ({best1} tokens/s); target >= 8x")


if __name__ == "__main__":
    main()
