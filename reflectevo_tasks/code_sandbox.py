"""Run model-written Python against assert tests in an isolated, resource-limited child process.

Public API:

    run_tests(code, tests, setup="", *, limits=None, allow_unisolated=False, where="") -> RunResult
    run_many(jobs, *, limits=None, allow_unisolated=False, workers=None) -> list[RunResult]
    check_tests(tests, setup="", where="") -> list[str]   the input checks run_tests makes
    CodeJob(code, tests, setup="", where="")       one item for run_many
    Limits(cpu_seconds=10, memory_mib=512, processes=16, file_size_bytes=16 MiB,
           wall_seconds=30.0, output_bytes=64 KiB)
    isolation_status() -> Isolation(level, reason)  ISOLATED or UNISOLATED, probed once per process

`tests` are single `assert` statements (MBPP's `test_list`), run in order after the code and the
setup code, in one namespace; the run stops at the first failing test. The result says how many
passed, which one failed first and with what error (`AssertionError: f(3) gave 7, expected 6`, or the
exception with the line of the model's code it came from), how long the run took, whether it was
killed and which limit stopped it: "wall", "cpu", "memory", "processes", "open_files", "file_size"
or "output". Besides `Limits`, every run gets 64 open files and no core dumps.

ISOLATED (Linux, root, util-linux `unshare`): the child is the first process of new network, pid,
mount, IPC and UTS namespaces. Its network namespace has only a loopback device that is down, so
nothing can be sent anywhere, not even to this machine's 127.0.0.1. Its filesystem is a private
read-only tmpfs root holding read-only, nosuid binds of the system's program and library folders,
the Python installation, four device nodes (null, zero, random, urandom) and an empty writable
tmpfs `/work` (its working directory) whose size is the file-size limit; nothing else of the host's
filesystem (homes, /tmp, the repository, /proc, /sys) is in it. The model's code runs as a uid of its
own (2,000,000,000 and up, picked at random per run), with no supplementary groups, no capabilities
and no_new_privs set, so it cannot regain root through setuid programs, cannot signal anything
outside its run, and RLIMIT_NPROC caps how many processes it has. The environment holds only PATH,
HOME=/work, TMPDIR=/work and LANG. When the run ends the sandbox's first process kills every other
process in the pid namespace; if that process itself outlives the wall-clock limit plus a grace,
this module kills it, which makes the kernel kill the rest, and waits for `unshare` (started with
`--kill-child`), which exits only after that.

Not contained: CPU and memory are per process, so a fork bomb can use `processes` x `memory_mib`
of memory and that many cores until the wall-clock limit; readable system folders (/usr, /etc's
loader cache, the Python installation, even where it lives in a home folder as pyenv's does) are
visible; the kernel is shared (no seccomp filter). A test's verdict comes from a report line
carrying a random per-run nonce on a pipe only the worker holds, from the worker's own pid, and the
harness keeps exec, compile and its test runner where the model's code cannot rebind them; so
printing "all passed", writing to other descriptors, a forked child reporting, or replacing
`builtins.exec` changes nothing. Code that deliberately searches the interpreter's memory for the
nonce, or returns objects whose `__eq__` always says True, can still pass tests it should not. These are sandboxes against accidents and careless code of a small model, not against a
determined attacker.

UNISOLATED: where isolation is not available every run raises UserError, unless the caller passes
`allow_unisolated=True`; then the code runs as the calling user with the same resource limits (bar
the process count, which RLIMIT_NPROC cannot bound for a shared uid; and a caller running as root
leaves the code free to raise its own limits), a cleared environment and an empty temporary
working directory, but with the network, the user's files and the user's processes within reach.
The supervisor is a child subreaper, so descendants that leave their session are still its to
kill when the run ends (it kills until none is left). If the supervisor itself hangs, this module
stops each process of the tree before listing its children, so none forks away, then kills them all
and returns only once each is dead.
"""

from __future__ import annotations

import ast
import functools
import marshal
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from reflectevo.errors import UserError

ISOLATED, UNISOLATED = "namespaces", "none"
LIMIT_NAMES = ("wall", "cpu", "memory", "processes", "open_files", "file_size", "output")

_HARNESS = Path(__file__).with_name("code_sandbox_harness.py")
# the supervisor's own start (unshare, interpreter, mounts) is outside the worker's wall clock
_STARTUP_GRACE = 5.0
_UID_BASE = 2_000_000_000
# the uids runs are given (one at random per run): no account uses them, so RLIMIT_NPROC counts
# exactly that run's processes
SANDBOX_UIDS = range(_UID_BASE, _UID_BASE + (1 << 24))
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
                 "/etc/localtime")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
_UNSHARE_FLAGS = ("--net", "--pid", "--mount", "--ipc", "--uts", "--kill-child", "--propagation", "private")


