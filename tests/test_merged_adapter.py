"""merge_adapter: a LoRA adapter served merged into the weights is the same model as base + adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import merged_adapter
from reflectevo_tasks.engine import Engine, EngineConfig, resolve_adapter


def _random_lora(embedded_model_dir: str, folder: Path, seed: int) -> str:
    """A LoRA adapter whose B is random (PEFT starts B at zero: the adapter would change nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    peft_model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def lora(embedded_model_dir, tmp_path_factory) -> str:
    return _random_lora(embedded_model_dir, tmp_path_factory.mktemp("lora") / "adapter", seed=0)


@pytest.fixture
def merge_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(merged_adapter, "cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache" / "merged"


def _merge(adapter: str) -> str:
    pinned = resolve_adapter(adapter, None)
    return merged_adapter.merged_model_folder("smollm2-135m-instruct", None, pinned.name, pinned.folder,
                                              pinned.revision, "float32")


@pytest.mark.slow  # loads the embedded model
def test_merged_weights_compute_what_base_plus_adapter_computes(lora, merge_cache, embedded_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = _merge(lora)
    record = json.loads((Path(folder) / merged_adapter.RECORD).read_text())
    assert record["adapter"] == lora and record["adapter_revision"].startswith("sha256:") and record["dtype"] == "float32"
    ids = torch.tensor([[1, 504, 3458, 314, 253, 1345, 30, 216, 9876, 42]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
        plain = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, lora)(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits
    assert (with_adapter - plain).abs().max() > 0.1  # the adapter changes the model...
    assert torch.allclose(merged, with_adapter, atol=2e-4)  # ...and the merged weights change it the same way


@pytest.mark.slow  # loads the embedded model
def test_merge_is_made_once_and_a_retrained_adapter_gets_its_own(lora, merge_cache, embedded_model_dir, tmp_path,
                                                                  monkeypatch):
    import transformers

    first = _merge(lora)
    with monkeypatch.context() as patch:
        patch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                      lambda *a, **k: pytest.fail("merged again although the merge is cached"))
        assert _merge(lora) == first
    other = _random_lora(embedded_model_dir, tmp_path / "retrained", seed=1)
    assert _merge(other) != first and len([p for p in merge_cache.iterdir() if p.is_dir()]) == 2
    # a folder left by a killed merge (no record) is not taken for a finished one
    (Path(first) / merged_adapter.RECORD).unlink()
    assert _merge(lora) == first and (Path(first) / merged_adapter.RECORD).is_file()


def test_adapter_for_another_model_is_one_clear_error(merge_cache, tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["no_such_module"], "task_type": "CAUSAL_LM"}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=f"adapter {folder}: cannot merge it into smollm2-135m-instruct"):
        _merge(str(folder))
    assert [p.suffix for p in merge_cache.iterdir()] == [".lock"]  # nothing half-written


# two processes of one launch asking for the same merge at once
MERGE_IN_A_PROCESS = """
import sys
from pathlib import Path
from reflectevo_tasks import merged_adapter
from reflectevo_tasks.engine import resolve_adapter
merged_adapter.cache_root = lambda: Path(sys.argv[1])
pinned = resolve_adapter(sys.argv[2], None)
print(merged_adapter.merged_model_folder("smollm2-135m-instruct", None, pinned.name, pinned.folder, pinned.revision,
                                         "float32"))
"""


@pytest.mark.slow
def test_processes_asking_at_once_merge_once_and_share_it(lora, tmp_path):
    import subprocess
    import sys

    cache = tmp_path / "shared-cache"
    procs = [subprocess.Popen([sys.executable, "-c", MERGE_IN_A_PROCESS, str(cache), lora], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    (folder,) = {out.strip() for out, _ in outs}
    assert sum("reflectevo: merging adapter" in err for _, err in outs) == 1  # the other waited and reused it
    assert (Path(folder) / merged_adapter.RECORD).is_file()
    assert sorted(p.name for p in (cache / "merged").iterdir() if not p.name.endswith(".lock")) == [Path(folder).name]


@pytest.mark.slow  # loads the embedded model
def test_engine_serves_the_merged_adapter_with_the_same_greedy_replies(lora, merge_cache):
    from reflectevo_tasks.prompts import Prompt

    prompts = [Prompt(({"role": "user", "content": q},)) for q in
               ("Is 17 a prime number? Answer yes or no, then explain.", "Name three colours of the rainbow.")]
    adapter = Engine(EngineConfig(engine="hf", dtype="float32", batch_size=2, peft=lora))
    merged = Engine(EngineConfig(engine="hf", dtype="float32", batch_size=2, peft=lora, merge_adapter=True))
    plain = Engine(EngineConfig(engine="hf", dtype="float32", batch_size=2))
    from reflectevo_tasks.engine import Sampling

    caps = Sampling(max_new_tokens=24)
    replies = merged.generate(prompts, caps)
    assert replies == adapter.generate(prompts, caps) and replies != plain.generate(prompts, caps)
    record = merged.describe()
    assert record["adapter"] == lora and record["adapter_merged"] is True
    assert "adapter_merged" not in adapter.describe()
