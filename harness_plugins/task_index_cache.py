"""A persistent cache of lm-eval's task index, so that an `lm_eval` command starts in seconds.

Every `TaskManager()` (each `lm_eval` run, each `lm_eval ls`) parses all ~14,000 task YAML files
that lm-eval ships, and ours, before it looks at `--tasks`: 8.8 s on an idle 2-core Zen 3, 12-17 s
under load, longer than many of our evaluations. The parse is a pure function of the files, so we keep its
result per file between processes: `TaskIndex.build` runs unchanged, only its `load_yaml` calls
(the index's own call, functions left unresolved) are answered from the cache when every file the
answer was read from (the YAML and each file it includes) still has the size and modification time
it had. Anything else (a new, changed or deleted file, another lm-eval version, an unreadable or
foreign cache file or entry) is parsed as lm-eval would; a parse error is never cached. Measured on the
machine above (benchmarks/bench_task_index.py, RESULTS.md): TaskManager() in 0.94 s cached against 8.8 s.

The cache is one file, `<reflectevo cache>/lm_eval_task_index.pickle` (REFLECTEVO_CACHE, else
$XDG_CACHE_HOME/reflectevo, else ~/.cache/reflectevo), written whole and atomically after a build
that parsed something (concurrent writers: the last one wins, the other's new entries are parsed
again next time). Entries whose files are gone are dropped then; entries are per lm-eval version,
so environments with different versions share the file without evicting each other. A file modified in the last two
seconds is not cached: its modification time could still change without its size changing within
one clock tick. REFLECTEVO_LM_EVAL_INDEX_CACHE=0 turns the cache off.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

OPT_OUT_ENV = "REFLECTEVO_LM_EVAL_INDEX_CACHE"
CACHE_NAME = "lm_eval_task_index.pickle"
FORMAT = 1
SETTLE_SECONDS = 2.0
_MARK = "_reflectevo_index_cache"

_current = threading.local()  # the build in progress in this thread, if any


def enabled() -> bool:
    return os.environ.get(OPT_OUT_ENV, "") not in ("0", "false", "no", "off")


def cache_file() -> Path:
    from reflectevo.embedded_model import cache_root

    return cache_root() / CACHE_NAME


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _fresh(deps: tuple) -> bool:
    return all(_stamp(path) == stamp for path, stamp in deps)


@dataclass
class _Build:
    """One index build: the stored entries it started from and the entries it read or made."""
    version: str
    stored: dict
    used: dict = field(default_factory=dict)
    parsed: int = 0
    reused: int = 0

    def load_yaml(self, original, path, recursive):
        # by the path as given (resolving symlinks costs more than the rest of a cached build)
        key = f"{self.version}:{int(bool(recursive))}:{os.path.abspath(os.path.expanduser(path))}"
        entry = self.stored.get(key)
        if entry is not None and _fresh(entry[0]):
            self.used[key] = entry
            self.reused += 1
            return pickle.loads(entry[1])
        seen: set[Path] = set()
        cfg = original(path, resolve_func=False, recursive=recursive, _seen=seen)
        self.parsed += 1
        deps = tuple((str(p), _stamp(str(p))) for p in sorted(seen))
        settled = time.time() - SETTLE_SECONDS
        if all(stamp is not None and stamp[0] / 1e9 < settled for _, stamp in deps):
            self.used[key] = (deps, pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))
        return cfg


def _well_formed(entry) -> bool:
    return (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], bytes)
            and isinstance(entry[0], tuple) and all(isinstance(d, tuple) and len(d) == 2 for d in entry[0]))


def _read_store(path: Path) -> dict:
    """Entries by "<lm-eval version>:<includes resolved>:<path>" (an environment with another lm-eval,
    e.g. the vLLM one, keeps its own beside ours); {} for a missing, unreadable or foreign file."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except Exception:  # missing, unreadable or foreign: parse everything, then write a good one
        return {}
    entries = data.get("entries") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(entries, dict):
        return {}
    return {key: entry for key, entry in entries.items() if isinstance(key, str) and _well_formed(entry)}


def _write_store(path: Path, entries: dict) -> None:
    from reflectevo.hub.store import atomic_write

    atomic_write(str(path), pickle.dumps({"format": FORMAT, "entries": entries}, protocol=pickle.HIGHEST_PROTOCOL))


def _save(build: _Build, path: Path) -> None:
    """The entries this build used, and the stored ones for other folders whose files are all still there."""
    kept = {key: entry for key, entry in build.stored.items()
            if key not in build.used and all(os.path.exists(dep) for dep, _ in entry[0])}
    try:
        _write_store(path, {**kept, **build.used})
    except OSError:  # a read-only cache folder costs speed, not the run
        pass


def install(index_module) -> None:
    """Wrap `index_module.TaskIndex.build` (lm_eval.tasks._index) and the `load_yaml` it calls.
    Idempotent; outside a build, and when the cache is off, `load_yaml` is lm-eval's own."""
    cls = index_module.TaskIndex
    if getattr(cls.__dict__["build"], _MARK, False):
        return
    import lm_eval

    version = getattr(lm_eval, "__version__", "unknown")
    original_build = cls.__dict__["build"].__func__
    original_load = index_module.load_yaml

    def load_yaml(path, *, resolve_func=True, recursive=True, _seen=None):
        build = getattr(_current, "build", None)
        if build is None or resolve_func or _seen is not None:
            return original_load(path, resolve_func=resolve_func, recursive=recursive, _seen=_seen)
        return build.load_yaml(original_load, path, recursive)

    def build(paths, *, resolve_includes=True):
        if not enabled() or getattr(_current, "build", None) is not None:
            return original_build(paths, resolve_includes=resolve_includes)
        where = cache_file()
        current = _Build(version, _read_store(where))
        _current.build = current
        try:
            index = original_build(paths, resolve_includes=resolve_includes)
        finally:
            _current.build = None
        if current.parsed:
            _save(current, where)
        build.last = current
        return index

    setattr(load_yaml, _MARK, True)
    setattr(build, _MARK, True)
    build.last = None
    index_module.load_yaml = load_yaml
    cls.build = staticmethod(build)
