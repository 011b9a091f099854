"""The import layers of the project (issue 21, item 2): no import runs from a floor up to a higher one.

Floors, bottom to top:

* ``CORE``  ``reflectevo``: errors, Hub client and server, the embedded model, portable files.
* ``TASKS`` ``reflectevo_tasks``: question sources, prompts, scoring, the engine. It stands on CORE.
  The issue's floor 1 ("the core") is these two steps, in this order because the code already
  runs so: ``reflectevo_tasks`` imports ``reflectevo`` (errors, the embedded model, the chunk
  store) from most of its modules, while no module of ``reflectevo`` imports ``reflectevo_tasks``.
  The dispatcher ``reflectevo.cli`` imports no subcommand: they are entry points (pyproject.toml).
* ``TOOLS`` ``reflectevo_gen``, ``reflectevo_train``, ``harness_plugins``: independent of each
  other, so none of them imports another.
* ``TOP``   ``reflectevo_evolve`` (the loop) and ``leaderboards``, which drive the tools;
  ``benchmarks`` (scripts, not a package) stand here too, since nothing may import them.

The rules, checked over every import of every module, those inside functions included:

1. a module imports nothing from a floor above its own;
2. a TOOLS package imports no other TOOLS package;
3. only command-line modules (the dispatcher, the subcommand modules registered as
   ``reflectevo.commands`` entry points, ``__main__`` files) import a command-line module: library code that borrows from one ties itself to a
   command's options;
4. the packages, without the known back arrows below, import each other in no cycle (so a module
   that is given a higher floor in the table but stays in a lower package is still caught).

A module's floor comes from ``FLOORS``, by module path (the longest prefix wins). An arrow that
cannot go yet is listed in ``KNOWN_BACK_ARROWS`` with its reason: that list only shrinks, because
an arrow listed there that the code no longer has fails the test too.

Imports read: ``import a.b``, ``from a import b`` (``a.b`` when that is a module), relative
imports resolved against the importing module, ``importlib.import_module("a.b")`` and
``__import__("a.b")`` with a literal name, and, in a module that calls either with a computed
name, every string in it that names a project module.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE, TASKS, TOOLS, TOP = 1, 2, 3, 4
FLOOR_NAMES = {CORE: "CORE", TASKS: "TASKS", TOOLS: "TOOLS", TOP: "TOP"}
INDEPENDENT_FLOORS = {TOOLS}

# module path prefix -> floor; the longest prefix that matches a module (at a dot) wins
FLOORS = {
    "reflectevo": CORE,
    "reflectevo_tasks": TASKS,
    "reflectevo_gen": TOOLS,
    "reflectevo_train": TOOLS,
    "harness_plugins": TOOLS,
    "reflectevo_evolve": TOP,
    "leaderboards": TOP,
    "benchmarks": TOP,
}

# the dispatcher (a command-line module, rule 3); the subcommand modules it runs are the
# `reflectevo.commands` entry points of pyproject.toml
DISPATCHER = "reflectevo.cli"

# (importing file, imported module) -> why it is there today; every one must still exist. Empty since
# the chunk store moved to the core, the evolve loop to the top, and subcommands to entry points.
KNOWN_BACK_ARROWS: dict[tuple[str, str], str] = {}


# ---- reading the import graph -------------------------------------------------------------------
@dataclass(frozen=True)
class Arrow:
    file: str  # importing file, relative to the root, with '/'
    line: int
    source: str  # importing module
    target: str  # imported project module (or package)


def module_files(root: Path, tops: list[str]) -> dict[str, str]:
    """Module name -> file (relative, '/') of every .py file under the given top-level folders."""
    out: dict[str, str] = {}
    for top in tops:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    rel = (Path(folder) / name).relative_to(root).as_posix()
                    out[module_name(rel)] = rel
    return out


def module_name(rel_path: str) -> str:
    parts = rel_path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, rel_path: str) -> list[str]:
    """The package a module's relative imports start from, as name parts."""
    parts = module.split(".")
    return parts if rel_path.endswith("/__init__.py") else parts[:-1]


