"""Question sources by name, the way users name them on the command line and in configs:

    bbh                       all 27 BBH subtasks
    bbh:date_understanding    one or more subtasks, comma-separated
    bigbench                  the BIG-bench pool (BBH items excluded)
    bigbench:navigate         pool items of some BIG-bench tasks
    path/to/spec.yaml         any dataset through a column mapping (see reflectevo_tasks.custom)
"""

from __future__ import annotations

from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import bbh, bigbench
from reflectevo_tasks.answers import KINDS
from reflectevo_tasks.custom import DatasetSpec, LoadReport, load_custom


def load_questions(source: str, limit: int | None = None, bbh_dir: str | None = None,
                   per_task: int = 50, kinds: str | None = None) -> LoadReport:
    """Questions of a source, in the source's stable order; `kinds` (comma-separated answer kinds,
    e.g. "choice,yes_no") keeps only questions with those answers; `limit` then keeps the first N."""
    wanted = parse_kinds(kinds)
    keep = (lambda q: q.kind in wanted) if wanted else None
    name, _, arg = source.partition(":")
    parts = [a.strip() for a in arg.split(",") if a.strip()]
    if name == "bbh":
        subtasks = [bbh.check_subtask(s) for s in parts] or list(bbh.SUBTASKS)
        qs = [q for s in subtasks for q in bbh.load_subtask(s, bbh_dir) if keep is None or keep(q)]
        return LoadReport(qs[:limit] if limit is not None else qs, [])
    if name == "bigbench":
        return LoadReport(bigbench.load_pool(limit, per_task=per_task, tasks=parts or None, keep=keep), [])
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        report = load_custom(DatasetSpec.from_file(path), limit)
        # a dataset has one answer kind, so filtering after the limit keeps all of it or none
        return LoadReport([q for q in report.questions if keep(q)], report.rejected) if keep else report
    raise UserError(f"unknown question source {source!r}: use bbh[:subtask,…], bigbench[:task,…] or a dataset spec .yaml")


def parse_kinds(kinds: str | None) -> frozenset[str]:
    """'choice,yes_no' -> those answer kinds; empty or None -> no filter."""
    wanted = frozenset(k.strip() for k in (kinds or "").split(",") if k.strip())
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise UserError(f"--answer_kinds: unknown kind(s) {', '.join(unknown)}; expected some of {', '.join(KINDS)}")
    return wanted
