"""MATH and MBPP, the question sources of the `math` and `code` answer kinds.

    math                     MATH problems (problem, solution, level, type); the gold is the last
                             \\boxed{...} of the solution
    math:PATH                a local .jsonl file of that layout, or a folder holding math_test.jsonl
    math:ORG/NAME[:CONFIG][@REVISION]   a Hub dataset of that layout (its test split)
    mbpp, mbpp:PATH, mbpp:ORG/NAME[:CONFIG][@REVISION]   the same for MBPP (text, code, task_id,
                             test_list, test_setup_code; challenge_test_list is not used), file
                             mbpp_test.jsonl

Plain `math` / `mbpp` read the local copy named by REFLECTEVO_MATH_DIR / REFLECTEVO_MBPP_DIR (a
file, or a folder holding the file above), else by REFLECTEVO_DATA_DIR (its math/ and mbpp/
folders, as in the repository's ../shared/data); with none of them set the source is an error that
names them. Hub datasets are loaded through `datasets`, so HF_ENDPOINT and HF_HUB_OFFLINE apply, and
the commit actually loaded is recorded (`Origin`); a local file is recorded by its sha256.

Questions: MATH `math/<line>` (line counted from 0), source `math/<subject>` (algebra,
counting_and_probability, ...); MBPP `mbpp/<task_id>`, source `mbpp`, shown as the task followed by
its tests (as MBPP's own prompts show them), with the reference program as the answer (never run,
never shown) and the tests and setup code the answer is run against. A malformed row is one
UserError naming the file (or dataset) and row: these are benchmarks, a broken row means a broken copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks.questions import Question

DATA_ENV = "REFLECTEVO_DATA_DIR"


@dataclass(frozen=True)
class Benchmark:
    name: str  # the source name, and the folder under REFLECTEVO_DATA_DIR
    env: str  # the variable naming a local copy
    file: str  # the file a local folder holds
    fields: tuple[str, ...]  # the columns every row needs


MATH = Benchmark("math", "REFLECTEVO_MATH_DIR", "math_test.jsonl", ("problem", "solution", "type"))
MBPP = Benchmark("mbpp", "REFLECTEVO_MBPP_DIR", "mbpp_test.jsonl", ("text", "code", "task_id", "test_list"))
BENCHMARKS = {b.name: b for b in (MATH, MBPP)}

# MATH's seven subjects (its `type` column) and the names its tasks use
SUBJECTS = {
    "Algebra": "algebra",
    "Counting & Probability": "counting_and_probability",
    "Geometry": "geometry",
    "Intermediate Algebra": "intermediate_algebra",
    "Number Theory": "number_theory",
    "Prealgebra": "prealgebra",
    "Precalculus": "precalculus",
}
MBPP_TESTS_HEADING = "Your code should pass these tests:"
_HUB_NAME = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<revision>[\w./-]+))?")


@dataclass(frozen=True)
class Origin:
    """Where a source's questions came from, for provenance."""

    dataset: str  # a local path, or the Hub repo id
    revision: str  # "sha256:<hex>" of a local file, or the Hub commit loaded
    location: str  # the local file, or hf://datasets/<repo>
    config: str | None = None

    def as_dict(self) -> dict:
        out = {"dataset": self.dataset, "revision": self.revision, "location": self.location}
        return out | ({"config": self.config} if self.config else {})


# ---------------------------------------------------------------- where the data is

def local_file(bench: Benchmark, arg: str | None = None) -> Path | None:
    """The local file of a benchmark: `arg` when it names a file or folder, else the environment's;
    None when `arg` is a Hub name. UserError when nothing local is named, or what is named is missing."""
    if arg:
        path = Path(arg).expanduser()
        if path.exists():
            return _file_in(bench, path, f"source {bench.name}:{arg}")
        if _HUB_NAME.fullmatch(arg) and not arg.startswith((".", "/", "~")) and not arg.endswith((".jsonl", ".json")):
            return None
        raise UserError(f"source {bench.name}:{arg}: no such file or folder (nor a Hub dataset name ORG/NAME)")
    if os.environ.get(bench.env):
        return _file_in(bench, Path(os.environ[bench.env]).expanduser(), bench.env)
    if os.environ.get(DATA_ENV):
        folder = Path(os.environ[DATA_ENV]).expanduser() / bench.name
        return _file_in(bench, folder, f"{DATA_ENV} ({folder})")
    raise UserError(f"source {bench.name}: no local copy named. Set {bench.env} (a {bench.file} file or its folder) "
                    f"or {DATA_ENV} (a folder holding {bench.name}/{bench.file}), or name one: "
                    f"{bench.name}:PATH, or {bench.name}:ORG/NAME for a Hub dataset of the same layout")


