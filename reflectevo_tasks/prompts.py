"""Prompt builders: the only place our prompts are worded.

Every builder returns a `Prompt`: chat messages (rendered later with the model's own chat
template) and an optional `reply_prefix`, the start of the assistant turn that we write for the
model. The embedded model answers a bare letter unless its reply is opened with a reasoning cue,
so trials open with one; the prefix is part of the recorded output.

Generation, training and evaluation all call these functions, so a model is trained on exactly the
prompts it is later evaluated with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reflectevo_tasks import answers as A
from reflectevo_tasks.instructions import Instruction
from reflectevo_tasks.questions import Question

REASONING_CUE = "Let's think step by step."
ANSWER_LINE = 'So the answer is'

_FORMAT_HINT = {
    A.CHOICE: "the letter of one option in parentheses, like (B)",
    A.TRUE_FALSE: "True or False",
    A.YES_NO: "Yes or No",
    A.VALID_INVALID: "valid or invalid",
    A.INTEGER: "a single integer",
    A.DYCK: "the closing brackets only, separated by spaces",
    A.WORD_SORT: "the words in sorted order, separated by spaces",
    A.FREE_TEXT: "a short answer",
    A.MATH: "the final answer alone inside \\boxed{}",
}


@dataclass(frozen=True)
class Prompt:
    messages: tuple[dict, ...]
    reply_prefix: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def as_list(self) -> list[dict]:
        return [dict(m) for m in self.messages]


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# A program is its own answer: code items ask for one fenced block instead of an answer line (the
# block is what code_answers.extract_code reads, and only at the start of a line).
CODE_REQUEST = "Reply with the complete solution as one Python code block (```python ... ```)."


def answer_request(kind: str) -> str:
    if kind == A.CODE:
        return CODE_REQUEST
    return (f"Reason step by step, then end with one line of the form "
            f'"{ANSWER_LINE} X." where X is {_FORMAT_HINT.get(kind, _FORMAT_HINT[A.FREE_TEXT])}.')


def reply_prefix(kind: str) -> str:
    """How we open the model's answer. Code gets no cue: after "Let's think step by step." the
    embedded model opens its fence on the same line, where no fenced block can start."""
    return "" if kind == A.CODE else REASONING_CUE


def question_turn(q: Question) -> str:
    return f"{q.question.strip()}\n\n{answer_request(q.kind)}"


def trial_prompt(q: Question, exemplars: tuple[tuple[str, str], ...] = ()) -> Prompt:
    """Trial 1: zero-shot chain of thought, or k-shot with worked exemplars as earlier turns."""
    messages: list[dict] = []
    for ex_q, ex_a in exemplars:
        messages.append(_user(f"{ex_q.strip()}\n\n{answer_request(q.kind)}"))
        messages.append(_assistant(f"{REASONING_CUE}\n{ex_a.strip()}"))
    messages.append(_user(question_turn(q)))
    return Prompt(tuple(messages), reply_prefix(q.kind), {"turn": "trial", "shots": len(exemplars)})


def _attempt_block(q: Question, attempt: str) -> str:
    return f"Question:\n{q.question.strip()}\n\nAttempt:\n{attempt.strip()}"


def _verdict_line(verdict: str | None, feedback_text: str | None = None) -> str:
    if feedback_text is not None:  # the tests' own report (code items)
        passed = verdict == A.CORRECT
        return f"Feedback: the attempt's code {'passes' if passed else 'does not pass'} the tests.\n{feedback_text.strip()}"
    if verdict == A.CORRECT:
        return "Feedback: the attempt's final answer is correct."
    if verdict in (A.WRONG, A.NO_ANSWER):
        return "Feedback: the attempt's final answer is incorrect."
    return "Feedback: none; the attempt may or may not be correct."


def _structure(verdict: str | None) -> str:
    """How a reflection is laid out. Without a verdict (intrinsic mode) the attempt may be right,
    so the reflection checks it rather than presupposing an error."""
    if verdict is None:
        return ("Structure it as a check (does each step, and the final answer, hold up? where not, and why?) "
                "followed by a plan (keep the answer if the check confirms it, otherwise what to do differently).")
    return ("Structure it as a diagnosis (where and why the attempt went wrong) followed by a plan "
            "(what to do differently).")


def reflection_prompt(q: Question, attempt: str, instruction: Instruction, verdict: str | None = A.WRONG,
                      feedback_text: str | None = None) -> Prompt:
    """Ask for a self-reflection on an attempt: diagnosis (or, with no verdict, a check), then
    plan; never the answer.

    `verdict` is the feedback shown (None in intrinsic mode, where nothing is known and the
    attempt is not presumed wrong), with `feedback_text` where the environment says more (code: the
    first failing test and its error). The gold answer never enters this prompt.
    """
    text = (
        "Below is a question and an attempt to answer it.\n\n"
        f"{_attempt_block(q, attempt)}\n\n{_verdict_line(verdict, feedback_text)}\n\n"
        f"Write a reflection on the attempt. {instruction.text}\n"
        f"{_structure(verdict)} Do not state a final answer."
    )
    return Prompt((_user(text),), "", {"turn": "reflection", "instruction": instruction.id, "pool": instruction.pool})


def retry_prompt(q: Question, attempt: str, reflection: str | None, verdict: str | None = A.WRONG,
                 exemplars: tuple[tuple[str, str], ...] = (), feedback_text: str | None = None) -> Prompt:
    """Trial 2: the trial-1 conversation continued with feedback and (optionally) the reflection.

    Always built on trial 1, never on an earlier retry. With `reflection=None` this is the
    paper's retry-without-reflection baseline: verdict only (with `feedback_text`, code items'
    first failing test, where the environment gives one).
    """
    first = trial_prompt(q, exemplars)
    messages = list(first.messages) + [_assistant(attempt.strip())]
    lead = {
        A.WRONG: "Your final answer is incorrect.",
        A.NO_ANSWER: "Your final answer is incorrect.",
        None: "Review your answer.",
    }.get(verdict, "Review your answer.")
    gap = " "
    if feedback_text is not None:
        lead = (f"Your code {'passes' if verdict == A.CORRECT else 'does not pass'} the tests.\n"
                f"{feedback_text.strip()}")
        gap = "\n\n"
    if reflection is None:
        follow = f"{lead}{gap}Solve the question again. {answer_request(q.kind)}"
    else:
        follow = (f"{lead}{gap}Here is a reflection on your attempt:\n\n{reflection.strip()}\n\n"
                  f"Use the reflection and solve the question again. {answer_request(q.kind)}")
    messages.append(_user(follow))
    return Prompt(tuple(messages), first.reply_prefix, {"turn": "retry", "with_reflection": reflection is not None})


def one_stage_prompt(q: Question, attempt: str, instruction: Instruction, verdict: str | None = A.WRONG,
                     feedback_text: str | None = None) -> Prompt:
    """Setting I: reflect, then give a corrected solution, in one reply (with no verdict: a checked
    solution, which may keep the answer)."""
    text = (
        "Below is a question and an attempt to answer it.\n\n"
        f"{_attempt_block(q, attempt)}\n\n{_verdict_line(verdict, feedback_text)}\n\n"
        f"First write a reflection on the attempt. {instruction.text}\n"
        + ("" if verdict is not None else f"{_structure(verdict)}\n") +
        "Then solve the question again under the heading \"Corrected solution:\". "
        f"{answer_request(q.kind)}"
    )
    return Prompt((_user(text),), "", {"turn": "one_stage", "instruction": instruction.id, "pool": instruction.pool})


CORRECTED_HEADING = "Corrected solution:"


def one_stage_target(reflection: str, corrected: str) -> str:
    """The reply a one-stage model is trained to write: reflection, then the corrected solution."""
    return f"{reflection.strip()}\n\n{CORRECTED_HEADING}\n{corrected.strip()}"


def gold_reply(q: Question) -> str:
    """The gold answer as a reply's end would state it: what curation's judge-free ranking scores the
    likelihood of after each reflection's retry prompt (and its reply prefix)."""
    if q.kind == A.CODE:
        return f"```python\n{q.answer.strip()}\n```"
    return f" {ANSWER_LINE} {q.answer}."


def split_one_stage(reply: str) -> tuple[str, str]:
    """(reflection, corrected solution) of a one-stage reply; the whole reply if no heading."""
    head, sep, tail = reply.rpartition(CORRECTED_HEADING)
    return (head.strip(), tail.strip()) if sep else (reply.strip(), reply.strip())


def judge_prompt(q: Question, attempt: str, reflection_a: str, reflection_b: str) -> Prompt:
    """Pairwise preference between two reflections on the same failed attempt (for Dpref)."""
    text = (
        "Two reflections were written on the same failed attempt at a question.\n\n"
        f"{_attempt_block(q, attempt)}\n\nReflection 1:\n{reflection_a.strip()}\n\n"
        f"Reflection 2:\n{reflection_b.strip()}\n\n"
        "Which reflection better explains the mistake and gives a more useful plan? "
        'Answer with "Reflection 1" or "Reflection 2" only.'
    )
    return Prompt((_user(text),), "Reflection", {"turn": "judge"})
