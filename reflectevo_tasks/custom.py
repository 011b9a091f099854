"""Any dataset with question/answer(/choices) columns, from a local file or the Hub, through a
column mapping given as data, so users can add LogiQA, GSM8K, MATH or MBPP-like sets without code.

A dataset spec (YAML/JSON file or dict):

    name: gsm8k                 # becomes the source name "custom/gsm8k"
    path: openai/gsm8k          # Hub repo id, or a local .jsonl/.json/.csv/.parquet file or folder
    config: main                # optional Hub config
    split: test
    revision: null              # optional Hub revision
    columns: {question: question, answer: answer, choices: null}
    kind: integer               # optional; guessed from the answers when absent
    answer_regex: "#### (.*)"   # optional: the gold answer is the first group of this regex

Malformed rows (missing field, wrong type, empty question) are rejected one by one with the file
and row named (rows counted from 1: the line of a .jsonl file, the element of a .json list, the data
row of a .csv); the rest are kept. Question ids and indexes count from 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks.bigbench import LETTERS
from reflectevo_tasks.questions import Question

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class DatasetSpec:
    name: str
    path: str
    split: str = "train"
    config: str | None = None
    revision: str | None = None
    columns: dict = field(default_factory=lambda: {"question": "question", "answer": "answer"})
    kind: str | None = None
    answer_regex: str | None = None

    def __post_init__(self):
        _answer_pattern(self.answer_regex, f"dataset spec {self.name!r}")

    @classmethod
    def from_file(cls, path: str | Path) -> "DatasetSpec":
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UserError(f"{p}: cannot read dataset spec ({exc})") from None
        if not isinstance(data, dict) or "path" not in data:
            raise UserError(f"{p}: a dataset spec needs at least 'path' (and usually 'columns')")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise UserError(f"{p}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        data.setdefault("name", p.stem)
        if data.get("kind") and data["kind"] not in A.KINDS:
            raise UserError(f"{p}: unknown kind {data['kind']!r}; expected one of {', '.join(A.KINDS)}")
        _answer_pattern(data.get("answer_regex"), str(p))
        return cls(**data)


def _answer_pattern(regex, where: str) -> re.Pattern | None:
    """The compiled answer_regex; a bad one is an error naming the spec, before any data is read."""
    if regex in (None, ""):
        return None
    if not isinstance(regex, str):
        raise UserError(f"{where}: answer_regex must be a string, got {type(regex).__name__}")
    try:
        pattern = re.compile(regex, re.S)
    except re.error as exc:
        raise UserError(f"{where}: answer_regex {regex!r} is not a valid regular expression ({exc})") from None
    if pattern.groups < 1:
        raise UserError(f"{where}: answer_regex {regex!r} needs a group, e.g. '#### (.*)': the gold answer is its first group")
    return pattern


@dataclass
class LoadReport:
    questions: list[Question]
    rejected: list[str]  # one message per rejected row, naming file and row
    origin: dict = field(default_factory=dict)  # the data's dataset, revision and location, where known


def _rows(spec: DatasetSpec):
    import datasets

    local = Path(spec.path).expanduser()
    try:
        if local.exists():
            files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.suffix in _LOCAL_FORMATS)
            if not files:
                raise UserError(f"{local}: no .jsonl/.json/.csv/.parquet files")
            fmt = _LOCAL_FORMATS.get(files[0].suffix)
            if fmt is None:
                raise UserError(f"{local}: unsupported file type {files[0].suffix!r}")
            if fmt == "json":
                return _json_rows(files), str(local)
            ds = datasets.load_dataset(fmt, data_files=[str(f) for f in files], split="train")
        else:
            ds = datasets.load_dataset(spec.path, spec.config, split=spec.split, revision=spec.revision)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{spec.path}: cannot load dataset ({type(exc).__name__}: {exc})") from None
    return ((i, r) for i, r in enumerate(ds)), spec.path


def _json_rows(files):
    """JSON lines read by hand so one bad line is one rejected row, not a failed load."""
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{f}: not UTF-8 text (byte {exc.start})") from None
        if f.suffix == ".json" and text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UserError(f"{f}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
            yield from enumerate(rows)
            continue
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, ValueError(f"not valid JSON ({exc.msg})")


def _guess_kind(answers: list[str]) -> str:
    if answers and all(re.fullmatch(r"-?\d[\d,]*", a.strip()) for a in answers):
        return A.INTEGER
    lowered = {a.strip().lower() for a in answers}
    if lowered and lowered <= {"yes", "no"}:
        return A.YES_NO
    if lowered and lowered <= {"true", "false"}:
        return A.TRUE_FALSE
    return A.FREE_TEXT


def load_custom(spec: DatasetSpec, limit: int | None = None) -> LoadReport:
    rows, origin = _rows(spec)
    qcol = spec.columns.get("question", "question")
    acol = spec.columns.get("answer", "answer")
    ccol = spec.columns.get("choices")
    pattern = _answer_pattern(spec.answer_regex, f"dataset spec {spec.name!r}")
    good: list[tuple[int, str, str, list[str] | None]] = []
    rejected: list[str] = []
    for i, row in rows:
        where = f"{origin}: row {i + 1}"  # counted from 1, as a reader of the file counts
        if isinstance(row, Exception):
            rejected.append(f"{where}: {row}")
            continue
        if not isinstance(row, dict):
            rejected.append(f"{where}: not an object")
            continue
        q, a = row.get(qcol), row.get(acol)
        if q is None or a is None:
            missing = qcol if q is None else acol
            rejected.append(f"{where}: missing field {missing!r}")
            continue
        if not isinstance(q, str):
            rejected.append(f"{where}: field {qcol!r} must be a string, got {type(q).__name__}")
            continue
        if not q.strip():
            rejected.append(f"{where}: empty question")
            continue
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(int(a)) if float(a).is_integer() else str(a)
        if not isinstance(a, str) or not a.strip():
            rejected.append(f"{where}: field {acol!r} must be a non-empty string or number")
            continue
        if pattern:
            m = pattern.search(a)
            if not m:
                rejected.append(f"{where}: answer does not match answer_regex")
                continue
            a = m.group(1).strip()
        choices = None
        if ccol:
            choices = row.get(ccol)
            if not (isinstance(choices, list) and 2 <= len(choices) <= len(LETTERS) and all(isinstance(c, str) for c in choices)):
                rejected.append(f"{where}: field {ccol!r} must be a list of 2-26 strings")
                continue
        good.append((i, q.strip(), a.strip(), choices))
        if limit is not None and len(good) >= limit:
            break
    kind = spec.kind or (A.CHOICE if ccol else _guess_kind([a for _, _, a, _ in good]))
    questions = [_make(spec, i, q, a, choices, kind) for i, q, a, choices in good]
    return LoadReport(questions, rejected)


def _make(spec: DatasetSpec, index: int, question: str, answer: str, choices, kind: str) -> Question:
    options: tuple = ()
    if choices:
        options = tuple((LETTERS[j], c.strip()) for j, c in enumerate(choices))
        question = question + "\nOptions:\n" + "\n".join(f"({l}) {t}" for l, t in options)
        if re.fullmatch(r"\d+", answer) and int(answer) < len(options):
            answer = f"({LETTERS[int(answer)]})"  # an index into the choices
        elif re.fullmatch(r"\(?[A-Za-z]\)?", answer):
            answer = f"({answer.strip('()').upper()})"
        else:
            match = [l for l, t in options if A.normalize_text(t) == A.normalize_text(answer)]
            answer = f"({match[0]})" if match else answer
    return Question(id=f"custom/{spec.name}/{index}", source=f"custom/{spec.name}", index=index,
                    question=question, answer=answer, kind=kind, options=options,
                    vocabulary=A.parse_sort_vocabulary(question) if kind == A.WORD_SORT else ())
