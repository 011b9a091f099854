"""Files a user names either by path or by the short name of one we ship (recipes, loops)."""

from __future__ import annotations

from pathlib import Path

from reflectevo.errors import UserError


def file_or_builtin(name_or_path: str, folder: Path, kind: str) -> Path:
    """`name_or_path` if it is a file, else `<folder>/<name>.yaml` for a bare name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    builtin = folder / f"{name_or_path}.yaml"
    if "/" not in name_or_path and builtin.is_file():
        return builtin
    known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise UserError(f"--config {name_or_path}: no such file, and not a built-in {kind} ({known})")
