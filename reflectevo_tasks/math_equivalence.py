"""Whether two maths answers are the same value: sympy decides, in a worker process, under a
hard time limit.

A pathological answer (a power tower, a huge factorial) can keep sympy busy for hours, and a
Python thread cannot be interrupted, so comparisons run in a separate interpreter that is killed
when it overruns. That works whoever calls: the main thread, a thread of lm-eval, or a forked
child (which starts a worker of its own). One worker serves a whole process; it starts on the
first comparison that needs sympy and again after being killed.

An overrun, a crash, or a worker that cannot start makes the answers "not equal", with the reason
in `Comparison.reason`; nothing here raises on any input.

Rules (tests/data/math_corpus/README.md): scalars are equal when sympy finds their difference to
be zero exactly (decimals are read as exact fractions, so 0.5 is 1/2 and 0.333 is not 1/3);
tuples and intervals compare element by element with the same brackets; sets and lists compare
as collections in any order; equations are the same when their sides' differences agree up to
sign; word answers and numerals with a base subscript compare as text.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reflectevo_tasks.math_latex import Form, text_key

TIME_LIMIT_S = 5.0  # per comparison: longer than any real answer takes, short enough for a run
START_LIMIT_S = 120.0  # starting the worker (importing sympy) on a loaded machine
MEMORY_LIMIT_BYTES = 3 << 30  # the worker's address space: a huge integer fails instead of swapping
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Comparison:
    equal: bool
    reason: str | None = None  # set when sympy could not decide: TIMEOUT, "worker error: ...", ...


def same_answer(a: Form, b: Form, time_limit: float | None = None) -> Comparison:
    """Are the two answers the same value? Never raises; an undecided comparison is not equal."""
    ja, jb = json.dumps(a.to_json()), json.dumps(b.to_json())
    if ja == jb:
        return Comparison(True)
    if not _needs_sympy(a, b):
        return Comparison(_same(a.to_json(), b.to_json(), values_equal=None))
    return _compare_cached(ja, jb, TIME_LIMIT_S if time_limit is None else float(time_limit))


def _needs_sympy(a: Form, b: Form) -> bool:
    return _has_sympy(a) and _has_sympy(b)


def _has_sympy(f: Form) -> bool:
    return f.sympy is not None or any(_has_sympy(i) for i in f.items)


@lru_cache(maxsize=8192)
def _compare_cached(ja: str, jb: str, time_limit: float) -> Comparison:
    # cached, overruns included: strict and flexible scoring of one reply ask the same question
    return _WORKER.ask({"a": json.loads(ja), "b": json.loads(jb)}, time_limit)


# ---------------------------------------------------------------- the comparison itself
# Forms travel as lists: [kind, key, sympy, rhs, items, brackets] (math_latex.Form.to_json).

def _same(a: list, b: list, values_equal) -> bool:
    """Structural comparison; `values_equal(x, y)` compares two sympy sources (None: compare
    the texts of scalars instead, as happens when the worker is not needed or not available)."""
    ka, kb = a[0], b[0]
    if "text" in (ka, kb):
        return text_key(a[1]) == text_key(b[1])
    if "base" in (ka, kb):
        return ka == kb and a[1] == b[1]
    if ka != kb:
        return False
    if ka == "seq":
        return a[5] == b[5] and len(a[4]) == len(b[4]) and all(
            _same(x, y, values_equal) for x, y in zip(a[4], b[4]))
    if ka == "set":
        return _same_collection(a[4], b[4], values_equal)
    if ka == "eq":
        if values_equal is None or None in (a[2], a[3], b[2], b[3]):
            return a[1] == b[1]
        return values_equal(f"({a[2]}) - ({a[3]})", f"({b[2]}) - ({b[3]})", up_to_sign=True)
    if values_equal is None or a[2] is None or b[2] is None:
        return a[1] == b[1]
    return values_equal(a[2], b[2])


def _same_collection(xs: list, ys: list, values_equal) -> bool:
    if len(xs) != len(ys):
        return False
    unused = list(ys)
    for x in xs:
        match = next((i for i, y in enumerate(unused) if _same(x, y, values_equal)), None)
        if match is None:
            return False
        unused.pop(match)
    return True


# ---------------------------------------------------------------- the worker's side

def _sympy_names() -> dict:
    import sympy

    names = ("sqrt pi oo E I sin cos tan cot sec csc asin acos atan sinh cosh tanh log exp Abs factorial "
             "binomial Integer Float Rational Symbol").split()
    table = {n: getattr(sympy, n) for n in names}
    table["__builtins__"] = {}
    return table


def _value_comparer():
    """A function (x, y, up_to_sign=False) -> bool over sympy sources, for the worker."""
    import sympy
    from sympy.parsing.sympy_parser import auto_number, auto_symbol, parse_expr, rationalize

    names = _sympy_names()
    transformations = (auto_symbol, auto_number, rationalize)

    def parse(source: str):
        return parse_expr(source, local_dict={}, global_dict=dict(names), transformations=transformations)

    def is_zero(d) -> bool:
        if d == 0:
            return True
        if d.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
            return False
        d = sympy.simplify(d)
        if d == 0:
            return True
        return d.equals(0) is True

    def equal(x: str, y: str, up_to_sign: bool = False) -> bool:
        a, b = parse(x), parse(y)
        if a == b or (up_to_sign and a == -b):
            return True
        if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
            return False  # infinities are equal only as written (oo - oo is no number)
        return is_zero(a - b) or (up_to_sign and is_zero(a + b))

    return equal


def serve() -> None:
    """The worker: one JSON request per line on stdin, one JSON answer per line on stdout."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT_BYTES:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, hard))
    except (ImportError, ValueError, OSError):
        pass  # no such limit on this platform: the time limit still holds
    equal = _value_comparer()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = {"equal": bool(_same(request["a"], request["b"], equal))}
        except Exception as exc:  # noqa: BLE001 - any failure is an undecided comparison
            answer = {"equal": False, "reason": f"sympy error: {type(exc).__name__}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


# ---------------------------------------------------------------- the caller's side

class _Worker:
    """The worker process of this process: started on demand, killed on overrun."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.owner = None  # the pid that started it: a forked child must not share its pipes
        self.buffer = b""
        self.lock = threading.Lock()

    def ask(self, request: dict, time_limit: float) -> Comparison:
        with self.lock:
            try:
                self._ensure_started()
            except OSError as exc:
                self._stop()
                return Comparison(False, f"no worker: {exc}")
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
                line = self._readline(time_limit)
            except OSError as exc:
                self._stop()
                return Comparison(False, f"worker error: {exc}")
            if line is None:
                self._stop()
                return Comparison(False, f"{TIMEOUT} after {time_limit:g} s")
            try:
                answer = json.loads(line)
            except ValueError:
                self._stop()
                return Comparison(False, "worker error: unreadable answer")
            return Comparison(bool(answer.get("equal")), answer.get("reason"))

    def _ensure_started(self) -> None:
        if self.proc is not None and self.owner == os.getpid() and self.proc.poll() is None:
            return
        if self.owner != os.getpid():
            self.proc = None  # the parent's worker: leave it to the parent
        self._stop()
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from reflectevo_tasks.math_equivalence import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self.owner = os.getpid()
        self.buffer = b""
        if self._readline(START_LIMIT_S) != "ready":
            raise OSError(f"the sympy worker did not start within {START_LIMIT_S:g} s")

    def _readline(self, time_limit: float) -> str | None:
        """The next line from the worker, or None when none comes within `time_limit`."""
        import time

        deadline = time.monotonic() + time_limit
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("the sympy worker exited")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _stop(self) -> None:
        proc, self.proc, self.buffer = self.proc, None, b""
        if proc is None or self.owner != os.getpid():
            return
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        with self.lock:
            self._stop()


_WORKER = _Worker()
atexit.register(_WORKER.close)
