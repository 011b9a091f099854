#!/usr/bin/env python3
"""The test suite's assertion inventory: which test ids exist and what each test function checks.

    scripts/test_inventory.py write OUT.json      collect the suite (pytest --collect-only) and read,
                                                  by AST, every assert and pytest.raises/warns/fail
                                                  of every function in tests/*.py
    scripts/test_inventory.py files JUNIT.xml [JUNIT.xml]
                                                  seconds per test file from pytest --junitxml
                                                  reports (two: before and after, side by side)
    scripts/test_inventory.py compare OLD NEW [NOTES.json]
                                                  Markdown report of what OLD has and NEW lacks

An assertion is keyed by its function and its normalised source text (so line moves and reflowing
do not count as changes). The comparison names, for each test id or assertion that is gone, the
places in NEW that carry it: a test whose docstring names the old test, and functions holding the
same assertion text. Anything left without a carrier is listed under "Not carried" and makes the
command exit 1, so a restructuring that loses a check cannot pass for one that moved it.

A check that was rewritten rather than moved (its text changed) has no automatic carrier; NOTES.json
names it: a list of {"from": "tests/f.py::func", "check": "start of its old text", "to": "where it
is now", "why": "..."}; "from" may be a whole file and "check" empty, for a file that others changed
for their own reasons between the two inventories. A note that matches nothing is reported as stale.

Helpers and fixtures are inventoried too: tests share checks through them, and a check moved from a
test into a fixture is still a check.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
# pytest's context managers and calls that make a test fail on their own
CHECK_CALLS = {"raises", "warns", "fail", "deprecated_call"}


def _is_check_call(node: ast.AST) -> str | None:
    """'raises' for pytest.raises(...) (and the like), else None."""
    if not isinstance(node, ast.Call):
        return None
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr in CHECK_CALLS and isinstance(f.value, ast.Name) \
            and f.value.id == "pytest":
        return f.attr
    return None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _checks(func: ast.AST, source: str) -> list[dict]:
    """Asserts and pytest checks in func's body, not descending into nested functions or classes
    (those are inventoried under their own names)."""
    found = []

    def visit(node, top):
        if not top and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, ast.Assert):
            found.append({"line": node.lineno, "kind": "assert",
                          "text": _norm(ast.get_source_segment(source, node) or ast.unparse(node))})
        kind = _is_check_call(node)
        if kind:
            found.append({"line": node.lineno, "kind": kind,
                          "text": _norm(ast.get_source_segment(source, node) or ast.unparse(node))})
        for child in ast.iter_child_nodes(node):
            visit(child, False)

    visit(func, True)
    return found


def _functions(path: Path) -> dict[str, dict]:
    """qualified name (Class::func or func, nested as outer.inner) -> docstring and checks."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    out: dict[str, dict] = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}::")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out[name] = {"line": child.lineno, "doc": ast.get_docstring(child) or "",
                             "checks": _checks(child, source)}
                walk(child, f"{name}.")

    walk(tree, "")
    return out


