"""The reflectevo_math and reflectevo_mbpp lm-eval groups: task files, docs, every mode of the
`reflectevo` model over a scripted inner model, plain models, the sandbox flag, and their
leaderboard tables. Data: the small MATH and MBPP files of test_math_mbpp.py."""

from __future__ import annotations

import json

import pytest

from harness_plugins.reflect_model import ReflectEvoLM
from leaderboards.build import build
from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import code_sandbox, math_mbpp
from reflectevo_tasks.engine import Engine, EngineConfig
from reflectevo_tasks.lm_eval_tasks import TASK_DIR
from reflectevo_tasks.lm_eval_tasks import utils as U
from test_math_mbpp import RIGHT, ScriptedLM, code_reply, data_dir, write_jsonl  # noqa: F401  (data_dir: a fixture)

SUBJECTS = tuple(math_mbpp.SUBJECTS.values())
# one problem of every subject, and a second algebra one: the reflectevo_math group needs them all
ALL_SUBJECTS = [{"problem": f"{name}: what is ${i}+{i}$?", "solution": f"It is $\\boxed{{{2 * i}}}$.", "type": name}
                for i, name in enumerate(math_mbpp.SUBJECTS, 1)]
ALL_SUBJECTS.append({"problem": "Algebra again: what is $x$ if $x-1=0$?", "solution": "$x=\\boxed{1}$", "type": "Algebra"})


@pytest.fixture()
def every_subject(data_dir):
    write_jsonl(data_dir / "math" / "math_test.jsonl", ALL_SUBJECTS)
    return data_dir


def _evaluate(model, tasks, limit=None, **kwargs):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    return simple_evaluate(model=model, tasks=tasks, limit=limit, task_manager=tm, log_samples=True,
                           bootstrap_iters=0, **kwargs)


def scripted(**options) -> ReflectEvoLM:
    questions = [q for name in ("math", "mbpp") for q in math_mbpp.load(name)[0]]
    return ReflectEvoLM.from_engines(Engine(EngineConfig(model="scripted-base"), lm=ScriptedLM(questions)), **options)


def test_the_groups_and_their_tasks_are_indexed():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    assert {"reflectevo_math", "reflectevo_mbpp"} <= set(tm.all_groups)
    assert {f"reflectevo_math_{s}" for s in SUBJECTS} | {"reflectevo_mbpp_test"} <= set(tm.all_subtasks)
    assert U.SUBTASKS == {"reflectevo_math": SUBJECTS, "reflectevo_mbpp": ("test",)}


def test_docs_carry_the_kind_the_tests_and_the_data_revision(data_dir):
    algebra = U.load_math("algebra")["test"]
    assert [d["id"] for d in algebra] == ["math/1", "math/2"] and algebra[0]["kind"] == A.MATH
    assert algebra[0]["group"] == "reflectevo_math" and algebra[0]["dataset_revision"].startswith("sha256:")
    assert U.question(algebra[1]) == math_mbpp.load("math")[0][2]
    mbpp = U.load_mbpp()["test"]
    assert [d["id"] for d in mbpp] == ["mbpp/11", "mbpp/12", "mbpp/13"] and mbpp[2]["setup"] == "import math"
    assert U.question(mbpp[0]) == math_mbpp.load("mbpp")[0][0] and "allow_unisolated_code" not in mbpp[0]
    assert U.load_mbpp(allow_unisolated_code="true")["test"][0]["allow_unisolated_code"] is True
    assert "```python" in U.doc_to_text(mbpp[0]) and U.doc_to_text(algebra[0]).startswith("Q: Simplify")
    with pytest.raises(UserError, match="math_subject: expected one of algebra"):
        U.load_math("topology")
    with pytest.raises(UserError, match="math_test.jsonl: no geometry problems; run the tasks of the subjects it has"):
        U.load_math("geometry")


@pytest.mark.parametrize("mode,one_stage", [("single", False), ("retry_only", False), ("oracle", False),
                                            ("intrinsic", False), ("oracle", True), ("intrinsic", True)])
