"""Generation pipeline throughput against (a) the same work one prompt per call (the authors'
pattern) and (b) plain batched generation of exactly the same prompts, on one engine (hf or vllm).

    python benchmarks/bench_gen.py [--questions 32] [--dtype float32] [--batch-size 32] [--engine hf|vllm]
                                   [--parts pipeline,batched,single] [--profile] [--save F.json] [--against G.json]

The pipeline runs on the first N questions of BBH's generation pool (`bbh-pool`; runs saved before
2026-12-06 used the BIG-bench pool and are not compared with these). Its prompts (trial 1, reflection,
retry) are then replayed (b) as three plain batched engine calls and (a) one prompt per call on
a sample of them; (a) is reported as tokens/s and extrapolated to the full workload. Greedy
throughout (reflection temperature 0) so all three produce the same tokens. Peak RSS is read
from the process at the end. Targets: pipeline >= 8x (a), >= 85% of (b); on vllm, pipeline
reflections/min >= 2x the hf pipeline's (`--against` an hf run saved with `--save`).

Engine start (model load; ~50 s for vLLM on CPU) is timed apart and left out of every rate, as the
one-prompt-per-call pattern pays it too. vLLM keeps a prefix cache: it is emptied before each part,
so that a replay never reuses what the pipeline computed. `--profile` splits each pass of (b) and
each prompt of (a) into prefill (the same prompts with one new token) and the rest (decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import Timer, cpu_description, loadavg, vllm_scheduler  # noqa: E402

from reflectevo.chunk_store import read_records  # noqa: E402
from reflectevo_gen.config import GenConfig  # noqa: E402
from reflectevo_gen.pipeline import Engines, run  # noqa: E402
from reflectevo_tasks.engine import Engine, EngineConfig, Sampling  # noqa: E402
from reflectevo_tasks.prompts import Prompt  # noqa: E402

STAGES = ("trial", "reflection", "retry")
PARTS = ("pipeline", "batched", "single")
# what a saved run must share with another for their reflections/min to be compared
SAME_WORKLOAD = ("source", "questions", "max_new_tokens", "batch_size", "dtype", "reflections")


class TimedEngine:
    """The engine, with the wall time and size of every generate call kept: the pipeline makes one
    call per pass, so this is its per-pass wall without touching pipeline code."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self.calls: list[dict] = []

    def generate(self, prompts, sampling, **kw):
        with Timer() as t:
            out = self._engine.generate(prompts, sampling, **kw)
        self.calls.append({"prompts": len(prompts), "wall_s": round(t.seconds, 2)})
        return out

    def __getattr__(self, name):
        return getattr(self._engine, name)


def reset_cache(engine: Engine) -> None:
    """Empty vLLM's prefix cache (a no-op for other engines), so each part computes its own prefill."""
    llm = getattr(engine.lm, "model", None)
    if engine.cfg.engine == "vllm" and hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()


def stages_of(records: list[dict]) -> dict[str, list[tuple[Prompt, str]]]:
    """(prompt, reply) pairs of each pass, read back from the pipeline's records."""
    stages: dict[str, list[tuple[Prompt, str]]] = {s: [] for s in STAGES}
    seen_trial = set()
    for r in records:
        if r["question_id"] not in seen_trial:
            seen_trial.add(r["question_id"])
            stages["trial"].append((Prompt(tuple(r["trial1"]["messages"]), r["trial1"]["reply_prefix"]), r["trial1"]["output"]))
        if r["reflection"]:
            for turn in ("reflection", "retry"):
                stages[turn].append((Prompt(tuple(r[turn]["messages"]), r[turn]["reply_prefix"]), r[turn]["output"]))
    return stages


def reply_tokens(engine: Engine, prompt: Prompt, reply: str) -> int:
    return engine.count_tokens(reply[len(prompt.reply_prefix):])


def stage_shape(engine: Engine, pairs: list[tuple[Prompt, str]], cap: int) -> dict:
    """Prompt and reply sizes of one pass: prefill work, decode work, and the longest reply (a batch
    without continuous batching decodes until that one ends)."""
    replies = [reply_tokens(engine, p, o) for p, o in pairs]
    prompt_tokens = [engine.count_tokens(engine.render(p)) for p, _ in pairs]
    return {"prompts": len(pairs), "prompt_tokens": sum(prompt_tokens), "max_prompt_tokens": max(prompt_tokens, default=0),
            "generated_tokens": sum(replies), "mean_reply": round(sum(replies) / max(1, len(replies)), 1),
            "max_reply": max(replies, default=0), "replies_at_cap": sum(n >= cap for n in replies)}


