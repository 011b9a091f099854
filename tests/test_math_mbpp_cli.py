"""The acceptance commands of MATH and MBPP, small: `reflectevo gen run --source mbpp` and `gen curate`,
and `lm_eval --model reflectevo` on both groups, through the installed console scripts, offline, with
the embedded model on the real data files (../shared/data). Token caps and --limit keep them to a few
minutes on two CPU cores (slow)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reflectevo.chunk_store import read_records
from reflectevo_tasks import answers as A

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def shared_data(bbh_dir) -> str:
    """../shared/data, the folder beside the BBH release that holds math/ and mbpp/."""
    folder = Path(bbh_dir).resolve().parent
    if not ((folder / "math" / "math_test.jsonl").is_file() and (folder / "mbpp" / "mbpp_test.jsonl").is_file()):
        pytest.skip(f"no math/ and mbpp/ data beside the BBH folder ({folder})")
    return str(folder)


def run(command: list[str], cwd: Path, data: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "REFLECTEVO_DATA_DIR": data}
    for name in ("REFLECTEVO_MATH_DIR", "REFLECTEVO_MBPP_DIR"):
        env.pop(name, None)
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def test_gen_run_and_curate_on_mbpp(tmp_path, shared_data, embedded_model_dir):
    proc = run([str(BIN / "reflectevo"), "gen", "run", "--source", "mbpp", "--limit", "2", "--output", "gen",
                "--trial_max_new_tokens", "96", "--reflection_max_new_tokens", "48", "--instruction_ids", "sample:1",
                "--reflections_per_instruction", "1", "--dtype", "float32"], tmp_path, shared_data)
    summary = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
    assert summary["questions"] == 2 and summary["rejected_rows"] == 0
    records = read_records(tmp_path / "gen")
    assert {r["question_id"] for r in records} == {"mbpp/11", "mbpp/12"}
    for r in records:
        assert r["data"]["dataset"].endswith("mbpp_test.jsonl") and r["data"]["revision"].startswith("sha256:")
        assert r["code_sandbox"]["allow_unisolated_code"] is False
        assert r["trial1"]["outcome"] in (A.CORRECT, A.WRONG, A.NO_ANSWER) and r["trial1"]["feedback"]
        if r["reflection"] is not None:  # the failing test reached the reflection prompt
            assert r["trial1"]["feedback"] in r["reflection"]["messages"][0]["content"]
    run([str(BIN / "reflectevo"), "gen", "curate", "--input", "gen", "--output", "curated"], tmp_path, shared_data)
    stats = json.loads((tmp_path / "curated" / "stats.json").read_text())
    assert stats["questions"] == 2 and stats["per_source"][0]["source"] == "mbpp"
    assert stats["code_sandbox"]["isolation"] in ("namespaces", "none")


def test_lm_eval_on_both_groups_with_the_embedded_model(tmp_path, shared_data, embedded_model_dir):
    run([str(BIN / "lm_eval"), "--model", "reflectevo",
         "--model_args", "dtype=float32,max_gen_toks=96,reflection_max_gen_toks=48",
         "--tasks", "reflectevo_math_algebra,reflectevo_mbpp", "--limit", "2", "--batch_size", "8", "--device", "cpu",
         "--log_samples", "--output_path", "out"], tmp_path, shared_data)
    (path,) = glob.glob(str(tmp_path / "out" / "*" / "results_*.json"))
    results = json.loads(Path(path).read_text())
    for task in ("reflectevo_math_algebra", "reflectevo_mbpp", "reflectevo_mbpp_test"):
        row = results["results"][task]
        assert 0 <= row["acc_t1,none"] <= row["acc_t2,none"] <= 1, task  # oracle: a right trial 1 stays right
    info = results["config"]["reflectevo"]
    assert info["base"]["model"] == "smollm2-135m-instruct"
    assert set(info["outcomes"]["reflectevo_mbpp_test"]) == {"mbpp/11", "mbpp/12"}
    assert info["datasets"]["reflectevo_mbpp_test"]["dataset_revision"].startswith("sha256:")
    assert info["code_sandbox"]["allow_unisolated_code"] is False