def test_every_mode_runs_both_groups_and_the_groups_pool_their_tasks(every_subject, mode, one_stage):
    res = _evaluate(scripted(mode=mode, one_stage=one_stage), ["reflectevo_math", "reflectevo_mbpp"])
    samples = res["samples"]
    assert {t for t in samples} == {f"reflectevo_math_{s}" for s in SUBJECTS} | {"reflectevo_mbpp_test"}
    for group, tasks in (("reflectevo_math", [t for t in samples if t.startswith("reflectevo_math")]),
                         ("reflectevo_mbpp", ["reflectevo_mbpp_test"])):
        docs = [s for t in tasks for s in samples[t]]
        row = res["results"][group]
        for metric in ("acc_t1", "no_answer_t1") + (() if mode == "single" else ("acc_t2", "delta", "no_answer_t2")):
            assert row[f"{metric},none"] == pytest.approx(sum(s[metric] for s in docs) / len(docs)), (group, metric)
        # trial 1: the first item of each is right, MBPP task 13 gives no code
        assert row["acc_t1,none"] == pytest.approx(1 / len(docs))
        if mode == "retry_only":  # the scripted model fixes nothing without a reflection
            assert row["acc_t2,none"] == row["acc_t1,none"]
        elif one_stage:  # its one-stage replies are right
            assert row["acc_t2,none"] == pytest.approx(1.0)
    if mode in ("oracle", "intrinsic") and not one_stage:  # retries after reflections 0 and 2 of the cycle fix
        fixed = sum(s["wrong_to_right"] for t in samples for s in samples[t])
        assert 0 < fixed < sum(1 - s["acc_t1"] for t in samples for s in samples[t])
    mbpp = {s["doc"]["id"]: json.loads(s["resps"][0][0]) for s in samples["reflectevo_mbpp_test"]}
    assert mbpp["mbpp/13"]["trial1"]["verdict"] == A.NO_ANSWER
    if mode in ("retry_only", "oracle"):  # a verdict is shown: and with it the first failing test
        assert mbpp["mbpp/12"]["feedback_text"].startswith("Test 1 of 2 failed: assert rev('ab') == 'ba'")
        shown = mbpp["mbpp/12"]["turns"][1]["messages"][-1]["content"]
        assert mbpp["mbpp/12"]["feedback_text"] in shown
    else:
        assert all("feedback_text" not in t for t in mbpp.values())
    info = res["config"]["reflectevo"]
    assert info["code_sandbox"]["isolation"] == code_sandbox.isolation_status().level
    assert set(info["outcomes"]) == set(samples) and info["outcomes"]["reflectevo_mbpp_test"]["mbpp/13"][0] == "n"


def test_a_plain_model_is_scored_at_trial_one(every_subject):
    from lm_eval.api.model import LM

    class Plain(LM):
        def generate_until(self, requests, disable_tqdm=False):
            out = []
            for r in requests:
                doc = r.doc
                if doc["kind"] == A.CODE:
                    out.append(code_reply(RIGHT[doc["index"]]) if doc["index"] != 13 else "no idea")
                else:
                    out.append(f"So the answer is $\\boxed{{{doc['target']}}}$.")
            return out

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    res = _evaluate(Plain(), ["reflectevo_math", "reflectevo_mbpp"])
    assert res["results"]["reflectevo_math"]["acc_t1,none"] == pytest.approx(1.0)
    assert res["results"]["reflectevo_mbpp"]["acc_t1,none"] == pytest.approx(2 / 3)
    assert res["results"]["reflectevo_mbpp"]["no_answer_t1,none"] == pytest.approx(1 / 3)
    assert not any(k.startswith("acc_t2") for k in res["results"]["reflectevo_mbpp"])


def test_code_runs_unisolated_only_when_the_run_said_so(data_dir, monkeypatch):
    monkeypatch.setattr(code_sandbox, "isolation_status",
                        lambda: code_sandbox.Isolation(code_sandbox.UNISOLATED, "made unisolated by the test"))
    model = scripted(mode="oracle")
    model.base.lm.generate_until = lambda requests, disable_tqdm=False: pytest.fail("generated before refusing")
    with pytest.raises(UserError, match="lm_eval --model reflectevo: refusing to run model-written code.*"
                                        "allow_unisolated_code=true"):
        _evaluate(model, ["reflectevo_mbpp"], limit=1)
    # the flag reaches every score of the run, process_results' included (through the trajectory)
    res = _evaluate(scripted(mode="oracle", allow_unisolated_code=True), ["reflectevo_mbpp"], limit=2)
    assert res["results"]["reflectevo_mbpp"]["acc_t2,none"] == 1.0
    assert res["config"]["reflectevo"]["code_sandbox"] == {**res["config"]["reflectevo"]["code_sandbox"],
                                                           "isolation": "none", "allow_unisolated_code": True}
    trajectory = json.loads(res["samples"]["reflectevo_mbpp_test"][0]["resps"][0][0])
    assert trajectory["run"]["allow_unisolated_code"] is True
    # a plain model's replies are scored by process_results alone: allowed by the docs (--metadata)
    doc = dict(U.load_mbpp()["test"][1])
    fresh = code_reply(f"# plain {id(doc)}\n" + RIGHT[12])
    with pytest.raises(UserError, match="refusing to run model-written code"):
        U.process_results(doc, [fresh])
    assert U.process_results({**doc, "allow_unisolated_code": True}, [fresh])["acc_t1"] == 1


