"""The embedded model: converted offline from the GGUF, loadable by short name, answering BBH."""

import json
import os
import subprocess
import sys

import pytest

from reflectevo.embedded_model import EMBEDDED_SHORT_NAME, file_sha256, gguf_path, model_revision, resolve_model

pytestmark = pytest.mark.slow


def test_folder_is_a_plain_transformers_model_equal_to_the_gguf(embedded_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(EMBEDDED_SHORT_NAME)
    assert folder == embedded_model_dir
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(folder))
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    model = AutoModelForCausalLM.from_pretrained(folder)
    gguf = gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, ref(ids).logits, atol=1e-4)


def test_revision_is_the_gguf_sha256(embedded_model_dir):
    assert model_revision(EMBEDDED_SHORT_NAME) == "sha256:" + file_sha256(gguf_path())
    marker = json.loads(open(os.path.join(embedded_model_dir, "reflectevo_source.json")).read())
    assert marker["revision"] == model_revision(EMBEDDED_SHORT_NAME)


def test_cli_prints_model_path(embedded_model_dir):
    out = subprocess.run([sys.executable, "-m", "reflectevo", "model", "path", EMBEDDED_SHORT_NAME],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == embedded_model_dir


def test_engine_batches_and_answers_bbh(engine, bbh_dir):
    from reflectevo_tasks import bbh, prompts
    from reflectevo_tasks.answers import KINDS, score
    from reflectevo_tasks.engine import Sampling

    qs = bbh.load_subtask("date_understanding", bbh_dir, limit=4) + bbh.load_subtask("object_counting", bbh_dir, limit=4)
    inner = engine.lm
    calls = []
    original = inner._model_generate

    def counting(context, *a, **kw):
        calls.append(context.shape[0])
        return original(context, *a, **kw)

    inner._model_generate = counting
    try:
        replies = engine.generate([prompts.trial_prompt(q) for q in qs], Sampling(max_new_tokens=24))
    finally:
        inner._model_generate = original
    assert calls == [8]  # eight prompts, one batched forward pass of generate
    assert all(r.startswith(prompts.REASONING_CUE) for r in replies)
    verdicts = [score(r, q.answer, q.spec) for q, r in zip(qs, replies)]
    assert all(v.outcome in ("correct", "wrong", "no_answer") for v in verdicts)
    again = engine.generate([prompts.trial_prompt(q) for q in qs], Sampling(max_new_tokens=24))
    assert again == replies  # greedy is deterministic


def test_progress_feeds_the_same_batches_lm_eval_would_form(engine, bbh_dir):
    """With a progress callback the engine hands lm-eval one batch at a time; the batches (and so
    the greedy replies) must be exactly those of the single call lm-eval would cut itself."""
    from reflectevo_tasks import bbh, prompts
    from reflectevo_tasks.engine import Sampling

    qs = (bbh.load_subtask("date_understanding", bbh_dir, limit=3) + bbh.load_subtask("navigate", bbh_dir, limit=2)
          + bbh.load_subtask("object_counting", bbh_dir, limit=2))
    ps = [prompts.trial_prompt(q) for q in qs]
    inner = engine.lm
    original, size = inner._model_generate, inner.batch_size_per_gpu

    def run(progress):
        batches = []

        def recording(context, *a, **kw):
            batches.append(context.tolist())
            return original(context, *a, **kw)

        inner._model_generate = recording
        try:
            return engine.generate(ps, Sampling(max_new_tokens=6), progress=progress), batches
        finally:
            inner._model_generate = original

    inner.batch_size_per_gpu = 3
    try:
        whole, whole_batches = run(None)
        done: list[int] = []
        sliced, sliced_batches = run(done.append)
    finally:
        inner.batch_size_per_gpu = size
    assert [len(b) for b in whole_batches] == [3, 3, 1]
    assert sliced_batches == whole_batches
    assert sliced == whole and done == [3, 3, 1]


def test_sampling_is_seeded(engine, bbh_dir):
    from reflectevo_tasks import bbh, prompts
    from reflectevo_tasks.engine import Sampling

    qs = bbh.load_subtask("navigate", bbh_dir, limit=2)
    s = Sampling(max_new_tokens=16, temperature=0.8)
    a = engine.generate([prompts.trial_prompt(q) for q in qs], s, seed=1)
    b = engine.generate([prompts.trial_prompt(q) for q in qs], s, seed=1)
    assert a == b


def test_loglikelihood_prefers_the_plausible_continuation(engine):
    from reflectevo_tasks.prompts import Prompt

    p = Prompt(({"role": "user", "content": "What is the capital of France?"},), "The capital of France is")
    good, bad = engine.loglikelihood([(p, " Paris."), (p, " potato.")])
    assert good > bad


def test_cli_answers_and_scores_bbh_offline(bbh_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REFLECTEVO_BBH_DIR": bbh_dir}
    out = tmp_path / "answers.jsonl"
    res = subprocess.run([sys.executable, "-m", "reflectevo", "tasks", "answer", "--source", "bbh:boolean_expressions,navigate",
                          "--limit", "2", "--max_new_tokens", "32", "--output", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "accuracy" in res.stdout and "bbh/navigate/1" in res.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["outcome"] for r in rows} <= {"correct", "wrong", "no_answer"}
    assert rows[0]["engine"]["model_revision"].startswith("sha256:")


def test_cli_user_errors_are_one_line(bbh_dir):
    for argv, needle in ((["tasks", "answer", "--source", "bbh:nope"], "unknown BBH subtask 'nope'"),
                         (["tasks", "answer", "--bbh_dir", "/nonexistent"], "/nonexistent: not a BBH folder"),
                         (["model", "path", "/no/such/model"], None)):
        res = subprocess.run([sys.executable, "-m", "reflectevo", *argv], capture_output=True, text=True)
        if needle is None:
            continue
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().count("\n") == 0 and needle in res.stderr
