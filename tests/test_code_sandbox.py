"""The code sandbox (issue 31, item 2): hostile code is contained, MBPP's references pass, and a
reply's code is read and scored with the first failing test as feedback.

The hostile-code tests need the isolated sandbox and are skipped where it is unavailable (never run
unisolated); their figures go to tests/hardening.md (run with `-s` to print them again).
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import code_sandbox
from reflectevo_tasks.answers import CORRECT, NO_ANSWER, WRONG
from reflectevo_tasks.code_answers import extract_code, feedback, verdict
from reflectevo_tasks.code_sandbox import ISOLATED, UNISOLATED, CodeJob, Isolation, Limits, run_many, run_tests

REPO = Path(__file__).resolve().parents[1]
MBPP = Path(os.environ.get("REFLECTEVO_MBPP_FILE", REPO.parent / "shared" / "data" / "mbpp" / "mbpp_test.jsonl"))
ONE_TEST = ["assert 1 == 1"]
QUICK = Limits(cpu_seconds=2, wall_seconds=4.0)

_STATUS = code_sandbox.isolation_status()
isolated = pytest.mark.skipif(_STATUS.level != ISOLATED,
                              reason=f"no isolated sandbox here ({_STATUS.reason}); hostile code is never run without")


def _figure(case: str, result) -> None:
    print(f"\nFIGURE {case}: limit={result.limit} killed={result.killed} seconds={result.seconds:.2f} "
          f"cpu={result.cpu_seconds:.2f} isolation={result.isolation}")


def _program(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


# the uids of the sandbox runs started by this process's tests: other test processes (parallel
# workers) run sandboxes of their own at the same time, each under its own uid
_OUR_UIDS: set[int] = set()


@pytest.fixture(autouse=True)
def _record_run_uids(monkeypatch):
    real = code_sandbox._job_payload

    def recording(*args, **kwargs):
        payload = real(*args, **kwargs)
        _OUR_UIDS.add(payload["uid"])
        return payload

    monkeypatch.setattr(code_sandbox, "_job_payload", recording)


def _sandbox_processes() -> list[int]:
    """Pids of processes on this machine that run as the uid of a sandbox run of these tests."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        if match and int(match.group(1)) in _OUR_UIDS:
            found.append(int(entry.name))
    return found


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker in Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def fake_home():
    """A home folder outside /tmp (which the sandbox hides anyway): in the git-ignored .pytest_cache."""
    home = REPO / ".pytest_cache" / f"code-sandbox-home-{secrets.token_hex(4)}"
    home.mkdir(parents=True)
    yield home
    for item in home.iterdir():
        item.unlink()
    home.rmdir()


@pytest.fixture
def unisolated_only(monkeypatch):
    """Make the module believe isolation is unavailable, as on a machine without namespaces."""
    monkeypatch.setattr(code_sandbox, "isolation_status", lambda: Isolation(UNISOLATED, "namespaces disabled (test)"))


# ------------------------------------------------------------------ hostile code, each contained

@isolated
def test_infinite_loop_is_stopped_by_the_cpu_limit():
    result = run_tests("while True:\n    pass\n", ONE_TEST, limits=Limits(cpu_seconds=1, wall_seconds=20.0))
    _figure("infinite loop", result)
    assert (result.passed, result.limit, result.killed) == (False, "cpu", True)
    assert result.failure.index is None and result.failure.error.startswith("Timeout")
    assert result.seconds < 10
    # ignoring SIGXCPU only reaches the hard limit, a second later
    stubborn = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = run_tests(stubborn, ONE_TEST, limits=Limits(cpu_seconds=1, wall_seconds=20.0))
    _figure("infinite loop ignoring SIGXCPU", result)
    assert (result.passed, result.limit, result.killed) == (False, "cpu", True)
    assert result.seconds < 12


@isolated
def test_sleeping_forever_is_stopped_by_the_wall_clock():
    result = run_tests("import time\ntime.sleep(3600)\n", ONE_TEST, limits=Limits(wall_seconds=1.5))
    _figure("sleep forever", result)
    assert (result.passed, result.limit, result.killed) == (False, "wall", True)
    assert "wall-clock" in result.failure.error
    assert result.seconds < 1.5 + 4


