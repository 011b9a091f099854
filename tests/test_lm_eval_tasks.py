"""lm-eval integration without a real model: task files, data loading, metrics, the `reflectevo`
model's protocol over a scripted inner model, and full in-process lm-eval runs.

A synthetic BBH folder (all 27 subtasks, three items each, answer kinds as in BBH) keeps these
tests fast and independent of the real data; `test_lm_eval_cli.py` runs the real model on the
real data through the real `lm_eval` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness_plugins import lm_eval_hook
from harness_plugins.reflect_model import ReflectEvoLM
from reflectevo_tasks.protocol import MODES
from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh
from reflectevo_tasks.engine import Engine, EngineConfig
from reflectevo_tasks.lm_eval_tasks import TASK_DIR, _generate_configs
from reflectevo_tasks.lm_eval_tasks import utils as U
from scripted_models import ScriptedChat

# ---------------------------------------------------------------- a synthetic BBH release

_ITEMS = {
    A.TRUE_FALSE: [("not ( True ) and ( True ) is", "False"), ("True or False is", "True"), ("not False is", "True")],
    A.YES_NO: [("Is the statement plausible?", "Yes"), ("Does the road lead home?", "No"), ("Is it raining?", "Yes")],
    A.VALID_INVALID: [("Is the argument deductively valid?\nOptions:\n- valid\n- invalid", "valid"),
                      ("Is this argument valid?\nOptions:\n- valid\n- invalid", "invalid"),
                      ("Judge the argument.\nOptions:\n- valid\n- invalid", "valid")],
    A.CHOICE: [("Which colour is first?\nOptions:\n(A) red\n(B) blue\n(C) green", "(A)"),
               ("Which colour is second?\nOptions:\n(A) red\n(B) blue\n(C) green", "(B)"),
               ("Which colour is third?\nOptions:\n(A) red\n(B) blue\n(C) green", "(C)")],
    A.INTEGER: [("How many legs do two cats have?", "8"), ("What is 2 + 3?", "5"), ("What is 10 - 7?", "3")],
    A.DYCK: [("Complete the sequence. Input: [ (", ") ]"), ("Complete the sequence. Input: { <", "> }"),
             ("Complete the sequence. Input: ( [ {", "} ] )")],
    A.WORD_SORT: [("Sort the following words alphabetically: List: pear apple fig", "apple fig pear"),
                  ("Sort the following words alphabetically: List: zebra ant", "ant zebra"),
                  ("Sort the following words alphabetically: List: moon cloud sun", "cloud moon sun")],
}
_WRONG = {"True": "False", "False": "True", "Yes": "No", "No": "Yes", "valid": "invalid", "invalid": "valid",
          "(A)": "(B)", "(B)": "(C)", "(C)": "(A)", "8": "9", "5": "6", "3": "4",
          ") ]": "] )", "> }": "} >", "} ] )": ") ] }",
          "apple fig pear": "pear fig apple", "ant zebra": "zebra ant", "cloud moon sun": "sun moon cloud"}


def make_bbh_folder(root: Path, per_subtask: int = 3) -> Path:
    """BBH release layout: bbh/<subtask>.json and cot-prompts/<subtask>.txt."""
    (root / "bbh").mkdir(parents=True)
    (root / "cot-prompts").mkdir()
    for subtask, kind in bbh.ANSWER_KIND.items():
        rows = [{"input": f"[{subtask} #{i}] {text}", "target": gold}
                for i, (text, gold) in enumerate(_ITEMS[kind][:per_subtask])]
        (root / "bbh" / f"{subtask}.json").write_text(json.dumps({"examples": rows}))
        shots = "\n\n".join(f"Q: [{subtask} exemplar {k}] {text}\nA: Let's think step by step.\n"
                            f"Easy. So the answer is {gold}." for k, (text, gold) in enumerate(_ITEMS[kind]))
        (root / "cot-prompts" / f"{subtask}.txt").write_text(f"Header line.\n\n{shots}")
    return root


@pytest.fixture()
def fake_bbh(tmp_path, monkeypatch) -> Path:
    folder = make_bbh_folder(tmp_path / "bbh_release")
    monkeypatch.setenv(bbh.ENV_DIR, str(folder))
    bbh.cot_exemplars.cache_clear()
    yield folder
    bbh.cot_exemplars.cache_clear()


# ---------------------------------------------------------------- a scripted inner model

class ScriptedLM(ScriptedChat):
    """Stands in for an lm-eval model. Trial 1: item #0 right, #1 wrong, #2 no answer. A retry
    turns a wrong trial right and a right one wrong (so intrinsic mode shows breaks)."""

    def __init__(self, gold: dict[str, str]):
        self.gold = gold  # question text -> gold answer
        self.calls: list[list[tuple[str, dict]]] = []

    def get_model_info(self):
        return {"model_num_parameters": 0}

    def _question(self, context: str) -> str:
        hits = [q for q in self.gold if q in context]
        assert len(hits) == 1, hits
        return hits[0]

    def generate_until(self, requests, disable_tqdm=False):
        self.calls.append([r.args for r in requests])
        out = []
        for context, _kw in (r.args for r in requests):
            q = self._question(context)
            gold, index = self.gold[q], int(q.split("#", 1)[1].split("]", 1)[0])
            last_user = context.rsplit("<user>", 1)[1]
            if "Corrected solution:" in last_user:
                out.append(f"I misread it.\n\nCorrected solution:\nSo the answer is {gold}.")
            elif "Write a reflection" in last_user:
                out.append("Diagnosis: I misread the question. Plan: read it again.")
            elif "solve the question again" in last_user:
                trial_right = index == 0
                out.append(f"So the answer is {_WRONG[gold] if trial_right else gold}.")
            else:
                out.append({0: f"So the answer is {gold}.", 1: f"So the answer is {_WRONG[gold]}.",
                            2: "I cannot tell."}[index])
        return out


def scripted_model(folder: Path, reflector: bool = False, **options):
    gold = {}
    for s in bbh.SUBTASKS:
        for q in bbh.load_subtask(s, folder):
            gold[q.question] = q.answer
    base = Engine(EngineConfig(model="scripted-base"), lm=ScriptedLM(gold))
    refl = Engine(EngineConfig(model="scripted-reflector"), lm=ScriptedLM(gold)) if reflector else None
    return ReflectEvoLM.from_engines(base, refl, **options)


class _Request:
    def __init__(self, doc, task, gen_kwargs):
        self.doc, self.task_name, self.args = doc, task, ("ignored prompt", gen_kwargs)


TASK_GEN = {"until": ["</s>", "Q:", "<|im_end|>"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 256}


def requests_for(subtask: str, fewshot: bool = False):
    docs = U.load_bbh(subtask, fewshot)["test"]
    family = U.GROUPS[(fewshot, "all")]
    return [_Request(dict(d), f"{family}_{subtask}", dict(TASK_GEN)) for d in docs]


# ================================================================ task files

def test_generated_yaml_files_are_up_to_date():
    assert _generate_configs.main(["--check"]) == 0


def test_task_index_has_every_family_and_group():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    for family in U.GROUPS.values():
        assert family in tm.all_groups
        assert {f"{family}_{s}" for s in bbh.SUBTASKS} <= set(tm.all_subtasks)
    assert len([t for t in tm.all_subtasks if t.startswith("reflectevo_bbh")]) == 81  # 3 families x 27 subtasks


def test_local_docs_carry_what_the_model_needs(fake_bbh):
    zero = U.load_bbh("date_understanding")["test"]
    few = U.load_bbh("date_understanding", bbh_fewshot=True)["test"]
    doc = zero[1]
    assert doc["subtask"] == "date_understanding" and doc["index"] == 1 and doc["target"] == "(B)"
    assert doc["fewshot"] is False and doc["exemplars"] == [] and doc["group"] == "reflectevo_bbh"
    assert doc["dataset"] == U.LOCAL_DATASET and doc["dataset_revision"].startswith("sha256:")
    assert few[0]["fewshot"] is True and len(few[0]["exemplars"]) == 3 and few[0]["group"] == "reflectevo_bbh_fewshot"
    # the revision covers exactly the files used: the CoT prompt file counts for few-shot only
    assert few[0]["dataset_revision"] != doc["dataset_revision"]
    (fake_bbh / "cot-prompts" / "date_understanding.txt").write_text(
        (fake_bbh / "cot-prompts" / "date_understanding.txt").read_text() + "\n")
    assert U.load_bbh("date_understanding")["test"][0]["dataset_revision"] == doc["dataset_revision"]


def test_plain_model_prompt_is_bbh_style(fake_bbh):
    zero = U.load_bbh("navigate")["test"][0]
    few = U.load_bbh("navigate", bbh_fewshot=True)["test"][0]
    assert U.doc_to_text(zero) == f"Q: {zero['input']}\nA: Let's think step by step."
    text = U.doc_to_text(few)
    assert text.count("Q: ") == 4 and text.endswith(f"Q: {few['input']}\nA: Let's think step by step.")


def test_missing_dataset_folder_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(bbh.ENV_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="not a BBH folder"):
        U.load_bbh("navigate")


# ================================================================ metrics

def _v(outcome):
    return A.Verdict(outcome, None, "x", "marker")


@pytest.mark.parametrize("t1,t2,fixed,broken", [
    (A.CORRECT, A.CORRECT, 0, 0), (A.CORRECT, A.WRONG, 0, 1), (A.WRONG, A.CORRECT, 1, 0),
    (A.NO_ANSWER, A.CORRECT, 1, 0), (A.NO_ANSWER, A.NO_ANSWER, 0, 0)])
def test_per_doc_metrics(t1, t2, fixed, broken):
    m = U.metrics(_v(t1), _v(t2))
    c1, c2 = int(t1 == A.CORRECT), int(t2 == A.CORRECT)
    assert m["acc_t1"] == c1 and m["acc_t2"] == c2 and m["delta"] == c2 - c1
    assert m["wrong_to_right"] == fixed and m["right_to_wrong"] == broken
    assert m["fix_rate"] == [fixed, 1 - c1] and m["break_rate"] == [broken, c1]
    assert m["no_answer_t1"] == int(t1 == A.NO_ANSWER) and m["no_answer_t2"] == int(t2 == A.NO_ANSWER)
    assert set(m) == set(U.ALL_METRICS) - set(U.FLEXIBLE_METRICS)  # process_results adds those


def test_ratio_pools_numerators_and_denominators():
    assert U.ratio([[1, 1], [0, 1], [0, 0], [1, 1]]) == pytest.approx(2 / 3)
    assert U.ratio([[0, 0], [0, 0]]) is None


def test_pooled_rates_from_a_group_row():
    row = {"acc_t1,none": 0.25, "wrong_to_right,none": 0.3, "right_to_wrong,none": 0.05}
    assert U.pooled_rates(row) == pytest.approx({"fix_rate": 0.4, "break_rate": 0.2})


def test_a_plain_reply_is_trial_one_only(fake_bbh):
    doc = dict(U.load_bbh("boolean_expressions")["test"][0])
    assert U.process_results(doc, ["so the answer is False."]) == {
        "acc_t1": 1, "no_answer_t1": 0, "acc_t1_flexible": 1, "no_answer_t1_flexible": 0}
    assert U.process_results(doc, ['{"not": "a trajectory"}']) == {
        "acc_t1": 0, "no_answer_t1": 1, "acc_t1_flexible": 0, "no_answer_t1_flexible": 1}
    # a reply without an answer marker: no answer at the strict (headline) level only
    assert U.process_results(doc, ["False"]) == {
        "acc_t1": 0, "no_answer_t1": 1, "acc_t1_flexible": 1, "no_answer_t1_flexible": 0}


# ================================================================ the protocol over a scripted model

def _run(model, reqs):
    replies = model.generate_until(reqs)
    return [json.loads(r) for r in replies]


def test_progress_bar_per_pass_names_pass_and_chunk(fake_bbh, capsys):
    model = scripted_model(fake_bbh, chunk_size=4, progress=True)
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies")
    quiet = scripted_model(fake_bbh, chunk_size=4)
    assert _run(model, reqs) == _run(quiet, reqs)
    err = capsys.readouterr().err
    for label in ("reflectevo trial1 (chunk 1/2)", "reflectevo reflection (chunk 1/2)",
                  "reflectevo retry (chunk 2/2)"):
        assert label in err, err
    assert "doc" in err
    # the quiet model printed nothing; neither does rank 1 of a data-parallel run
    second = scripted_model(fake_bbh, progress=True)
    second.base.lm.rank = 1
    _run(second, reqs)
    assert len(second.passes) == 3 and capsys.readouterr().err == ""


def test_oracle_runs_three_batched_passes_and_retries_only_wrong(fake_bbh):
    model = scripted_model(fake_bbh)
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies")
    trajs = _run(model, reqs)
    lm = model.base.lm
    assert [p["turn"] for p in model.passes] == ["trial1", "reflection", "retry"]
    assert len(lm.calls) == 3 and [len(c) for c in lm.calls] == [6, 4, 4]
    # the reflection turn does not inherit BBH's stop strings; trial and retry use the task's
    assert all(kw["until"] == [] for _, kw in lm.calls[1])
    assert all(kw["until"] == TASK_GEN["until"] for _, kw in lm.calls[0] + lm.calls[2])
    by_index = {t["id"]: t for t in trajs}
    right = by_index["bbh/boolean_expressions/0"]
    assert [t["turn"] for t in right["turns"]] == ["trial1"] and right["trial2"]["from"] == "trial1"
    wrong = by_index["bbh/boolean_expressions/1"]
    assert [t["turn"] for t in wrong["turns"]] == ["trial1", "reflection", "retry"]
    assert wrong["feedback"] == "incorrect" and wrong["trial2"]["verdict"] == A.CORRECT
    assert "Diagnosis" in wrong["reflection"] and "Diagnosis" in wrong["turns"][2]["messages"][-1]["content"]
    m = [U.process_results(r.doc, [json.dumps(t)]) for r, t in zip(reqs, trajs)]
    assert sum(x["acc_t1"] for x in m) == 2 and sum(x["acc_t2"] for x in m) == 6
    # per-item outcomes in the provenance block agree with what lm-eval scores, doc by doc
    outcomes = model.get_model_info()["reflectevo"]["outcomes"]
    for r, x in zip(reqs, m):
        code = lambda acc, none: "1" if acc else "n" if none else "0"  # noqa: E731
        assert outcomes[r.task_name][r.doc["id"]] == code(x["acc_t1"], x["no_answer_t1"]) + code(x["acc_t2"], x["no_answer_t2"])


def test_chunks_run_the_protocol_per_chunk_with_the_same_answers(fake_bbh):
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies")
    whole = _run(scripted_model(fake_bbh), reqs)
    model = scripted_model(fake_bbh, chunk_size=4)
    assert _run(model, reqs) == whole
    # 6 docs in chunks of 4 and 2: two rounds of passes, wrong docs retried in their own chunk
    assert [p["turn"] for p in model.passes] == ["trial1", "reflection", "retry"] * 2
    assert [len(c) for c in model.base.lm.calls] == [4, 2, 2, 2, 2, 2]


def test_no_requests_give_no_replies(fake_bbh):
    # lm-eval can call with an empty list (e.g. every request answered from its cache)
    assert scripted_model(fake_bbh).generate_until([]) == []


class _KilledAfter(Exception):
    pass


def test_resume_reuses_finished_chunks_and_ends_like_an_uninterrupted_run(fake_bbh, tmp_path):
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies") + requests_for("navigate")
    folder = tmp_path / "resume"
    whole = scripted_model(fake_bbh, chunk_size=4)
    expected = _run(whole, reqs)
    # a run killed during its second chunk keeps the first one only
    killed = scripted_model(fake_bbh, chunk_size=4, resume=str(folder))
    real = killed._reflect_then_retry
    done = []

    def dies_on_second(items, shared=None):
        if done:
            raise _KilledAfter()
        done.append(1)
        return real(items, shared)

    killed._reflect_then_retry = dies_on_second
    with pytest.raises(_KilledAfter):
        killed.generate_until(reqs)
    assert sorted(p.name for p in (folder / "parts").iterdir()) == ["chunk-000000.jsonl"]
    resumed = scripted_model(fake_bbh, chunk_size=4, resume=str(folder))
    assert _run(resumed, reqs) == expected
    assert [len(c) for c in resumed.base.lm.calls][0] == 4  # chunk 0 was not generated again
    info = resumed.get_model_info()["reflectevo"]
    assert info["chunking"]["reused_docs"] == 4 and info["pooled"] == whole.pooled()
    # chunk 0's timings come back from the folder, marked as reused; the new chunks carry their number
    assert info["passes"][:3] == [{**p, "reused": True} for p in killed.passes]
    assert [(p["turn"], p["chunk"], p.get("reused", False)) for p in info["passes"]] == \
        [(t, 0, True) for t in ("trial1", "reflection", "retry")] + \
        [(t, c, False) for c in (1, 2) for t in ("trial1", "reflection", "retry")]
    # a finished run reruns with no generation at all
    again = scripted_model(fake_bbh, chunk_size=4, resume=str(folder))
    assert _run(again, reqs) == expected and again.base.lm.calls == []


def test_trial1_from_shares_another_runs_trial_one_and_skips_that_pass(fake_bbh, tmp_path):
    reqs = requests_for("boolean_expressions") + requests_for("web_of_lies")
    single = str(tmp_path / "single")
    _run(scripted_model(fake_bbh, mode="single", chunk_size=4, resume=single), reqs)
    expected = _run(scripted_model(fake_bbh, chunk_size=4), reqs)
    shared = scripted_model(fake_bbh, chunk_size=4, trial1_from=single)
    assert _run(shared, reqs) == expected
    assert [p["turn"] for p in shared.passes] == ["reflection", "retry"] * 2  # no trial-1 pass
    assert shared.get_model_info()["reflectevo"]["chunking"]["trial1_shared_docs"] == 6
    with pytest.raises(UserError, match="chunk_size 4 there, 2 here"):
        scripted_model(fake_bbh, chunk_size=2, trial1_from=single)
    with pytest.raises(UserError, match="trial 1 came from another base model"):
        base = Engine(EngineConfig(model="another-base"), lm=ScriptedLM({}))
        ReflectEvoLM.from_engines(base, chunk_size=4, trial1_from=single)
    with pytest.raises(UserError, match="is not a resume folder"):
        scripted_model(fake_bbh, chunk_size=4, trial1_from=str(tmp_path))


def test_resume_refuses_a_folder_of_other_settings_or_docs(fake_bbh, tmp_path):
    folder = str(tmp_path / "resume")
    reqs = requests_for("boolean_expressions")
    _run(scripted_model(fake_bbh, chunk_size=2, resume=folder), reqs)
    with pytest.raises(UserError, match="resume holds a reflectevo run with other settings \\(protocol"):
        scripted_model(fake_bbh, chunk_size=2, resume=folder, mode="intrinsic")
    with pytest.raises(UserError, match="chunk-000000.jsonl holds other docs"):
        scripted_model(fake_bbh, chunk_size=2, resume=folder).generate_until(requests_for("navigate"))
    with pytest.raises(UserError, match="resume=DIR needs chunk_size"):
        scripted_model(fake_bbh, resume=folder)


def test_intrinsic_reflects_on_everything_and_reads_gold_only_after_generation(fake_bbh, monkeypatch):
    model = scripted_model(fake_bbh, mode="intrinsic")
    events = []
    real_score, real_generate = A.score, model.base.lm.generate_until
    monkeypatch.setattr(A, "score", lambda *a, **k: events.append("score") or real_score(*a, **k))
    monkeypatch.setattr(model.base.lm, "generate_until", lambda reqs: events.append("generate") or real_generate(reqs))
    trajs = _run(model, requests_for("boolean_expressions"))
    assert events[:3] == ["generate"] * 3 and set(events[3:]) == {"score"}
    assert all([t["turn"] for t in x["turns"]] == ["trial1", "reflection", "retry"] for x in trajs)
    assert all(x["feedback"] == "none" for x in trajs)
    prompt = trajs[0]["turns"][1]["messages"][-1]["content"]
    assert "Feedback: none" in prompt
    # with no verdict the attempt may be right: the reflection checks it, it does not presume an error
    assert "went wrong" not in prompt and "keep the answer if the check confirms it" in prompt
    assert model.options.instruction.id == "check" and "decide whether its final answer holds" in prompt
    m = [U.process_results(d, [json.dumps(t)]) for d, t in zip((r.doc for r in requests_for("boolean_expressions")), trajs)]
    assert [x["right_to_wrong"] for x in m] == [1, 0, 0] and [x["wrong_to_right"] for x in m] == [0, 1, 1]


def test_retry_only_has_no_reflection_pass(fake_bbh):
    model = scripted_model(fake_bbh, mode="retry_only")
    trajs = _run(model, requests_for("navigate"))
    assert [p["turn"] for p in model.passes] == ["trial1", "retry"]
    retry = trajs[1]["turns"][1]
    assert "reflection" not in retry["messages"][-1]["content"].lower() and trajs[1]["reflection"] is None


def test_single_is_trial_one_only(fake_bbh):
    model = scripted_model(fake_bbh, mode="single")
    reqs = requests_for("navigate")
    trajs = _run(model, reqs)
    assert [p["turn"] for p in model.passes] == ["trial1"] and all(t["trial2"] is None for t in trajs)
    assert set(U.process_results(reqs[0].doc, [json.dumps(trajs[0])])) == set(U.T1_METRICS) | {
        "acc_t1_flexible", "no_answer_t1_flexible"}
    outcomes = model.get_model_info()["reflectevo"]["outcomes"]["reflectevo_bbh_navigate"]
    assert set(outcomes) == {r.doc["id"] for r in reqs} and all(code in ("0", "1", "n") for code in outcomes.values())


def test_one_stage_takes_the_answer_from_the_reflector_reply(fake_bbh):
    model = scripted_model(fake_bbh, one_stage=True, reflection_max_gen_toks=100, max_gen_toks=50)
    trajs = _run(model, requests_for("multistep_arithmetic_two"))
    assert [p["turn"] for p in model.passes] == ["trial1", "one_stage"]
    t = trajs[1]
    assert t["reflection"] == "I misread it." and t["trial2"]["reply"] == "So the answer is 5."
    assert t["trial2"]["from"] == "one_stage" and t["turns"][1]["sampling"]["max_new_tokens"] == 150
    assert t["turns"][1]["sampling"]["stop"] == []


def test_retry_cap_is_its_own_and_a_one_stage_reply_gets_reflection_plus_retry_cap(fake_bbh):
    # a retry_only row given the second-attempt budget of a reflective one: trial 1 keeps its cap
    model = scripted_model(fake_bbh, mode="retry_only", max_gen_toks=17, retry_max_gen_toks=40)
    _run(model, requests_for("navigate"))
    trial, retry = model.base.lm.calls
    assert {kw["max_gen_toks"] for _, kw in trial} == {17} and {kw["max_gen_toks"] for _, kw in retry} == {40}
    assert {tuple(kw["until"]) for _, kw in retry} == {tuple(kw["until"]) for _, kw in trial}  # same stops
    info = model.get_model_info()["reflectevo"]
    assert info["protocol"]["retry_max_gen_toks"] == 40
    assert [s["max_new_tokens"] for s in info["generation"]["retry"]] == [40]
    one_stage = scripted_model(fake_bbh, one_stage=True, reflection_max_gen_toks=100, max_gen_toks=50,
                               retry_max_gen_toks=70)
    trajs = _run(one_stage, requests_for("multistep_arithmetic_two"))
    assert trajs[1]["turns"][1]["sampling"]["max_new_tokens"] == 170
    # unset, the settings a resume folder compares are what they were before the option existed
    assert "retry_max_gen_toks" not in scripted_model(fake_bbh).options.describe()


def test_reflector_writes_reflections_and_base_the_trials(fake_bbh):
    model = scripted_model(fake_bbh, reflector=True)
    _run(model, requests_for("sports_understanding"))
    assert len(model.base.lm.calls) == 2 and len(model.reflector.lm.calls) == 1
    assert all("Write a reflection" in ctx for ctx, _ in model.reflector.lm.calls[0])
    assert [p["model"] for p in model.passes] == ["base", "reflector", "base"]
    assert model.get_model_info()["reflectevo"]["reflector"]["model"] == "scripted-reflector"


def test_fewshot_exemplars_become_earlier_turns(fake_bbh):
    model = scripted_model(fake_bbh)
    trajs = _run(model, requests_for("snarks", fewshot=True))
    msgs = trajs[1]["turns"][0]["messages"]
    assert len(msgs) == 7 and "[snarks exemplar 0]" in msgs[0]["content"] and msgs[1]["role"] == "assistant"
    assert len(trajs[1]["turns"][2]["messages"]) == 9  # retry = trial conversation + attempt + feedback


def test_plugin_token_cap_overrides_the_task(fake_bbh):
    model = scripted_model(fake_bbh, max_gen_toks=17, reflection_max_gen_toks=9)
    _run(model, requests_for("navigate"))
    calls = model.base.lm.calls
    assert {kw["max_gen_toks"] for _, kw in calls[0]} == {17} and {kw["max_gen_toks"] for _, kw in calls[1]} == {9}


def test_non_reflectevo_task_is_refused_before_generation(fake_bbh):
    model = scripted_model(fake_bbh)
    req = _Request({"question": "2+2?", "answer": "4"}, "gsm8k", dict(TASK_GEN))
    with pytest.raises(UserError, match="reflectevo_bbh"):
        model.generate_until([req])
    assert model.base.lm.calls == []


def test_wrapper_delegates_to_the_base_model(fake_bbh):
    model = scripted_model(fake_bbh)
    assert model.apply_chat_template([{"role": "user", "content": "hi"}]) == "<user>\nhi\n<assistant>\n"
    assert model.tokenizer_name == "scripted" and model.chat_template(True) == "scripted template"
    assert model.rank == 0 and model.world_size == 1 and model.tokenizer is None
    info = model.get_model_info()
    assert info["model_num_parameters"] == 0 and info["reflectevo"]["protocol"]["mode"] == "oracle"


# ================================================================ bad input, before anything loads

@pytest.fixture()
def no_model_loading(monkeypatch):
    import harness_plugins.reflect_model as rm

    def refuse(cfg):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(rm, "_build", refuse)


@pytest.mark.parametrize("options,message", [
    ({"mode": "reflective"}, "unknown mode 'reflective'"),
    ({"instruction": "no-such-instruction"}, "unknown instruction 'no-such-instruction'"),
    ({"reflector_peft": "/nonexistent/adapter"}, "reflector adapter /nonexistent/adapter: no such folder"),
    ({"reflector_peft": "missing_adapter"}, "no such folder"),
    ({"one_stage": "true", "mode": "single"}, "one_stage=true needs mode oracle or intrinsic"),
    ({"retry_by": "reflector"}, "retry_by=reflector needs"),
    ({"max_gen_toks": "many"}, "reflectevo: max_gen_toks: invalid int value: 'many'"),
    ({"mdoe": "oracle"}, "unknown option 'mdoe' \\(did you mean mode\\?\\)"),
    ({"chunk_size": "0"}, "chunk_size must be at least 1"),
    ({"base": "dummy", "pretrained": None}, "name the base model with pretrained="),  # hf, vllm: the embedded one
    ({"merge_adapter": "true"}, "merge_adapter=true needs an adapter to merge"),
    ({"retry_max_gen_toks": "0"}, "retry_max_gen_toks must be at least 1"),
    ({"retry_max_gen_toks": "64", "mode": "single"}, "mode single has no retry"),
])
def test_bad_options_fail_before_any_model_loads(options, message, no_model_loading, fake_bbh):
    args = {"base": "hf", "pretrained": "smollm2-135m-instruct", **options}
    if args["pretrained"] is None:
        del args["pretrained"]
    with pytest.raises(UserError, match=message):
        ReflectEvoLM(**args)


@pytest.mark.parametrize("options,message", [
    ({"max_gen_toks": "many"}, "reflectevo: max_gen_toks: invalid int value: 'many'"),
    ({"chunk_size": "0"}, "chunk_size must be at least 1"),
    ({"progress": "maybe"}, "progress"),
    ({"mdoe": "oracle"}, "unknown option\\(s\\) mdoe"),
    ({"reflector_peft": "some/adapter"}, "unknown option\\(s\\) reflector_peft"),  # engines are built already
    ({"merge_adapter": True}, "unknown option\\(s\\) merge_adapter"),
    ({"retry_max_gen_toks": "0"}, "retry_max_gen_toks must be at least 1"),
    ({"retry_max_gen_toks": "64", "mode": "single"}, "mode single has no retry"),
])
def test_python_api_types_options_as_model_args_do(options, message, fake_bbh):
    with pytest.raises(UserError, match=message):
        scripted_model(fake_bbh, **options)


def test_python_api_reads_text_and_python_values_alike(fake_bbh):
    as_text = scripted_model(fake_bbh, chunk_size="4", progress="false", max_gen_toks="64", one_stage="yes")
    as_python = scripted_model(fake_bbh, chunk_size=4, progress=False, max_gen_toks=64, one_stage=True)
    quiet = scripted_model(fake_bbh)
    for model in (as_text, as_python):
        assert model.chunking.size == 4 and model.options.max_gen_toks == 64 and model.options.one_stage
        assert model.show_progress is False
    assert quiet.show_progress is False and quiet.chunking.size is None  # the Python API is quiet by default
    assert scripted_model(fake_bbh, progress=True).show_progress is True


def test_adapter_folder_without_config_is_refused(tmp_path, no_model_loading, fake_bbh):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(UserError, match="no adapter_config.json"):
        ReflectEvoLM(pretrained="smollm2-135m-instruct", reflector_peft=str(tmp_path / "adapter"))


def test_missing_dataset_folder_fails_before_any_model_loads(tmp_path, monkeypatch, no_model_loading):
    monkeypatch.setenv(bbh.ENV_DIR, str(tmp_path / "no-bbh-here"))
    with pytest.raises(UserError, match="not a BBH folder"):
        ReflectEvoLM(pretrained="smollm2-135m-instruct")


def test_every_mode_is_accepted(no_model_loading, fake_bbh):
    for mode in MODES:
        with pytest.raises(AssertionError, match="a model was loaded"):
            ReflectEvoLM(pretrained="smollm2-135m-instruct", mode=mode)


# ================================================================ whole lm-eval runs, in process

def _evaluate(model, tasks, limit=None):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    return simple_evaluate(model=model, tasks=tasks, limit=limit, task_manager=tm, log_samples=True,
                           bootstrap_iters=0)


def test_group_run_pools_exactly_and_matches_the_logged_samples(fake_bbh):
    model = scripted_model(fake_bbh)
    res = _evaluate(model, ["reflectevo_bbh"])
    assert len(model.base.lm.calls) == 3  # 27 subtasks, still three passes
    group = res["results"]["reflectevo_bbh"]
    n = sum(len(v) for v in res["samples"].values())
    assert n == 81
    per_doc = [s for v in res["samples"].values() for s in v]
    pooled = lambda key: sum(s[key] for s in per_doc) / n  # noqa: E731
    for metric in ("acc_t1", "acc_t2", "delta", "no_answer_t1", "no_answer_t2", "wrong_to_right", "right_to_wrong"):
        assert group[f"{metric},none"] == pytest.approx(pooled(metric)), metric
    assert "fix_rate,none" not in group
    # the exact pooled ratios: from the group row, from the model's summary, from the samples
    wrong1 = sum(1 - s["acc_t1"] for s in per_doc)
    fix = sum(s["wrong_to_right"] for s in per_doc) / wrong1
    assert U.pooled_rates(group)["fix_rate"] == pytest.approx(fix)
    summary = res["config"]["reflectevo"]["pooled"]["reflectevo_bbh"]["strict"]
    assert summary["fix_rate"] == pytest.approx(fix) and summary["docs"] == 81 and summary["subtasks"] == 27
    # each subtask's fix_rate is the ratio over its own trial-1-wrong docs
    for task, samples in res["samples"].items():
        wrong = [s for s in samples if not s["acc_t1"]]
        assert res["results"][task]["fix_rate,none"] == pytest.approx(
            sum(s["acc_t2"] for s in wrong) / len(wrong))
        # oracle never retries a right trial 1: its break rate is no measurement, so it is missing
        assert res["results"][task]["break_rate,none"] is None
        assert res["results"][task]["acc_t2,none"] >= res["results"][task]["acc_t1,none"]


def test_results_carry_provenance(fake_bbh):
    model = scripted_model(fake_bbh, instruction="A1-B3-C2", seed=7)
    res = _evaluate(model, ["reflectevo_bbh_fewshot_navigate", "reflectevo_bbh_navigate"], limit=2)
    info = res["config"]["reflectevo"]
    assert info["protocol"]["instruction"]["id"] == "A1-B3-C2" and info["protocol"]["seed"] == 7
    assert info["base"]["model"] == "scripted-base" and info["reflector"] == "same as base"
    assert set(info["datasets"]) == {"reflectevo_bbh_fewshot_navigate", "reflectevo_bbh_navigate"}
    assert all(d["dataset_revision"].startswith("sha256:") and d["docs"] == 2 for d in info["datasets"].values())
    assert info["samples"] == 4 and set(info["generation"]) == {"trial1", "reflection", "retry"}
    assert {"lm_eval", "reflectevo", "python"} <= set(info["versions"])
    sample = res["samples"]["reflectevo_bbh_navigate"][1]
    run = json.loads(sample["resps"][0][0])["run"]
    assert run["mode"] == "oracle" and run["instruction"] == "A1-B3-C2"


def test_plain_model_gives_trial_one_metrics_only(fake_bbh):
    from lm_eval.api.model import LM

    class Plain(LM):
        def generate_until(self, requests, disable_tqdm=False):
            return [f"So the answer is {r.doc['target']}." if r.doc["index"] == 0 else "hmm" for r in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    res = _evaluate(Plain(), ["reflectevo_bbh"], limit=2)
    for name, row in res["results"].items():
        assert not any(k.startswith(("acc_t2", "delta", "fix_rate", "break_rate")) for k in row), name
    assert res["results"]["reflectevo_bbh"]["acc_t1,none"] == pytest.approx(0.5)


# ================================================================ the lm-eval hook

def test_hook_puts_our_tasks_before_user_paths():
    ours = lm_eval_hook.task_dir()
    assert Path(ours) == TASK_DIR
    assert lm_eval_hook.with_our_tasks(None) == ours
    assert lm_eval_hook.with_our_tasks("/my/tasks") == [ours, "/my/tasks"]
    assert lm_eval_hook.with_our_tasks([ours, "/x"]) == [ours, "/x"]


def _python(code: str, **env) -> str:
    import os

    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_hook_registers_the_model_without_hiding_built_in_ones_and_can_be_switched_off():
    code = ("import lm_eval.models; from lm_eval.api.registry import model_registry as r; "
            "print('reflectevo' in r, 'hf' in r, 'vllm' in r)")
    assert _python(code) == "True True True"
    assert _python(code, REFLECTEVO_NO_LM_EVAL_HOOK="1") == "False True True"


def test_hook_costs_nothing_until_lm_eval_is_imported():
    assert _python("import sys; print('harness_plugins.lm_eval_hook' in sys.modules)") == "False"


# ================================================================ reflector adapters and Hub data (wiring only)

@pytest.fixture
def adapter_and_builds(tmp_path, monkeypatch, fake_bbh) -> tuple[Path, list]:
    """An adapter folder, and the engine configs the plugin builds (each model a ScriptedLM)."""
    import harness_plugins.reflect_model as rm

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    built = []
    monkeypatch.setattr(rm, "_build", lambda cfg: built.append(cfg) or ScriptedLM({}))
    return adapter, built


def test_reflector_adapter_is_loaded_on_the_base_with_its_own_revision(adapter_and_builds):
    adapter, built = adapter_and_builds
    model = ReflectEvoLM(base="hf", pretrained="smollm2-135m-instruct", revision="r1", reflector_peft=str(adapter),
                         device="cpu", batch_size="4")
    base_cfg, refl_cfg = built
    assert base_cfg.model == refl_cfg.model == "smollm2-135m-instruct" and refl_cfg.revision == "r1"
    assert base_cfg.peft is None and refl_cfg.peft == str(adapter)
    assert refl_cfg.peft_revision.startswith("sha256:") and refl_cfg.batch_size == "4" and refl_cfg.device == "cpu"
    info = model.get_model_info()["reflectevo"]
    assert info["reflector"]["adapter"] == os.path.relpath(adapter) and info["reflector"]["adapter_revision"] == refl_cfg.peft_revision
    built.clear()
    ReflectEvoLM(pretrained="smollm2-135m-instruct", reflector_peft=str(adapter), reflector_revision="v2")
    assert built[1].peft_revision == "v2"
    # an adapter on the base itself (an sft_qa model answers, reflects and retries): recorded with what it was trained on
    (adapter / "provenance.json").write_text(json.dumps({"setting": "sft_qa", "method": "sft", "dataset": {
        "repo_id": "me/data", "config": "sft_qa", "revision": "abc123"}, "command": "reflectevo train sft_qa …"}))
    built.clear()
    model = ReflectEvoLM(pretrained="smollm2-135m-instruct", peft=str(adapter), peft_revision="v3")
    assert len(built) == 1 and built[0].peft == str(adapter) and built[0].peft_revision == "v3"
    base = model.get_model_info()["reflectevo"]["base"]
    assert base["adapter"] == os.path.relpath(adapter) and base["adapter_revision"] == "v3"
    assert base["adapter_training"]["setting"] == "sft_qa" and base["adapter_training"]["dataset_revision"] == "abc123"
    # what a revision resolved to when training started wins over the revision asked for (a branch moves);
    # a local file is recorded by its content hash
    for dataset, expected in [({"repo_id": "me/data", "config": "sft_qa", "revision": "main", "sha": "f00d"}, "f00d"),
                              ({"path": "/data/sft_qa.jsonl", "config": "sft_qa", "sha256": "beef"}, "sha256:beef")]:
        (adapter / "provenance.json").write_text(json.dumps({"setting": "sft_qa", "dataset": dataset}))
        built.clear()
        base = ReflectEvoLM(pretrained="smollm2-135m-instruct", peft=str(adapter)).get_model_info()["reflectevo"]["base"]
        assert base["adapter_training"]["dataset_revision"] == expected
    assert "min_steps_after_warmup" not in base["adapter_training"] and "data_fraction" not in base["adapter_training"]
    assert "two_answer_rows_excluded" not in base["adapter_training"]
    # how much optimization, on which share of its data, and whether two-answer rows were left out,
    # where the run recorded them (an older adapter's provenance says null for the last)
    share = {"fraction": 0.25, "questions": 10, "of_questions": 40}
    for excluded in (None, 0, 7):
        (adapter / "provenance.json").write_text(json.dumps({"setting": "sft_qa", "data_fraction": share,
                                                             "metrics": {"min_steps_after_warmup": 31},
                                                             "two_answer_rows_excluded": excluded}))
        built.clear()
        base = ReflectEvoLM(pretrained="smollm2-135m-instruct", peft=str(adapter)).get_model_info()["reflectevo"]["base"]
        assert base["adapter_training"]["min_steps_after_warmup"] == 31 and base["adapter_training"]["data_fraction"] == share
        assert base["adapter_training"].get("two_answer_rows_excluded") == excluded
        assert ("two_answer_rows_excluded" in base["adapter_training"]) == (excluded is not None)


def test_merged_adapter_is_asked_for_and_recorded_as_merged(adapter_and_builds):
    adapter, built = adapter_and_builds
    model = ReflectEvoLM(pretrained="smollm2-135m-instruct", reflector_peft=str(adapter), merge_adapter="true")
    base_cfg, refl_cfg = built
    assert refl_cfg.merge_adapter and not base_cfg.merge_adapter  # the base has no adapter to merge
    info = model.get_model_info()["reflectevo"]
    assert info["reflector"]["adapter_merged"] is True and "adapter_merged" not in info["base"]
    # stored chunks say so too: a merged adapter's replies are not mixed with the same adapter's via LoRA
    assert model.run_summary["reflector"]["adapter_merged"] is True
    built.clear()
    unmerged = ReflectEvoLM(pretrained="smollm2-135m-instruct", reflector_peft=str(adapter))
    assert "adapter_merged" not in unmerged.run_summary["reflector"]
    built.clear()
    answering = ReflectEvoLM(pretrained="smollm2-135m-instruct", peft=str(adapter), merge_adapter=True)
    assert built[0].merge_adapter and answering.run_summary["base"]["adapter_merged"] is True


def test_unreachable_hub_adapter_is_one_clear_error(no_model_loading, fake_bbh):
    with pytest.raises(UserError, match="reflector adapter someone/missing-adapter: not a local folder"):
        ReflectEvoLM(pretrained="smollm2-135m-instruct", reflector_peft="someone/missing-adapter")


class _FakeBuilder:
    def __init__(self, commit):
        self.hash = commit

    def download_and_prepare(self):
        pass

    def as_dataset(self, split):
        assert split == "test"
        return [{"input": "True or False is", "target": "True"}]


def test_hub_docs_record_the_commit_actually_loaded(monkeypatch):
    import datasets

    monkeypatch.delenv(bbh.ENV_DIR, raising=False)
    asked = []
    monkeypatch.setattr(datasets, "load_dataset_builder",
                        lambda path, name, revision=None: asked.append((path, name, revision)) or _FakeBuilder("abc123" * 6))
    doc = U.load_bbh("boolean_expressions")["test"][0]
    assert asked == [(bbh.HUB_DATASET, "boolean_expressions", None)]
    assert doc["dataset"] == bbh.HUB_DATASET and doc["dataset_revision"] == "abc123" * 6
    assert U.load_bbh("boolean_expressions", bbh_revision="abc123a")["test"][0]["dataset_revision"] == "abc123" * 6
    with pytest.raises(UserError, match="asked for SaylorTwift/bbh at commit 0000000, but datasets loaded abc123"):
        U.load_bbh("boolean_expressions", bbh_revision="0000000")


def test_outcomes_at_both_levels_and_who_got_a_second_attempt(fake_bbh):
    """Per-item codes 1 / 0 / n (correct, readable wrong, no answer) at the strict (headline) and
    the flexible level; the docs that got a second attempt are listed; oracle's break rate is None."""
    model = scripted_model(fake_bbh, mode="oracle")
    reqs = requests_for("navigate")
    trajs = _run(model, reqs)
    info = model.get_model_info()["reflectevo"]
    ids = [r.doc["id"] for r in reqs]
    assert info["scoring"]["headline"] == A.STRICT and info["scoring"]["version"] == A.SCORING_VERSION
    strict = info["outcomes"]["reflectevo_bbh_navigate"]
    assert [strict[i] for i in ids] == ["11", "01", "n1"]  # right (stands); wrong, fixed; no answer, fixed
    assert info["outcomes_flexible"]["reflectevo_bbh_navigate"] == strict
    assert info["second_attempt"]["reflectevo_bbh_navigate"] == sorted(ids[1:])
    assert trajs[1]["trial1"]["verdict"] == A.WRONG and trajs[1]["trial1"]["flexible"]["verdict"] == A.WRONG
    pooled = info["pooled"]["reflectevo_bbh"]
    assert set(pooled) == set(A.LEVELS)
    row = pooled[A.STRICT]
    assert row["break_rate"] is None and row["right_to_wrong"] is None  # oracle cannot break
    assert row["fix_rate_readable"] == 1.0 and row["fix_rate_no_answer"] == 1.0 and row["no_answer_to_right"] == 1


def test_a_gated_resume_folder_is_tied_to_the_scorer_version(fake_bbh, tmp_path, monkeypatch):
    """oracle's chunks were gated by the trial-1 (strict) verdict: a folder from another strict
    scorer is refused; a scorer that changed only flexible verdicts reuses it."""
    folder = tmp_path / "resume"
    _run(scripted_model(fake_bbh, chunk_size=2, resume=folder, mode="oracle"), requests_for("navigate"))
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["scoring_version"] == A.GATE_VERSION
    monkeypatch.setattr(A, "SCORING_VERSION", A.SCORING_VERSION + 1)
    scripted_model(fake_bbh, chunk_size=2, resume=folder, mode="oracle")
    monkeypatch.setattr(A, "GATE_VERSION", A.GATE_VERSION + 1)
    with pytest.raises(UserError, match="scoring_version"):
        scripted_model(fake_bbh, chunk_size=2, resume=folder, mode="oracle")
