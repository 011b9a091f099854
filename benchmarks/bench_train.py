"""Trainer overhead: our one-stage SFT (`reflectevo train one_stage`) against a plain TRL
SFTTrainer on the same data and settings, on the embedded model.

Both sides train the same LoRA (r, alpha, dropout, target modules from the built-in one_stage
recipe), the same optimizer settings, seed, batch size and max_length, on the same examples: the
one-stage prompts of the sample set (`reflectevo_train.sample`, real BBH questions), rendered with
the chat template. Ours goes through the whole pipeline (recipe parsing, data checks, our
tokenization, trainer, saving, card and provenance); the baseline hands TRL prompt/completion
strings and lets it tokenize. Each run is a fresh subprocess (its peak RSS is its own); runs
alternate A B B A ... so that a change in machine load hits both sides.

    REFLECTEVO_BBH_DIR=../shared/data/bbh python benchmarks/bench_train.py [--steps 4] [--rounds 2]

Reports seconds per optimizer step (wall and CPU time of the process, mean over steps with the
first step excluded as warm-up, then mean over rounds), trained tokens per second (TRL's
`num_tokens` over the training time), peak RSS, and the ratio ours / TRL of seconds per step
(target <= 1.10; on a shared machine the CPU-time ratio is the steadier one). Prints JSON lines
and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []  # wall seconds per optimizer step
            self.cpu: list[float] = []  # CPU seconds of this process (all threads) per step
            self._t = self._c = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    return StepTimer()


def _common_options(opts) -> list[str]:
    return ["--config", "demo", "--max_rows", str(opts.rows), "--max_steps", str(opts.steps),
            "--per_device_train_batch_size", str(opts.batch), "--max_length", str(opts.max_length),
            "--lora_r", "16", "--lora_alpha", "32", "--logging_steps", "1", "--seed", "42"]


def run_ours(opts, sample: str, out: str) -> dict:
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import train

    timer = _step_timer()
    t0 = time.perf_counter()
    result = train(parse_run("one_stage", _common_options(opts) + ["--dataset", sample, "--output_dir", out]),
                   keep_trainers=True, callbacks=[timer])
    total = time.perf_counter() - t0
    trainer = result.trainers[0]
    return _summary("reflectevo", trainer, timer, total)


def run_trl(opts, sample: str, out: str) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTTrainer, get_peft_config

    from reflectevo_train.config import parse_run
    from reflectevo_train.data import build_examples, load_rows, render
    from reflectevo_train.model import load_tokenizer, model_path

    t0 = time.perf_counter()
    run = parse_run("one_stage", _common_options(opts) + ["--dataset", sample, "--output_dir", out])
    tok = load_tokenizer(run.model)
    rows = load_rows(sample, "d_plus").rows[: opts.rows]
    examples, _ = build_examples(run.setting, "one_stage", rows, "default")
    ds = Dataset.from_list([{"prompt": render(tok, ex.prompt), "completion": ex.completion} for ex in examples])
    set_seed(run.training.seed)
    model = AutoModelForCausalLM.from_pretrained(model_path(run.model), dtype="float32")
    timer = _step_timer()
    trainer = SFTTrainer(model=model, args=run.training, train_dataset=ds, processing_class=tok,
                         peft_config=get_peft_config(run.model), callbacks=[timer])
    trainer.train()
    trainer.save_model(out)
    total = time.perf_counter() - t0
    return _summary("trl", trainer, timer, total)


def _summary(name: str, trainer, timer, total: float) -> dict:
    steps, cpu = timer.times, timer.cpu
    tokens = max((int(float(e["num_tokens"])) for e in trainer.state.log_history if "num_tokens" in e), default=0)
    train_time = sum(steps)
    return {"variant": name, "steps": len(steps), "s_per_step": round(statistics.mean(steps[1:] or steps), 3),
            "median_s_per_step": round(statistics.median(steps[1:] or steps), 3),
            "cpu_s_per_step": round(statistics.mean(cpu[1:] or cpu), 3),
            "first_step_s": round(steps[0], 3) if steps else None, "tokens": tokens,
            "tokens_per_s": round(tokens / train_time, 1) if train_time else None,
            "wall_s_total": round(total, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per run (first is warm-up)")
    ap.add_argument("--rows", type=int, default=8, help="training rows")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2, help="A/B rounds (order alternates)")
    ap.add_argument("--worker", choices=["reflectevo", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--sample", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    os.environ.setdefault("REFLECTEVO_CACHE", os.path.expanduser("~/.cache/reflectevo"))
    if opts.worker:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
            fn = run_ours if opts.worker == "reflectevo" else run_trl
            print("RESULT " + json.dumps(fn(opts, opts.sample, out)), flush=True)
        return

    from reflectevo_train.sample import write_sample

    sample_dir = tempfile.mkdtemp(prefix="bench-train-sample-")
    write_sample(sample_dir, per_subtask=max(1, (opts.rows + 3) // 4))
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), TOKENIZERS_PARALLELISM="false")
    results: dict[str, list[dict]] = {"reflectevo": [], "trl": []}
    for r in range(opts.rounds):
        order = ["reflectevo", "trl"] if r % 2 == 0 else ["trl", "reflectevo"]
        for variant in order:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--sample", sample_dir,
                   "--steps", str(opts.steps), "--rows", str(opts.rows), "--batch", str(opts.batch),
                   "--max-length", str(opts.max_length)]
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"{variant} run failed (exit {proc.returncode})")
            res = json.loads(line[len("RESULT "):])
            res["round"] = r
            results[variant].append(res)
            print(json.dumps(res), flush=True)

    def mean(variant, key):
        return statistics.mean(x[key] for x in results[variant])

    print()
    print(f"one-stage SFT, embedded SmolLM2-135M fp32, LoRA r16 q/k/v/o, batch {opts.batch}, max_length "
          f"{opts.max_length}, {opts.steps} steps x {opts.rounds} rounds (means over rounds; first step of "
          "each run excluded):")
    print("| trainer | s/step (wall) | CPU s/step | tokens/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for v, label in (("reflectevo", "reflectevo train one_stage"), ("trl", "plain TRL SFTTrainer")):
        print(f"| {label} | {mean(v, 's_per_step'):.2f} | {mean(v, 'cpu_s_per_step'):.2f} | "
              f"{mean(v, 'tokens_per_s'):.1f} | {max(x['peak_rss_mb'] for x in results[v])} |")
    ratio = mean("reflectevo", "s_per_step") / mean("trl", "s_per_step")
    cpu_ratio = mean("reflectevo", "cpu_s_per_step") / mean("trl", "cpu_s_per_step")
    print(f"\nratio ours/TRL (target <= 1.10): s/step {ratio:.3f} ({'ok' if ratio <= 1.10 else 'ABOVE'}), "
          f"CPU s/step {cpu_ratio:.3f} ({'ok' if cpu_ratio <= 1.10 else 'ABOVE'})")


if __name__ == "__main__":
    main()
