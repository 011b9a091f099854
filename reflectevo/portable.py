"""Paths in published files, made portable: a results file, a leaderboard or a card must not carry
the absolute paths of the machine that wrote it (they say nothing to a reader and leak the layout
of someone's disk).

`portable_path` writes an absolute path relative to a root (the working directory by default), so
"/home/me/proj/runs/r1" becomes "runs/r1" and "/data/bbh" becomes "../../data/bbh";
`portable_paths` does that to every absolute path inside a JSON-like tree, whole strings and paths
inside strings ("resume=/home/me/proj/runs/r1") alike.
"""

from __future__ import annotations

import os
import re

# an absolute POSIX path inside a string: starts at a boundary, at least two components
_ABSOLUTE = re.compile(r"(?<![\w.~/:-])/(?:[\w.@+-]+/)+[\w.@+-]*")


def portable_path(path: str, root: str | None = None) -> str:
    """`path` relative to `root` (default: the working directory) when it is absolute."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return path
    return os.path.relpath(path, root or os.getcwd())


def portable_text(text: str, root: str | None = None) -> str:
    return _ABSOLUTE.sub(lambda m: portable_path(m.group(0), root), text)


def portable_paths(tree, root: str | None = None):
    """A copy of a JSON-like tree with every absolute path made relative to `root`."""
    if isinstance(tree, dict):
        return {portable_text(k, root) if isinstance(k, str) else k: portable_paths(v, root) for k, v in tree.items()}
    if isinstance(tree, list):
        return [portable_paths(v, root) for v in tree]
    if isinstance(tree, str):
        return portable_text(tree, root)
    return tree


def main(argv: list[str] | None = None) -> int:
    """python -m reflectevo.portable IN.json OUT.json [ROOT]: copy a JSON file with portable paths."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m reflectevo.portable IN.json OUT.json [ROOT]", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        data = json.load(f)
    tmp = args[1] + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(portable_paths(data, args[2] if len(args) == 3 else None), f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, args[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