@isolated
def test_a_loop_inside_a_test_is_blamed_on_that_test():
    code = "def f(x):\n    while x:\n        pass\n    return x\n"
    result = run_tests(code, ["assert f(0) == 0", "assert f(1) == 1"], limits=Limits(cpu_seconds=1))
    assert (result.tests_passed, result.failure.index, result.limit) == (1, 1, "cpu")
    assert feedback(result).startswith("Test 2 of 2 failed: assert f(1) == 1\nTimeout")


@isolated
def test_fork_bomb_is_capped_and_leaves_no_process():
    bomb = _program("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    limits = Limits(processes=8, wall_seconds=2.0)
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], len(_sandbox_processes()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run_tests(bomb, ONE_TEST, limits=limits)
    finally:
        stop.set()
        sampler.join()
    _figure("fork bomb (errors swallowed)", result)
    print(f"FIGURE fork bomb peak: {peak[0]} processes of the sandbox uid seen at once (limit {limits.processes})")
    assert (result.passed, result.limit, result.killed) == (False, "wall", True)
    assert 1 < peak[0] <= limits.processes, peak[0]  # the sampler did see the bomb, capped
    assert _sandbox_processes() == []


@isolated
def test_plain_fork_bomb_fails_on_the_process_limit():
    result = run_tests("import os\nwhile True:\n    os.fork()\n", ONE_TEST, limits=Limits(processes=8))
    _figure("fork bomb", result)
    assert (result.passed, result.limit) == (False, "processes")
    assert "BlockingIOError" in result.failure.error
    assert _sandbox_processes() == []


@isolated
def test_memory_bomb_gets_memory_error_below_the_limit():
    bomb = _program("""
        blocks = []
        try:
            while True:
                blocks.append(bytearray(1 << 20))
        except MemoryError:
            count = len(blocks)
            del blocks
            print("allocated_mib", count)
            raise
    """)
    result = run_tests(bomb, ONE_TEST, limits=Limits(memory_mib=128))
    _figure("memory bomb", result)
    assert (result.passed, result.limit) == (False, "memory")
    assert result.failure.error.startswith("MemoryError")
    allocated = int(re.search(r"allocated_mib (\d+)", result.output).group(1))
    print(f"FIGURE memory bomb: {allocated} MiB allocated before MemoryError (limit 128 MiB of address space)")
    assert 32 < allocated < 128
    one_go = run_tests("block = bytearray(64 << 30)\n", ONE_TEST, limits=Limits(memory_mib=128))
    assert (one_go.limit, one_go.failure.error.split(" ")[0]) == ("memory", "MemoryError")


@isolated
def test_writes_outside_the_working_directory_change_nothing(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("original")
    token = secrets.token_hex(6)
    targets = [canary / "new.txt", canary / "keep.txt", Path("/tmp") / f"escape-{token}",
               REPO / f"escape-{token}", Path("/etc") / f"escape-{token}", Path("/root") / f"escape-{token}",
               Path("/usr") / f"escape-{token}", Path(tmp_path) / f"escape-{token}"]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in canary.iterdir()}
    code = _program(f"""
        import os
        targets = {[str(t) for t in targets]!r}
        for target in targets + ["../escape-{token}", "/work/../escape-{token}"]:
            try:
                with open(target, "a") as handle:
                    handle.write("pwned")
                print("WROTE", target)
            except OSError as exc:
                print("REFUSED", target, type(exc).__name__)
        for action in (lambda: os.remove({str(canary / "keep.txt")!r}),
                       lambda: os.rename({str(canary)!r}, "/work/stolen"),
                       lambda: os.symlink({str(canary / "keep.txt")!r}, "link") or open("link", "w").write("x"),
                       lambda: os.chmod("/usr/bin", 0o777),
                       lambda: os.mkdir("/escape-{token}"),
                       lambda: os.chroot("/work"),  # root could leave a chroot with a second one
                       lambda: os.setuid(0)):
            try:
                action()
                print("DID")
            except OSError as exc:
                print("REFUSED", type(exc).__name__)
        with open("inside.txt", "w") as handle:  # the working directory itself is writable
            handle.write("fine")
        print("INSIDE", open("inside.txt").read())
    """)
    result = run_tests(code, ONE_TEST, limits=QUICK)
    _figure("write outside the working directory", result)
    assert result.passed, result.failure
    assert "WROTE" not in result.output and "DID" not in result.output
    assert result.output.count("REFUSED") == len(targets) + 2 + 7
    assert "INSIDE fine" in result.output
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in canary.iterdir()} == before
    for target in targets[2:]:
        assert not target.exists(), target
    assert not (tmp_path.parent / f"escape-{token}").exists()


