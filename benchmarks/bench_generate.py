"""Engine throughput on the embedded model: generated tokens/s at batch 1, 8, 32 in fp32 and bf16,
and peak RSS, through our Engine (lm-eval's `hf` or `vllm` model underneath).

Prompts are BBH zero-shot CoT trial prompts (greedy). Batch 1 uses 8 prompts, batch 8 and 32 use
two full batches. hf: each setting runs in a fresh subprocess so its peak RSS is its own. vllm: one
subprocess per dtype runs every batch size on one engine (a start costs ~50 s on CPU); the batch
size of lm-eval's vllm model is set before each setting, so lm-eval cuts the same batches it cuts
for hf, and vLLM's prefix cache is emptied so no setting reuses another's prefill. vLLM's engine
core is a child process: its memory is not in the peak RSS printed.

    REFLECTEVO_BBH_DIR=../shared/data/bbh python benchmarks/bench_generate.py [--engine hf,vllm] [--max-new-tokens 128]

Every engine must be importable by this interpreter (vllm and hf share a venv) or be given its own
with --python ENGINE=PATH. Prints the CPU, a JSON line per setting and a markdown table for
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import Timer, cpu_description, loadavg, vllm_scheduler  # noqa: E402

# vLLM logs to stdout too: rows are marked so the parent finds them among its lines
ROW_MARK = "BENCH-ROW "
SETTINGS = [(dtype, b) for dtype in ("float32", "bfloat16") for b in (1, 8, 32)]


def prompts_for(batch: int) -> int:
    # enough prompts for two full batches at 8 and 32; batch 1 gets 8 prompts (it is slow)
    return 8 if batch == 1 else 2 * batch


def trial_prompts(n: int) -> list:
    from reflectevo_tasks import bbh, prompts

    # round-robin over subtasks, so every setting sees the same mix of prompt lengths from its first item on
    per_task = [bbh.load_subtask(s, limit=3) for s in bbh.SUBTASKS]
    qs = [qs[i] for i in range(3) for qs in per_task][:n]
    return [prompts.trial_prompt(q) for q in qs]


def measure(engine, engine_name: str, dtype: str, batch: int, max_new: int) -> dict:
    """One setting on a built engine: the first prompts_for(batch) trial prompts in one call."""
    from reflectevo_tasks.engine import Sampling

    plist = trial_prompts(prompts_for(batch))
    if engine_name == "vllm":
        engine.lm.batch_size = batch  # lm-eval's vllm model cuts each call into batches of this size
        engine.lm.model.reset_prefix_cache()
    load_before = loadavg()
    with Timer() as t:
        replies = engine.generate(plist, Sampling(max_new_tokens=max_new))
    tokens = sum(engine.count_tokens(r[len(p.reply_prefix):]) for r, p in zip(replies, plist))
    prompt_tokens = sum(engine.count_tokens(engine.render(p)) for p in plist)
    return {"engine": engine_name, "dtype": dtype, "batch": batch, "prompts": len(plist), "max_new_tokens": max_new,
            "prompt_tokens": prompt_tokens, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "generated_tokens": tokens, "wall_s": round(t.seconds, 2), "tokens_per_s": round(tokens / t.seconds, 1),
            "load_before": load_before, "load_after": loadavg(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_settings(engine_name: str, dtype: str, batches: list[int], max_new: int) -> list[dict]:
    """Build one engine for these batch sizes, warm it up, and measure each."""
    from reflectevo_tasks.engine import Engine, EngineConfig, Sampling

    with Timer() as start:
        engine = Engine(EngineConfig(engine=engine_name, batch_size=max(batches), dtype=dtype))
    engine.generate(trial_prompts(1), Sampling(max_new_tokens=8))  # warm-up
    extra = {"engine_start_s": round(start.seconds, 1)}
    if engine_name == "vllm":
        extra["vllm_scheduler"] = vllm_scheduler(engine.lm)
    return [{**measure(engine, engine_name, dtype, b, max_new), **extra} for b in batches]


def jobs(engines: list[str], settings: list[tuple[str, int]]) -> list[tuple[str, str, list[int]]]:
    """(engine, dtype, batches) per subprocess: one per setting for hf, one per dtype for vllm."""
    out = []
    for name in engines:
        if name == "vllm":
            for dtype in dict.fromkeys(d for d, _ in settings):
                out.append((name, dtype, [b for d, b in settings if d == dtype]))
        else:
            out.extend((name, d, [b]) for d, b in settings)
    return out


def parse_settings(text: str | None) -> list[tuple[str, int]]:
    if not text:
        return SETTINGS
    try:
        return [(d, int(b)) for d, b in (x.split(":") for x in text.split(","))]
    except ValueError:
        raise SystemExit(f"--settings: expected DTYPE:BATCH,…, got {text!r}") from None


def parse_pythons(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not os.path.isfile(path):
            raise SystemExit(f"--python: expected ENGINE=PATH to an existing interpreter, got {item!r}")
        out[name] = path
    return out


def print_table(rows: list[dict]) -> None:
    base = {(r["engine"], r["dtype"]): r["tokens_per_s"] for r in rows if r["batch"] == 1}
    hf = {(r["dtype"], r["batch"]): r["tokens_per_s"] for r in rows if r["engine"] == "hf"}
    print("\n| engine | dtype | batch | prompts | prompt tokens | generated tokens | wall s | tokens/s | vs batch 1 (same engine, dtype) | vs hf (same dtype, batch) | peak RSS MB | load before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b1 = base.get((r["engine"], r["dtype"]))
        h = hf.get((r["dtype"], r["batch"])) if r["engine"] != "hf" else None
        vs_b1 = f"{r['tokens_per_s'] / b1:.1f}x" if b1 else "–"
        vs_hf = f"{r['tokens_per_s'] / h:.1f}x" if h else "–"
        print(f"| {r['engine']} | {r['dtype']} | {r['batch']} | {r['prompts']} | {r['prompt_tokens']} | {r['generated_tokens']} | "
              f"{r['wall_s']} | {r['tokens_per_s']} | {vs_b1} | {vs_hf} | {r['peak_rss_mb']} | {r['load_before']} → {r['load_after']} |")
    for name in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == name]
        ones = [r["tokens_per_s"] for r in mine if r["batch"] == 1]
        bigs = [r for r in mine if r["batch"] == 32]
        if ones and bigs:
            best32 = max(bigs, key=lambda r: r["tokens_per_s"])
            print(f"\n{name}: best batch-32 setting {best32['dtype']} at {best32['tokens_per_s']} tokens/s = "
                  f"{best32['tokens_per_s'] / max(ones):.1f}x the best batch-1 throughput ({max(ones)} tokens/s); target >= 8x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, default=256, help="the project's trial-1 length by default")
    ap.add_argument("--settings", default=None, metavar="DTYPE:BATCH,…",
                    help="subset to run, e.g. float32:1,float32:32 (default: fp32 and bf16 at batch 1, 8, 32)")
    ap.add_argument("--engine", default="hf", help="hf, vllm, or both: hf,vllm")
    ap.add_argument("--python", action="append", default=[], metavar="ENGINE=PATH",
                    help="interpreter for an engine's subprocesses, e.g. vllm=.venv-vllm/bin/python")
    ap.add_argument("--one", nargs=3, metavar=("ENGINE", "DTYPE", "BATCHES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        for row in run_settings(args.one[0], args.one[1], [int(b) for b in args.one[2].split(",")], args.max_new_tokens):
            print(ROW_MARK + json.dumps(row), flush=True)
        return
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    if not engines or set(engines) - {"hf", "vllm"}:
        ap.error(f"--engine: hf, vllm or hf,vllm, got {args.engine!r}")
    pythons = parse_pythons(args.python)
    print(json.dumps(cpu_description()), flush=True)
    rows = []
    for name, dtype, batches in jobs(engines, parse_settings(args.settings)):
        cmd = [pythons.get(name, sys.executable), __file__, "--one", name, dtype, ",".join(map(str, batches)),
               "--max-new-tokens", str(args.max_new_tokens)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        found = [line[len(ROW_MARK):] for line in out.stdout.splitlines() if line.startswith(ROW_MARK)]
        if out.returncode != 0 or len(found) != len(batches):
            sys.exit(f"{' '.join(cmd)}: exit {out.returncode}, {len(found)} of {len(batches)} rows\n{out.stderr[-3000:]}")
        for line in found:
            rows.append(json.loads(line))
            print(line, flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