def run_pipeline(engine: Engine, args, cap: int) -> tuple[float, list[dict], list[dict]]:
    """The gen pipeline on the first N questions: wall seconds, records, per-pass calls."""
    timed = TimedEngine(engine)
    out = tempfile.mkdtemp(prefix="bench-gen-")
    cfg = GenConfig(output=out, limit=args.questions, reflection_temperature=0.0, reflections_per_instruction=1,
                    instruction_ids="sample:2", trial_max_new_tokens=cap, reflection_max_new_tokens=cap,
                    chunk_size=10_000, batch_size=args.batch_size, dtype=args.dtype, engine=args.engine, device=args.device)
    reset_cache(engine)
    try:
        with Timer() as t:
            run(cfg, engines=Engines(timed, timed), show_progress=False)
        records = read_records(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return t.seconds, records, timed.calls


def run_batched(engine: Engine, stages, sampling: Sampling) -> dict:
    """(b): each pass's prompts as one plain generate call."""
    reset_cache(engine)
    per_stage, tokens = {}, 0
    for name, pairs in stages.items():
        with Timer() as t:
            outs = engine.generate([p for p, _ in pairs], sampling)
        per_stage[name] = round(t.seconds, 2)
        tokens += sum(reply_tokens(engine, p, o) for (p, _), o in zip(pairs, outs))
    return {"wall_s": sum(per_stage.values()), "per_stage_s": per_stage, "tokens": tokens}


def one_per_call_sample(stages, size: int) -> list[tuple[str, Prompt]]:
    """`size` prompts spread evenly over the three passes, in pipeline order."""
    everything = [(name, p) for name, pairs in stages.items() for p, _ in pairs]
    step = max(1, len(everything) // size)
    return everything[::step][:size]


def run_single(engine: Engine, sample, sampling: Sampling) -> dict:
    """(a): the sample one prompt per call; seconds and tokens per pass, to extrapolate pass by pass."""
    reset_cache(engine)
    by_stage: dict[str, dict] = {}
    for name, p in sample:
        with Timer() as t:
            o = engine.generate([p], sampling)[0]
        row = by_stage.setdefault(name, {"prompts": 0, "wall_s": 0.0, "tokens": 0})
        row["prompts"] += 1
        row["wall_s"] += t.seconds
        row["tokens"] += reply_tokens(engine, p, o)
    return by_stage


def prefill_profile(engine: Engine, stages, sample) -> dict:
    """Seconds to prefill each pass batched and the (a) sample one per call: the same prompts with a
    single new token (prefix cache emptied first), so the rest of each part's wall is decoding."""
    one = Sampling(max_new_tokens=1)
    reset_cache(engine)
    batched = {}
    for name, pairs in stages.items():
        with Timer() as t:
            engine.generate([p for p, _ in pairs], one)
        batched[name] = round(t.seconds, 2)
    reset_cache(engine)
    with Timer() as t:
        for _, p in sample:
            engine.generate([p], one)
    return {"batched_prefill_s": batched, "one_per_call_prefill_s": round(t.seconds, 2)}


def split_prefill_decode(result: dict, prefill: dict) -> dict:
    """Prefill and decode seconds of (b) and of the (a) sample, and what they bound: prefill costs
    about as much per token one prompt per call as batched, so however cheap batched decoding gets,
    the speed-up over one prompt per call cannot pass (one-per-call seconds) / (batched prefill seconds)."""
    out: dict = {}
    prompt_tokens = sum(p["prompt_tokens"] for p in result["passes"].values())
    if "batched_s" in result:
        pre = sum(prefill["batched_prefill_s"].values())
        out["batched"] = {"prefill_s": round(pre, 1), "decode_s": round(result["batched_s"] - pre, 1),
                          "prefill_prompt_tokens_per_s": round(prompt_tokens / pre, 1),
                          "decode_tokens_per_s": round(result["generated_tokens"] / max(1e-9, result["batched_s"] - pre), 1)}
    if "one_per_call_sample_s" in result:
        pre = prefill["one_per_call_prefill_s"]
        out["one_per_call_sample"] = {"prefill_s": round(pre, 1), "decode_s": round(result["one_per_call_sample_s"] - pre, 1),
                                      "prefill_share": round(pre / result["one_per_call_sample_s"], 3)}
    if "batched" in out and "one_per_call_extrapolated_s" in result:
        out["speedup_ceiling_if_batched_decoding_were_free"] = round(
            result["one_per_call_extrapolated_s"] / out["batched"]["prefill_s"], 2)
    return out


def extrapolate_single(by_stage: dict, shapes: dict) -> float:
    """Seconds the whole workload would take one prompt per call: each pass's measured seconds per
    generated token times that pass's generated tokens (passes differ in prompt length)."""
    total = 0.0
    for name, row in by_stage.items():
        total += row["wall_s"] / max(1, row["tokens"]) * shapes[name]["generated_tokens"]
    missing = [n for n in STAGES if n not in by_stage and shapes[n]["prompts"]]
    if missing:
        raise SystemExit(f"--single-sample too small: no prompt of pass(es) {', '.join(missing)} was sampled")
    return total


def compare(result: dict, path: str) -> dict:
    """This run's reflections/min against a saved run of the same workload (the hf pipeline)."""
    with open(path, encoding="utf-8") as fh:
        other = json.load(fh)
    differ = [k for k in SAME_WORKLOAD if other.get(k) != result.get(k)]
    if differ:
        raise SystemExit(f"--against {path}: not the same workload ({', '.join(f'{k}: {other.get(k)} vs {result.get(k)}' for k in differ)})")
    return {"against": path, "against_engine": other["engine"],
            "against_reflections_per_min": other["pipeline_reflections_per_min"],
            "reflections_per_min_ratio": round(result["pipeline_reflections_per_min"] / other["pipeline_reflections_per_min"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--dtype", default="float32")  # bf16 is emulated (slow) on CPUs without AVX512-BF16/AMX
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--single-sample", type=int, default=12, help="prompts replayed one per call for (a)")
    ap.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    ap.add_argument("--device", default=None, help="cpu (default), cuda, …: the hf engine's device")
    ap.add_argument("--parts", default=",".join(PARTS), help="which of pipeline,batched,single to run")
    ap.add_argument("--profile", action="store_true", help="also time prefill alone for (a) and (b)")
    ap.add_argument("--save", help="write the result JSON here too")
    ap.add_argument("--against", help="a saved result of the same workload to compare reflections/min with")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "pipeline" not in parts or set(parts) - set(PARTS):
        ap.error(f"--parts: a subset of {','.join(PARTS)} that includes pipeline, got {args.parts!r}")

    load_before = loadavg()
    with Timer() as start:
        engine = Engine(EngineConfig(engine=args.engine, dtype=args.dtype, batch_size=args.batch_size, device=args.device))
    engine.generate([Prompt(({"role": "user", "content": "hi"},))], Sampling(max_new_tokens=4))  # warm-up
    cap = args.max_new_tokens
    sampling = Sampling(max_new_tokens=cap)

    pipeline_s, records, calls = run_pipeline(engine, args, cap)
    stages = stages_of(records)
    shapes = {name: stage_shape(engine, pairs, cap) for name, pairs in stages.items()}
    total_tokens = sum(s["generated_tokens"] for s in shapes.values())
    reflections = shapes["reflection"]["prompts"]
    result = {
        "engine": args.engine, "source": GenConfig.source, "questions": args.questions, "dtype": args.dtype,
        "batch_size": args.batch_size, "max_new_tokens": cap, "machine": cpu_description(), "load_before": load_before,
        "vllm_scheduler": vllm_scheduler(engine.lm) if args.engine == "vllm" else None,
        "engine_start_s": round(start.seconds, 1),
        "prompts": sum(s["prompts"] for s in shapes.values()), "reflections": reflections, "generated_tokens": total_tokens,
        "passes": {name: {**shapes[name], "pipeline_call": call} for name, call in zip(STAGES, calls)},
        "pipeline_s": round(pipeline_s, 1), "pipeline_tokens_per_s": round(total_tokens / pipeline_s, 1),
        "pipeline_reflections_per_min": round(60 * reflections / pipeline_s, 1),
        "pipeline_reflections_per_min_with_start": round(60 * reflections / (pipeline_s + start.seconds), 1),
    }
    if "batched" in parts:
        b = run_batched(engine, stages, sampling)
        result.update(batched_s=round(b["wall_s"], 1), batched_per_pass_s=b["per_stage_s"],
                      batched_tokens_per_s=round(b["tokens"] / b["wall_s"], 1),
                      share_of_plain_batched=round(result["pipeline_tokens_per_s"] / (b["tokens"] / b["wall_s"]), 3))
    sample = one_per_call_sample(stages, args.single_sample)
    if "single" in parts:
        by_stage = run_single(engine, sample, sampling)
        single_s = sum(r["wall_s"] for r in by_stage.values())
        single_tps = sum(r["tokens"] for r in by_stage.values()) / single_s
        extrap = extrapolate_single(by_stage, shapes)
        result.update(one_per_call_sample_prompts=len(sample), one_per_call_sample_s=round(single_s, 1),
                      one_per_call_per_pass={n: {**r, "wall_s": round(r["wall_s"], 2)} for n, r in by_stage.items()},
                      one_per_call_tokens_per_s=round(single_tps, 1),
                      one_per_call_extrapolated_s=round(extrap, 1),
                      one_per_call_reflections_per_min=round(60 * reflections / extrap, 1),
                      speedup_vs_one_per_call=round(result["pipeline_tokens_per_s"] / single_tps, 2),
                      speedup_vs_one_per_call_by_pass=round(extrap / pipeline_s, 2))
    if args.profile:
        prefill = prefill_profile(engine, stages, sample)
        result["profile"] = {**prefill, **split_prefill_decode(result, prefill)}
    result["load_after"] = loadavg()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.against:
        result.update(compare(result, args.against))
    text = json.dumps(result, indent=1)
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
