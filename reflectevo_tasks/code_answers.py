"""Code answers (the `code` kind, MBPP style): the program in a model's reply and its verdict.

Public API:

    extract_code(reply) -> str | None
        The reply's last fenced block tagged Python (```python, ```py, ```python3, any case), else
        its last fenced block of any language, else None. Blocks holding only whitespace are
        skipped. A fence left open at the end of the reply (a reply cut off by the token limit)
        still counts, running to the end: running it gives the model a SyntaxError to reflect on,
        which says more than "no answer".
    verdict(reply, tests, setup="", *, limits=None, allow_unisolated=False, where="") -> CodeVerdict
        Runs the extracted code, then `setup`, then the assert `tests` in order in the sandbox
        (`code_sandbox.run_tests`). Outcomes are answers.CORRECT (every test passed), answers.WRONG
        (a test failed, the code did not run, or a limit stopped it) and answers.NO_ANSWER (no code
        block). Code that defines no function of the tested name is still run: the first test then
        fails with a NameError, which is the feedback.
    feedback(result, tests_total=None) -> str
        The text a reflection prompt shows for a sandbox result: the first failing test and its
        error, as the paper's MBPP environment gives it.
    CodeVerdict(outcome, feedback, code, result)
        `code` is None and `result` is None for NO_ANSWER.

Raises reflectevo.errors.UserError for bad tests or setup code (naming `where`), and when no isolated
sandbox is available and `allow_unisolated` is False.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from reflectevo_tasks.answers import CORRECT, NO_ANSWER, WRONG
from reflectevo_tasks.code_sandbox import Limits, RunResult, check_tests, run_tests

NO_CODE_FEEDBACK = "No code found: the reply has no fenced code block (```python ... ```)."
_TEST_CHARS = 300
# a fence opens with three or more backticks, indented by at most three spaces (CommonMark)
_FENCE = re.compile(r"^ {0,3}(`{3,})[ \t]*([^`\s]*)[^`\n]*$")
_PYTHON_TAGS = {"python", "py", "python3", "py3"}


@dataclass(frozen=True)
class CodeVerdict:
    outcome: str  # answers.CORRECT, WRONG or NO_ANSWER
    feedback: str
    code: str | None
    result: RunResult | None

    @property
    def correct(self) -> bool:
        return self.outcome == CORRECT


def _fenced_blocks(reply: str) -> list[tuple[str, str]]:
    """(language tag in lower case, body) of every fenced block, in order; one pass over the lines."""
    blocks = []
    lines = reply.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        ticks, tag = opening.group(1), opening.group(2).lower()
        body = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(ticks) and set(closing) == {"`"}:
                break
            body.append(lines[index])
            index += 1
        blocks.append((tag, textwrap.dedent("\n".join(body)).strip("\n")))
        index += 1
    return blocks


def extract_code(reply: str) -> str | None:
    """The program in a reply; see the module docstring for which block wins."""
    if not isinstance(reply, str):
        return None
    blocks = [(tag, body) for tag, body in _fenced_blocks(reply) if body.strip()]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    if python:
        return python[-1] + "\n"
    return blocks[-1][1] + "\n" if blocks else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def feedback(result: RunResult, tests_total: int | None = None) -> str:
    """What went wrong first, in the words a reflection prompt shows the model."""
    total = result.tests_total if tests_total is None else tests_total
    if result.passed:
        return f"All {total} tests passed."
    failure = result.failure
    if failure is None:  # run_tests never gives this; a hand-made result might
        return f"{result.tests_passed} of {total} tests passed."
    if failure.index is None:
        return f"The code failed before any test ran: {failure.error}"
    return f"Test {failure.index + 1} of {total} failed: {_cut(failure.test, _TEST_CHARS)}\n{failure.error}"


def verdict(reply: str, tests, setup: str = "", *, limits: Limits | None = None,
            allow_unisolated: bool = False, where: str = "") -> CodeVerdict:
    """Score a reply against assert tests by running its code in the sandbox."""
    check_tests(tests, setup, where)  # bad tests are an error even when the reply has no code
    code = extract_code(reply)
    if code is None:
        return CodeVerdict(NO_ANSWER, NO_CODE_FEEDBACK, None, None)
    result = run_tests(code, tests, setup, limits=limits, allow_unisolated=allow_unisolated, where=where)
    return CodeVerdict(CORRECT if result.passed else WRONG, feedback(result), code, result)
