"""The real `lm_eval` command on the embedded model and the local BBH release (slow).

Every run goes through the installed console script with no --include_path: the `.pth` hook must
make `--model reflectevo` and the `reflectevo_bbh*` tasks visible. Token caps and --limit keep the
runs small (a few minutes in all on two CPU cores).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh
from reflectevo_tasks.lm_eval_tasks import utils as U

from conftest import ORACLE_LIMIT, ORACLE_MODEL_ARGS, ORACLE_SUBTASKS, eval_env, oracle_command

pytestmark = pytest.mark.slow

LM_EVAL = str(Path(sys.executable).with_name("lm_eval"))
SUBTASKS = ORACLE_SUBTASKS
LIMIT = ORACLE_LIMIT
T2_KEYS = ("acc_t2", "delta", "fix_rate", "break_rate", "no_answer_t2", "wrong_to_right", "right_to_wrong")


def run_lm_eval(args: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([LM_EVAL, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"lm_eval {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def read_run(out: Path, stderr: str) -> dict:
    (results,) = glob.glob(str(out / "*" / "results_*.json"))
    samples = {}
    for path in glob.glob(str(out / "*" / "samples_*.jsonl")):
        rows = [json.loads(line) for line in open(path)]
        samples[Path(path).name.split("_20")[0].removeprefix("samples_")] = rows
    return {"results": json.load(open(results)), "samples": samples, "stderr": stderr}


def evaluate(tmp: Path, tasks: str, model_args: str, limit: int, batch_size: int = 16) -> dict:
    out = tmp / "out"
    proc = run_lm_eval(["--model", "reflectevo", "--model_args", model_args, "--tasks", tasks, "--limit", str(limit),
                 "--device", "cpu", "--batch_size", str(batch_size), "--log_samples", "--output_path", str(out)],
                cwd=tmp)
    return read_run(out, proc.stderr)


@pytest.fixture(scope="module")
def oracle_run(oracle_eval):
    """The session's oracle evaluation of SUBTASKS (conftest; tests/test_multiprocess.py compares its
    two-process runs with the same one)."""
    return read_run(oracle_eval["out"], oracle_eval["stderr"])


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, bbh_dir, embedded_model_dir):
    """The oracle run's command in single mode, and in one thread as it is (trial 1 is compared reply by reply)."""
    tmp = tmp_path_factory.mktemp("single")
    args = oracle_command(tmp / "out", f"{ORACLE_MODEL_ARGS},mode=single")
    return read_run(tmp / "out", run_lm_eval(args, cwd=tmp, env=eval_env()).stderr)


def trajectory(sample: dict) -> dict:
    return json.loads(sample["resps"][0][0])


def verdicts_from_log(sample: dict):
    """Re-score a logged sample from its texts alone (not through the task's process_results)."""
    doc = sample["doc"]
    q = bbh.make_question(doc["subtask"], doc["index"], doc["input"], doc["target"])
    t = trajectory(sample)
    v1 = A.score(t["trial1"]["reply"], q.answer, q.spec)
    if t["trial2"] is None:
        return v1, None
    v2 = v1 if t["trial2"]["from"] == "trial1" else A.score(t["trial2"]["reply"], q.answer, q.spec)
    return v1, v2


# ---------------------------------------------------------------- oracle mode

def test_every_metric_is_reported_and_retry_never_lowers_accuracy(oracle_run):
    results = oracle_run["results"]["results"]
    for s in SUBTASKS:
        row = results[f"reflectevo_bbh_{s}"]
        for metric in U.ALL_METRICS:
            assert f"{metric},none" in row, (s, metric)
        assert row["acc_t2,none"] >= row["acc_t1,none"]
        assert row["right_to_wrong,none"] == 0 and row["break_rate,none"] in (0.0, None)
        assert row["delta,none"] == pytest.approx(row["acc_t2,none"] - row["acc_t1,none"])
        assert row["sample_len"] == LIMIT


def test_metrics_recompute_from_the_logged_samples(oracle_run):
    results = oracle_run["results"]["results"]
    for s in SUBTASKS:
        task = f"reflectevo_bbh_{s}"
        pairs = [verdicts_from_log(x) for x in oracle_run["samples"][task]]
        n = len(pairs)
        c1 = [v1.correct for v1, _ in pairs]
        c2 = [v2.correct for _, v2 in pairs]
        expect = {
            "acc_t1": sum(c1) / n, "acc_t2": sum(c2) / n, "delta": (sum(c2) - sum(c1)) / n,
            "no_answer_t1": sum(v1.outcome == A.NO_ANSWER for v1, _ in pairs) / n,
            "no_answer_t2": sum(v2.outcome == A.NO_ANSWER for _, v2 in pairs) / n,
            "wrong_to_right": sum(b and not a for a, b in zip(c1, c2)) / n,
            "right_to_wrong": sum(a and not b for a, b in zip(c1, c2)) / n,
            "fix_rate": (sum(b and not a for a, b in zip(c1, c2)) / (n - sum(c1))) if n > sum(c1) else None,
            # oracle never retries a right trial 1, so it has no break rate to report
            "break_rate": None,
        }
        for metric, value in expect.items():
            got = results[task][f"{metric},none"]
            assert got == (None if value is None else pytest.approx(value)), (task, metric)