# ================================================================ leaderboard tables

def _results_file(tmp_path, name: str, res: dict):
    res = {k: v for k, v in res.items() if k != "samples"}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(res, default=str))
    return path


def test_math_and_mbpp_rows_get_tables_of_their_own(every_subject, tmp_path):
    files = []
    for group in ("reflectevo_math", "reflectevo_mbpp"):
        for mode in ("retry_only", "oracle"):
            res = _evaluate(scripted(mode=mode), [group], limit=2)
            files.append(str(_results_file(tmp_path, f"{group}-{mode}", res)))
    out = tmp_path / "tables"
    rows = build(files, str(out))
    assert len(rows) == 4 and not (out / "bbh.md").exists()
    for bench, n in (("math", 8), ("mbpp", 2)):
        md = (out / f"{bench}.md").read_text()
        assert md.startswith(f"# {'MATH' if bench == 'math' else 'MBPP'}: reflect-then-retry")
        table = json.loads((out / f"{bench}.json").read_text())
        assert [r["mode"] for r in table] == ["retry_only", "oracle"] and {r["n"] for r in table} == {n}
        assert all(r["acc_t1_ci"] and r["no_answer_t1"] is not None and r["budgets"]["second_attempt"] for r in table)
        assert "Two-answer subtasks (" not in md and "## Budgets" in md and "no answer t1" in md
        assert f"REFLECTEVO_DATA_DIR=../shared/data lm_eval" in md and f"--tasks reflectevo_{bench} --limit 2" in md
        comparisons = json.loads((out / f"{bench}_comparisons.json").read_text())["comparisons"]
        assert [(c["row"], c["against"]) for c in comparisons] == [(2, 1)]
        assert (out / f"{bench}_t1_t2.png").is_file()
    math_rows = json.loads((out / "math.json").read_text())
    assert set(math_rows[0]["subtasks"]) == set(SUBJECTS) and math_rows[0]["subtasks"]["algebra"]["n"] == 2
    with pytest.raises(UserError, match="--compare numbers the rows of one table"):
        build(files, str(out), compare="2:1")


def test_a_results_file_of_two_benchmarks_is_refused(data_dir, tmp_path):
    res = _evaluate(scripted(mode="oracle"), ["reflectevo_math_algebra", "reflectevo_mbpp"], limit=1)
    path = _results_file(tmp_path, "mixed", res)
    with pytest.raises(UserError, match="holds the tasks of several benchmarks \\(math, mbpp\\)"):
        build([str(path)], str(tmp_path / "out"))


def test_the_embedded_model_answers_when_no_model_is_named(monkeypatch):
    """`lm_eval --model reflectevo --tasks reflectevo_math` with no model_args runs the embedded model."""
    import harness_plugins.reflect_model as rm

    built = []

    def refuse(cfg):
        built.append(cfg)
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(rm, "_build", refuse)
    with pytest.raises(AssertionError, match="a model was loaded"):
        ReflectEvoLM()
    assert (built[0].model, built[0].engine) == ("smollm2-135m-instruct", "hf")


def test_a_resumed_run_runs_the_stored_programs_of_a_chunk_together(data_dir, tmp_path, monkeypatch):
    from reflectevo_tasks import code_scoring

    options = {"mode": "oracle", "chunk_size": 2, "resume": str(tmp_path / "resume")}
    first = _evaluate(scripted(**options), ["reflectevo_mbpp"])
    calls = []
    real = code_sandbox.run_many

    def counted(jobs, **kwargs):
        calls.append(len(jobs))
        return real(jobs, **kwargs)

    monkeypatch.setattr(code_sandbox, "run_many", counted)
    monkeypatch.setattr(code_scoring, "_cache", type(code_scoring._cache)())  # as a new process starts
    again = _evaluate(scripted(**options), ["reflectevo_mbpp"])
    assert again["config"]["reflectevo"]["chunking"]["reused_chunks"] == 2
    assert again["results"]["reflectevo_mbpp"] == first["results"]["reflectevo_mbpp"]
    # the first stored chunk's 3 programs in one sandbox call (the second's task 13 wrote no code at either
    # attempt); lm-eval's own scoring of the same replies runs nothing again
    assert calls == [3]
