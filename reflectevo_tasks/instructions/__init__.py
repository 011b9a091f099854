"""The reflection instruction pools, kept as data (YAML files beside this module).

Built-in pools: `abc` (the final 32-entry A-B-C pool), `legacy` (the earlier 32-entry pool) and
`default` (one generic diagnose-and-plan instruction). Users add their own with a YAML or JSON file
of the same shape: {name, version, instructions: [{id, text, axes?}]}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from reflectevo.errors import UserError

_HERE = Path(__file__).parent
BUILTIN_POOLS = ("abc", "legacy", "default")


@dataclass(frozen=True)
class Instruction:
    id: str
    text: str
    pool: str
    pool_version: str
    axes: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Pool:
    name: str
    version: str
    instructions: tuple[Instruction, ...]

    def get(self, instruction_id: str) -> Instruction:
        for ins in self.instructions:
            if ins.id == str(instruction_id):
                return ins
        known = ", ".join(i.id for i in self.instructions[:8])
        raise UserError(f"unknown instruction id {instruction_id!r} in pool {self.name!r} (known: {known}, …)")

    def select(self, ids) -> list[Instruction]:
        if ids in (None, "all", ["all"]):
            return list(self.instructions)
        if isinstance(ids, str):
            ids = [i.strip() for i in ids.split(",") if i.strip()]
        return [self.get(i) for i in ids]


def _parse(data, origin: str) -> Pool:
    if not isinstance(data, dict) or not isinstance(data.get("instructions"), list) or not data["instructions"]:
        raise UserError(f"{origin}: expected a mapping with a non-empty 'instructions' list")
    name = str(data.get("name") or Path(origin).stem)
    version = str(data.get("version", "1"))
    out, seen = [], set()
    for i, row in enumerate(data["instructions"]):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip() or "id" not in row:
            raise UserError(f"{origin}: instruction {i} needs an 'id' and a non-empty 'text'")
        iid = str(row["id"])
        if iid in seen:
            raise UserError(f"{origin}: instruction id {iid!r} appears twice")
        seen.add(iid)
        out.append(Instruction(iid, row["text"].strip(), name, version, dict(row.get("axes") or {})))
    return Pool(name, version, tuple(out))


@lru_cache(maxsize=16)
def load_pool(name_or_path: str = "abc") -> Pool:
    """A built-in pool by name, or a user pool from a .yaml/.yml/.json file."""
    if name_or_path in BUILTIN_POOLS:
        path = _HERE / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise UserError(f"{name_or_path}: no such instruction pool (built-in: {', '.join(BUILTIN_POOLS)}; or a YAML/JSON file)")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read instruction pool ({exc})") from None
    return _parse(data, str(path))


def find_instruction(ref: str) -> Instruction:
    """`pool:id` or a bare id, looked up in default, then abc, then legacy."""
    if ":" in ref:
        pool, iid = ref.rsplit(":", 1)
        return load_pool(pool).get(iid)
    for pool in ("default", "abc", "legacy"):
        try:
            return load_pool(pool).get(ref)
        except UserError:
            continue
    raise UserError(f"unknown instruction {ref!r}: use an id from the abc pool (e.g. A1-B3-C2), the legacy pool (1-32), 'default', or pool:id")
