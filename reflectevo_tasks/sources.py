"""Question sources by name, the way users name them on the command line and in configs:

    bbh                       all 27 BBH subtasks
    bbh:date_understanding    one or more subtasks, comma-separated
    bbh-pool                  BBH's generation pool (the default for generating data), see bbh_split
    bbh-pool:navigate,snarks  the pool items of some subtasks
    bbh-test[:subtask,…]      BBH's test split, the items evaluation measures on
    bigbench                  the BIG-bench pool (BBH items excluded); opt-in, needs the archive
    bigbench:navigate         pool items of some BIG-bench tasks
    math[:PATH|:ORG/NAME]     MATH problems (local copy, or a Hub dataset of its layout), see math_mbpp
    mbpp[:PATH|:ORG/NAME]     MBPP programming tasks, scored by running the code in the sandbox
    path/to/spec.yaml         any dataset through a column mapping (see reflectevo_tasks.custom)
"""

from __future__ import annotations

from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import bbh, bbh_split, bigbench, math_mbpp
from reflectevo_tasks.answers import KINDS
from reflectevo_tasks.custom import DatasetSpec, LoadReport, load_custom


def load_questions(source: str, limit: int | None = None, bbh_dir: str | None = None,
                   per_task: int = 50, kinds: str | None = None, ids: str | None = None) -> LoadReport:
    """Questions of a source, in the source's stable order; `kinds` (comma-separated answer kinds,
    e.g. "choice,yes_no") keeps only questions with those answers, `ids` (see parse_ids) only those
    questions; `limit` then keeps the first N."""
    wanted = parse_kinds(kinds)
    chosen = parse_ids(ids)
    keep = None
    if wanted or chosen:
        keep = lambda q: (not wanted or q.kind in wanted) and (not chosen or q.id in chosen)  # noqa: E731
    report = _load(source, limit, bbh_dir, per_task, keep, by_id=bool(chosen))
    missing = sorted(chosen - {q.id for q in report.questions})
    if missing and (limit is None or len(report.questions) < limit):
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"--question_ids: {len(missing)} id(s) not in source {source!r}"
                        f"{' with answer kinds ' + kinds if wanted else ''}: {shown}")
    return report


def _load(source: str, limit: int | None, bbh_dir: str | None, per_task: int, keep, by_id: bool) -> LoadReport:
    name, _, arg = source.partition(":")
    parts = [a.strip() for a in arg.split(",") if a.strip()]
    if name == "bbh":
        subtasks = [bbh.check_subtask(s) for s in parts] or list(bbh.SUBTASKS)
        qs = [q for s in subtasks for q in bbh.load_subtask(s, bbh_dir) if keep is None or keep(q)]
        return LoadReport(qs[:limit] if limit is not None else qs, [])
    if name in ("bbh-pool", "bbh-test"):
        side = bbh_split.pool_questions if name == "bbh-pool" else bbh_split.test_questions
        qs = [q for q in side(bbh_dir, parts or None) if keep is None or keep(q)]
        return LoadReport(qs[:limit] if limit is not None else qs, [])
    if name == "bigbench":
        return LoadReport(bigbench.load_pool(limit, per_task=per_task, tasks=parts or None, keep=keep,
                                             bbh_folder=bbh_dir), [])
    if name in math_mbpp.BENCHMARKS:
        # the argument is one path or Hub name, which may hold a colon of its own (ORG/NAME:CONFIG)
        qs, origin = math_mbpp.load(name, source.partition(":")[2].strip() or None)
        qs = [q for q in qs if keep is None or keep(q)]
        return LoadReport(qs[:limit] if limit is not None else qs, [], origin.as_dict())
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        # a dataset has one answer kind, so a kinds filter after the limit keeps all of it or none;
        # chosen ids can lie anywhere, so then the whole file is read and the limit comes after
        report = load_custom(DatasetSpec.from_file(path), None if by_id else limit)
        if keep is None:
            return report
        kept = [q for q in report.questions if keep(q)]
        return LoadReport(kept[:limit] if limit is not None else kept, report.rejected)
    raise UserError(f"unknown question source {source!r}: use bbh-pool[:subtask,…], bbh-test[:subtask,…], "
                    "bbh[:subtask,…], bigbench[:task,…], math[:PATH|:ORG/NAME], mbpp[:PATH|:ORG/NAME] or a "
                    "dataset spec .yaml")


def parse_kinds(kinds: str | None) -> frozenset[str]:
    """'choice,yes_no' -> those answer kinds; empty or None -> no filter."""
    wanted = frozenset(k.strip() for k in (kinds or "").split(",") if k.strip())
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise UserError(f"--answer_kinds: unknown kind(s) {', '.join(unknown)}; expected some of {', '.join(KINDS)}")
    return wanted


def parse_ids(ids: str | None) -> frozenset[str]:
    """'id1,id2' or '@file' (one id per line; blank lines and lines starting with # skipped) ->
    those ids; empty or None -> no filter."""
    if not ids:
        return frozenset()
    if ids.startswith("@"):
        path = Path(ids[1:])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UserError(f"--question_ids: cannot read {path}: {exc.strerror or exc}") from None
        chosen = frozenset(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
        if not chosen:
            raise UserError(f"--question_ids: {path} lists no question id")
        return chosen
    return frozenset(s.strip() for s in ids.split(",") if s.strip())