@dataclass(frozen=True)
class Limits:
    """Per-run limits; CPU and memory apply to each process of the run, the others to the run.

    The defaults leave room for MBPP's slowest reference solution (task 123: 3.6 s of CPU on a Zen 3
    core) and for a loaded machine, where wall-clock time runs two to three times the CPU time.
    """

    cpu_seconds: int = 10
    memory_mib: int = 512  # address space, so the interpreter's own ~30 MiB counts
    processes: int = 16  # processes and threads at once, the first one included
    file_size_bytes: int = 16 * 1024 * 1024  # largest file, and all of /work together
    wall_seconds: float = 30.0
    output_bytes: int = 64 * 1024  # stdout and stderr together; more kills the run

    def __post_init__(self):
        for name in ("cpu_seconds", "memory_mib", "processes", "file_size_bytes", "output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"sandbox limit {name} must be a whole number of at least 1, not {value!r}")
        wall = self.wall_seconds
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not (0 < wall < math.inf):
            raise UserError(f"sandbox limit wall_seconds must be a positive number of seconds, not {wall!r}")
        if self.memory_mib < 64:
            # below this the interpreter itself cannot run its first test
            raise UserError(f"sandbox limit memory_mib must be at least 64, not {self.memory_mib}")

    def as_job(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "memory_mib": self.memory_mib, "processes": self.processes,
                "file_size_bytes": self.file_size_bytes, "wall_seconds": float(self.wall_seconds),
                "output_bytes": self.output_bytes}


@dataclass(frozen=True)
class Failure:
    """The first test that did not pass. `index` counts from 0; None means the code itself failed
    (did not compile, raised, or was stopped) before the first test ran, and `test` is then ""."""

    index: int | None
    test: str
    error: str


@dataclass(frozen=True)
class RunResult:
    passed: bool
    tests_passed: int
    tests_total: int
    failure: Failure | None
    seconds: float  # wall clock from starting the sandbox to its verdict (containment included)
    cpu_seconds: float | None  # CPU time of all the run's processes; None if killed from outside
    limit: str | None  # one of LIMIT_NAMES when a limit stopped the run, else None
    killed: bool  # the run was ended by a signal (a limit, or the code's own doing)
    isolation: str  # ISOLATED or UNISOLATED
    output: str = field(repr=False, default="")  # stdout and stderr, cut at Limits.output_bytes
    output_bytes: int = 0  # how many bytes the code wrote in all


@dataclass(frozen=True)
class CodeJob:
    code: str
    tests: tuple[str, ...] | list[str]
    setup: str = ""
    where: str = ""  # names the item in error messages, e.g. "mbpp_test.jsonl line 3"


@dataclass(frozen=True)
class Isolation:
    level: str
    reason: str  # why isolation is missing; "" when ISOLATED


# ------------------------------------------------------------------ input checks

def _label(where: str) -> str:
    return f"{where}: " if where else ""


def check_tests(tests, setup: str = "", where: str = "") -> list[str]:
    """The tests as a list of strings, each one `assert` statement; UserError naming the bad one."""
    if isinstance(tests, str) or not isinstance(tests, (list, tuple)):
        raise UserError(f"{_label(where)}tests must be a list of assert statements, not {type(tests).__name__}")
    if not tests:
        raise UserError(f"{_label(where)}no tests to run")
    for number, test in enumerate(tests, 1):
        if not isinstance(test, str):
            raise UserError(f"{_label(where)}test {number} is a {type(test).__name__}, not a string")
        try:
            body = ast.parse(test).body
        except SyntaxError as exc:
            raise UserError(f"{_label(where)}test {number} is not valid Python ({exc.msg}): {test[:80]!r}") from None
        if len(body) != 1 or not isinstance(body[0], ast.Assert):
            raise UserError(f"{_label(where)}test {number} must be one assert statement: {test[:80]!r}")
    if not isinstance(setup, str):
        raise UserError(f"{_label(where)}setup code must be a string, not {type(setup).__name__}")
    try:
        ast.parse(setup)
    except SyntaxError as exc:
        raise UserError(f"{_label(where)}setup code is not valid Python ({exc.msg}, line {exc.lineno})") from None
    return list(tests)


_OPERATORS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
              ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _prepared_test(test: str) -> dict:
    """The test as the harness runs it; `assert L op R` keeps L and R so a failure can show them.

    Done here rather than in the sandbox, whose start-up cannot afford to import `ast`. Python
    evaluates L before R in the original statement too, so the rewrite keeps the test's meaning.
    """
    node = ast.parse(test).body[0]
    compare = node.test
    if not (isinstance(compare, ast.Compare) and len(compare.ops) == 1):
        return {"source": test, "left": None, "op": None}
    left = ast.Name("_reflectevo_left", ast.Load())
    right = ast.Name("_reflectevo_right", ast.Load())
    rewritten = ast.Module([
        ast.Assign([ast.Name("_reflectevo_left", ast.Store())], compare.left),
        ast.Assign([ast.Name("_reflectevo_right", ast.Store())], compare.comparators[0]),
        ast.Assert(ast.Compare(left, compare.ops, [right]), node.msg),
    ], [])
    label = ast.get_source_segment(test, compare.left) or ast.unparse(compare.left)
    return {"source": ast.unparse(ast.fix_missing_locations(rewritten)), "left": label,
            "op": _OPERATORS[type(compare.ops[0])]}


# ------------------------------------------------------------------ isolation

@functools.lru_cache(maxsize=1)
def _filesystem_view() -> tuple[tuple[str, str, str], ...]:
    """What the isolated root holds: symlinks and read-only binds mirroring these host paths."""
    view, binds = [], []
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    prefixes.add(os.path.dirname(os.path.realpath(sys.executable)))
    for path in (*_SYSTEM_PATHS, *sorted(prefixes)):
        if os.path.islink(path):
            view.append(("symlink", path, os.readlink(path)))
            path = os.path.realpath(path)
        if not os.path.exists(path) or any(path == b or path.startswith(b + "/") for b in binds):
            continue
        binds = [b for b in binds if not b.startswith(path + "/")] + [path]
    view += [("bind", path, "") for path in sorted(binds)]
    view += [("device", path, "") for path in _DEVICES if os.path.exists(path)]
    return tuple(view)


def _interpreter() -> str:
    return os.path.realpath(sys.executable)


def _environment(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}


@functools.lru_cache(maxsize=1)
def isolation_status() -> Isolation:
    """Probed once per process: builds a real sandbox and runs one trivial test in it."""
    if not sys.platform.startswith("linux"):
        return Isolation(UNISOLATED, f"namespaces need Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        return Isolation(UNISOLATED, f"building the sandbox needs root (mounts, switching to a "
                                     f"private uid); this process runs as uid {os.geteuid()}")
    if shutil.which("unshare") is None:
        return Isolation(UNISOLATED, "util-linux `unshare` is not on PATH")
    try:
        result = _run(CodeJob("value = 1", ["assert value == 1"]), Limits(wall_seconds=5.0), ISOLATED)
    except UserError as exc:
        return Isolation(UNISOLATED, str(exc))
    if not result.passed:
        error = result.failure.error if result.failure else "no verdict"
        said = result.output.strip().splitlines()
        return Isolation(UNISOLATED, f"a trivial test failed in the sandbox: {error}"
                                     + (f" ({said[-1][:200]})" if said else ""))
    return Isolation(ISOLATED, "")


def _mode(allow_unisolated: bool) -> str:
    status = isolation_status()
    if status.level == ISOLATED:
        return ISOLATED
    if allow_unisolated:
        return UNISOLATED
    raise UserError(
        f"refusing to run model-written code: no isolated sandbox here ({status.reason}). Run as root on "
        f"Linux with util-linux `unshare` and namespaces allowed (a container with CAP_SYS_ADMIN), or "
        f"pass allow_unisolated=True to run the code unisolated, with this user's network and files "
        f"in its reach")


# ------------------------------------------------------------------ one run

def _job_payload(job: CodeJob, limits: Limits, mode: str, root: str) -> dict:
    uid = SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]
    return {
        "mode": "isolated" if mode == ISOLATED else "unisolated",
        "root": root,
        "view": list(_filesystem_view()) if mode == ISOLATED else [],
        "workdir": "/work" if mode == ISOLATED else root,
        "uid": uid,
        "limits": limits.as_job(),
        "code": job.code,
        "setup": job.setup,
        "tests": [_prepared_test(test) for test in job.tests],
        "nonce": secrets.token_hex(16),
    }


def _command(mode: str) -> list[str]:
    run = [_interpreter(), "-I", "-S", "-B", str(_HARNESS)]
    if mode == ISOLATED:
        return [shutil.which("unshare") or "unshare", *_UNSHARE_FLAGS, "--", *run]
    return run


def _launch(payload: dict, mode: str, wall: float) -> tuple[bytes, bytes, int | None]:
    """Run the harness; on a hang past the grace kill it (and with it the namespace)."""
    home = "/work" if mode == ISOLATED else payload["root"]
    proc = subprocess.Popen(_command(mode), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_environment(home), cwd=payload["root"],
                            start_new_session=True, close_fds=True)
    try:
        out, err = proc.communicate(marshal.dumps(payload), timeout=wall + _STARTUP_GRACE)
        return out, err, proc.returncode
    except subprocess.TimeoutExpired:
        _kill_sandbox(proc, mode)
        out, err = proc.communicate()
        return out, err, None


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_for_state(pid: int, states: str, seconds: float) -> None:
    """Return once the process is in one of `states`, or gone, or `seconds` have passed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            # the state letter follows the command name, which may itself hold spaces and ")"
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in states:
            return
        time.sleep(0.002)


def _kill_sandbox(proc: subprocess.Popen, mode: str) -> None:
    """Kill a sandbox whose supervisor outlived its own wall clock, with every process in it."""
    if mode == ISOLATED:
        # killing the namespace's first process kills the rest; unshare exits only once it has
        # waited for that process, which happens after the kernel has reaped all the others
        for pid in _children(proc.pid):
            _signal(pid, signal.SIGKILL)
    else:
        # each process stopped (and seen to stop) before its children are listed, so that none
        # forks after the listing; all killed only then, so none is reparented out of reach
        stack, tree = [proc.pid], []
        while stack:
            pid = stack.pop()
            _signal(pid, signal.SIGSTOP)
            _wait_for_state(pid, "tTZX", 0.5)
            tree.append(pid)
            stack += _children(pid)
        for pid in tree:
            _signal(pid, signal.SIGKILL)
        # a killed process still runs until the scheduler lets it die; on a loaded machine that
        # took longer than this function's return, so a caller could still see the code's processes
        for pid in tree:
            _wait_for_state(pid, "ZX", 5.0)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _remove_tree(path: str) -> None:
    """Remove a run's folder even where the code left it unreadable; never follows its links."""
    def unlock(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target) or target, 0o700)
            os.chmod(target, 0o700, follow_symlinks=False)
        except OSError:
            pass
        func(target)

    shutil.rmtree(path, onerror=unlock)