def read_arrows(root: Path, modules: dict[str, str]) -> list[Arrow]:
    tops = {m.split(".")[0] for m in modules}
    arrows: list[Arrow] = []
    for module, rel in modules.items():
        tree = ast.parse((root / rel).read_text(encoding="utf-8"), filename=rel)
        # one arrow per line and target: `from a import b, c` names `a` once
        for line, target in sorted(set(imports_of(tree, module, rel, modules))):
            if target.split(".")[0] in tops:
                arrows.append(Arrow(rel, line, module, target))
    return arrows


def imports_of(tree: ast.AST, module: str, rel: str, modules: dict[str, str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement and every dynamic import in the tree."""
    found: list[tuple[int, str]] = []
    computed_dynamic_import = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(node, module, rel)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append((node.lineno, sub if sub in modules else base))
        elif isinstance(node, ast.Call) and is_dynamic_import(node):
            name = node.args[0] if node.args else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.append((node.lineno, name.value))
            else:
                computed_dynamic_import = True
    if computed_dynamic_import:
        # the name is computed: any module the file names in a string may be the one it loads
        found += [(node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules]
    return found


def absolute_base(node: ast.ImportFrom, module: str, rel: str) -> str:
    if not node.level:
        return node.module or ""
    package = package_of(module, rel)
    if node.level > len(package):
        raise AssertionError(f"{rel}:{node.lineno}: relative import climbs above the top-level package")
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


# ---- the rules ----------------------------------------------------------------------------------
def floor_of(module: str, floors: dict[str, int]) -> int | None:
    matches = [prefix for prefix in floors if module == prefix or module.startswith(prefix + ".")]
    return floors[max(matches, key=len)] if matches else None


def command_line_modules(root: Path, dispatcher: str, modules: dict[str, str]) -> set[str]:
    """The dispatcher, the subcommand modules registered as `reflectevo.commands` entry points in
    pyproject.toml, and every __main__."""
    import tomllib

    table = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    subcommands = set(table["project"]["entry-points"]["reflectevo.commands"].values())
    unknown = subcommands - set(modules)
    assert not unknown, f"pyproject.toml registers subcommands from modules that do not exist: {sorted(unknown)}"
    return {dispatcher} | subcommands | {m for m in modules if m.split(".")[-1] == "__main__"}


def broken_rules(arrow: Arrow, floors: dict[str, int], command_line: set[str]) -> list[str]:
    """Why ``arrow`` breaks the layer order ([] when it does not)."""
    why = []
    src, dst = floor_of(arrow.source, floors), floor_of(arrow.target, floors)
    if dst > src:
        why.append(f"floor {FLOOR_NAMES.get(src, src)} imports floor {FLOOR_NAMES.get(dst, dst)}")
    src_package, dst_package = arrow.source.split(".")[0], arrow.target.split(".")[0]
    if src == dst and src in INDEPENDENT_FLOORS and src_package != dst_package:
        why.append(f"{src_package} and {dst_package} share floor {FLOOR_NAMES.get(src, src)} and must not import each other")
    if arrow.target in command_line and arrow.source not in command_line:
        why.append(f"library module {arrow.source} imports the command-line module {arrow.target}")
    return why


def back_arrows(arrows: list[Arrow], floors: dict[str, int], command_line: set[str]) -> dict[tuple[str, str], list[str]]:
    """(file, imported module) -> 'file:line: imports X: why' for every arrow that breaks a rule."""
    out: dict[tuple[str, str], list[str]] = {}
    for arrow in arrows:
        for why in broken_rules(arrow, floors, command_line):
            out.setdefault((arrow.file, arrow.target), []).append(f"{arrow.file}:{arrow.line}: imports {arrow.target}: {why}")
    return out


def package_cycle(arrows: list[Arrow]) -> list[str] | None:
    """One cycle of top-level packages (first package repeated at the end), or None."""
    graph: dict[str, set[str]] = {}
    for arrow in arrows:
        a, b = arrow.source.split(".")[0], arrow.target.split(".")[0]
        if a != b:
            graph.setdefault(a, set()).add(b)
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


# ---- the project ----------------------------------------------------------------------------------
TOPS = sorted({prefix.split(".")[0] for prefix in FLOORS})


@pytest.fixture(scope="module")
def project():
    modules = module_files(ROOT, TOPS)
    return modules, read_arrows(ROOT, modules), command_line_modules(ROOT, DISPATCHER, modules)


def test_every_package_of_the_project_has_a_floor():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages - set(TOPS) == set(), "new top-level package: give it a floor in FLOORS"
    assert set(TOPS) - {p.name for p in ROOT.iterdir() if p.is_dir()} == set(), "FLOORS names a folder that is gone"


def test_no_import_runs_up_a_floor(project):
    modules, arrows, command_line = project
    new = {key: lines for key, lines in back_arrows(arrows, FLOORS, command_line).items()
           if key not in KNOWN_BACK_ARROWS}
    assert not new, "imports that break the layer order (tests/test_layers.py says which way is up):\n" + "\n".join(
        line for lines in new.values() for line in lines)


def test_every_known_back_arrow_is_still_there(project):
    modules, arrows, command_line = project
    found = back_arrows(arrows, FLOORS, command_line)
    gone = sorted(key for key in KNOWN_BACK_ARROWS if key not in found)
    assert not gone, "no longer a back arrow, delete it from KNOWN_BACK_ARROWS:\n" + "\n".join(
        f"{file} -> {target}" for file, target in gone)


def test_packages_import_each_other_in_no_cycle(project):
    modules, arrows, command_line = project
    kept = [a for a in arrows if (a.file, a.target) not in KNOWN_BACK_ARROWS]
    cycle = package_cycle(kept)
    if cycle:
        steps = []
        for a, b in zip(cycle, cycle[1:]):
            first = next(x for x in kept if x.source.split(".")[0] == a and x.target.split(".")[0] == b)
            steps.append(f"{a} -> {b} ({first.file}:{first.line} imports {first.target})")
        pytest.fail("packages import each other in a cycle:\n" + "\n".join(steps))


# ---- the checker itself, on a small made-up tree ------------------------------------------------------
def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def test_checker_sees_imports_inside_functions_relative_and_dynamic(tmp_path):
    write_tree(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from high import b\n",
        "low/c.py": "X = 1\n",
        "low/sub/__init__.py": "from .. import c\n",
        "low/sub/x.py": "def g():\n    from ..c import X\n",
        "low/d.py": "import importlib\nNAMES = {'x': 'high.b'}\n\ndef g(n):\n    return importlib.import_module(NAMES[n])\n",
        "low/e.py": "def h():\n    return __import__('high')\n",
        "high/__init__.py": "",
        "high/b.py": "import low.c\n",
    })
    modules = module_files(tmp_path, ["low", "high"])
    arrows = read_arrows(tmp_path, modules)
    assert {("low/sub/__init__.py", 1, "low.c"), ("low/sub/x.py", 2, "low.c")} <= {
        (a.file, a.line, a.target) for a in arrows}
    assert back_arrows(arrows, {"low": CORE, "high": TOP}, set()) == {
        ("low/a.py", "high.b"): ["low/a.py:2: imports high.b: floor CORE imports floor TOP"],
        ("low/d.py", "high.b"): ["low/d.py:2: imports high.b: floor CORE imports floor TOP"],
        ("low/e.py", "high"): ["low/e.py:2: imports high: floor CORE imports floor TOP"],
    }
    assert package_cycle(arrows) == ["high", "low", "high"]
    assert package_cycle([a for a in arrows if a.file != "high/b.py"]) is None


def test_checker_refuses_a_relative_import_above_the_top(tmp_path):
    write_tree(tmp_path, {"low/__init__.py": "", "low/a.py": "from ..other import x\n"})
    with pytest.raises(AssertionError, match=r"low/a.py:1: relative import climbs above"):
        read_arrows(tmp_path, module_files(tmp_path, ["low"]))


def test_checker_keeps_tools_apart_and_command_lines_private(tmp_path):
    write_tree(tmp_path, {
        "gen/__init__.py": "",
        "gen/run.py": "from train.cli import options\n",
        "train/__init__.py": "",
        "train/cli.py": "import gen\n",
    })
    modules = module_files(tmp_path, ["gen", "train"])
    found = back_arrows(read_arrows(tmp_path, modules), {"gen": TOOLS, "train": TOOLS}, {"train.cli"})
    assert found == {
        ("gen/run.py", "train.cli"): [
            "gen/run.py:1: imports train.cli: gen and train share floor TOOLS and must not import each other",
            "gen/run.py:1: imports train.cli: library module gen.run imports the command-line module train.cli",
        ],
        ("train/cli.py", "gen"): ["train/cli.py:1: imports gen: train and gen share floor TOOLS and must not import each other"],
    }