def _home_probe(secret_file: Path) -> str:
    return _program(f"""
        import os
        for attempt in ({str(secret_file)!r}, os.path.expanduser("~/secret.txt")):
            try:
                print("CONTENT", open(attempt).read())
            except OSError as exc:
                print("UNREADABLE", attempt, type(exc).__name__)
        try:
            print("LISTED", os.listdir({str(secret_file.parent)!r}))
        except OSError as exc:
            print("UNLISTABLE", type(exc).__name__)
        print("ENV", sorted(os.environ.items()))
    """)


@isolated
def test_the_users_home_is_not_visible(fake_home, monkeypatch, unisolated_only):
    home = fake_home
    secret = secrets.token_hex(12)
    secret_file = home / "secret.txt"
    secret_file.write_text(secret)
    secret_file.chmod(0o644)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("REFLECTEVO_TEST_SECRET", secret)
    probe = _home_probe(secret_file)
    # the probe can find it: run unisolated (a harmless read), the file is there to be read
    control = run_tests(probe, ONE_TEST, limits=QUICK, allow_unisolated=True)
    assert control.isolation == UNISOLATED and f"CONTENT {secret}" in control.output
    assert "REFLECTEVO_TEST_SECRET" not in control.output  # the environment is cleared in both modes
    monkeypatch.setattr(code_sandbox, "isolation_status", lambda: _STATUS)
    result = run_tests(probe, ONE_TEST, limits=QUICK)
    _figure("read the user's home", result)
    assert result.isolation == ISOLATED and result.passed
    assert secret not in result.output and "CONTENT" not in result.output
    assert result.output.count("UNREADABLE") == 2 and "UNLISTABLE FileNotFoundError" in result.output
    assert "('HOME', '/work')" in result.output and "REFLECTEVO_TEST_SECRET" not in result.output


def _network_probe(tcp_port: int, udp_port: int, off_machine: bool) -> str:
    far = "('10.255.255.1', 80), ('example.com', 80)" if off_machine else ""
    return _program(f"""
        import socket
        for address in (('127.0.0.1', {tcp_port}), {far}):
            try:
                socket.create_connection(address, timeout=2).sendall(b"hello")
                print("CONNECTED", address)
            except OSError as exc:
                print("NO CONNECTION", address, type(exc).__name__, exc)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", ('127.0.0.1', {udp_port}))
            print("SENT UDP")
        except OSError as exc:
            print("NO UDP", type(exc).__name__, exc)
    """)


def _listen():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    return tcp, udp


def _arrived(tcp, udp) -> list[str]:
    got = []
    try:
        connection, _ = tcp.accept()
        connection.close()
        got.append("tcp")
    except socket.timeout:
        pass
    try:
        udp.recvfrom(64)
        got.append("udp")
    except socket.timeout:
        pass
    return got


@isolated
def test_no_connection_leaves_the_sandbox(monkeypatch, unisolated_only):
    tcp, udp = _listen()
    with tcp, udp:
        ports = tcp.getsockname()[1], udp.getsockname()[1]
        # control, loopback only: unisolated, the same code does reach the listeners
        control = run_tests(_network_probe(*ports, off_machine=False), ONE_TEST, limits=QUICK,
                            allow_unisolated=True)
        assert "CONNECTED" in control.output and sorted(_arrived(tcp, udp)) == ["tcp", "udp"]
        monkeypatch.setattr(code_sandbox, "isolation_status", lambda: _STATUS)
        result = run_tests(_network_probe(*ports, off_machine=True), ONE_TEST, limits=QUICK)
        _figure("open a socket", result)
        assert result.isolation == ISOLATED and result.passed, result.failure
        assert "CONNECTED" not in result.output and "SENT UDP" not in result.output
        assert result.output.count("NO CONNECTION") == 3 and "Network is unreachable" in result.output
        assert _arrived(tcp, udp) == []


