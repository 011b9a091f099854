"""BIG-Bench Hard: 27 subtasks, from the Hub (`SaylorTwift/bbh`) or a local folder in the original
release layout (`bbh/<subtask>.json`, `cot-prompts/<subtask>.txt`) named by REFLECTEVO_BBH_DIR."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks.answers import parse_options, parse_sort_vocabulary
from reflectevo_tasks.questions import Question

HUB_DATASET = "SaylorTwift/bbh"
ENV_DIR = "REFLECTEVO_BBH_DIR"

ANSWER_KIND = {
    "boolean_expressions": A.TRUE_FALSE,
    "causal_judgement": A.YES_NO,
    "date_understanding": A.CHOICE,
    "disambiguation_qa": A.CHOICE,
    "dyck_languages": A.DYCK,
    "formal_fallacies": A.VALID_INVALID,
    "geometric_shapes": A.CHOICE,
    "hyperbaton": A.CHOICE,
    "logical_deduction_five_objects": A.CHOICE,
    "logical_deduction_seven_objects": A.CHOICE,
    "logical_deduction_three_objects": A.CHOICE,
    "movie_recommendation": A.CHOICE,
    "multistep_arithmetic_two": A.INTEGER,
    "navigate": A.YES_NO,
    "object_counting": A.INTEGER,
    "penguins_in_a_table": A.CHOICE,
    "reasoning_about_colored_objects": A.CHOICE,
    "ruin_names": A.CHOICE,
    "salient_translation_error_detection": A.CHOICE,
    "snarks": A.CHOICE,
    "sports_understanding": A.YES_NO,
    "temporal_sequences": A.CHOICE,
    "tracking_shuffled_objects_five_objects": A.CHOICE,
    "tracking_shuffled_objects_seven_objects": A.CHOICE,
    "tracking_shuffled_objects_three_objects": A.CHOICE,
    "web_of_lies": A.YES_NO,
    "word_sorting": A.WORD_SORT,
}
SUBTASKS = tuple(ANSWER_KIND)
# Subtasks whose items have exactly two possible answers. There the oracle verdict "incorrect" on a
# readable answer names the gold, so a retry gains by elimination, not by reflection: results are
# flagged and also pooled without them (tests/test_bbh.py checks this set against the data).
TWO_ANSWER_SUBTASKS = ("boolean_expressions", "causal_judgement", "formal_fallacies", "hyperbaton", "navigate",
                       "snarks", "sports_understanding", "web_of_lies")


def has_two_answers(q) -> bool:
    """A question with exactly two possible answers: every item of a two-answer subtask (snarks/88 too,
    whose second option BBH's data cuts off), and any other question offering two options or asking
    a yes/no-like question (27 items of reasoning_about_colored_objects offer two options)."""
    return (q.source.startswith("bbh/") and q.source[len("bbh/"):] in TWO_ANSWER_SUBTASKS) or q.spec.two_answers


def check_subtask(subtask: str) -> str:
    if subtask not in ANSWER_KIND:
        close = [s for s in SUBTASKS if subtask.split("_")[0] in s]
        hint = f"; did you mean {', '.join(close[:3])}?" if close else f"; known: {', '.join(SUBTASKS)}"
        raise UserError(f"unknown BBH subtask {subtask!r}{hint}")
    return subtask


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local BBH folder to use, or None to read from the Hub."""
    raw = explicit if explicit not in (None, "") else os.environ.get(ENV_DIR) or None
    if raw is None:
        return None
    folder = Path(raw).expanduser()
    if not (folder / "bbh").is_dir():
        origin = "argument" if explicit else ENV_DIR
        raise UserError(f"{folder}: not a BBH folder (no bbh/ subfolder; set by {origin})")
    return folder.resolve()


def sha256_manifest(folder: Path, files: list[Path]) -> str:
    """sha256 of a `sha256sum`-style manifest (one "<hash>  <relative path>" line per file): the
    revision of a local BBH release, or of the files of it that were used."""
    import hashlib

    from reflectevo.embedded_model import file_sha256

    lines = "".join(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in sorted(files))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def make_question(subtask: str, index: int, text: str, target: str) -> Question:
    kind = ANSWER_KIND[subtask]
    return Question(
        id=f"bbh/{subtask}/{index}", source=f"bbh/{subtask}", index=index, question=text,
        answer=target, kind=kind,
        options=parse_options(text) if kind == A.CHOICE else (),
        vocabulary=parse_sort_vocabulary(text) if kind == A.WORD_SORT else (),
    )


def _read_local(folder: Path, subtask: str) -> list[dict]:
    path = folder / "bbh" / f"{subtask}.json"
    if not path.is_file():
        raise UserError(f"{path}: BBH file missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    rows = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected an object with an 'examples' list")
    for i, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("input"), str) and isinstance(row.get("target"), str)):
            raise UserError(f"{path}: example {i} lacks string fields 'input' and 'target'")
    return rows