def _collect_ids(env: dict) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
           "-o", "addopts="]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    ids = [ln.strip() for ln in done.stdout.splitlines() if "::" in ln and not ln.startswith(" ")]
    if done.returncode != 0 or not ids:
        sys.exit(f"collection failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return ids


def _function_of(test_id: str) -> str:
    """tests/test_x.py::Cls::test_f[param] -> tests/test_x.py::Cls::test_f"""
    return re.sub(r"\[.*\]$", "", test_id, flags=re.S)


def write(out: Path) -> None:
    ids = _collect_ids(dict(os.environ))
    ids_by_func: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        ids_by_func[_function_of(i)].append(i)
    functions = {}
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for name, info in _functions(path).items():
            key = f"{rel}::{name}"
            info["ids"] = ids_by_func.pop(key, [])
            functions[key] = info
    if ids_by_func:  # a collected test whose function the AST walk did not find: say so, loudly
        sys.exit(f"test ids without a function: {sorted(ids_by_func)[:10]}")
    inventory = {
        "test_ids": len(ids),
        "test_functions": sum(1 for f in functions.values() if f["ids"]),
        "checks": sum(len(f["checks"]) for f in functions.values()),
        "functions": functions,
    }
    out.write_text(json.dumps(inventory, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{out}: {inventory['test_ids']} test ids, {inventory['test_functions']} test functions, "
          f"{inventory['checks']} checks")


def _short(key: str) -> str:
    return key.split("::", 1)[1].split("::")[-1]


def compare(old_path: Path, new_path: Path, notes_path: Path | None = None) -> int:
    old = json.loads(old_path.read_text(encoding="utf-8"))
    new = json.loads(new_path.read_text(encoding="utf-8"))
    notes = json.loads(notes_path.read_text(encoding="utf-8")) if notes_path else []
    used_notes: set[int] = set()

    def note_for(key: str, text: str) -> dict | None:
        for n, note in enumerate(notes):
            # a note may name a whole file ("tests/f.py"): every check gone from it, for one reason
            mine = note["from"] == key or key.startswith(note["from"] + "::")
            if mine and _norm(text).startswith(_norm(note["check"])):
                used_notes.add(n)
                return note
        return None

    of, nf = old["functions"], new["functions"]
    new_ids = {i for f in nf.values() for i in f["ids"]}
    by_text: dict[str, set[str]] = defaultdict(set)
    for key, f in nf.items():
        for c in f["checks"]:
            by_text[c["text"]].add(key)

    def named_by(old_key: str) -> list[str]:
        """New tests whose docstring says they carry old_key's checks."""
        name = _short(old_key)
        return sorted(k for k, f in nf.items() if f["ids"] and re.search(rf"\b{re.escape(name)}\b", f["doc"]))

    lines = [f"# Assertion inventory: {old_path.name} -> {new_path.name}", "",
             "Generated by `scripts/test_inventory.py compare`; edit the restructuring, not this file.", "",
             "| | before | after |", "|---|---|---|",
             f"| test ids | {old['test_ids']} | {new['test_ids']} |",
             f"| test functions | {old['test_functions']} | {new['test_functions']} |",
             f"| checks (assert, pytest.raises/warns/fail) | {old['checks']} | {new['checks']} |", ""]
    uncarried = []

    gone_ids = []
    for key, f in sorted(of.items()):
        for i in f["ids"]:
            if i not in new_ids:
                gone_ids.append((i, key))
    lines += ["## Test ids gone", ""]
    if not gone_ids:
        lines += ["None.", ""]
    for i, key in gone_ids:
        carriers = named_by(key)
        params = sorted(n for n in new_ids if n.startswith(i + "["))
        if params:  # the same test, now parametrized (a fast and a slow variant, say)
            lines.append(f"- `{i}` -> parametrized: " + ", ".join(f"`{p}`" for p in params))
        elif carriers:
            lines.append(f"- `{i}` -> carried by " + ", ".join(f"`{c}`" for c in carriers))
        else:
            lines.append(f"- `{i}` -> **no test names it in its docstring**")
            uncarried.append(i)
    lines.append("")

    lines += ["## Checks gone from their function", "",
              "Each with where the same check stands now (same source text).", ""]
    moved = 0
    for key, f in sorted(of.items()):
        # counted, not a set: a check written twice in a function and now once has lost one
        now = Counter(c["text"] for c in nf.get(key, {}).get("checks", []))
        for c in f["checks"]:
            if now[c["text"]] > 0:
                now[c["text"]] -= 1
                continue
            moved += 1
            where = sorted(by_text.get(c["text"], set()) - {key})
            carriers = named_by(key) if key not in nf or not nf[key]["ids"] else []
            note = note_for(key, c["text"])
            if note:
                lines.append(f"- `{key}`: `{c['text'][:160]}` -> rewritten in `{note['to']}`: {note['why']}")
            elif where:
                lines.append(f"- `{key}`: `{c['text'][:160]}` -> " + ", ".join(f"`{w}`" for w in where))
            elif carriers:
                lines.append(f"- `{key}`: `{c['text'][:160]}` -> rewritten in " +
                             ", ".join(f"`{w}`" for w in carriers) + " (named in its docstring)")
                uncarried.append(f"{key}: {c['text'][:100]} (rewritten: check by hand)")
            else:
                lines.append(f"- `{key}`: `{c['text'][:160]}` -> **not found**")
                uncarried.append(f"{key}: {c['text'][:100]}")
    if not moved:
        lines.append("None.")
    for n, note in enumerate(notes):
        if n not in used_notes:
            uncarried.append(f"note without a missing check (stale?): {note['from']}: {note['check'][:80]}")
    lines += ["", "## Not carried", ""]
    lines += [f"- {u}" for u in uncarried] or ["None."]
    print("\n".join(lines))
    return 1 if uncarried else 0


def _file_seconds(junit: Path) -> tuple[dict[str, float], dict[str, int]]:
    """Per test file: the seconds pytest recorded (setup + call + teardown of each test; a shared
    fixture counts where it is first set up) and the number of tests."""
    import xml.etree.ElementTree as ET

    seconds: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")  # tests.test_x or tests.test_x.Class
        module = next((x for x in parts if x.startswith("test_")), parts[0])
        seconds[module] += float(case.get("time") or 0)
        count[module] += 1
    return seconds, count


def files(reports: list[Path]) -> None:
    tables = [_file_seconds(r) for r in reports]
    modules = sorted(set().union(*(t[0] for t in tables)), key=lambda m: -tables[-1][0].get(m, 0))
    head = " | ".join(f"{r.name}: s (tests)" for r in reports)
    print(f"| file | {head} |")
    print("|---|" + "---|" * len(reports))
    for m in modules:
        cells = " | ".join(f"{t[0].get(m, 0):.0f} ({t[1].get(m, 0)})" for t in tables)
        print(f"| {m}.py | {cells} |")
    totals = " | ".join(f"{sum(t[0].values()):.0f} ({sum(t[1].values())})" for t in tables)
    print(f"| all | {totals} |")


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "files":
        files([Path(a) for a in argv[1:]])
        return 0
    if len(argv) == 2 and argv[0] == "write":
        write(Path(argv[1]))
        return 0
    if len(argv) in (3, 4) and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]), Path(argv[3]) if len(argv) == 4 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