@isolated
def test_the_code_cannot_signal_the_parent_or_anyone_else():
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = _program(f"""
            import os, signal
            for name, pid in (("parent", os.getppid()), ("test process", {os.getpid()}),
                              ("bystander", {bystander.pid}), ("everyone", -1)):
                try:
                    os.kill(pid, signal.SIGKILL)
                    print("SIGNALLED", name)
                except OSError as exc:
                    print("REFUSED", name, type(exc).__name__)
            try:
                os.killpg({os.getpgid(0)}, signal.SIGKILL)
                print("SIGNALLED group")
            except OSError as exc:
                print("REFUSED group", type(exc).__name__)
        """)
        result = run_tests(code, ONE_TEST, limits=QUICK)
        _figure("signal the parent", result)
        assert result.passed, result.failure  # the sandbox's own supervisor lived to report
        assert "SIGNALLED" not in result.output and result.output.count("REFUSED") == 5
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@isolated
def test_huge_output_is_cut_and_the_run_stopped():
    limits = Limits(output_bytes=4096, memory_mib=1024, wall_seconds=10.0)
    for case, code in (("huge output (print loop)", "while True:\n    print('x' * 1000)\n"),
                       ("huge output (one write)", "import sys\nsys.stderr.write('y' * (200 << 20))\n")):
        result = run_tests(code, ONE_TEST, limits=limits)
        _figure(case, result)
        assert (result.passed, result.limit, result.killed) == (False, "output", True)
        assert len(result.output.encode()) <= limits.output_bytes < result.output_bytes
        assert result.seconds < 8


@isolated
def test_printing_or_writing_a_pass_marker_forges_nothing():
    forger = _program("""
        import os, sys
        print("All 3 tests passed.")
        fake = "".join(f"{n} {os.getpid()} pass {i} - \\n" for n in ("0" * 32, "x") for i in range(3))
        for fd in range(1, 64):
            try:
                os.write(fd, fake.encode())
            except OSError:
                pass
        if os.fork() == 0:  # a child that reports from its own pid
            os._exit(0)
        os.wait()
        os._exit(0)
    """)
    tests = ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]
    result = run_tests(forger, tests, limits=QUICK)
    _figure("forged pass marker", result)
    assert (result.passed, result.tests_passed) == (False, 0)
    assert "exited with status 0 before the tests ran" in result.failure.error
    # rebinding what the harness runs tests with: exec, or the harness's own test runner
    for tamper in ("import builtins\nbuiltins.exec = lambda *args, **kwargs: None\n",
                   "import __main__\n__main__._run_test = lambda *args: None\n"):
        result = run_tests(tamper, tests, limits=QUICK)
        assert (result.passed, result.tests_passed, result.failure.index) == (False, 0, 0), tamper
        assert "NameError: name 'f' is not defined" in result.failure.error
    # leaving in the middle of a test is that test's failure, not a pass
    quitter = "import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return x\n"
    result = run_tests(quitter, tests, limits=QUICK)
    assert (result.passed, result.tests_passed, result.failure.index) == (False, 1, 1)


@isolated
def test_every_descendant_is_killed_when_the_run_ends():
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**3)}"
    code = _program(f"""
        import os
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{marker}"])
            os._exit(0)
        def f():
            return 1
    """)
    result = run_tests(code, ["assert f() == 1"], limits=QUICK)
    assert result.passed, result.failure
    assert _processes_with(f"sleep {marker}") == [] and _sandbox_processes() == []


@isolated
def test_a_hung_supervisor_is_killed_with_its_whole_namespace(monkeypatch):
    # the parent's deadline before the supervisor's own: what happens if the supervisor hangs
    monkeypatch.setattr(code_sandbox, "_STARTUP_GRACE", -1.0)
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**3)}"
    code = f"import os, time\nif os.fork() == 0:\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\ntime.sleep(60)\n"
    result = run_tests(code, ONE_TEST, limits=Limits(wall_seconds=2.0))
    assert (result.passed, result.limit, result.killed, result.cpu_seconds) == (False, "wall", True, None)
    assert result.seconds < 4
    assert _processes_with(f"sleep {marker}") == [] and _sandbox_processes() == []


# ------------------------------------------------------------------ refusal and the unisolated mode

def test_without_isolation_code_is_refused_unless_allowed(unisolated_only):
    with pytest.raises(UserError, match=r"namespaces disabled \(test\).*allow_unisolated=True"):
        run_tests("x = 1", ONE_TEST)
    with pytest.raises(UserError, match="allow_unisolated"):
        verdict("```python\nx = 1\n```", ONE_TEST)
    result = run_tests("def f():\n    return 2\n", ["assert f() == 2", "assert f() == 3"], allow_unisolated=True,
                       limits=QUICK)
    assert (result.isolation, result.tests_passed, result.failure.index) == (UNISOLATED, 1, 1)


