"""The program that runs inside a code sandbox (started by `code_sandbox`; not imported by it).

Run as `python -I -S -B code_sandbox_harness.py` with one job on stdin; it writes one result on
stdout. Both are `marshal` dumps of plain dicts: the parent runs this script with its own interpreter,
and start-up time matters (one sandbox per item), so only cheap built-in modules are imported here;
the parent does the parsing that would need `ast`.

Two processes live inside a sandbox:

* the SUPERVISOR (this script's first process): in isolated mode it is pid 1 of a fresh pid
  namespace and still root; it builds the filesystem view (`_build_root`), forks the worker, enforces
  the wall-clock and output limits, kills every other process when the run ends, and reports;
* the WORKER: drops to an unprivileged uid with resource limits, runs the model's code, the setup
  code and then each test in order, and reports each step on a private pipe.

A worker's report line is `<nonce> <pid> <event> <index> <limit> <error as hex>`. The nonce is
random per run and never printed, and the supervisor only believes lines from the worker's own pid,
so text printed by the model's code, or written by a process it forked, cannot fake a passed test.
Code that goes looking for the nonce in the worker's memory could still forge one; see
`code_sandbox` for the threat model.
"""

import ctypes
import errno
import marshal
import os
import resource
import select
import sys
import time

# mount(2) flags (linux/mount.h)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
# Linux's numbers on x86 and ARM; the `signal` module is not imported because it pulls in `enum`,
# which costs more start-up time than the rest of this script
SIGKILL, SIGXCPU = 9, 24
_SIGNAL_NAMES = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE",
                 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ"}

_LIBC = ctypes.CDLL(None, use_errno=True)
_ERROR_CHARS = 400
_REPR_CHARS = 200
_OPEN_FILES = 64
_WORK = "/work"


class SetupError(Exception):
    """The sandbox could not be built; the message says which step failed."""


# ------------------------------------------------------------------ filesystem view (isolated mode)

def _c_string(text):
    return None if text is None else text.encode()


def _mount(source, target, fstype, flags, data=None):
    if _LIBC.mount(_c_string(source), _c_string(target), _c_string(fstype), flags, _c_string(data)) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {source or fstype} on {target}: {os.strerror(err)}")


def _bind_read_only(source, target, device=False):
    """Bind `source` at `target`, then make that view read-only and unable to honour setuid bits."""
    _mount(source, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV)
    _mount(None, target, None, flags)


def _place(root, path, is_dir):
    target = root + path
    os.makedirs(target if is_dir else os.path.dirname(target), mode=0o755, exist_ok=True)
    if not is_dir and not os.path.exists(target):
        open(target, "w").close()
    return target