def _file_in(bench: Benchmark, path: Path, named_by: str) -> Path:
    file = path / bench.file if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{file}: no {bench.name} data here (named by {named_by})")
    return file.resolve()


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _read_local(path: Path) -> list[tuple[str, object]]:
    """(where, row) per non-empty line; a line that is not a JSON object is an error naming it."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        rows.append((f"{path}:{n}", row))
    return rows


def _read_hub(bench: Benchmark, name: str) -> tuple[list[tuple[str, object]], Origin]:
    import datasets

    m = _HUB_NAME.fullmatch(name)
    repo, config, revision = m.group("repo"), m.group("config"), m.group("revision")
    try:
        builder = datasets.load_dataset_builder(repo, config, revision=revision)
        builder.download_and_prepare()
        rows = builder.as_dataset(split="test")
    except Exception as exc:  # network, auth, a missing config or split: all end here
        raise UserError(
            f"could not load the Hub dataset {repo}{':' + config if config else ''} (revision {revision or 'main'}, "
            f"split test) for source {bench.name}: {type(exc).__name__}: {exc}. Offline? Point {bench.env} or "
            f"{DATA_ENV} at a local copy") from None
    loaded = str(builder.hash or "") or "unknown"
    if revision and re.fullmatch(r"[0-9a-f]{7,40}", revision) and not loaded.startswith(revision):
        raise UserError(f"asked for {repo} at commit {revision}, but datasets loaded {loaded} (a cached copy?)")
    where = f"{repo} (test split)"
    return ([(f"{where}: row {i + 1}", row) for i, row in enumerate(rows)],
            Origin(repo, loaded, f"hf://datasets/{repo}", config))


def read_rows(bench: Benchmark, arg: str | None = None) -> tuple[list[tuple[str, dict]], Origin]:
    """The rows of a benchmark as (where, row), checked for the fields every row needs."""
    path = local_file(bench, arg)
    if path is None:
        rows, origin = _read_hub(bench, arg)
    else:
        rows, origin = _read_local(path), Origin(str(path), sha256_file(path), str(path))
    for where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where}: not a JSON object")
        missing = [f for f in bench.fields if f not in row]
        if missing:
            raise UserError(f"{where}: no {', '.join(repr(f) for f in missing)} field (a {bench.name} row has "
                            f"{', '.join(bench.fields)})")
    if not rows:
        raise UserError(f"{origin.location}: no {bench.name} rows")
    return rows, origin


# ---------------------------------------------------------------- MATH

def last_boxed(solution: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) of a worked solution, braces matched."""
    start = max(solution.rfind("\\boxed"), solution.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (6 if solution.startswith("\\boxed", start) else 5)
    while i < len(solution) and solution[i] in " \t":
        i += 1
    if i >= len(solution) or solution[i] != "{":
        return None
    depth = 0
    for j in range(i, len(solution)):
        c = solution[j]
        if c == "{" and solution[j - 1] != "\\":
            depth += 1
        elif c == "}" and solution[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return solution[i + 1:j].strip()
    return None


def math_question(index: int, row: dict, where: str) -> Question:
    problem, solution, subject = row.get("problem"), row.get("solution"), row.get("type")
    for name, value in (("problem", problem), ("solution", solution), ("type", subject)):
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: field {name!r} must be a non-empty string")
    if subject not in SUBJECTS:
        raise UserError(f"{where}: type {subject!r} is not a MATH subject ({', '.join(SUBJECTS)})")
    gold = last_boxed(solution)
    if not gold:
        raise UserError(f"{where}: the solution has no complete \\boxed{{...}} to take the answer from")
    return Question(id=f"math/{index}", source=f"math/{SUBJECTS[subject]}", index=index, question=problem.strip(),
                    answer=gold, kind=A.MATH)


# ---------------------------------------------------------------- MBPP

def mbpp_text(task: str, tests) -> str:
    """An MBPP task as the model sees it: the task, then the tests its code must pass."""
    return f"{task.strip()}\n{MBPP_TESTS_HEADING}\n\n" + "\n".join(t.strip() for t in tests)


def mbpp_question(row: dict, where: str) -> Question:
    from reflectevo_tasks.code_sandbox import check_tests

    text, code, task_id = row.get("text"), row.get("code"), row.get("task_id")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{where}: field 'text' must be a non-empty string")
    if not isinstance(code, str) or not code.strip():
        raise UserError(f"{where}: field 'code' must be a non-empty string")
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise UserError(f"{where}: field 'task_id' must be an integer, not {task_id!r}")
    setup = row.get("test_setup_code") or ""
    tests = check_tests(row.get("test_list"), setup, where)  # UserError naming the bad test
    return Question(id=f"mbpp/{task_id}", source="mbpp", index=task_id, question=mbpp_text(text, tests),
                    answer=code.replace("\r\n", "\n").strip() + "\n", kind=A.CODE,
                    tests=tuple(t.strip() for t in tests), setup=setup)


# ---------------------------------------------------------------- both

def load(name: str, arg: str | None = None) -> tuple[list[Question], Origin]:
    """Every question of `math` or `mbpp` in file order, and where they came from."""
    bench = BENCHMARKS[name]
    rows, origin = read_rows(bench, arg)
    if bench is MATH:
        questions = [math_question(i, row, where) for i, (where, row) in enumerate(rows)]
    else:
        questions = [mbpp_question(row, where) for where, row in rows]
        seen: dict[str, str] = {}
        for (where, _), q in zip(rows, questions):
            if q.id in seen:
                raise UserError(f"{where}: task_id {q.index} again (first at {seen[q.id]})")
            seen[q.id] = where
    return questions, origin