def _read_hub(subtask: str, revision: str | None) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(HUB_DATASET, subtask, split="test", revision=revision)
    except Exception as exc:  # network, auth, missing config: all end here
        raise UserError(
            f"could not load {HUB_DATASET} config {subtask!r} (revision {revision or 'main'}): "
            f"{type(exc).__name__}: {exc}. Offline? Point {ENV_DIR} at a local BBH folder."
        ) from None
    return [{"input": r["input"], "target": r["target"]} for r in ds]


def load_subtask(subtask: str, folder: str | os.PathLike | None = None, limit: int | None = None,
                 revision: str | None = None) -> list[Question]:
    check_subtask(subtask)
    local = data_dir(folder)
    rows = _read_local(local, subtask) if local else _read_hub(subtask, revision)
    if limit is not None:
        rows = rows[:limit]
    return [make_question(subtask, i, r["input"], r["target"]) for i, r in enumerate(rows)]


def load_all(folder=None, limit_per_subtask: int | None = None, subtasks=SUBTASKS) -> list[Question]:
    return [q for s in subtasks for q in load_subtask(s, folder, limit_per_subtask)]


# ---------------------------------------------------------------- chain-of-thought exemplars

_EXEMPLAR = re.compile(r"Q: (.*?)\nA: Let's think step by step\.[ \n](.*?)(?=\n\nQ: |\Z)", re.S)


@lru_cache(maxsize=64)
def cot_exemplars(subtask: str, folder: str | None = None) -> tuple[tuple[str, str], ...]:
    """The three (question, worked answer) exemplars of a subtask's CoT prompt.

    Read from the local release folder when there is one, otherwise from the copy lm-eval ships
    in its own BBH task files, so Hub users need no extra download.
    """
    check_subtask(subtask)
    local = data_dir(folder)
    if local is not None:
        path = local / "cot-prompts" / f"{subtask}.txt"
        if not path.is_file():
            raise UserError(f"{path}: CoT prompt file missing")
        text = path.read_text(encoding="utf-8")
        pairs = tuple((q.strip(), a.strip()) for q, a in _EXEMPLAR.findall(text))
        if len(pairs) != 3:
            raise UserError(f"{path}: expected 3 'Q: … A: Let's think step by step.' exemplars, found {len(pairs)}")
        return pairs
    return _lm_eval_exemplars(subtask)


def _lm_eval_exemplars(subtask: str) -> tuple[tuple[str, str], ...]:
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("lm_eval")
    path = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "bbh" / "cot_fewshot" / f"{subtask}.yaml"
    data = yaml.safe_load(path.read_text())
    samples = data["fewshot_config"]["samples"]
    return tuple((s["input"].strip(), s["target"].strip()) for s in samples)


def exemplar_questions(folder=None) -> list[str]:
    return [q for s in SUBTASKS for q, _ in cot_exemplars(s, None if folder is None else str(folder))]