def _build_root(job):
    """A tmpfs root holding only read-only binds of what Python needs, devices and an empty /work."""
    root = job["root"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    for kind, path, value in job["view"]:
        if kind == "symlink":
            _place(root, os.path.dirname(path), True)
            os.symlink(value, root + path)
        elif kind == "bind":
            _bind_read_only(path, _place(root, path, os.path.isdir(path)))
        elif kind == "device":
            _bind_read_only(path, _place(root, path, False), device=True)
        else:
            raise SetupError(f"unknown view entry {kind!r}")
    work = _place(root, _WORK, True)
    limits = job["limits"]
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={limits['file_size_bytes']},nr_inodes=1024,mode=0700,uid={job['uid']},gid={job['uid']}")
    # the root itself read-only too, so nothing but /work can be written even by a root process
    _mount("tmpfs", root, "tmpfs", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(root)
    os.chdir("/")


# ------------------------------------------------------------------ the worker

def _short(text, limit=_ERROR_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_repr(value):
    try:
        return _short(repr(value), _REPR_CHARS)
    except BaseException as exc:  # a model-made object's __repr__ may raise anything
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _line_of(source, lineno):
    lines = source.splitlines()
    return lines[lineno - 1].strip() if lineno and 0 < lineno <= len(lines) else ""


def _where(exc, source):
    """The innermost line of the model's code the error passed through, as ` (line N: text)`."""
    lineno = None
    if isinstance(exc, SyntaxError) and exc.filename == "<solution>":
        lineno = exc.lineno
    tb = exc.__traceback__
    while tb is not None:  # walked by hand: the traceback module costs a start-up import
        if tb.tb_frame.f_code.co_filename == "<solution>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    if lineno is None:
        return ""
    text = _line_of(source, lineno)
    return f" (line {lineno}: {_short(text, 120)})" if text else f" (line {lineno})"


def _describe(exc, source):
    if isinstance(exc, SyntaxError):
        return _short(f"{type(exc).__name__}: {exc.msg}{_where(exc, source)}")
    message = _short(exc) if str(exc) else ""
    return _short(f"{type(exc).__name__}{': ' + message if message else ''}{_where(exc, source)}")


def _run_test(test, namespace, run, build):
    """Run one test as the parent prepared it: `source` keeps the compared values in `scope`.

    `run` and `build` are the real exec and compile, taken before the model's code could rebind
    the builtins (a test run by a do-nothing exec would otherwise pass).
    """
    scope = {}
    try:
        run(build(test["source"], "<test>", "exec"), namespace, scope)
    except AssertionError as exc:
        if test["left"] is None or "_reflectevo_right" not in scope:
            raise
        got, want = _safe_repr(scope["_reflectevo_left"]), _safe_repr(scope["_reflectevo_right"])
        left = _short(test["left"], 160)
        if test["op"] == "==":
            values = f"{left} gave {got}, expected {want}"
        else:
            values = f"{left} gave {got}, and `{test['op']} {want}` is false"
        message = _short(exc, 160) if str(exc) else ""
        raise AssertionError(f"{message} ({values})" if message else values) from None


def _classify(exc):
    """Which limit an exception shows was reached, or None for an ordinary error."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
        return "file_size"
    if isinstance(exc, OSError) and exc.errno in (errno.EAGAIN, errno.EMFILE):
        return "processes" if exc.errno == errno.EAGAIN else "open_files"
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "processes"
    return None


def _program(job, report):
    """Load the code and setup, then run the tests in order until the first failure."""
    # locals, so that the model's code cannot swap them by rebinding builtins or this module's names
    run, build, run_test, tests = exec, compile, _run_test, list(enumerate(job["tests"]))
    namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
    report("start", -1)
    try:
        run(build(job["code"], "<solution>", "exec"), namespace)
        if job["setup"]:
            run(build(job["setup"], "<setup>", "exec"), namespace)
    except BaseException as exc:  # SystemExit and the rest are the model's errors too
        report("fail", -1, _classify(exc), _describe(exc, job["code"]))
        return
    for index, test in tests:
        report("start", index)
        try:
            run_test(test, namespace, run, build)
        except BaseException as exc:
            report("fail", index, _classify(exc), _describe(exc, job["code"]))
            return
        report("pass", index)


def _limit_resources(limits, set_processes):
    cpu = limits["cpu_seconds"]
    # SIGXCPU at the soft limit (fatal: Python leaves it at its default), SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = limits["memory_mib"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_OPEN_FILES, _OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if set_processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)


def _become_worker(job, out_w, report_w):
    """In the forked child: own session, only the two pipes open, limits set, privileges gone."""
    os.setsid()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    report_fd = 3
    os.dup2(report_w, report_fd)
    os.closerange(report_fd + 1, 1 << 16)
    isolated = job["mode"] == "isolated"
    # RLIMIT_NPROC counts processes per real uid and is ignored for root: it only bites after the
    # switch to the run's own uid, which nothing else on the machine uses
    _limit_resources(job["limits"], set_processes=isolated)
    if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SetupError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    if isolated:
        os.setgroups([])
        os.setresgid(job["uid"], job["uid"], job["uid"])
        os.setresuid(job["uid"], job["uid"], job["uid"])
    os.chdir(job["workdir"])
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = sys.stdout
    sys.stdin = open(0, "r", closefd=False)
    return report_fd


def _worker(job, out_w, report_w, nonce):
    try:
        report_fd = _become_worker(job, out_w, report_w)
    except BaseException as exc:
        os.write(2, f"sandbox worker setup failed: {exc}\n".encode())
        os._exit(70)
    pid = os.getpid()

    def report(event, index, limit=None, error=""):
        detail = error.encode("utf-8", "backslashreplace").hex()
        line = f"{nonce} {pid} {event} {index} {limit or '-'} {detail}\n".encode()
        try:
            os.write(report_fd, line)
        except OSError:
            pass

    del job["nonce"]
    try:
        _program(job, report)
        sys.stdout.flush()
    finally:
        os._exit(0)


# ------------------------------------------------------------------ the supervisor

class _Stream:
    """Bytes read from one pipe, kept up to a cap; the rest counted, never stored."""

    def __init__(self, fd, cap):
        self.fd, self.cap, self.data, self.total, self.open = fd, cap, bytearray(), 0, True
        os.set_blocking(fd, False)

    def pump(self):
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.open = False
                os.close(self.fd)
                return
            self.total += len(chunk)
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]

    @property
    def over(self):
        return self.total > self.cap


def _parse_reports(data, nonce, pid):
    """The worker's events in order, ignoring any line that is not from it."""
    events = []
    prefix = f"{nonce} {pid} "
    for raw in bytes(data).decode("utf-8", "replace").split("\n"):
        if not raw.startswith(prefix):
            continue
        parts = raw[len(prefix):].split(" ")
        if len(parts) != 4:
            continue
        event, index, limit, error = parts
        try:
            detail = {"limit": None if limit == "-" else limit,
                      "error": bytes.fromhex(error).decode("utf-8", "replace")}
            events.append((event, int(index), detail))
        except ValueError:
            continue
    return events


def _kill_everything_else(isolated, worker):
    if isolated:
        # pid 1 of the namespace: -1 reaches every other process in it, and only those
        try:
            os.kill(-1, SIGKILL)
        except ProcessLookupError:
            pass
        return
    for _ in range(50):  # descendants reparent to us (a subreaper); repeat until none is left
        children = _children(os.getpid())
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        _reap(block_for=0.02)
    try:
        os.killpg(worker, SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def _reap(block_for=0.0):
    """Collect exited children (orphans reparent to us); returns {pid: (status, rusage)}."""
    done = {}
    end = time.monotonic() + block_for
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            if time.monotonic() >= end:
                return done
            time.sleep(0.005)
            continue
        done[pid] = (status, usage)


def _supervise(job, worker, out, rep, started):
    """Wait for the worker while enforcing wall-clock and output caps; returns how it ended."""
    limits = job["limits"]
    deadline = started + limits["wall_seconds"]
    try:
        exit_fd = os.pidfd_open(worker)
    except (AttributeError, OSError):
        exit_fd = None
    status = usage = None
    limit = None
    while status is None:
        now = time.monotonic()
        if now >= deadline:
            limit = "wall"
            break
        watch = [s.fd for s in (out, rep) if s.open] + ([exit_fd] if exit_fd is not None else [])
        wait = min(deadline - now, 0.05 if exit_fd is None else deadline - now)
        ready, _, _ = select.select(watch, [], [], max(wait, 0))
        for stream in (out, rep):
            if stream.open and stream.fd in ready:
                stream.pump()
        if out.over or rep.over:
            limit = "output"
            break
        for pid, result in _reap().items():
            if pid == worker:
                status, usage = result
    _kill_everything_else(job["mode"] == "isolated", worker)
    for pid, result in _reap(block_for=0.05).items():
        if pid == worker:
            status, usage = result
    if status is None:
        try:
            _, status, usage = os.wait4(worker, 0)
        except ChildProcessError:
            pass
    drain_end = time.monotonic() + 0.2
    while (out.open or rep.open) and time.monotonic() < drain_end:
        ready, _, _ = select.select([s.fd for s in (out, rep) if s.open], [], [], 0.05)
        for stream in (out, rep):
            if stream.open and stream.fd in ready:
                stream.pump()
    return status, usage, limit


def _death(status, usage, limits):
    """How the worker ended: (limit reached or None, description) from its wait status."""
    if status is None:
        return None, "the program's end could not be observed"
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return None, f"the program exited with status {code}"
    sig = os.WTERMSIG(status)
    cpu = (usage.ru_utime + usage.ru_stime) if usage else 0.0
    # the hard limit (a second past the soft one) kills code that ignores SIGXCPU; rusage can read
    # well below the kernel's own count at that moment (15% below was seen in a VM), hence the margin
    if sig == SIGXCPU or (sig == SIGKILL and cpu >= 0.75 * limits["cpu_seconds"]):
        return "cpu", f"the program used its {limits['cpu_seconds']} s of CPU time"
    return None, f"the program was killed by {_SIGNAL_NAMES.get(sig, f'signal {sig}')}"


def _verdict(job, events, status, usage, limit, out):
    """Combine the worker's events with how it ended into the result sent to the parent."""
    limits = job["limits"]
    passed = 0
    failure = None
    current = None
    for event, index, detail in events:
        if event == "start":
            current = index
        elif event == "pass" and index == passed:
            passed += 1
            current = None
        elif event == "fail":
            failure = {"index": index, "error": detail.get("error", ""), "limit": detail.get("limit")}
            break
    ended_limit, how = _death(status, usage, limits)
    killed = limit is not None or ended_limit is not None or (status is not None and os.WIFSIGNALED(status))
    limit = limit or ended_limit or (failure or {}).get("limit")
    if failure is None and passed < len(job["tests"]):
        index = current if current is not None else (passed if events else -1)
        if limit == "wall":
            error = f"Timeout: still running after the {limits['wall_seconds']:g} s wall-clock limit"
        elif limit == "output":
            error = f"the program wrote more than {limits['output_bytes']} bytes of output"
        elif limit == "cpu":
            error = f"Timeout: {how}"
        else:
            error = f"{how} before the tests ran" if index < 0 else f"{how} during this test"
        failure = {"index": index, "error": error, "limit": limit}
    output = bytes(out.data).decode("utf-8", "replace")
    return {
        "tests_passed": passed,
        "failure": failure,
        "limit": limit,
        "killed": killed,
        "output": output,
        "output_bytes": out.total,
    }


def main():
    job = marshal.loads(sys.stdin.buffer.read())
    isolated = job["mode"] == "isolated"
    # the folders made for the new root must be traversable by the worker's uid whatever the
    # caller's umask was
    os.umask(0o022)
    try:
        if isolated:
            if os.getpid() != 1:
                raise SetupError("not the first process of a new pid namespace")
            _build_root(job)
        elif _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise SetupError("prctl(PR_SET_CHILD_SUBREAPER) failed")
    except (SetupError, OSError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return 3
    nonce = job["nonce"]
    out_r, out_w = os.pipe()
    rep_r, rep_w = os.pipe()
    started = time.monotonic()
    worker = os.fork()
    if worker == 0:
        os.close(out_r)
        os.close(rep_r)
        _worker(job, out_w, rep_w, nonce)
    os.close(out_w)
    os.close(rep_w)
    limits = job["limits"]
    out = _Stream(out_r, limits["output_bytes"])
    rep = _Stream(rep_r, max(limits["output_bytes"], 1 << 20))
    status, usage, limit = _supervise(job, worker, out, rep, started)
    result = _verdict(job, _parse_reports(rep.data, nonce, worker), status, usage, limit, out)
    result["worker_seconds"] = time.monotonic() - started
    # every process of the run was reaped by now, orphans included (we were their reaper)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    sys.stdout.buffer.write(marshal.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