def _result(job: CodeJob, raw: dict | None, seconds: float, mode: str, wall: float) -> RunResult:
    total = len(job.tests)
    if raw is None:  # the supervisor itself was killed at the grace deadline
        failure = Failure(None, "", f"Timeout: still running after the {wall:g} s wall-clock limit")
        return RunResult(False, 0, total, failure, seconds, None, "wall", True, mode)
    failure = None
    if raw["failure"] is not None:
        index = raw["failure"]["index"]
        index = None if index is None or index < 0 else index
        failure = Failure(index, job.tests[index] if index is not None else "", raw["failure"]["error"])
    passed = raw["tests_passed"] == total and failure is None
    return RunResult(passed, raw["tests_passed"], total, failure, seconds, raw["cpu_seconds"], raw["limit"],
                     raw["killed"], mode, raw["output"], raw["output_bytes"])


def _run(job: CodeJob, limits: Limits, mode: str) -> RunResult:
    root = tempfile.mkdtemp(prefix="reflectevo-sandbox-")
    started = time.monotonic()
    try:
        payload = _job_payload(job, limits, mode, root)
        out, err, code = _launch(payload, mode, limits.wall_seconds)
    finally:
        seconds = time.monotonic() - started
        _remove_tree(root)
    if code is None:
        return _result(job, None, seconds, mode, limits.wall_seconds)
    if code != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{_label(job.where)}the code sandbox failed (exit {code}): "
                        f"{detail[-1] if detail else 'no message'}")
    try:
        raw = marshal.loads(out)
    except (EOFError, ValueError, TypeError):
        raise UserError(f"{_label(job.where)}the code sandbox gave no readable verdict: {out[:200]!r}") from None
    return _result(job, raw, seconds, mode, limits.wall_seconds)