def test_unisolated_runs_keep_cpu_limits_and_kill_descendants(unisolated_only):
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**3)}"
    code = _program(f"""
        import os, subprocess
        subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
        while True:
            pass
    """)
    result = run_tests(code, ONE_TEST, limits=Limits(cpu_seconds=1, wall_seconds=20.0), allow_unisolated=True)
    assert (result.limit, result.isolation) == ("cpu", UNISOLATED)
    assert _processes_with(f"sleep {marker}") == []


def test_a_hung_unisolated_run_is_killed_with_its_descendants(monkeypatch, unisolated_only):
    monkeypatch.setattr(code_sandbox, "_STARTUP_GRACE", -1.0)
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**3)}"
    code = f"import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\ntime.sleep(60)\n"
    result = run_tests(code, ONE_TEST, limits=Limits(wall_seconds=2.0), allow_unisolated=True)
    assert (result.limit, result.killed, result.isolation, result.cpu_seconds) == ("wall", True, UNISOLATED, None)
    assert _processes_with(f"sleep {marker}") == []


def test_the_isolation_probe_runs_once():
    assert code_sandbox.isolation_status() is code_sandbox.isolation_status()
    assert _STATUS.level in (ISOLATED, UNISOLATED) and (_STATUS.level == ISOLATED) == (_STATUS.reason == "")


# ------------------------------------------------------------------ input checks

@pytest.mark.parametrize("kwargs, argument", [
    ({"cpu_seconds": 0}, "cpu_seconds"), ({"memory_mib": 16}, "memory_mib"), ({"processes": 2.5}, "processes"),
    ({"file_size_bytes": -1}, "file_size_bytes"), ({"wall_seconds": float("inf")}, "wall_seconds"),
    ({"output_bytes": True}, "output_bytes"),
])
def test_bad_limits_name_the_argument(kwargs, argument):
    with pytest.raises(UserError, match=argument):
        Limits(**kwargs)


@pytest.mark.parametrize("tests, message", [
    ("assert f(1) == 1", "tests must be a list"),
    ([], "no tests"),
    (["assert f(1) == 1", "print(f(1))"], "test 2 must be one assert statement"),
    (["assert f(1) == 1", "assert f(1) =="], r"test 2 is not valid Python"),
    (["assert f(1) == 1", 3], "test 2 is a int"),
])
def test_bad_tests_name_the_item_and_the_test(tests, message):
    with pytest.raises(UserError, match=rf"^mbpp row 7: {message}"):
        run_tests("x = 1", tests, where="mbpp row 7")
    with pytest.raises(UserError, match=message):
        verdict("no code here", tests)  # checked even when the reply holds no code


def test_bad_setup_code_is_an_error():
    with pytest.raises(UserError, match="setup code is not valid Python"):
        run_tests("x = 1", ONE_TEST, setup="def (")


# ------------------------------------------------------------------ reading the code of a reply

@pytest.mark.parametrize("reply, code", [
    ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
    ("first\n```python\na = 1\n```\nthen\n```python\nb = 2\n```\nend", "b = 2\n"),
    ("```python\na = 1\n```\n```\nprint('not python')\n```", "a = 1\n"),
    ("```text\nsome text\n```\n```\nc = 3\n```", "c = 3\n"),
    ("```Py3 title\nd = 4\n```", "d = 4\n"),
    ("```python\ne = 5\n```\n```python\n   \n```", "e = 5\n"),
    ("  ```python\n  def g():\n      return 2\n  ```", "def g():\n    return 2\n"),
    ("````python\nx = '```'\n````", "x = '```'\n"),
    ("cut off:\n```python\ndef h(:\n", "def h(:\n"),
    ("```python\r\nk = 1\r\n```\r\n", "k = 1\n"),
])
def test_the_last_python_block_is_the_code(reply, code):
    assert extract_code(reply) == code


@pytest.mark.parametrize("reply", ["", "def f(): return 1", "inline ```python x = 1``` only", "```python\n\n```"])
def test_no_block_is_no_answer(reply):
    assert extract_code(reply) is None
    result = verdict(reply, ONE_TEST)
    assert (result.outcome, result.code, result.result) == (NO_ANSWER, None, None)
    assert "no fenced code block" in result.feedback


