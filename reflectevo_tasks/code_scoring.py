"""The `code` answer kind as `reflectevo_tasks.answers` scores it: sandbox verdicts
(`reflectevo_tasks.code_answers`), remembered, run in parallel where many are wanted at once, and
only where the run allowed what the sandbox can offer.

Running a reply's code is the expensive part of scoring it (a fresh sandbox each time, about 0.2 s
here), and the same reply is scored many times over: at both levels, for the record, when a run is
counted and again by lm-eval's `process_results`. So the verdict of each (code, tests, setup) is
kept for the life of the process (`_CACHE_SIZE` of them, the oldest dropped first); `prepare`
runs every verdict a whole pass needs in one `code_sandbox.run_many` call, one sandbox per CPU.
The two scoring levels are the same for code: the program is the last fenced block either way.

Whether code may run without isolation is a property of the run, not of a question, so it is
set where a run starts (gen run and gen curate: --allow_unisolated_code; the lm-eval model:
allow_unisolated_code=true), for everything scored inside it, with `allowing_unisolated`. Without
it, a machine that cannot build the isolated sandbox refuses every run with one UserError.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import OrderedDict

from reflectevo.errors import UserError
from reflectevo_tasks import code_answers, code_sandbox

FLAG = "allow_unisolated_code"  # the option's name on every command and in provenance
_CACHE_SIZE = 50_000
_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(FLAG, default=False)
_cache: OrderedDict[tuple, tuple[str, str, str | None]] = OrderedDict()  # key -> (outcome, feedback, limit)
_lock = threading.Lock()


@contextlib.contextmanager
def allowing_unisolated(allowed: bool):
    """Within this block code may run unisolated where no isolated sandbox can be built."""
    token = _allowed.set(bool(allowed))
    try:
        yield
    finally:
        _allowed.reset(token)


def unisolated_allowed() -> bool:
    return _allowed.get()


def check_sandbox(where: str) -> dict:
    """Before a run that will score code: refuse now (not after a model has loaded) where code could
    not run, and say how it will run, for the run's provenance."""
    status = code_sandbox.isolation_status()
    allowed = unisolated_allowed()
    if status.level != code_sandbox.ISOLATED and not allowed:
        raise UserError(
            f"{where}: refusing to run model-written code: no isolated sandbox here ({status.reason}). Run as root "
            f"on Linux with util-linux `unshare` and namespaces allowed (a container with CAP_SYS_ADMIN), or pass "
            f"--{FLAG} (gen run, gen curate) or {FLAG}=true (lm-eval model_args) to run it unisolated, with "
            f"this user's network and files within its reach")
    return describe()


def describe() -> dict:
    """How code is run here: what a run that scores code records in its provenance."""
    status = code_sandbox.isolation_status()
    return {"isolation": status.level, FLAG: unisolated_allowed(), "limits": code_sandbox.Limits().as_job(),
            **({"why_unisolated": status.reason} if status.reason else {})}


def _key(code: str, tests, setup: str) -> tuple:
    return code, tuple(tests), setup


def _remember(key: tuple, value: tuple[str, str, str | None]) -> None:
    with _lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _recall(key: tuple):
    with _lock:
        value = _cache.get(key)
        if value is not None:
            _cache.move_to_end(key)
        return value


def _outcome(result: code_sandbox.RunResult) -> tuple[str, str, str | None]:
    from reflectevo_tasks.answers import CORRECT, WRONG

    return (CORRECT if result.passed else WRONG), code_answers.feedback(result), result.limit


def prepare(items) -> None:
    """Run, in parallel, the sandbox verdicts of (reply, spec) pairs that are not known yet."""
    todo: dict[tuple, code_sandbox.CodeJob] = {}
    for reply, spec in items:
        code = code_answers.extract_code(reply)
        if code is None or not spec.tests:
            continue
        key = _key(code, spec.tests, spec.setup)
        if key not in todo and _recall(key) is None:
            todo[key] = code_sandbox.CodeJob(code, tuple(spec.tests), spec.setup)
    if not todo:
        return
    results = code_sandbox.run_many(list(todo.values()), allow_unisolated=unisolated_allowed())
    for key, result in zip(todo, results):
        _remember(key, _outcome(result))


def extract(reply):
    """The program of a reply as answers.Extraction: read at a fence (the marker of code), or none."""
    from reflectevo_tasks.answers import Extraction

    code = code_answers.extract_code(reply) if isinstance(reply, str) else None
    return Extraction(code, "marker") if code is not None else Extraction(None, "none")


def score(reply, gold: str, spec, level: str):
    """The verdict of a reply on a code item: its program run against the item's tests.

    `gold` (the reference solution) is never run; it is the verdict's gold for the record. An item
    without tests cannot credit any program: its verdict is WRONG, with the reason in `note`
    (the sources refuse such items; only a hand-made AnswerSpec lacks them)."""
    from reflectevo_tasks.answers import NO_ANSWER, WRONG, Verdict

    ex = extract(reply)
    if ex.answer is None:
        return Verdict(NO_ANSWER, None, gold, ex.method, 0.0, level, feedback=code_answers.NO_CODE_FEEDBACK)
    if not spec.tests:
        return Verdict(WRONG, ex.answer, gold, ex.method, 0.0, level, note="the item has no tests")
    key = _key(ex.answer, spec.tests, spec.setup)
    known = _recall(key)
    if known is None:
        prepare([(reply, spec)])
        known = _recall(key)
    outcome, feedback, limit = known
    return Verdict(outcome, ex.answer, gold, ex.method, 0.0, level,
                   note=f"stopped by the {limit} limit" if limit else None, feedback=feedback)
