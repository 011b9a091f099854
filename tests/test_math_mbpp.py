"""MATH and MBPP as question sources (reflectevo_tasks.math_mbpp), the code kind's scoring
(reflectevo_tasks.code_scoring), their prompts, and the protocol, generation, curation and training
data on them, with scripted models and small data files written here.

Code answers really run, in the sandbox of this machine (isolated where it can be built); the tests
that need the unisolated path make the machine look unisolated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import code_sandbox, code_scoring, math_mbpp, prompts as P, protocol
from reflectevo_tasks.engine import Engine, EngineConfig, Sampling
from reflectevo_tasks.instructions import find_instruction
from reflectevo_tasks.questions import Question
from reflectevo_tasks.sources import load_questions
from scripted_models import ScriptedChat

REPO = Path(__file__).resolve().parents[1]

MATH_ROWS = [
    {"problem": "What is $2+3$?", "solution": "We add: $2+3=\\boxed{5}$.", "level": "Level 1", "type": "Prealgebra"},
    {"problem": "Simplify $\\frac{2}{4}$.", "solution": "Divide by 2: $\\boxed{\\frac{1}{2}}$.", "level": "Level 1",
     "type": "Algebra"},
    {"problem": "Find the negative $x$ with $x^2=9$.",
     "solution": "Not $\\boxed{3}$, which is positive: the answer is $x=\\boxed{-3}$.", "level": "Level 2", "type": "Algebra"},
    {"problem": "In how many orders can 3 books stand?", "solution": "$3!=\\boxed{6}$", "level": "Level 1",
     "type": "Counting & Probability"},
]
MBPP_ROWS = [
    {"text": "Write a function to add two numbers.", "code": "def add(a, b):\r\n    return a + b",
     "task_id": 11, "test_setup_code": "",
     "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"], "challenge_test_list": []},
    {"text": "Write a function to reverse a string.", "code": "def rev(s):\n    return s[::-1]", "task_id": 12,
     "test_setup_code": "", "test_list": ["assert rev('ab') == 'ba'", "assert rev('') == ''"], "challenge_test_list": []},
    {"text": "Write a function for the square root of a number.", "code": "def root(x):\n    return math.sqrt(x)",
     "task_id": 13, "test_setup_code": "import math", "test_list": ["assert root(9) == 3.0"], "challenge_test_list": []},
]
RIGHT = {11: "def add(a, b):\n    return a + b", 12: "def rev(s):\n    return s[::-1]",
         13: "def root(x):\n    return math.sqrt(x)"}
WRONG = {11: "def add(a, b):\n    return a - b", 12: "def rev(s):\n    return s", 13: "def root(x):\n    return x / 2"}


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    """A folder in the layout of ../shared/data, named by REFLECTEVO_DATA_DIR only."""
    for name in ("REFLECTEVO_MATH_DIR", "REFLECTEVO_MBPP_DIR"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "data"
    write_jsonl(root / "math" / "math_test.jsonl", MATH_ROWS)
    write_jsonl(root / "mbpp" / "mbpp_test.jsonl", MBPP_ROWS)
    monkeypatch.setenv(math_mbpp.DATA_ENV, str(root))
    return root


def code_reply(code: str) -> str:
    return f"Here it is.\n```python\n{code}\n```\nIt should work."


# ================================================================ sources

def test_math_questions_come_from_the_data_folder(data_dir):
    report = load_questions("math")
    qs = report.questions
    assert [q.id for q in qs] == ["math/0", "math/1", "math/2", "math/3"]
    assert [q.source for q in qs] == ["math/prealgebra", "math/algebra", "math/algebra", "math/counting_and_probability"]
    # the gold is the last box of the solution, nested braces kept
    assert [q.answer for q in qs] == ["5", "\\frac{1}{2}", "-3", "6"]
    assert {q.kind for q in qs} == {A.MATH} and qs[0].question == "What is $2+3$?"
    file = data_dir / "math" / "math_test.jsonl"
    assert report.origin == {"dataset": str(file.resolve()), "location": str(file.resolve()),
                             "revision": "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()}


def test_mbpp_questions_show_the_task_and_its_tests(data_dir):
    qs = load_questions("mbpp").questions
    assert [q.id for q in qs] == ["mbpp/11", "mbpp/12", "mbpp/13"] and [q.index for q in qs] == [11, 12, 13]
    q = qs[0]
    assert q.kind == A.CODE and q.source == "mbpp"
    assert q.question == ("Write a function to add two numbers.\nYour code should pass these tests:\n\n"
                          "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(2, 2) == 4")
    assert q.answer == "def add(a, b):\n    return a + b\n"  # the reference, line ends made plain
    assert q.tests == tuple(MBPP_ROWS[0]["test_list"]) and qs[2].setup == "import math"
    assert q.spec.tests == q.tests and qs[2].spec.setup == "import math"


def test_the_data_is_found_by_variable_folder_file_or_argument(data_dir, tmp_path, monkeypatch):
    other = write_jsonl(tmp_path / "elsewhere" / "some_math.jsonl", MATH_ROWS[:2])
    assert len(load_questions(f"math:{other}").questions) == 2  # an explicit file wins over the environment
    monkeypatch.setenv("REFLECTEVO_MATH_DIR", str(other))
    assert len(load_questions("math").questions) == 2  # the benchmark's own variable wins over the umbrella
    monkeypatch.setenv("REFLECTEVO_MBPP_DIR", str(data_dir / "mbpp"))  # a folder holding mbpp_test.jsonl
    assert len(load_questions("mbpp").questions) == 3
    assert [q.id for q in load_questions("mbpp", limit=2, kinds="code").questions] == ["mbpp/11", "mbpp/12"]
    assert [q.id for q in load_questions("mbpp", ids="mbpp/13").questions] == ["mbpp/13"]
    assert load_questions("mbpp", kinds="math").questions == []


def test_without_a_local_copy_the_error_names_the_variables(monkeypatch):
    for name in ("REFLECTEVO_MATH_DIR", "REFLECTEVO_MBPP_DIR", math_mbpp.DATA_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="REFLECTEVO_MBPP_DIR.*REFLECTEVO_DATA_DIR.*mbpp:ORG/NAME"):
        load_questions("mbpp")
    monkeypatch.setenv("REFLECTEVO_MATH_DIR", "/nonexistent/math")
    with pytest.raises(UserError, match="no math data here \\(named by REFLECTEVO_MATH_DIR\\)"):
        load_questions("math")
    with pytest.raises(UserError, match="no such file or folder"):
        load_questions("math:./missing.jsonl")


def test_a_hub_dataset_that_cannot_be_loaded_names_the_variable(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset_builder", offline)
    with pytest.raises(UserError, match="could not load the Hub dataset someone/mbpp-copy.*Offline\\? Point "
                                        "REFLECTEVO_MBPP_DIR or REFLECTEVO_DATA_DIR at a local copy"):
        load_questions("mbpp:someone/mbpp-copy")


def test_a_hub_dataset_of_the_same_layout_records_the_commit_loaded(monkeypatch):
    import datasets

    asked = {}

    class Builder:
        hash = "0123456789abcdef0123456789abcdef01234567"

        def download_and_prepare(self):
            pass

        def as_dataset(self, split):
            asked["split"] = split
            return datasets.Dataset.from_list(MBPP_ROWS)

    def builder(repo, config, revision=None):
        asked.update(repo=repo, config=config, revision=revision)
        return Builder()

    monkeypatch.setattr(datasets, "load_dataset_builder", builder)
    report = load_questions("mbpp:someone/mbpp-copy:full@0123456")
    assert asked == {"repo": "someone/mbpp-copy", "config": "full", "revision": "0123456", "split": "test"}
    assert [q.id for q in report.questions] == ["mbpp/11", "mbpp/12", "mbpp/13"]
    assert report.origin == {"dataset": "someone/mbpp-copy", "revision": Builder.hash,
                             "location": "hf://datasets/someone/mbpp-copy", "config": "full"}
    with pytest.raises(UserError, match="asked for someone/mbpp-copy at commit fedcba9"):
        load_questions("mbpp:someone/mbpp-copy@fedcba9")


@pytest.mark.parametrize("name,row,message", [
    ("math", {**MATH_ROWS[0], "solution": "no box at all"}, "2: the solution has no complete"),
    ("math", {**MATH_ROWS[0], "type": "Topology"}, "2: type 'Topology' is not a MATH subject"),
    ("math", {"problem": "p", "type": "Algebra"}, "2: no 'solution' field"),
    ("mbpp", {**MBPP_ROWS[1], "task_id": 20, "test_list": ["print(1)"]}, "2: test 1 must be one assert statement"),
    ("mbpp", {**MBPP_ROWS[1], "task_id": 20, "test_list": []}, "2: no tests to run"),
    ("mbpp", {**MBPP_ROWS[1], "task_id": "20"}, "2: field 'task_id' must be an integer"),
    ("mbpp", MBPP_ROWS[0], "2: task_id 11 again \\(first at .*:1\\)"),
    ("mbpp", "not an object", "2: not a JSON object"),
])
def test_a_malformed_row_is_one_error_naming_file_and_line(tmp_path, name, row, message):
    first = MATH_ROWS[0] if name == "math" else MBPP_ROWS[0]
    path = write_jsonl(tmp_path / f"{name}.jsonl", [first, row])
    with pytest.raises(UserError, match=f"{path.name}:{message}"):
        load_questions(f"{name}:{path}")


def test_a_line_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text(json.dumps(MATH_ROWS[0]) + "\n{broken\n")
    with pytest.raises(UserError, match="math.jsonl:2: not valid JSON"):
        load_questions(f"math:{path}")


def test_question_records_keep_tests_only_for_code(data_dir):
    code = load_questions("mbpp").questions[2]
    d = code.to_dict()
    assert d["tests"] == ["assert root(9) == 3.0"] and d["setup"] == "import math"
    assert Question.from_dict(json.loads(json.dumps(d))) == code
    maths = load_questions("math").questions[0]
    assert "tests" not in maths.to_dict() and "setup" not in maths.to_dict()
    assert Question.from_dict(maths.to_dict()) == maths


def test_generation_does_not_refuse_math_or_mbpp_items(data_dir):
    from reflectevo_tasks import bbh_split

    bbh_split.refuse_test_items(load_questions("math").questions + load_questions("mbpp").questions, "math")


# ================================================================ scoring

def test_code_verdicts_carry_the_first_failing_test(data_dir):
    q = load_questions("mbpp").questions[0]
    right = A.score(code_reply(RIGHT[11]), q.answer, q.spec)
    assert right.outcome == A.CORRECT and right.feedback == "All 3 tests passed." and right.method == "marker"
    wrong = A.score(code_reply(WRONG[11]), q.answer, q.spec)
    assert wrong.outcome == A.WRONG and wrong.extracted == WRONG[11] + "\n"
    assert wrong.feedback == ("Test 1 of 3 failed: assert add(1, 2) == 3\n"
                              "AssertionError: add(1, 2) gave -1, expected 3")
    none = A.score("I would add them.", q.answer, q.spec)
    assert none.outcome == A.NO_ANSWER and none.extracted is None and "No code found" in none.feedback
    assert A.score_levels(code_reply(WRONG[11]), q.answer, q.spec)[A.FLEXIBLE] == A.Verdict(
        A.WRONG, wrong.extracted, q.answer, "marker", level=A.FLEXIBLE, feedback=wrong.feedback)
    # the setup code runs before the tests
    root = load_questions("mbpp").questions[2]
    assert A.score(code_reply(RIGHT[13]), root.answer, root.spec).correct
    # a hand-made spec without tests credits nothing (the sources refuse such items)
    assert A.score(code_reply(RIGHT[11]), "", A.AnswerSpec(A.CODE)).outcome == A.WRONG


def test_code_verdicts_run_once_and_a_pass_runs_in_parallel(data_dir, monkeypatch):
    calls = []
    real = code_sandbox.run_many

    def counted(jobs, **kwargs):
        calls.append([job.code for job in jobs])
        return real(jobs, **kwargs)

    monkeypatch.setattr(code_sandbox, "run_many", counted)
    qs = load_questions("mbpp").questions
    salt = "# %s\n" % hashlib.sha256(str(id(calls)).encode()).hexdigest()  # programs no earlier test ran
    replies = [code_reply(salt + WRONG[q.index]) for q in qs] + [code_reply(salt + WRONG[11])]
    verdicts = A.score_many((r, q.answer, q.spec) for r, q in zip(replies, qs + [qs[0]]))
    assert [v.outcome for v in verdicts] == [A.WRONG] * 4
    assert len(calls) == 1 and len(calls[0]) == 3  # one parallel call, the repeated program run once
    for level in A.LEVELS:  # the same programs again, at either level: remembered
        A.score(replies[0], qs[0].answer, qs[0].spec, level)
    assert len(calls) == 1


def test_code_runs_unisolated_only_where_the_run_allows_it(data_dir, monkeypatch):
    monkeypatch.setattr(code_sandbox, "isolation_status",
                        lambda: code_sandbox.Isolation(code_sandbox.UNISOLATED, "made unisolated by the test"))
    q = load_questions("mbpp").questions[1]
    fresh = code_reply(f"# unisolated {id(q)}\n" + RIGHT[12])
    with pytest.raises(UserError, match="made unisolated by the test.*--allow_unisolated_code"):
        code_scoring.check_sandbox("gen run")
    with pytest.raises(UserError, match="refusing to run model-written code"):
        A.score(fresh, q.answer, q.spec)
    with code_scoring.allowing_unisolated(True):
        described = code_scoring.check_sandbox("gen run")
        verdict = A.score(fresh, q.answer, q.spec)
    assert described["isolation"] == code_sandbox.UNISOLATED and described["allow_unisolated_code"] is True
    assert verdict.correct
    assert not code_scoring.unisolated_allowed()  # only within the block


def test_math_answers_are_compared_by_value(data_dir):
    q = load_questions("math").questions[1]
    assert A.score("So the answer is $\\boxed{0.5}$.", q.answer, q.spec).correct
    assert A.score("So the answer is $\\boxed{2}$.", q.answer, q.spec).outcome == A.WRONG


# ================================================================ prompts

def test_bbh_prompts_are_byte_identical_to_before_math_and_code(bbh_dir):
    """Hashes of every prompt the builders made for a few BBH items before these kinds were added."""
    from reflectevo_tasks import bbh

    frozen = json.loads((REPO / "tests" / "data" / "bbh_prompts_before_math_code.json").read_text())["prompts"]
    ins = find_instruction("default")
    attempt = "ATTEMPT So the answer is (A)."
    for qid, hashes in frozen.items():
        _, subtask, index = qid.split("/")
        q = bbh.load_subtask(subtask, bbh_dir)[int(index)]
        shots = bbh.cot_exemplars(subtask, bbh_dir)
        built = {"trial": P.trial_prompt(q), "trial_fewshot": P.trial_prompt(q, shots),
                 "judge": P.judge_prompt(q, "ATTEMPT", "R1", "R2")}
        for v in (A.CORRECT, A.WRONG, A.NO_ANSWER, None):
            built[f"reflection/{v}"] = P.reflection_prompt(q, attempt, ins, v)
            built[f"one_stage/{v}"] = P.one_stage_prompt(q, attempt, ins, v)
            built[f"retry/{v}"] = P.retry_prompt(q, attempt, "A REFLECTION.", v, shots)
            built[f"retry_only/{v}"] = P.retry_prompt(q, attempt, None, v)
        now = {k: hashlib.sha256(json.dumps([p.as_list(), p.reply_prefix], ensure_ascii=False).encode()).hexdigest()
               for k, p in built.items()}
        assert now == hashes, (qid, [k for k in hashes if now[k] != hashes[k]])


def test_code_prompts_ask_for_one_block_and_show_the_failing_test(data_dir):
    q = load_questions("mbpp").questions[0]
    trial = P.trial_prompt(q)
    assert trial.reply_prefix == ""  # a fence opened after a cue on the same line is no block
    assert trial.messages[-1]["content"] == f"{q.question}\n\n{P.CODE_REQUEST}"
    feedback = "Test 1 of 3 failed: assert add(1, 2) == 3\nAssertionError: add(1, 2) gave -1, expected 3"
    ins = find_instruction("default")
    attempt = code_reply(WRONG[11])
    reflection = P.reflection_prompt(q, attempt, ins, A.WRONG, feedback).messages[0]["content"]
    assert f"Feedback: the attempt's code does not pass the tests.\n{feedback}\n\n" in reflection
    one_stage = P.one_stage_prompt(q, attempt, ins, A.WRONG, feedback).messages[0]["content"]
    assert feedback in one_stage and one_stage.endswith(P.CODE_REQUEST)
    retry = P.retry_prompt(q, attempt, "Diagnosis: subtracted. Plan: add.", A.WRONG, feedback_text=feedback)
    assert retry.messages[-1]["content"] == (
        f"Your code does not pass the tests.\n{feedback}\n\nHere is a reflection on your attempt:\n\n"
        f"Diagnosis: subtracted. Plan: add.\n\nUse the reflection and solve the question again. {P.CODE_REQUEST}")
    only = P.retry_prompt(q, attempt, None, A.NO_ANSWER, feedback_text="No code found.")
    assert only.messages[-1]["content"] == (f"Your code does not pass the tests.\nNo code found.\n\n"
                                            f"Solve the question again. {P.CODE_REQUEST}")
    assert retry.reply_prefix == "" and P.gold_reply(q) == f"```python\n{q.answer.strip()}\n```"
    # without feedback text (intrinsic mode) the verdict line is the usual one
    assert "Feedback: none; the attempt may or may not be correct." in P.reflection_prompt(q, attempt, ins, None).messages[0]["content"]


def test_the_math_prompt_asks_for_a_boxed_answer(data_dir):
    q = load_questions("math").questions[0]
    trial = P.trial_prompt(q)
    assert trial.reply_prefix == P.REASONING_CUE
    assert trial.messages[-1]["content"].endswith("where X is the final answer alone inside \\boxed{}.")


# ================================================================ protocol, generation, curation, training

REFLECTIONS = (
    "Diagnosis: I did not check the result against the tests. Plan: trace each test by hand.",
    "Diagnosis: the attempt guessed. Plan: write out each step.",
    "Diagnosis: the sign is wrong. Plan: redo the last step.",
    "Diagnosis: I misread the task. Plan: read it word by word.",
)


class ScriptedLM(ScriptedChat):
    """Trial 1: the first MATH item and MBPP task 11 right, the others wrong, task 13 no code at all.
    Reflections cycle through REFLECTIONS (a fifth kind per kind gives the answer away, see below);
    a retry after reflection 0 or 2 is right, else wrong; a one-stage reply is right."""

    def __init__(self, questions: list[Question], leak_every: int = 0):
        self.by_text = {q.question: q for q in questions}
        self.reflections = 0
        self.leak_every = leak_every  # every n-th reflection states the gold instead
        self.contexts: list[str] = []
        self.continuations: list[str] = []

    def _answer(self, q: Question, right: bool) -> str:
        if q.kind == A.CODE:
            if not right and q.index == 13:
                return "I am not sure how to do this."
            return code_reply(RIGHT[q.index] if right else WRONG[q.index])
        return f"So the answer is $\\boxed{{{q.answer if right else 1000}}}$."

    def _leak(self, q: Question) -> str:
        if q.kind == A.CODE:
            return f"Diagnosis: wrong operation. Plan: use this.\n{code_reply(RIGHT[q.index])}"
        return f"Diagnosis: a slip. The correct answer should be ${q.answer}$."

    def loglikelihood(self, requests, disable_tqdm=False):
        """-k after the k-th reflection text: Dpref pairs get a margin of 2 or more."""
        scores = []
        for context, continuation in (r.args for r in requests):
            self.continuations.append(continuation)
            k = next((i for i, text in enumerate(REFLECTIONS) if text in context), len(REFLECTIONS))
            scores.append((-2.0 * k, False))
        return scores

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for context, _ in (r.args for r in requests):
            self.contexts.append(context)
            q = self.by_text[max((t for t in self.by_text if t in context), key=len)]
            last = context.rsplit("<user>", 1)[1]
            if P.CORRECTED_HEADING in last:
                out.append(f"{REFLECTIONS[0]}\n\n{P.CORRECTED_HEADING}\n{self._answer(q, True)}")
            elif "Write a reflection" in last:
                k = self.reflections
                self.reflections += 1
                out.append(self._leak(q) if self.leak_every and k % self.leak_every == self.leak_every - 1
                           else REFLECTIONS[k % 4])
            elif "solve the question again" in last.lower():
                out.append(self._answer(q, REFLECTIONS[0] in last or REFLECTIONS[2] in last or "Use this" in last))
            else:
                out.append(self._answer(q, q.id in ("math/0", "mbpp/11")))
        return out


def scripted_engine(questions, **kwargs) -> Engine:
    return Engine(EngineConfig(model="scripted"), lm=ScriptedLM(questions, **kwargs))


@pytest.mark.parametrize("mode", ["oracle", "retry_only", "intrinsic"])
def test_the_second_attempt_sees_the_failing_test_only_when_a_verdict_is_shown(data_dir, mode):
    qs = load_questions("mbpp").questions
    engine = scripted_engine(qs)
    items = [protocol.Item(q, Sampling(), instructions=(find_instruction("default"),)) for q in qs]
    runs = protocol.run(items, engine, None, protocol.Settings(mode=mode))
    assert [r.verdict.outcome for r in runs] == [A.CORRECT, A.WRONG, A.NO_ANSWER]
    second = [c for c in engine.lm.contexts if "solve the question again" in c.rsplit("<user>", 1)[1].lower()]
    failing = "Test 1 of 2 failed: assert rev('ab') == 'ba'\nAssertionError: rev('ab') gave 'ab', expected 'ba'"
    if mode == "intrinsic":
        assert len(second) == 3 and not any("pass the tests" in c for c in engine.lm.contexts)
        assert all(r.feedback_text is None for r in runs)
        return
    assert [r.feedback_text for r in runs] == [None, failing, code_scoring.code_answers.NO_CODE_FEEDBACK]
    assert len(second) == 2 and failing in second[0] and "No code found" in second[1]
    if mode == "oracle":
        reflections = [c for c in engine.lm.contexts if "Write a reflection" in c]
        assert f"Feedback: the attempt's code does not pass the tests.\n{failing}" in reflections[0]


SMALL = {"chunk_size": 8, "instruction_ids": "sample:2", "reflections_per_instruction": 2}


def _generate(tmp_path, source: str, leak_every: int = 0):
    from reflectevo.chunk_store import read_records
    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import Engines, plan_questions, run

    cfg = GenConfig(output=str(tmp_path / source), source=source, **SMALL)
    engine = scripted_engine(plan_questions(cfg)[0], leak_every=leak_every)
    summary = run(cfg, engines=Engines(engine, engine), show_progress=False)
    return summary, read_records(cfg.output), engine


def test_gen_run_records_feedback_data_and_sandbox(data_dir, tmp_path):
    summary, records, _ = _generate(tmp_path, "mbpp")
    assert summary["questions"] == 3 and summary["wrong_at_t1"] == 2 and summary["reflections"] == 8
    assert summary["fixed_by_retry"] == 4  # after reflections 0 and 2 of each failed task
    rec = next(r for r in records if r["question_id"] == "mbpp/12" and r["reflection"])
    assert rec["trial1"]["outcome"] == A.WRONG and rec["trial1"]["feedback"].startswith("Test 1 of 2 failed")
    assert rec["question"]["tests"] == MBPP_ROWS[1]["test_list"]
    assert rec["retry"]["feedback"] in ("All 2 tests passed.", rec["trial1"]["feedback"])
    assert "does not pass the tests" in rec["reflection"]["messages"][0]["content"]
    assert rec["data"]["revision"].startswith("sha256:") and rec["data"]["dataset"].endswith("mbpp_test.jsonl")
    assert rec["code_sandbox"]["isolation"] == code_sandbox.isolation_status().level
    assert rec["code_sandbox"]["allow_unisolated_code"] is False


def test_gen_run_refuses_before_loading_a_model_where_code_cannot_run(data_dir, tmp_path, monkeypatch):
    from reflectevo_gen import pipeline
    from reflectevo_gen.config import GenConfig

    monkeypatch.setattr(code_sandbox, "isolation_status",
                        lambda: code_sandbox.Isolation(code_sandbox.UNISOLATED, "made unisolated by the test"))
    monkeypatch.setattr(pipeline, "build_engines", lambda cfg: pytest.fail("a model was loaded"))
    with pytest.raises(UserError, match="gen run --source mbpp: refusing to run model-written code"):
        pipeline.run(GenConfig(output=str(tmp_path / "x"), source="mbpp"))
    assert not (tmp_path / "x").exists()
    # math needs no sandbox, and the flag is no part of a run's identity (it changes where code runs, not verdicts)
    assert "allow_unisolated_code" not in GenConfig(allow_unisolated_code=True).identity()


def test_curation_on_code_and_math(data_dir, tmp_path):
    from reflectevo_gen.curate import curate

    for source in ("mbpp", "math"):
        _, records, engine = _generate(tmp_path, source, leak_every=4)
        result = curate(records, engine=engine)
        stats = result["stats"]
        kind, wrong = (A.CODE, 2) if source == "mbpp" else (A.MATH, 3)
        # every fourth reflection gives the answer away (a working program, the gold value): dropped, counted
        assert stats["leaks_by_kind"] == {kind: wrong} and stats["reflections_by_kind"] == {kind: 4 * wrong}
        assert all("use this" not in r["reflection"] and "should be" not in r["reflection"] for r in result["d_plus"])
        # the two fixing reflections of a question retry alike: D+ keeps one
        assert len(result["sft_qa"]) == 1 and len(result["d_plus"]) == wrong and result["d_pm"]
        # Dpref ranks by the likelihood of the gold as an answer states it: a program block for code
        gold = {q.answer for q in load_questions(source).questions}
        assert engine.lm.continuations and all(
            (c.removeprefix("```python\n").removesuffix("\n```") + "\n" in gold) if kind == A.CODE
            else c.removeprefix(f" {P.ANSWER_LINE} ").removesuffix(".") in gold for c in engine.lm.continuations)
        if source == "mbpp":
            assert all(r["trial1_feedback"] for c in ("d_plus", "d_pm", "sft_qa") for r in result[c])
            assert stats["code_sandbox"]["isolation"] == code_sandbox.isolation_status().level
        else:
            assert not any("trial1_feedback" in r for c in ("d_plus", "d_pm", "sft_qa") for r in result[c])
        assert {t["source"] for t in stats["per_source"]} == ({"mbpp"} if source == "mbpp" else
                                                              {"math/prealgebra", "math/algebra",
                                                               "math/counting_and_probability"})


def test_training_prompts_show_what_generation_showed(data_dir, tmp_path):
    from reflectevo_gen.curate import curate
    from reflectevo_train.config import SETTINGS
    from reflectevo_train.data import build_examples

    _, records, engine = _generate(tmp_path, "mbpp")
    result = curate(records, engine=engine)
    row = result["d_plus"][0]
    generated = next(r for r in records if r["record_id"] == row["record_id"])
    examples, stats = build_examples(SETTINGS["two_stage"], "reflection", [row], "default")
    assert stats.examples == 1
    ins = generated["reflection"]["instruction_id"]
    examples, _ = build_examples(SETTINGS["two_stage"], "reflection", [row], ins)
    assert examples[0].prompt.as_list() == generated["reflection"]["messages"]
    retry, _ = build_examples(SETTINGS["two_stage"], "retry", [row], ins)
    assert retry[0].prompt.as_list() == generated["retry"]["messages"]
    sft, _ = build_examples(SETTINGS["sft_qa"], "answer", result["sft_qa"], ins)
    assert sft[0].prompt.reply_prefix == "" and sft[0].completion.startswith("Here it is.")
    with pytest.raises(UserError, match="row 0: a code item without trial1_feedback"):
        build_examples(SETTINGS["two_stage"], "reflection", [{k: v for k, v in row.items() if k != "trial1_feedback"}],
                       ins)