@isolated
def test_verdicts_and_their_feedback():
    tests = ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"']
    right = "```python\ndef remove_Occ(s, ch):\n    s = s.replace(ch, '', 1)\n    i = s.rfind(ch)\n" \
            "    return s if i < 0 else s[:i] + s[i + 1:]\n```"
    assert verdict(right, tests).outcome == CORRECT and verdict(right, tests).feedback == "All 2 tests passed."
    wrong = "```python\ndef remove_Occ(s, ch):\n    return s.replace(ch, '', 1)\n```"
    result = verdict(wrong, tests)
    assert result.outcome == WRONG
    assert result.feedback == ("Test 1 of 2 failed: assert remove_Occ(\"hello\",\"l\") == \"heo\"\n"
                               "AssertionError: remove_Occ(\"hello\",\"l\") gave 'helo', expected 'heo'")
    misnamed = verdict("```python\ndef remove_occurrences(s, ch):\n    return s\n```", tests)
    assert misnamed.outcome == WRONG
    assert misnamed.feedback.endswith("NameError: name 'remove_Occ' is not defined")
    crashing = verdict("```python\ndef remove_Occ(s, ch):\n    return s[10]\n```", tests)
    assert crashing.feedback.endswith("IndexError: string index out of range (line 2: return s[10])")
    broken = verdict("```python\ndef remove_Occ(s, ch)\n    return s\n```", tests)
    assert broken.feedback.startswith("The code failed before any test ran: SyntaxError")
    assert "(line 1: def remove_Occ(s, ch))" in broken.feedback


@isolated
def test_setup_code_runs_before_the_tests_and_windows_line_endings_work():
    result = run_tests("def f(x):\r\n    return x + OFFSET\r\n", ["assert f(1) == 11"], setup="OFFSET = 10")
    assert result.passed, result.failure


# ------------------------------------------------------------------ MBPP: references pass, broken ones fail

def _mbpp_rows() -> list[dict]:
    if not MBPP.is_file():
        pytest.skip(f"no MBPP file at {MBPP} (set REFLECTEVO_MBPP_FILE)")
    return [json.loads(line) for line in MBPP.read_text().splitlines() if line.strip()]


def _broken(row: dict) -> str:
    """The reference with its tested function wrapped so every result is wrapped in a tuple."""
    with warnings.catch_warnings():  # seven references hold regexes with "\w" in plain strings
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(row["code"])
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    called = {node.func.id for test in row["test_list"] for node in ast.walk(ast.parse(test))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    (name,) = defined & called
    return (f"{row['code']}\n\n_reference_{name} = {name}\n\n"
            f"def {name}(*args, **kwargs):\n    return ('deliberately broken', _reference_{name}(*args, **kwargs))\n")


def _check_mbpp(rows: list[dict]) -> None:
    jobs = [CodeJob(row["code"], row["test_list"], row["test_setup_code"], f"MBPP task {row['task_id']}")
            for row in rows]
    jobs += [CodeJob(_broken(row), row["test_list"], row["test_setup_code"], f"MBPP task {row['task_id']} broken")
             for row in rows]
    started = time.monotonic()
    results = run_many(jobs, workers=os.cpu_count())
    took = time.monotonic() - started
    references, broken = results[:len(rows)], results[len(rows):]
    passed = sum(r.passed for r in references)
    print(f"\nFIGURE MBPP: {len(rows)} tasks, references passed {passed}/{len(rows)}, broken passed "
          f"{sum(r.passed for r in broken)}/{len(rows)}, {len(jobs)} sandboxes in {took:.1f} s "
          f"({os.cpu_count()} workers), slowest {max(r.seconds for r in results):.1f} s")
    failures = [(job.where, r.failure) for job, r in zip(jobs, references) if not r.passed]
    assert failures == []
    assert [job.where for job, r in zip(jobs[len(rows):], broken) if r.passed] == []
    # the wrapped result fails the first test's comparison, or breaks the reference's own recursion
    assert [job.where for job, r in zip(jobs[len(rows):], broken) if r.failure.index != 0] == []


@isolated
def test_mbpp_sample_references_pass_and_broken_variants_fail():
    rows = _mbpp_rows()
    _check_mbpp(rows[::25])


@isolated
@pytest.mark.slow
def test_all_mbpp_references_pass_and_broken_variants_fail():
    rows = _mbpp_rows()
    assert len(rows) == 500
    _check_mbpp(rows)