def run_tests(code: str, tests, setup: str = "", *, limits: Limits | None = None,
              allow_unisolated: bool = False, where: str = "") -> RunResult:
    """Run `code`, then `setup`, then each assert of `tests` in a sandbox; see the module docstring."""
    if not isinstance(code, str):
        raise UserError(f"{_label(where)}code must be a string, not {type(code).__name__}")
    job = CodeJob(code, tuple(check_tests(tests, setup, where)), setup, where)
    return _run(job, limits or Limits(), _mode(allow_unisolated))


def run_many(jobs, *, limits: Limits | None = None, allow_unisolated: bool = False,
             workers: int | None = None) -> list[RunResult]:
    """Run many jobs, one sandbox each, `workers` at a time (default: one per CPU); results in order."""
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, CodeJob):
            raise UserError(f"run_many takes CodeJob items, not {type(job).__name__}")
        if not isinstance(job.code, str):
            raise UserError(f"{_label(job.where)}code must be a string, not {type(job.code).__name__}")
        check_tests(job.tests, job.setup, job.where)
    mode = _mode(allow_unisolated)
    limits = limits or Limits()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"workers must be a whole number of at least 1, not {workers!r}")
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: _run(CodeJob(job.code, tuple(job.tests), job.setup, job.where),
                                              limits, mode), jobs))