def test_trajectories_are_complete_in_the_log(oracle_run):
    for task, rows in oracle_run["samples"].items():
        for row in rows:
            t = trajectory(row)
            assert t["schema"] == U.TRAJECTORY_SCHEMA and t["task"] == task
            assert t["turns"][0]["turn"] == "trial1" and t["turns"][0]["messages"][-1]["role"] == "user"
            assert t["trial1"]["verdict"] in (A.CORRECT, A.WRONG, A.NO_ANSWER)
            if t["trial1"]["verdict"] == A.CORRECT:
                assert [x["turn"] for x in t["turns"]] == ["trial1"]
            else:
                assert [x["turn"] for x in t["turns"]] == ["trial1", "reflection", "retry"]
                assert t["turns"][1]["sampling"]["stop"] == [] and t["turns"][1]["sampling"]["max_new_tokens"] == 48
                assert t["reflection"] == t["turns"][1]["output"]


def test_provenance_lands_in_the_results_file(oracle_run):
    config = oracle_run["results"]["config"]
    info = config["reflectevo"]
    assert config["model_revision"].startswith("sha256:")  # the embedded model's GGUF hash
    assert info["base"]["model"] == "smollm2-135m-instruct" and info["base"]["model_revision"] == config["model_revision"]
    assert info["protocol"]["mode"] == "oracle" and info["protocol"]["instruction"]["id"] == "default"
    assert info["base"]["dtype"] == "float32" and config["model_dtype"] == "torch.float32"
    assert info["reflector"] == "same as base"
    assert info["samples"] == LIMIT * len(SUBTASKS)
    for s in SUBTASKS:
        d = info["datasets"][f"reflectevo_bbh_{s}"]
        assert d["dataset"] == U.LOCAL_DATASET and d["dataset_revision"].startswith("sha256:") and d["docs"] == LIMIT
    assert info["generation"]["trial1"][0]["max_new_tokens"] == 64
    assert info["generation"]["reflection"][0] == {"max_new_tokens": 48, "temperature": 0.0, "top_p": 1.0, "stop": []}
    assert {"lm_eval", "reflectevo", "torch", "transformers"} <= set(info["versions"])
    # three batched passes, handed to the inner model one batch of 16 at a time (for the progress bar)
    assert [p["turn"] for p in info["passes"]] == ["trial1", "reflection", "retry"]
    assert all(p["inner_calls"] == -(-p["requests"] // 16) for p in info["passes"])
    for p in info["passes"]:  # one progress bar per pass, finished
        assert f"reflectevo {p['turn']}: 100%" in oracle_run["stderr"] and f"{p['requests']}/{p['requests']}" in oracle_run["stderr"]
    assert config["batch_size"] == "16" and info["base"]["batch_size"] == "16"


# ---------------------------------------------------------------- single mode and lm-eval's own BBH scoring

def builtin_flexible_exact_match(subtask: str, docs: list[dict], replies: list[str]) -> list[int]:
    """lm-eval's bbh_cot_zeroshot `flexible-extract` filter + `exact_match`, applied to our replies.

    The built-in task needs the Hub dataset, so offline we run its filter pipeline and metric
    (read from its own YAML) on the replies our trial 1 produced.
    """
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters import build_filter_ensemble
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(Path(lm_eval.__file__).parent / "tasks" / "bbh" / "cot_zeroshot" / f"{subtask}.yaml")
    steps = next(f for f in cfg["filter_list"] if f["name"] == "flexible-extract")["filter"]
    ensemble = build_filter_ensemble("flexible-extract", [[f["function"], {k: v for k, v in f.items() if k != "function"}]
                                                          for f in steps])
    instances = []
    for doc, reply in zip(docs, replies):
        inst = Instance("generate_until", doc, ("", {}), 0)
        inst.resps = [reply]
        instances.append(inst)
    ensemble.apply(instances)
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}
    return [int(exact_match_hf_evaluate([inst.filtered_resps["flexible-extract"]], [doc["target"]], **kwargs)["exact_match"])
            for inst, doc in zip(instances, docs)]


def test_single_mode_reports_trial_one_only_and_matches_oracle_trial_one(single_run, oracle_run):
    for s in SUBTASKS:
        task = f"reflectevo_bbh_{s}"
        row = single_run["results"]["results"][task]
        assert not any(k.startswith(T2_KEYS) for k in row)
        assert row["acc_t1,none"] == oracle_run["results"]["results"][task]["acc_t1,none"]
        single = [trajectory(x)["trial1"]["reply"] for x in single_run["samples"][task]]
        oracle = [trajectory(x)["trial1"]["reply"] for x in oracle_run["samples"][task]]
        assert single == oracle  # trial 1 does not depend on the mode


def test_single_mode_acc_t1_agrees_with_lm_eval_bbh_scoring(single_run):
    """Within one item per subtask; every disagreement is printed for the record."""
    for s in SUBTASKS:
        task = f"reflectevo_bbh_{s}"
        rows = single_run["samples"][task]
        replies = [trajectory(x)["trial1"]["reply"].removeprefix("Let's think step by step.").lstrip() for x in rows]
        theirs = builtin_flexible_exact_match(s, [x["doc"] for x in rows], replies)
        ours = [x["acc_t1"] for x in rows]
        assert single_run["results"]["results"][task]["acc_t1,none"] == pytest.approx(sum(ours) / len(ours))
        for x, a, b, reply in zip(rows, ours, theirs, replies):
            if a != b:
                print(f"{task} #{x['doc']['index']}: ours={a} lm-eval={b} gold={x['doc']['target']!r} reply={reply[-160:]!r}")
        assert abs(sum(ours) - sum(theirs)) <= 1, (s, ours, theirs)


# ---------------------------------------------------------------- the group, discovery, bad input

def test_group_run_reports_size_weighted_aggregates(tmp_path, bbh_dir, embedded_model_dir):
    """The test split's group (reflectevo_bbh_test): with --limit 1 it runs the same first item of each
    subtask as reflectevo_bbh would, and its groups are generated by the same code, so this one run checks
    the group machinery and the test-split family end to end. Short turns and retry_only (no reflection
    turn): the checks are of the aggregation, which holds whatever the replies say and in every mode
    (oracle mode's metrics are checked on the session's oracle run above)."""
    run = evaluate(tmp_path, "reflectevo_bbh_test", "base=hf,pretrained=smollm2-135m-instruct,"
                                               "dtype=float32,max_gen_toks=12,mode=retry_only", 1,
                   batch_size=8)  # smaller batches pad less: prefill dominates on CPU
    res = run["results"]
    group = res["results"]["reflectevo_bbh_test"]
    assert len(res["group_subtasks"]["reflectevo_bbh_test"]) == 27 and group["sample_len"] == 27
    assert {x["doc"]["id"] for rows in run["samples"].values() for x in rows} == {f"bbh/{s}/0" for s in bbh.SUBTASKS}
    docs = [x for rows in run["samples"].values() for x in rows]
    for metric in ("acc_t1", "acc_t2", "delta", "no_answer_t1", "no_answer_t2", "wrong_to_right", "right_to_wrong"):
        assert group[f"{metric},none"] == pytest.approx(sum(x[metric] for x in docs) / 27), metric
    pooled = res["config"]["reflectevo"]["pooled"]["reflectevo_bbh_test"]["strict"]
    rates = U.pooled_rates(group)
    assert pooled["docs"] == 27 and pooled["acc_t1"] == pytest.approx(group["acc_t1,none"])
    assert pooled["fix_rate"] == (None if rates["fix_rate"] is None else pytest.approx(rates["fix_rate"]))
    passes = res["config"]["reflectevo"]["passes"]
    assert [p["inner_calls"] for p in passes] == [-(-p["requests"] // 8) for p in passes] and passes[0]["inner_calls"] == 4


def test_lm_eval_ls_lists_our_tasks(tmp_path):
    out = run_lm_eval(["ls", "tasks"], cwd=tmp_path).stdout
    assert "reflectevo_bbh " in out and "reflectevo_bbh_fewshot " in out and "reflectevo_bbh_test " in out
    assert "reflectevo_bbh_fewshot_word_sorting" in out and "reflectevo_bbh_navigate" in out


def test_bad_input_stops_with_one_line_before_generation(tmp_path):
    """(The other bad inputs are covered in process by test_lm_eval_tasks.py: same code path.)"""
    proc = run_lm_eval(["--model", "reflectevo", "--model_args", "base=hf,pretrained=smollm2-135m-instruct,mode=bogus",
                        "--tasks", "reflectevo_bbh_navigate", "--limit", "1", "--device", "cpu"],
                       cwd=tmp_path, check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1] == "reflectevo: error: unknown mode 'bogus'; expected one of oracle, intrinsic, retry_only, single"
    assert "Traceback" not in proc.stderr and "Running generate_until" not in proc.stderr
    assert "Loading weights" not in proc.stderr  # failed before the model was even loaded
