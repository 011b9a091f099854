"""Instruction pools as data, and the prompt builders' invariants."""

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh, prompts
from reflectevo_tasks.instructions import find_instruction, load_pool


def test_builtin_pools_have_32_unique_entries_on_their_axes():
    abc = load_pool("abc")
    assert len(abc.instructions) == 32 and len({i.id for i in abc.instructions}) == 32
    assert {i.axes["examine"] for i in abc.instructions} == {"trace", "skim"}
    assert len({i.axes["focus"] for i in abc.instructions}) == 8
    assert {i.axes["plan"] for i in abc.instructions} == {"high_level", "low_level"}
    legacy = load_pool("legacy")
    assert [i.id for i in legacy.instructions] == [str(n) for n in range(1, 33)]
    assert len({i.text for i in legacy.instructions}) == 32


def test_user_pool_from_file_and_errors(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nversion: 3\ninstructions:\n- {id: x, text: Check units.}\n")
    pool = load_pool(str(f))
    assert pool.get("x").text == "Check units." and pool.version == "3"
    assert find_instruction(f"{f}:x").pool == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text("instructions:\n- {id: x}\n")
    with pytest.raises(UserError, match="bad.yaml: instruction 0 needs"):
        load_pool(str(bad))
    with pytest.raises(UserError, match="unknown instruction"):
        find_instruction("Z9")
    assert find_instruction("A1-B3-C2").pool == "reflectevo-abc"
    assert find_instruction("default").id == "default"


@pytest.fixture(scope="module")
def items(bbh_dir):
    return [bbh.load_subtask(s, bbh_dir, limit=3)[2] for s in bbh.SUBTASKS]


def _text(p):
    return "\n".join(m["content"] for m in p.messages) + p.reply_prefix


def test_reflection_prompt_never_contains_the_gold_answer(items):
    ins = find_instruction("A1-B5-C2")
    for q in items:
        attempt = "Let's think step by step. So the answer is (Z)."
        p = prompts.reflection_prompt(q, attempt, ins)
        gold = A.canonical_gold(q.answer, q.spec)
        body = _text(p).replace(q.question, "")  # the question itself lists all options
        assert gold not in body or gold in attempt, q.id
        assert ins.text in _text(p) and "incorrect" in _text(p)
        assert "incorrect" not in _text(prompts.reflection_prompt(q, attempt, ins, verdict=None))


def test_retry_is_built_on_trial_one_and_reflection(items):
    q = items[0]
    trial = prompts.trial_prompt(q)
    retry = prompts.retry_prompt(q, "ATTEMPT-1", "REFLECTION-1")
    assert retry.messages[: len(trial.messages)] == trial.messages
    assert retry.messages[len(trial.messages)] == {"role": "assistant", "content": "ATTEMPT-1"}
    assert "REFLECTION-1" in retry.messages[-1]["content"]
    no_ref = prompts.retry_prompt(q, "ATTEMPT-1", None)
    assert "reflection" not in no_ref.messages[-1]["content"].lower()


def test_fewshot_trial_uses_three_exemplar_turns(bbh_dir, items):
    q = items[2]
    ex = bbh.cot_exemplars("date_understanding", bbh_dir)
    p = prompts.trial_prompt(q, ex)
    assert len(p.messages) == 7 and p.messages[1]["role"] == "assistant"
    assert p.messages[1]["content"].startswith(prompts.REASONING_CUE)


def test_one_stage_target_round_trips():
    t = prompts.one_stage_target("I misread step 2.", "Let's think step by step. So the answer is (B).")
    assert prompts.split_one_stage(t) == ("I misread step 2.", "Let's think step by step. So the answer is (B).")
