"""Cost of reflect-then-retry evaluation against plain BBH generation, on the same docs and model.

    REFLECTEVO_BBH_DIR=../shared/data/bbh python benchmarks/bench_eval.py \
        [--subtasks boolean_expressions,date_understanding,navigate,object_counting] [--limit 8] \
        [--batch-size 16] [--max-gen-toks 128] [--reflection-max-gen-toks 128] [--dtype float32] [--json out.json]

One lm-eval `hf` model (the embedded model unless --model says otherwise) is loaded once and used
twice, after a short warm-up:
  1. plain: lm-eval's bbh_cot_zeroshot prompt (its description + "Q: ...\\nA: Let's think step by
     step.", no chat template) and its generation settings, capped at --max-gen-toks, as one
     generate_until call over the docs (what `--model hf --tasks bbh_cot_zeroshot` sends);
  2. reflectevo: `simple_evaluate` of the reflectevo_bbh_<subtask> tasks (oracle mode) with the
     `reflectevo` model wrapped around the same inner model.
The inner model is wrapped in a counter, so the number of batched passes is measured, not assumed.
The reflectevo wall time is compared with the time predicted from its generated-token count at the
plain run's seconds-per-token; "within 15%" is |wall / predicted - 1| <= 0.15. Prompt tokens are
reported too: on CPU, prefill of the longer reflection and retry prompts is a real share of the
cost, which a prediction from generated tokens alone does not see, and a batch runs until its
longest reply ends, so early-stopping replies cost steps that produce no counted token. The time
spent outside the inner model's calls (`wrapper_overhead_s`) is what the wrapper itself adds.

Prints one JSON object and a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

DEFAULT_SUBTASKS = "boolean_expressions,date_understanding,navigate,object_counting"


class CountingLM:
    """Passes every call through to an lm-eval model and records each generate_until call."""

    def __init__(self, lm):
        self._lm = lm
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._lm, name)

    def generate_until(self, requests, disable_tqdm: bool = False):
        start = time.perf_counter()
        out = self._lm.generate_until(requests, disable_tqdm=disable_tqdm)
        self.calls.append({"requests": len(requests), "seconds": round(time.perf_counter() - start, 3)})
        return out


def builtin_prompt(subtask: str, text: str) -> str:
    """lm-eval's bbh_cot_zeroshot context for one doc (description + doc_to_text)."""
    import lm_eval
    import yaml

    path = Path(lm_eval.__file__).parent / "tasks" / "bbh" / "cot_zeroshot" / f"{subtask}.yaml"
    # the subtask file has `!function` filters we do not need here: read only the plain keys
    description = ""
    for line in path.read_text().splitlines():
        if line.startswith('"description":'):
            description = yaml.safe_load(line)["description"]
    return f"{description}Q: {text}\nA: Let's think step by step."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--subtasks", default=DEFAULT_SUBTASKS)
    ap.add_argument("--limit", type=int, default=8, help="docs per subtask")
    ap.add_argument("--batch-size", default="16")
    ap.add_argument("--max-gen-toks", type=int, default=128)
    ap.add_argument("--reflection-max-gen-toks", type=int, default=128)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the JSON result here")
    args = ap.parse_args(argv)

    from lm_eval import simple_evaluate
    from lm_eval.api.instance import Instance
    from lm_eval.tasks import TaskManager

    from harness_plugins.reflect_model import ReflectEvoLM
    from reflectevo_tasks import bbh
    from reflectevo_tasks.engine import Engine, EngineConfig, build_lm
    from reflectevo_tasks.lm_eval_tasks import TASK_DIR

    subtasks = [bbh.check_subtask(s.strip()) for s in args.subtasks.split(",") if s.strip()]
    cfg = EngineConfig(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)
    t0 = time.perf_counter()
    inner = CountingLM(build_lm(cfg))
    load_s = time.perf_counter() - t0
    tok = inner.tokenizer

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text.strip() else 0

    gen = {"until": ["</s>", "Q:", "<|im_end|>"], "do_sample": False, "temperature": 0.0, "max_gen_toks": args.max_gen_toks}
    inner.generate_until([Instance("generate_until", {}, ("Q: 1 + 1?\nA:", dict(gen, max_gen_toks=8)), 0)],
                         disable_tqdm=True)  # warm-up
    inner.calls.clear()

    # 1. plain bbh_cot_zeroshot-style generation
    questions = [q for s in subtasks for q in bbh.load_subtask(s, limit=args.limit)]
    reqs = [Instance("generate_until", {}, (builtin_prompt(q.source.split("/")[1], q.question), dict(gen)), 0)
            for q in questions]
    start = time.perf_counter()
    plain_out = inner.generate_until(reqs, disable_tqdm=True)
    plain_s = time.perf_counter() - start
    plain_tokens = sum(count(t) for t in plain_out)
    plain_prompt_tokens = sum(count(r.args[0]) for r in reqs)
    inner.calls.clear()

    # 2. reflectevo, oracle mode, through lm-eval
    wrapper = ReflectEvoLM.from_engines(Engine(cfg, lm=inner), mode="oracle", max_gen_toks=args.max_gen_toks,
                                        reflection_max_gen_toks=args.reflection_max_gen_toks)
    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    start = time.perf_counter()
    res = simple_evaluate(model=wrapper, tasks=[f"reflectevo_bbh_{s}" for s in subtasks], limit=args.limit,
                         task_manager=tm, bootstrap_iters=0)
    refl_s = time.perf_counter() - start
    passes = wrapper.passes
    refl_tokens = sum(p["generated_tokens"] for p in passes)
    gen_s = sum(p["seconds"] for p in passes)
    seconds_per_token = plain_s / max(plain_tokens, 1)
    predicted = refl_tokens * seconds_per_token
    pooled = wrapper.pooled().get("reflectevo_bbh", {}).get("strict", {})

    out = {
        "model": args.model, "model_revision": wrapper.base.describe()["model_revision"], "device": args.device,
        "dtype": args.dtype, "batch_size": args.batch_size, "subtasks": subtasks, "docs": len(questions),
        "max_gen_toks": args.max_gen_toks, "reflection_max_gen_toks": args.reflection_max_gen_toks,
        "model_load_s": round(load_s, 1),
        "plain": {"wall_s": round(plain_s, 2), "prompt_tokens": plain_prompt_tokens, "generated_tokens": plain_tokens,
                  "tokens_per_s": round(plain_tokens / plain_s, 1)},
        "reflectevo": {"wall_s": round(refl_s, 2), "generation_s": round(gen_s, 2),
                       "prompt_tokens": sum(p["prompt_tokens"] for p in passes), "generated_tokens": refl_tokens,
                       "inner_generate_calls": len(inner.calls), "passes": passes,
                       "acc_t1": pooled.get("acc_t1"), "acc_t2": pooled.get("acc_t2")},
        # what the wrapper itself costs: everything outside the inner model's generate_until calls
        "inner_generate_s": round(sum(c["seconds"] for c in inner.calls), 2),
        "wrapper_overhead_s": round(refl_s - sum(c["seconds"] for c in inner.calls), 2),
        "predicted_wall_s": round(predicted, 2),
        "wall_over_predicted": round(refl_s / predicted, 3) if predicted else None,
        "three_passes": len(inner.calls) == 3,
        "within_15pct": bool(predicted) and abs(refl_s / predicted - 1) <= 0.15,
        "lm_eval_version": res["config"]["reflectevo"]["versions"].get("lm_eval"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print()
    print("| run | docs | prompt tokens | generated tokens | wall s | generated tokens/s | batched passes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| plain bbh_cot_zeroshot-style | {len(questions)} | {plain_prompt_tokens} | {plain_tokens} | {plain_s:.1f} | "
          f"{plain_tokens / plain_s:.1f} | 1 |")
    print(f"| reflectevo_bbh oracle | {len(questions)} | {out['reflectevo']['prompt_tokens']} | {refl_tokens} | "
          f"{refl_s:.1f} | {refl_tokens / refl_s:.1f} | {len(inner.calls)} |")
    print(f"\npredicted from tokens: {predicted:.1f} s; measured / predicted = {out['wall_over_predicted']}; "
          f"within 15%: {out['within_15pct']}")
    print(f"time outside the inner model's generate_until calls (lm-eval, prompts, scoring, JSON): "
          f"{out['wrapper_overhead_s']} s of {refl_s:.1f} s")
    return 0 if out["three_passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
