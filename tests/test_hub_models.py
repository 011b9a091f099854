"""Models over the local Hub: transformers and PEFT push_to_hub / from_pretrained at a tag, and
publish_folder for an adapter folder. Tiny models built from a config; nothing is downloaded."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import hub, hub_server  # noqa: E402,F401

from reflectevo.hub.client import publish_folder, resolve_revision  # noqa: E402


def _tiny_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, vocab_size=128, max_position_embeddings=64)


def _base(seed: int = 0):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(_tiny_config())


def _lora(model, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))  # random, so weights differ per seed


def _lora_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def _assert_bit_identical(a, b):
    import torch

    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_peft_adapter_push_and_reload_at_tag(hub):
    from peft import PeftModel

    repo = hub.repo("adapter")
    first = _lora(_base(), seed=1)
    first.push_to_hub(repo, commit_message="adapter v1")
    hub.api.create_tag(repo, tag="a1")
    want = _lora_state(first)
    second = _lora(_base(), seed=2)
    second.push_to_hub(repo, commit_message="adapter v2")  # main moves on

    reloaded = PeftModel.from_pretrained(_base(), repo, revision="a1")
    _assert_bit_identical(want, _lora_state(reloaded))
    latest = PeftModel.from_pretrained(_base(), repo)
    _assert_bit_identical(_lora_state(second), _lora_state(latest))


def test_transformers_model_push_and_reload_at_tag(hub):
    import torch
    from transformers import AutoModelForCausalLM

    repo = hub.repo("base")
    model = _base(seed=3)
    model.push_to_hub(repo, commit_message="base")
    hub.api.create_tag(repo, tag="b1")
    _base(seed=4).push_to_hub(repo, commit_message="other")
    again = AutoModelForCausalLM.from_pretrained(repo, revision="b1")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_publish_folder_adapter_with_card(hub, tmp_path):
    from huggingface_hub import ModelCard
    from peft import PeftModel

    repo = hub.repo("pubadapter")
    model = _lora(_base(), seed=5)
    out = tmp_path / "adapter"
    model.save_pretrained(str(out))
    (out / "stale.txt").write_text("only in v1")
    card = "---\nlibrary_name: peft\nbase_model: tiny-llama\n---\n# Adapter\n"
    sha1 = publish_folder(str(out), repo, "model", tag="v1", message="adapter v1", card_text=card, private=True)
    assert resolve_revision(repo, "v1") == sha1
    assert hub.api.model_info(repo).private is True

    (out / "stale.txt").unlink()
    other = _lora(_base(), seed=6)
    other.save_pretrained(str(out))
    sha2 = publish_folder(str(out), repo, "model", tag="v2", message="adapter v2", card_text=card)

    assert set(hub.api.list_repo_files(repo, revision="v1")) >= {"README.md", "stale.txt", "adapter_config.json"}
    assert "stale.txt" not in hub.api.list_repo_files(repo, revision="v2")  # replace=True
    reloaded = PeftModel.from_pretrained(_base(), repo, revision=sha1)
    _assert_bit_identical(_lora_state(model), _lora_state(reloaded))
    reloaded2 = PeftModel.from_pretrained(_base(), repo, revision="v2")
    _assert_bit_identical(_lora_state(other), _lora_state(reloaded2))
    got_card = ModelCard.load(repo, repo_type="model", token=hub.token)
    assert got_card.data.library_name == "peft"
    assert sha2 != sha1 and len(hub.api.list_repo_commits(repo)) == 3  # initial + one per publish

    # publishing the same folder again with no change still yields one tag on a commit
    sha3 = publish_folder(str(out), repo, "model", tag="v3", card_text=card)
    assert sha3 == sha2 and resolve_revision(repo, "v3") == sha2


@pytest.mark.parametrize("replace", [False])
def test_publish_folder_keeps_other_files_when_not_replacing(hub, tmp_path, replace):
    repo = hub.repo("keep")
    a = tmp_path / "a"
    a.mkdir()
    (a / "one.txt").write_text("1")
    publish_folder(str(a), repo, tag="t1")
    b = tmp_path / "b"
    b.mkdir()
    (b / "two.txt").write_text("2")
    publish_folder(str(b), repo, tag="t2", replace=replace)
    assert {"one.txt", "two.txt"} <= set(hub.api.list_repo_files(repo, revision="t2"))


def test_switching_endpoints_moves_transformers_shared_client_too():
    """transformers keeps one HfApi made at its first use; an endpoint switch must reach it (its
    chat-template listing would otherwise ask the server of an earlier endpoint)."""
    from transformers.utils import hub as tf_hub

    from reflectevo.hub.client import use_endpoint

    api = tf_hub.hf_api()
    before = api.endpoint
    with use_endpoint("http://127.0.0.1:9"):
        assert tf_hub.hf_api().endpoint == "http://127.0.0.1:9"
    assert tf_hub.hf_api().endpoint == before
