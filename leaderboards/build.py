"""Build `leaderboards/bbh.md`, `bbh.json`, `bbh_comparisons.json` and PNG plots from lm-eval results files.

Each results file written by `lm_eval --model reflectevo … --tasks reflectevo_bbh` is one row. Results
of the `reflectevo_math` and `reflectevo_mbpp` groups make rows of their own tables, `math.*` and
`mbpp.*` beside `bbh.*`, built the same way (their "subtasks" are MATH's subjects, and MBPP's one
task); a results file holds the tasks of one of these benchmarks. Every
number is recomputed from the file: from the per-item outcomes the plugin records in its provenance
block where it has them, else from the per-subtask values and sample counts (both are checked
against each other when both are there). Provenance (base model and revision, reflector / adapter
and revision, mode, instruction, dataset and revision, scorer version, package versions, N) comes
from the file's `config.reflectevo` block; paths in it are written relative to the repository (or
as a file name), never as the absolute path of the machine that made the file.

Statistics (`reflectevo_tasks.stats`): accuracies and rates with 95% Wilson intervals; a paired
difference (Δ of an intrinsic row, row against row) with the exact McNemar p-value and the interval
that agrees with it; "within noise" is p >= 0.05. In oracle and retry_only modes a right trial 1 is
never retried, so Δ >= 0 by construction and gets no test: whether reflection helped is answered by
the comparison with the retry_only row on the same items.

Results formats: scorer version 2 (`config.reflectevo.scoring`) records per attempt "1" right, "0"
wrong with a readable answer, "n" no answer, at the strict (headline) and the flexible level;
version 1 (no "scoring") records "1"/"0" at the old scorer only, so its flexible level and its
per-item no-answer split show "–". Rows of different scorer versions are never compared.

A row that runs an adapter trained here is checked against what the adapter trained on (the
`training_items` of its provenance, by question id and by normalised text): a row trained on some of
its evaluation items is marked, and so is every comparison it is in; a row whose adapter did not
record its training items says so.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from reflectevo.errors import UserError
from reflectevo_tasks import bbh_split
from reflectevo_tasks.bbh import SUBTASKS, TWO_ANSWER_SUBTASKS
from reflectevo_tasks.lm_eval_tasks.utils import BENCHMARK_GROUPS, GROUPS
from reflectevo_tasks.lm_eval_tasks.utils import SUBTASKS as GROUP_SUBTASKS
# modes where only items wrong at trial 1 get a second attempt: nothing right can break, Δ >= 0
from reflectevo_tasks.protocol import GATED
from reflectevo_tasks.stats import items_needed, min_detectable_difference, paired_difference, wilson_interval

from leaderboards.scaling import plot_scaling, scaling_groups, scaling_lines
from leaderboards.sources import difference_sources, kind_lines, source_lines, subtasks_by_kind

# task-name prefix -> the group that runs all its tasks (longest prefix first: "reflectevo_bbh_test_navigate"
# is read with "reflectevo_bbh_test_", never as subtask "test_navigate" of "reflectevo_bbh_")
FAMILIES = {f"{g}_": g for g in sorted((g for gs in BENCHMARK_GROUPS.values() for g in gs), key=len, reverse=True)}
PREFIXES = tuple(FAMILIES)
FAMILY_SUBTASKS = {**{g: SUBTASKS for g in GROUPS.values()}, **GROUP_SUBTASKS}
BENCHMARK_OF = {g: bench for bench, gs in BENCHMARK_GROUPS.items() for g in gs}
TITLES = {"bbh": "BIG-Bench Hard", "math": "MATH", "mbpp": "MBPP"}
# the local data a reproducing command names, relative to the repository (as the README has it)
DATA_ENV = {"bbh": "REFLECTEVO_BBH_DIR=../shared/data/bbh", "math": "REFLECTEVO_DATA_DIR=../shared/data",
            "mbpp": "REFLECTEVO_DATA_DIR=../shared/data"}
MODES = ("single", "retry_only", "oracle", "intrinsic")
REFLECTION_VS_RETRY = "reflection against retry-only"
REFLECTION_VS_SAME_BUDGET = "reflection against retry-only of the same budget"
REPO_ROOT = Path(__file__).resolve().parent.parent
# top-level folders of a checkout: an absolute path through one of them is written from there on
_ANCHORS = ("runs", "leaderboards", "results", "tests")
# provenance fields that hold a path (or a Hub id, which portable_path keeps)
PATH_KEYS = frozenset({"adapter", "init_adapter", "dataset", "dataset_location", "resume", "trial1_from", "model",
                       "pretrained", "output_dir"})
# an absolute path at the start of a string or after a separator of a command line / model_args
_ABS_PATH = re.compile(r"(?<![^\s=,'\"(\[])/[^\s,'\"()\[\]]+")


def _subtask(task: str) -> tuple[str, bool] | None:
    """(subtask, few-shot?) of one of our per-subtask task names; None for anything else, a group
    included (`reflectevo_bbh_test` starts with the prefix `reflectevo_bbh_`)."""
    for p in PREFIXES:
        if task.startswith(p) and task[len(p):] in FAMILY_SUBTASKS[FAMILIES[p]]:
            return task[len(p):], FAMILIES[p] == GROUPS[(True, "all")]
    return None


def benchmark_of_task(task: str) -> str | None:
    """bbh, math or mbpp for one of our per-subtask task names; None for anything else."""
    if _subtask(task) is None:
        return None
    return BENCHMARK_OF[next(FAMILIES[p] for p in PREFIXES if task.startswith(p))]


def benchmark(path, data: dict) -> str:
    """The benchmark whose tasks a results file holds (its rows go to that benchmark's table)."""
    found = sorted({b for b in map(benchmark_of_task, data.get("results", {})) if b})
    if len(found) > 1:
        raise UserError(f"{path}: holds the tasks of several benchmarks ({', '.join(found)}); a row is one "
                        "benchmark's: run them separately")
    return found[0] if found else "bbh"  # none at all: subtask_counts says so


def read_results(path: str | Path) -> dict:
    """An lm-eval results file written through the reflectevo model (one clear error otherwise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable lm-eval results file ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not an lm-eval results file (a JSON {type(data).__name__}, not an object)")
    config = data.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("reflectevo"), dict):
        raise UserError(f"{path}: no reflectevo provenance block (was it run with --model reflectevo?)")
    return data


# ---------------------------------------------------------------- paths

def portable_path(path: str) -> str:
    """A path as the repository sees it. Absolute: relative to this checkout's root, else from its first
    top-level folder of a checkout (runs/, leaderboards/, ...), else the file name. Relative but
    climbing out of the checkout ('../../data/bbh'): from such a folder, else the file
    name. Any other relative path is kept."""
    if not isinstance(path, str):
        return path
    if path.startswith("/"):
        p = PurePosixPath(path)
        try:
            return str(p.relative_to(REPO_ROOT.as_posix())) or "."
        except ValueError:
            pass
        parts = p.parts[1:]
    elif path.startswith("../"):
        parts = [x for x in PurePosixPath(path).parts if x not in ("..", ".")]
    else:
        return path
    for i, part in enumerate(parts):
        if part in _ANCHORS:
            return "/".join(parts[i:])
    return parts[-1] if parts else "."


def portable(value):
    """`value` (a string, or dicts and lists of them) with every absolute path made portable, and every
    path-valued field (PATH_KEYS) made portable even where it is relative."""
    if isinstance(value, str):
        return _ABS_PATH.sub(lambda m: portable_path(m.group(0)), value)
    if isinstance(value, dict):
        return {k: portable_path(v) if k in PATH_KEYS and isinstance(v, str) else portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    return value


# ---------------------------------------------------------------- per-item outcomes

def scorer_version(prov: dict, where: str = "") -> int:
    """2 and up: the file says so in `scoring`; files written before it (no `scoring`) are version 1."""
    scoring = prov.get("scoring")
    if scoring is None:
        return 1
    version = scoring.get("version") if isinstance(scoring, dict) else None
    if not isinstance(version, int) or version < 1:
        raise UserError(f"{where}: config.reflectevo.scoring has no valid 'version' ({scoring!r})")
    return version


def _attempts(code, mode: str, where: str) -> tuple[str, str | None]:
    """(trial 1, trial 2) of one item's outcome code: '1' right, '0' wrong, 'n' no answer; trial 2 is
    None in mode single, and trial 1 again for an item that got no second attempt."""
    if not isinstance(code, str) or not 1 <= len(code) <= 2 or set(code) - set("10n"):
        raise UserError(f"{where}: outcome {code!r} is not one or two of '1', '0', 'n'")
    if mode == "single":
        if len(code) != 1:
            raise UserError(f"{where}: outcome {code!r} has a second attempt, but the mode is single")
        return code, None
    return code[0], code[-1]


def _codes(prov: dict, key: str, where: str) -> dict | None:
    """{task: {doc id: code}} from the provenance block, None when the file has none under `key`."""
    codes = prov.get(key)
    if codes is None:
        return None
    if not isinstance(codes, dict) or not all(isinstance(d, dict) for d in codes.values()):
        raise UserError(f"{where}: config.reflectevo.{key} is not task -> doc id -> outcome")
    return codes


def item_outcomes(codes: dict | None, trial1: bool = False) -> dict | None:
    """{item: right at the run's last attempt (at trial 1 with `trial1`), at the headline level} from
    `item_codes`, or None for a file written before the plugin recorded per-item outcomes."""
    if codes is None:
        return None
    return {key: (t1 if trial1 else final) == "1" for key, (t1, final) in codes.items()}


def item_codes(data: dict) -> dict | None:
    """{(task, dataset revision, doc id): (trial-1 code, final code)} at the headline level, the final
    code being the last attempt's (trial 1's in mode single); None for a file without outcomes."""
    prov = data["config"]["reflectevo"]
    codes = _codes(prov, "outcomes", "results file")
    if codes is None:
        return None
    mode = (prov.get("protocol") or {}).get("mode")
    revision = {task: d.get("dataset_revision") for task, d in (prov.get("datasets") or {}).items()}
    out = {}
    for task, docs in codes.items():
        for doc, code in docs.items():
            t1, t2 = _attempts(code, mode, f"outcome of {task} {doc}")
            out[(task, revision.get(task), doc)] = (t1, t1 if t2 is None else t2)
    return out


# ---------------------------------------------------------------- counts

@dataclass
class Counts:
    """Item counts of one subtask (or a pool of them) at one scoring level; None: the file cannot tell
    (a version-1 file has no per-item no-answer split) or the mode makes no such attempt (single: no t2)."""

    n: int = 0
    t1_right: int = 0
    t1_no_answer: int | None = 0
    t2_right: int | None = 0
    t2_no_answer: int | None = 0
    wrong_to_right: int | None = 0
    right_to_wrong: int | None = 0
    fixed_readable: int | None = 0  # wrong with a readable answer at trial 1, right at trial 2
    fixed_no_answer: int | None = 0  # no answer at trial 1, right at trial 2

    def __add__(self, other: "Counts") -> "Counts":
        def add(a, b):
            return None if a is None or b is None else a + b

        return Counts(**{f.name: add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


def pool(counts) -> Counts:
    total = Counts()
    for c in counts:
        total = total + c
    return total


def counts_from_codes(docs: dict, mode: str, where: str, no_answer_known: bool) -> Counts:
    c = Counts(n=len(docs))
    second = mode != "single"
    if not second:
        c.t2_right = c.t2_no_answer = c.wrong_to_right = c.right_to_wrong = c.fixed_readable = c.fixed_no_answer = None
    for doc, code in docs.items():
        t1, t2 = _attempts(code, mode, f"{where} {doc}")
        c.t1_right += t1 == "1"
        c.t1_no_answer += t1 == "n"
        if second:
            c.t2_right += t2 == "1"
            c.t2_no_answer += t2 == "n"
            c.wrong_to_right += t1 != "1" and t2 == "1"
            c.right_to_wrong += t1 == "1" and t2 != "1"
            c.fixed_readable += t1 == "0" and t2 == "1"
            c.fixed_no_answer += t1 == "n" and t2 == "1"
    if not no_answer_known:  # version 1: "0" is wrong or no answer
        c.t1_no_answer = c.t2_no_answer = c.fixed_readable = c.fixed_no_answer = None
    return c


def _metric_count(res: dict, name: str, n: int) -> int | None:
    value = res.get(f"{name},none")
    return None if value is None or isinstance(value, str) else round(value * n)


def counts_from_metrics(res: dict, n: int, mode: str, suffix: str = "") -> Counts | None:
    """Counts from lm-eval's per-subtask values (`suffix` '_flexible' for that level); None when the
    file has no trial-1 accuracy at that level."""
    t1 = _metric_count(res, "acc_t1" + suffix, n)
    if t1 is None:
        return None
    c = Counts(n=n, t1_right=t1, t1_no_answer=_metric_count(res, "no_answer_t1" + suffix, n),
               fixed_readable=None, fixed_no_answer=None)
    if mode == "single":
        c.t2_right = c.t2_no_answer = c.wrong_to_right = c.right_to_wrong = None
    else:
        c.t2_right = _metric_count(res, "acc_t2" + suffix, n)
        c.t2_no_answer = _metric_count(res, "no_answer_t2" + suffix, n)
        c.wrong_to_right = _metric_count(res, "wrong_to_right" + suffix, n)
        c.right_to_wrong = _metric_count(res, "right_to_wrong" + suffix, n)
    return c


def subtask_counts(path: Path, data: dict) -> tuple[dict[str, Counts], dict[str, Counts] | None]:
    """({subtask: counts} at the headline level, the same at the flexible level or None), from per-item
    outcomes where the file has them (checked against lm-eval's values), else from those values."""
    prov = data["config"]["reflectevo"]
    mode = (prov.get("protocol") or {}).get("mode")
    version = scorer_version(prov, str(path))
    codes = _codes(prov, "outcomes", str(path))
    flex_codes = _codes(prov, "outcomes_flexible", str(path)) if version >= 2 else None
    headline, flexible = {}, {}
    for task, res in data.get("results", {}).items():
        parsed = _subtask(task)
        if parsed is None or "acc_t1,none" not in res:
            continue
        name = parsed[0]
        try:
            n = int(data["n-samples"][task]["effective"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: no sample count (n-samples.{task}.effective)") from None
        from_metrics = counts_from_metrics(res, n, mode)
        c = from_metrics
        if codes is not None:
            if task not in codes:
                raise UserError(f"{path}: per-item outcomes hold no docs of {task}")
            c = counts_from_codes(codes[task], mode, f"{path}: outcome of", no_answer_known=version >= 2)
            _check_agree(path, task, c, from_metrics)
            if version < 2 and from_metrics:  # the per-subtask values still give version 1's no-answer rates
                c.t1_no_answer, c.t2_no_answer = from_metrics.t1_no_answer, from_metrics.t2_no_answer
        headline[name] = c
        flex = None
        if version >= 2:
            flex = counts_from_metrics(res, n, mode, "_flexible")
            if flex_codes is not None and task in flex_codes:
                items = counts_from_codes(flex_codes[task], mode, f"{path}: flexible outcome of", no_answer_known=True)
                _check_agree(path, f"{task} (flexible)", items, flex)
                flex = items
        flexible[name] = flex
    if not headline:
        raise UserError(f"{path}: no reflectevo_bbh subtask results (nor reflectevo_math or reflectevo_mbpp ones)")
    if any(v is None for v in flexible.values()) or not flexible:
        flexible = None
    return headline, flexible


def _check_agree(path: Path, task: str, items: Counts, metrics: Counts) -> None:
    """Per-item outcomes and lm-eval's values are two records of one run: they must say the same."""
    if metrics is None:
        return
    for name in ("n", "t1_right", "t2_right"):
        a, b = getattr(items, name), getattr(metrics, name)
        if b is not None and a != b:
            raise UserError(f"{path}: {task}: the per-item outcomes give {name} = {a}, lm-eval's values {b} "
                            "(the file was edited or merged from two runs)")


# ---------------------------------------------------------------- stored trajectories (resume folders)

def resume_folder(path: str | None) -> Path | None:
    """A results file's resume folder (chunking.resume: relative to the repository, or an absolute path of
    the machine that ran it) where this checkout holds its stored chunks; None otherwise."""
    if not isinstance(path, str) or not path:
        return None
    for folder in ([Path(path)] if Path(path).is_absolute() else []) + [REPO_ROOT / portable_path(path)]:
        if (folder / "parts").is_dir():
            return folder
    return None


def stored_trajectories(folder: Path) -> dict[tuple[str, str], dict]:
    """{(task, question id): trajectory} of every stored chunk of a resume folder (checksums and
    manifests verified by the chunk store)."""
    from reflectevo.chunk_store import read_records

    out = {}
    for record in read_records(folder):
        t = json.loads(record["trajectory"])
        out[(t["task"], t["id"])] = t
    return out


def generated_text(turn: dict) -> str:
    """What the model generated in one stored turn: its output after the reply prefix the engine put
    in front of it (as the plugin counts generated tokens)."""
    out, prefix = turn.get("output") or "", turn.get("reply_prefix") or ""
    return out[len(prefix):] if prefix and out.startswith(prefix) else out


# ---------------------------------------------------------------- budgets: caps, stop sequences, cap hits

# per results file name: cap hits counted from the committed resume trajectories (scripts/cap_hits.py),
# for files written before the plugin counted them
CAP_HITS_FILE = REPO_ROOT / "leaderboards" / "measured" / "cap_hits.json"
# the turns whose tokens a row may spend after trial 1 before its final answer, and what to call their sum
_SECOND_ATTEMPT = {"single": ((), "no second attempt"), "retry_only": (("retry",), "retry cap"),
                   "one_stage": (("one_stage",), "its one reply's cap")}
_TWO_STAGE = (("reflection", "retry"), "reflection cap + retry cap")


def read_cap_hits(path: str | Path | None) -> dict:
    """{"file": where it is, "entries": {results file name: entry}} of a cap-hits file (none: no entries)."""
    if path is None or not Path(path).is_file():
        return {"file": None, "entries": {}}
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable cap-hits file ({exc})") from None
    return {"file": portable_path(str(Path(path).resolve())), "entries": saved if isinstance(saved, dict) else {}}


def _recorded_cap_hits(path: Path, prov: dict, cap_hits: dict) -> dict | None:
    """The cap-hits file's entry for this very results file (same sha256), counted with the tokenizer of
    the row's model revision; None otherwise."""
    entry = cap_hits["entries"].get(path.name)
    if not isinstance(entry, dict) or not isinstance(entry.get("turns"), dict):
        return None
    if entry.get("sha256") != "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest():
        return None
    if (entry.get("tokenizer") or {}).get("model_revision") != (prov.get("base") or {}).get("model_revision"):
        return None
    return entry


def turn_budgets(path: Path, prov: dict, cap_hits: dict) -> list[dict]:
    """Per turn the run generated (its `generation` block): caps, stop sequences, replies, and the replies
    that reached their cap, from the plugin's pass records where every pass of the turn has them, else
    from the cap-hits file, else None."""
    passes = [p for p in prov.get("passes") or () if isinstance(p, dict)]
    entry = _recorded_cap_hits(path, prov, cap_hits)
    out = []
    for turn, samplings in (prov.get("generation") or {}).items():
        samplings = [x for x in samplings or () if isinstance(x, dict)]
        mine = [p for p in passes if p.get("turn") == turn]
        replies = sum(int(p.get("requests") or 0) for p in mine) if mine else None
        hits = slack = source = None
        if mine and all(isinstance(p.get("cap_hits"), int) for p in mine):
            hits, source = sum(p["cap_hits"] for p in mine), "the plugin's pass records"
            slacks = {p.get("cap_slack") for p in mine}
            slack = slacks.pop() if len(slacks) == 1 else None
        elif entry and (entry["turns"].get(turn) or {}).get("replies") == replies and replies is not None:
            hits, slack = entry["turns"][turn]["cap_hits"], entry.get("cap_slack")
            source = f"{cap_hits['file']} (retokenised from {entry.get('resume')})"
        rate, ci = _rate(hits, replies)
        out.append({"turn": turn, "max_new_tokens": sorted({int(x["max_new_tokens"]) for x in samplings}),
                    "stop": [list(x.get("stop") or ()) for x in samplings], "replies": replies, "cap_hits": hits,
                    "cap_hit_rate": rate, "cap_hit_ci": ci, "cap_slack": slack, "source": source})
    return out


def _turn_cap(turns: list[dict], name: str) -> int | None:
    caps = [c for t in turns if t["turn"] == name for c in t["max_new_tokens"]]
    return max(caps) if caps else None


def second_attempt_budget(mode: str, one_stage: bool, turns: list[dict]) -> tuple[int | None, str]:
    """(tokens the row may spend after trial 1 before its final answer, what they are); None when a turn
    it needs has no recorded cap (a row whose chunks were all reused records no generation)."""
    names, what = _SECOND_ATTEMPT.get("one_stage" if one_stage else mode, _TWO_STAGE)
    caps = [_turn_cap(turns, n) for n in names]
    return (None if None in caps else sum(caps)), what


def one_stage_replies(prov: dict, where: str) -> dict | None:
    """For a one-stage row: its one-stage replies, those without the corrected-solution heading (scored
    whole, reflection included: prompts.split_one_stage) and the answers credited at trial 2 from them,
    read from the row's resume trajectories when the checkout holds exactly this file's items."""
    from reflectevo_tasks.prompts import CORRECTED_HEADING

    if not (prov.get("protocol") or {}).get("one_stage"):
        return None
    resume = (prov.get("chunking") or {}).get("resume")
    out = {"source": None, "why": None, "replies": None, "without_heading": None, "credited": None,
           "credited_without_heading": None}
    codes = {(task, doc): code for task, docs in (_codes(prov, "outcomes", where) or {}).items()
             for doc, code in docs.items()}
    folder = resume_folder(resume)
    if folder is None or not codes:
        return {**out, "why": "its resume trajectories are not in this checkout" if codes else "no per-item outcomes"}
    trajectories = stored_trajectories(folder)
    replies = {k: turn.get("output") or "" for k, t in trajectories.items() for turn in t.get("turns") or ()
               if turn.get("turn") == "one_stage"}
    second = prov.get("second_attempt")
    retried = None if second is None else {(task, d) for task, docs in second.items() for d in docs}
    if set(trajectories) != set(codes) or (retried is not None and set(replies) != retried):
        return {**out, "why": f"{portable_path(str(folder))} holds other items than the results file"}
    without = {k for k, text in replies.items() if CORRECTED_HEADING not in text}
    credited = {k for k in replies if codes[k][-1] == "1"}
    return {**out, "source": f"resume trajectories ({portable_path(str(folder))})", "replies": len(replies),
            "without_heading": len(without), "credited": len(credited),
            "credited_without_heading": len(credited & without)}


# ---------------------------------------------------------------- statistics of a pool

def _rate(k: int | None, n: int | None) -> tuple[float | None, tuple[float, float] | None]:
    if k is None or not n:
        return None, None
    return k / n, wilson_interval(k, n)


def pool_stats(c: Counts, mode: str, where: str = "") -> dict:
    """Accuracies, no-answer rates, Δ and fix / break rates of one pool of items, with intervals.
    A rate the protocol cannot produce, or the file cannot tell, is None (shown as '–')."""
    out = {"n": c.n}
    out["acc_t1"], out["acc_t1_ci"] = _rate(c.t1_right, c.n)
    out["no_answer_t1"], out["no_answer_t1_ci"] = _rate(c.t1_no_answer, c.n)
    keys = ("acc_t2", "no_answer_t2", "delta", "delta_p", "delta_within_noise", "delta_detectable", "wrong_to_right",
            "right_to_wrong", "fix_rate", "wrong_t1", "fixed_readable", "readable_wrong_t1", "fix_readable_rate",
            "fixed_no_answer", "no_answer_t1_count", "fix_no_answer_rate", "break_rate", "right_t1")
    out.update({k: None for k in keys})
    out.update({k: None for k in ("acc_t2_ci", "no_answer_t2_ci", "delta_ci", "fix_ci", "fix_readable_ci",
                                  "fix_no_answer_ci", "break_ci")})
    if mode == "single" or c.t2_right is None:
        return out
    out["acc_t2"], out["acc_t2_ci"] = _rate(c.t2_right, c.n)
    out["no_answer_t2"], out["no_answer_t2_ci"] = _rate(c.t2_no_answer, c.n)
    wrong = c.n - c.t1_right
    out.update(wrong_to_right=c.wrong_to_right, wrong_t1=wrong, right_t1=c.t1_right)
    out["fix_rate"], out["fix_ci"] = _rate(c.wrong_to_right, wrong)
    if c.t1_no_answer is not None and c.fixed_readable is not None:
        out.update(fixed_readable=c.fixed_readable, readable_wrong_t1=wrong - c.t1_no_answer,
                   fixed_no_answer=c.fixed_no_answer, no_answer_t1_count=c.t1_no_answer)
        out["fix_readable_rate"], out["fix_readable_ci"] = _rate(c.fixed_readable, wrong - c.t1_no_answer)
        out["fix_no_answer_rate"], out["fix_no_answer_ci"] = _rate(c.fixed_no_answer, c.t1_no_answer)
    if c.wrong_to_right is None or c.right_to_wrong is None:
        return out
    if mode in GATED:
        if c.right_to_wrong:
            raise UserError(f"{where}: mode {mode}, yet {c.right_to_wrong} items right at trial 1 are wrong at "
                            "trial 2 (a right trial 1 is never retried in this mode)")
        # Δ is the share of items fixed, a single proportion; no test: it cannot be below 0
        out["delta"], out["delta_ci"] = _rate(c.wrong_to_right, c.n)
        return out
    d = paired_difference(c.wrong_to_right, c.right_to_wrong, c.n)
    out.update(delta=d.difference, delta_ci=d.ci, delta_p=d.p_value, delta_within_noise=d.within_noise,
               delta_detectable=min_detectable_difference(c.n, c.wrong_to_right + c.right_to_wrong),
               right_to_wrong=c.right_to_wrong)
    out["break_rate"], out["break_ci"] = _rate(c.right_to_wrong, c.t1_right)
    return out


def accuracy_stats(c: Counts, mode: str) -> dict:
    """Accuracies and no-answer rates only: what the table shows of the flexible level. (Which items get a
    second attempt is decided at the headline level, so at the flexible level a gated mode can break an
    item: its fix and break counts do not mean what they mean at the headline level.)"""
    out = {"n": c.n}
    for key, k in (("acc_t1", c.t1_right), ("no_answer_t1", c.t1_no_answer),
                   ("acc_t2", c.t2_right if mode != "single" else None),
                   ("no_answer_t2", c.t2_no_answer if mode != "single" else None)):
        out[key], out[f"{key}_ci"] = _rate(k, c.n)
    return out


def level_stats(subtasks: dict[str, Counts], mode: str, where: str, keep=lambda name: True,
                headline: bool = True) -> dict | None:
    chosen = [c for name, c in subtasks.items() if keep(name)]
    if not chosen:
        return None
    return pool_stats(pool(chosen), mode, where) if headline else accuracy_stats(pool(chosen), mode)


def _two_answer(name: str) -> bool:
    return name in TWO_ANSWER_SUBTASKS


def row_from_results(path: str | Path, data: dict | None = None, cap_hits: dict | None = None) -> dict:
    """One leaderboard row; `data`: the file's contents when the caller has read it already; `cap_hits`:
    the cap-hits file's entries (default: those of CAP_HITS_FILE)."""
    path = Path(path)
    data = read_results(path) if data is None else data
    cap_hits = read_cap_hits(CAP_HITS_FILE) if cap_hits is None else cap_hits
    cfg = portable(data["config"])
    prov = cfg["reflectevo"]
    proto, base = prov.get("protocol", {}), prov.get("base", {})
    mode = proto.get("mode")
    if mode not in MODES:
        raise UserError(f"{path}: mode {mode!r} is not one of {', '.join(MODES)}")
    headline, flexible = subtask_counts(path, data)
    version = scorer_version(prov, str(path))
    where = str(path)
    without = [s for s in headline if not _two_answer(s)]
    turns = turn_budgets(path, data["config"]["reflectevo"], cap_hits)
    budget, budget_is = second_attempt_budget(mode, bool(proto.get("one_stage")), turns)
    chunking = prov.get("chunking") or {}
    row = {
        "results_file": path.name,
        "base_model": base.get("model"), "base_revision": base.get("model_revision"),
        "base_adapter": base.get("adapter"), "base_adapter_revision": base.get("adapter_revision"),
        "reflector": prov.get("reflector"), **trained_part(base, prov.get("reflector")),
        **train_eval_overlap(data["config"]["reflectevo"], where),
        "mode": mode, "one_stage": proto.get("one_stage"),
        # a retry cap of its own (retry_max_gen_toks), e.g. a retry_only row given a reflective row's budget
        **({"retry_cap": proto["retry_max_gen_toks"]} if proto.get("retry_max_gen_toks") else {}),
        "instruction": (proto.get("instruction") or {}).get("id"),
        "fewshot": any(_subtask(t)[1] for t in data.get("results", {}) if _subtask(t)),
        # which BBH items: the test split (reflectevo_bbh_test) or all of BBH
        "split": "test" if any(t.startswith("reflectevo_bbh_test_") for t in data.get("results", {})) else "all",
        "scorer_version": version,
        "headline_level": (prov.get("scoring") or {}).get("headline", "strict") if version >= 2 else "v1 scorer",
        "datasets": sorted({json.dumps({k: v for k, v in d.items() if k != "docs"}, sort_keys=True)
                            for d in (prov.get("datasets") or {}).values()}),
        "versions": prov.get("versions"), "seed": proto.get("seed"),
        "n_per_subtask": sorted({c.n for c in headline.values()}),
        **level_stats(headline, mode, where),
        "flexible": level_stats(flexible, mode, where, headline=False) if flexible else None,
        "two_answer_subtasks": sorted(s for s in headline if _two_answer(s)),
        "without_two_answer": None,
        "subtasks": {name: {"two_answer": _two_answer(name), **pool_stats(c, mode, f"{where}: {name}"),
                            **_flexible_accuracies(flexible, name, mode)}
                     for name, c in sorted(headline.items())},
        # pooled per answer kind: where a row's gains come from (leaderboards/sources.py)
        "answer_kinds": {kind: {"subtasks": len(names), **pool_stats(pool(headline[n] for n in names), mode,
                                                                     f"{where}: {kind}")}
                         for kind, names in subtasks_by_kind(headline, benchmark(path, data)).items()},
        "command": _command(cfg, data),
        # trial1_cap_from: the row whose replies a trial 1 taken by trial1_from are (set by `link_trial1`)
        "budgets": {"turns": turns, "trial1_cap": _turn_cap(turns, "trial1"), "trial1_cap_from": None,
                    "second_attempt": budget, "second_attempt_is": budget_is},
        "resume": chunking.get("resume"), "trial1_from": chunking.get("trial1_from"), "trial1_shared": None,
        "one_stage_replies": one_stage_replies(data["config"]["reflectevo"], where),
    }
    if without and len(without) < len(headline):
        row["without_two_answer"] = {
            "subtasks": len(without), **level_stats(headline, mode, where, lambda s: not _two_answer(s)),
            "flexible": level_stats(flexible, mode, where, lambda s: not _two_answer(s), headline=False) if flexible else None}
    return portable(row)


def _flexible_accuracies(flexible: dict | None, name: str, mode: str) -> dict:
    if not flexible:
        return {"acc_t1_flexible": None, "acc_t2_flexible": None}
    c = flexible[name]
    return {"acc_t1_flexible": c.t1_right / c.n if c.n else None,
            "acc_t2_flexible": c.t2_right / c.n if c.n and mode != "single" and c.t2_right is not None else None}


# ---------------------------------------------------------------- row against row

def _row_index(ref: str, rows: list[dict]) -> int:
    """A row named by its number (1-based, as in the table) or by its results file name."""
    if ref.isdigit() and 1 <= int(ref) <= len(rows):
        return int(ref) - 1
    found = [i for i, r in enumerate(rows) if ref in (r["results_file"], r["results_file"].removesuffix(".json"))]
    if len(found) != 1:
        raise UserError(f"--compare: '{ref}' names {'no' if not found else 'more than one'} row "
                        f"(give a row number 1-{len(rows)} or a results file name)")
    return found[0]


def parse_comparisons(spec: str, rows: list[dict]) -> list[tuple[int, int]]:
    """'B:A,…' → [(row index, against row index)]."""
    pairs = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part.count(":") != 1:
            raise UserError(f"--compare: '{part}' is not ROW:AGAINST")
        b, a = (_row_index(x.strip(), rows) for x in part.split(":"))
        if a == b:
            raise UserError(f"--compare: '{part}' compares a row with itself")
        pairs.append((b, a))
    return pairs


def _paired_stats(ob: dict, oa: dict, keys) -> dict:
    keys = list(keys)
    n = len(keys)
    only_b = sum(ob[k] and not oa[k] for k in keys)
    only_a = sum(oa[k] and not ob[k] for k in keys)
    d = paired_difference(only_b, only_a, n)
    return {"n": n, "final": sum(ob[k] for k in keys) / n, "final_against": sum(oa[k] for k in keys) / n,
            "difference": d.difference, "difference_ci": d.ci, "p_value": d.p_value,
            "only_row": only_b, "only_against": only_a, "within_noise": d.within_noise,
            "detectable": min_detectable_difference(n, only_b + only_a),
            "items_needed": items_needed(d.difference, (only_b + only_a) / n) if only_b != only_a else None}


def comparison(rows: list[dict], outcomes: list[dict | None], b: int, a: int, why: str = "asked",
               measure: str = "final") -> dict:
    """Row b against row a, item by item: the difference of their final accuracies (Acc@t2, or Acc@t1
    for a row without a second attempt; with measure 'trial 1' and trial-1 outcomes, of their Acc@t1) with
    its exact McNemar p-value and 95% interval, on all items and without the two-answer subtasks."""
    names = f"rows #{b + 1} ({rows[b]['results_file']}) and #{a + 1} ({rows[a]['results_file']})"
    if rows[a]["scorer_version"] != rows[b]["scorer_version"]:
        raise UserError(f"{names} were scored with different scorer versions "
                        f"(v{rows[b]['scorer_version']} and v{rows[a]['scorer_version']}): not compared")
    for i in (a, b):
        if outcomes[i] is None:
            raise UserError(f"{rows[i]['results_file']}: no per-item outcomes in its provenance block "
                            "(written by an older plugin); rerun it (with resume= nothing is generated again)")
    ob, oa = outcomes[b], outcomes[a]
    if set(ob) != set(oa):
        raise UserError(f"{names} were not run on the same items (same tasks, dataset revisions and docs)")
    out = {"row": b + 1, "against": a + 1, "row_file": rows[b]["results_file"], "against_file": rows[a]["results_file"],
           "why": why, "measure": measure, **_paired_stats(ob, oa, list(oa)), "without_two_answer": None,
           **_comparison_overlap(rows, b, a), **_comparison_marks(rows, b, a, measure)}
    kept = [k for k in oa if not _two_answer((_subtask(k[0]) or (k[0], False))[0])]
    if kept and len(kept) < len(oa):
        out["without_two_answer"] = _paired_stats(ob, oa, kept)
    return out


def _answering_model(r: dict) -> tuple:
    """The model that gives trial 1 and the retry: the base model with its adapter, if any."""
    return r["base_model"], r["base_revision"], r["base_adapter"], r["base_adapter_revision"]


def _trained(r: dict) -> bool:
    return bool(r["base_adapter"] or r["adapter"])


def _is_base(r: dict) -> bool:
    return not _trained(r) and r["reflector_label"] == "same as base"


def default_pairs(rows: list[dict]) -> list[tuple[int, list[int], str, str]]:
    """(row, candidate rows to compare it with, why, what the candidate is) for every default comparison:
    a reflective row (oracle or intrinsic) against retry-only of the same answering model (did the
    reflection add anything over a bare retry?); a trained row against the base model under the same
    protocol (mode and one-stage), so that a protocol change is not sold as training; intrinsic
    against single."""
    pairs = []
    for b, r in enumerate(rows):
        others = [(a, x) for a, x in enumerate(rows) if a != b]
        answering = _answering_model(r)
        if r["mode"] in ("oracle", "intrinsic"):
            retries = [a for a, x in others if x["mode"] == "retry_only" and _answering_model(x) == answering]
            pairs.append((b, retries, REFLECTION_VS_RETRY, "retry_only row of the same answering model"))
            # a reflective row spends more tokens after trial 1 than a plain retry does: against a retry_only
            # row given the same second-attempt budget as well, a gain cannot be the extra tokens
            budget = _budget_of(r)["second_attempt"]
            matched = [a for a in retries if budget is not None and _budget_of(rows[a])["second_attempt"] == budget]
            if matched and matched[0] != retries[0]:
                pairs.append((b, matched, REFLECTION_VS_SAME_BUDGET,
                              "retry_only row of the same answering model and second-attempt budget"))
        if _trained(r):
            same = [a for a, x in others if _is_base(x) and (x["base_model"], x["base_revision"]) == answering[:2]
                    and x["mode"] == r["mode"] and bool(x["one_stage"]) == bool(r["one_stage"])]
            pairs.append((b, same, "trained against the base model, same protocol", f"base-model row in mode {_mode(r)}"))
        if r["mode"] == "intrinsic":
            pairs.append((b, [a for a, x in others if x["mode"] == "single" and _answering_model(x) == answering],
                          "intrinsic against single", "single row of the same answering model"))
    return pairs


def comparisons(rows: list[dict], outcomes: list[dict | None], spec: str | None,
                trial1_outcomes: list[dict | None] | None = None) -> tuple[list[dict], list[str]]:
    """The comparisons asked for ('' for none), or the default ones (`default_pairs`), each against the
    first candidate row that holds the same items scored by the same scorer version; (comparisons,
    why each default pair was left out). Two rows of different answering models differ at trial 1
    already: with `trial1_outcomes`, such a comparison is followed by the same one on trial 1."""
    def with_trial1(c: dict) -> list[dict]:
        if not c["answering_models_differ"] or trial1_outcomes is None:
            return [c]
        return [c, comparison(rows, trial1_outcomes, c["row"] - 1, c["against"] - 1, c["why"], "trial 1")]

    if spec is not None:  # '' asks for none
        return [x for b, a in parse_comparisons(spec, rows) for x in with_trial1(comparison(rows, outcomes, b, a))], []
    made, skipped = [], []
    for b, candidates, why, what in default_pairs(rows):
        head = f"#{b + 1} {_label(rows[b])} ({why})"
        if not candidates:
            skipped.append(f"{head}: no {what}")
            continue
        errors = []
        for a in candidates:
            try:
                made += with_trial1(comparison(rows, outcomes, b, a, why))
                break
            except UserError as exc:
                errors.append(str(exc))
        else:
            skipped.append(f"{head}: " + "; ".join(errors))
    return made, skipped


def _budget_of(r: dict) -> dict:
    b = r.get("budgets") or {}
    return {"trial1_cap": b.get("trial1_cap"), "second_attempt": b.get("second_attempt")}


def _comparison_marks(rows: list[dict], b: int, a: int, measure: str) -> dict:
    """What else differs between the two rows: their token budgets (the second attempt's, for a comparison
    of final answers, and trial 1's cap), and their answering models."""
    mine, theirs = _budget_of(rows[b]), _budget_of(rows[a])
    marks = []
    if measure == "final" and None not in (mine["second_attempt"], theirs["second_attempt"]) \
            and mine["second_attempt"] != theirs["second_attempt"]:
        marks.append(f"budgets differ: {mine['second_attempt']} vs {theirs['second_attempt']}")
    if None not in (mine["trial1_cap"], theirs["trial1_cap"]) and mine["trial1_cap"] != theirs["trial1_cap"]:
        marks.append(f"trial-1 caps differ: {mine['trial1_cap']} vs {theirs['trial1_cap']}")
    return {"budget_row": mine, "budget_against": theirs, "budgets_differ": "; ".join(marks) or None,
            "answering_models_differ": _answering_model(rows[b]) != _answering_model(rows[a])}


def trial1_codes(codes: dict | None) -> dict | None:
    """{item: trial-1 outcome code} from `item_codes`, None without outcomes."""
    return None if codes is None else {key: t1 for key, (t1, _) in codes.items()}


def attach_sources(compared: list[dict], codes: list[dict | None], bench: str) -> None:
    """Adds to each comparison of final answers where its difference comes from (leaderboards/sources.py)."""
    for c in compared:
        row, against = codes[c["row"] - 1], codes[c["against"] - 1]
        if c["measure"] == "final" and row is not None and against is not None:
            c["sources"] = difference_sources(row, against, lambda task: (_subtask(task) or (task, False))[0], bench)


def link_trial1(rows: list[dict], codes: list[dict | None]) -> None:
    """Marks the rows that share one trial 1: recorded (the same trial1_from folder, or one row's
    trial1_from the other's resume folder), or else the same trial-1 outcome code on every item. A row
    that took its trial 1 from another row on the board gets that row's trial-1 cap."""
    def linked(r: dict, x: dict) -> bool:  # every ordered pair is asked, so one direction is enough
        f = r.get("trial1_from")
        return bool(f) and f in (x.get("trial1_from"), x.get("resume"))

    group = list(range(len(rows)))  # union-find over recorded links

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, r in enumerate(rows):
        for j, x in enumerate(rows):
            if i != j and linked(r, x):
                group[root(i)] = root(j)
    for i, r in enumerate(rows):
        recorded = [j for j in range(len(rows)) if root(j) == root(i)]
        same = [j for j, c in enumerate(codes) if codes[i] is not None and c == codes[i]]
        if len(recorded) > 1:
            sources = sorted({x for j in recorded for x in [rows[j].get("trial1_from")] if x})
            r["trial1_shared"] = {"rows": [j + 1 for j in recorded], "how": "trial1_from", "source": ", ".join(sources)}
        elif len(same) > 1:
            r["trial1_shared"] = {"rows": [j + 1 for j in same], "how": "identical trial-1 outcome codes",
                                  "source": None}
        budgets = r.get("budgets")
        if budgets and budgets["trial1_cap"] is None and r.get("trial1_from"):
            given = [j for j, x in enumerate(rows) if x.get("resume") == r["trial1_from"] and x["budgets"]["trial1_cap"]]
            if given:
                budgets["trial1_cap"], budgets["trial1_cap_from"] = rows[given[0]]["budgets"]["trial1_cap"], given[0] + 1


def _short(rev: str | None) -> str:
    if not rev:
        return "?"
    return rev[:19] if rev.startswith("sha256:") else rev[:12]


def trained_part(base: dict, reflector) -> dict:
    """What distinguishes a row besides mode: the reflector (or adapter) with its revision, and for
    an adapter trained here, its setting and its training data with revision (from the adapter's
    provenance.json, recorded by the plugin)."""
    who = base if base.get("adapter") else (reflector if isinstance(reflector, dict) else None)
    if who is None:
        return {"reflector_label": "same as base", "adapter": None, "adapter_revision": None,
                "setting": None, "train_data": None, "train_data_revision": None, "train_command": None}
    if who.get("adapter"):
        label = f"{who['adapter']}@{_short(who.get('adapter_revision'))}"
        if who is base:
            label += " (on the base)"
        if who.get("adapter_merged"):  # served merged into the weights (merge_adapter=true)
            label += " (merged)"
    else:
        label = f"{who.get('model')}@{_short(who.get('model_revision'))}"
    training = who.get("adapter_training") or {}
    data = training.get("dataset")
    if data and training.get("dataset_config"):
        data = f"{data}:{training['dataset_config']}"
    return {"reflector_label": label, "adapter": who.get("adapter"), "adapter_revision": who.get("adapter_revision"),
            "setting": training.get("setting"), "train_data": data, "train_data_revision": training.get("dataset_revision"),
            "train_command": training.get("command"),
            # recorded by adapters trained since these existed; absent from older rows' records
            **({"train_steps_after_warmup": training["min_steps_after_warmup"]}
               if training.get("min_steps_after_warmup") is not None else {}),
            **({"train_data_fraction": training["data_fraction"]} if training.get("data_fraction") else {}),
            # an adapter whose training continued another adapter (a later self-evolution round)
            **({"train_init_adapter": training["init_adapter"]} if training.get("init_adapter") else {}),
            **({"train_two_answer_excluded": training["two_answer_rows_excluded"]}
               if training.get("two_answer_rows_excluded") is not None else {})}


# ---------------------------------------------------------------- trained on what it is evaluated on

def _trainings(prov: dict) -> list[dict]:
    """The training record of every adapter trained here that the row runs: on the base, as reflector, or both."""
    used = [prov.get("base"), prov.get("reflector")]
    return [w["adapter_training"] for w in used
            if isinstance(w, dict) and w.get("adapter") and isinstance(w.get("adapter_training"), dict)]


def _items_of_local_data(training: dict) -> dict | None:
    """training_items read from the training file itself, for an adapter trained before they were
    recorded: only a file inside this checkout whose sha256 is the revision the adapter recorded."""
    name, revision = training.get("dataset"), str(training.get("dataset_revision") or "")
    if not isinstance(name, str) or Path(name).is_absolute() or not revision.startswith("sha256:"):
        return None
    path = REPO_ROOT / name
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if "sha256:" + hashlib.sha256(data).hexdigest() != revision:
        return None
    try:
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except ValueError:
        return None
    return bbh_split.training_items([r for r in rows if isinstance(r, dict)])


# question-id prefix -> the question pool it comes from
_POOLS = {"bbh": "BBH generation pool (bbh-pool)", "bigbench": "BIG-bench pool (bigbench==1.0.0, before the BBH split)"}


def _pool_of(recorded: list[dict]) -> str:
    """Which question pool a row's training data came from, by its question ids."""
    prefixes = {i.split("/", 1)[0] for r in recorded for i in r.get("question_ids") or ()}
    names = sorted(_POOLS.get(p, p) for p in prefixes)
    return " + ".join(names) if names else "unknown"


def evaluated_items(prov: dict, where: str) -> set[str] | None:
    """The BBH ids (bbh/<subtask>/<index>) of the items a results file measured, from its per-item
    outcomes; None for a file without them. The plugin keys the outcomes by question id; a bare doc
    id is the item's index in its subtask, in every reflectevo_bbh task family."""
    codes = _codes(prov, "outcomes", where)
    if codes is None:
        return None
    items = set()
    for task, docs in codes.items():
        parsed = _subtask(task)
        if parsed is not None:  # keys are question ids (bbh/…, math/…, mbpp/…); bare numbers are BBH doc ids
            items.update(str(d) if "/" in str(d) else f"bbh/{parsed[0]}/{d}" for d in docs)
    return items


def _overlap_count(evaluated: set[str], recorded: list[dict]) -> int:
    """Evaluated items trained on by id, or by normalised text (BBH repeats some questions under other ids,
    and a dataset may copy a question under its own id)."""
    ids = {i for r in recorded for i in r.get("question_ids") or ()}
    hashes = {h for r in recorded for h in r.get("text_sha256") or ()}
    return sum(i in ids or bbh_split.item_text_hash(i) in hashes for i in evaluated)


def train_eval_overlap(prov: dict, where: str) -> dict:
    """For a row that runs an adapter trained here: how many of its evaluated items that adapter trained on,
    and whether that could be checked in full (`train_eval_overlap_why` says why not). Nothing for a row
    without such an adapter, whose record stays as it was."""
    trainings = _trainings(prov)
    if not trainings:
        return {}
    recorded = [t.get("training_items") or _items_of_local_data(t) for t in trainings]
    evaluated = evaluated_items(prov, where)
    why = ("training items not recorded" if not all(isinstance(r, dict) for r in recorded)
           else "evaluated items not recorded (no per-item outcomes)" if evaluated is None else None)
    if why:
        return {"train_eval_overlap": None, "train_eval_overlap_checked": False, "train_eval_overlap_why": why}
    out = {"train_eval_overlap": _overlap_count(evaluated, recorded), "train_eval_overlap_checked": True,
           "train_pool": _pool_of(recorded)}
    if not all(r.get("complete", True) for r in recorded):  # what is listed is a lower bound
        out.update(train_eval_overlap_checked=False, train_eval_overlap_why="training items partly recorded")
    return out


def _overlapping(r: dict) -> bool:
    return bool(r.get("train_eval_overlap"))


def _overlap_warning(r: dict) -> str:
    return f"⚠ trained on {r['train_eval_overlap']} of its {r['n']} evaluation items"


def _overlap_notes(rows: list[dict]) -> list[str]:
    """One line per row that runs an adapter trained here and either trained on its evaluation items or
    could not be checked; nothing for the others."""
    out = []
    for i, r in enumerate(rows, 1):
        if _overlapping(r):
            out.append(f"- #{i} {_label(r)}: {_overlap_warning(r)} (the same id or the same normalised question "
                       "text), so its scores are not measured on held-out items; every comparison with it is flagged.")
        elif r.get("train_eval_overlap_why"):
            what = r["train_eval_overlap_why"]
            if r["train_eval_overlap"] is None:
                out.append(f"- #{i} {_label(r)}: {what}, so whether its adapter was trained on its evaluation "
                           "items is not checked.")
            else:
                out.append(f"- #{i} {_label(r)}: {what}; none of its evaluation items is among those recorded.")
        elif r.get("train_eval_overlap_checked"):
            out.append(f"- #{i} {_label(r)}: trained on the {r['train_pool']}; none of its {r['n']} evaluation items "
                       "is among its training items (checked by id and by normalised question text).")
    return out


def _comparison_overlap(rows: list[dict], b: int, a: int) -> dict:
    """Marks a comparison that involves a row trained on its evaluation items; nothing otherwise."""
    return {"overlap": True} if _overlapping(rows[b]) or _overlapping(rows[a]) else {}


def _command(cfg: dict, data: dict) -> str:
    args = cfg.get("model_args")
    if isinstance(args, str):
        args = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
    # resume= and trial1_from= say where stored chunks were kept or taken from; the same run without
    # them generates the same replies
    args = ",".join(f"{k}={v}" for k, v in (args or {}).items() if k not in ("resume", "trial1_from"))
    tasks = sorted(t for t in data.get("results", {}) if _subtask(t))  # groups are rebuilt below

    groups, bench = [], benchmark("results file", data)
    for prefix, group in FAMILIES.items():
        mine = [t for t in tasks if t.startswith(prefix) and t not in groups]
        tasks = [t for t in tasks if t not in mine]
        if len(mine) == len(FAMILY_SUBTASKS[group]):
            groups.append(group)
        else:
            groups += mine
    limit = cfg.get("limit")
    parts = ["lm_eval", "--model", cfg.get("model", "reflectevo"), "--model_args", str(args), "--tasks", ",".join(groups)]
    if limit:
        parts += ["--limit", str(int(limit) if float(limit).is_integer() else limit)]
    # batch composition (padding) can change greedy replies, and the device decides where it runs
    for key in ("batch_size", "device"):
        if cfg.get(key) not in (None, ""):
            parts += [f"--{key}", str(cfg[key])]
    return f"{DATA_ENV[bench]} " + " ".join(shlex.quote(p) for p in parts)


def _pct(x, ci=None) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _pct_of(x, ci, k, n) -> str:
    return "–" if x is None else f"{_pct(x, ci)} ({k}/{n})"


def _pm(x) -> str:
    return "–" if x is None else f"±{100 * x:.1f}"


def _p(p) -> str:
    if p is None:
        return "–"
    return f"{p:.3g}" if p >= 0.001 else f"{p:.2g}"


def _noise(within) -> str:
    return "–" if within is None else ("yes" if within else "no")


def _mode(r: dict) -> str:  # one_stage changes the protocol, so it is part of the mode a reader sees
    return f"{r['mode']}{' one-stage' if r['one_stage'] else ''}"


def _label(r: dict) -> str:
    who = r["setting"] or ("base" if r["reflector_label"] == "same as base" else r["reflector_label"])
    # rows of one setting that differ in how it was trained: continued from another adapter (a
    # later round), on a share of its data (a scaling point), or without the two-answer subtasks' rows
    trained = []
    if r.get("train_init_adapter"):
        trained.append(f"continues {_adapter_name(r['train_init_adapter'])}")
    if r.get("train_data_fraction"):
        trained.append(f"{r['train_data_fraction']['fraction']:.0%} of its data")
    if r.get("train_two_answer_excluded") is not None:
        trained.append("without two-answer rows")
    if trained:
        who += f" ({'; '.join(trained)})"
    # two retry_only rows of one model differ by their retry cap alone: the label tells them apart
    own_cap = f" (retry cap {r['retry_cap']})" if r.get("retry_cap") else ""
    return f"{who}, {_mode(r)}{own_cap}"


def _adapter_name(init) -> str:
    """An adapter as a reader names it: a Hub repo's id, or a folder's last part (revision dropped).
    `init`: what a training run recorded of the adapter it continued ({"ref": ..., "sha": ...})."""
    ref = str(init.get("ref") or init.get("location") or "?") if isinstance(init, dict) else str(init)
    return ref.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1] or ref


def _subtasks(k: int) -> str:
    return f"{k} subtask{'' if k == 1 else 's'}"


def _pools(r: dict) -> list[tuple[str, dict]]:
    """(items label, statistics) of a row: all items, and without the two-answer subtasks if that differs."""
    out = [(f"all ({_subtasks(len(r['subtasks']))})", r)]
    if r.get("without_two_answer"):
        out.append((f"w/o two-answer ({_subtasks(r['without_two_answer']['subtasks'])})", r["without_two_answer"]))
    return out


def _notes(rows: list[dict], bench: str = "bbh") -> list[str]:
    two = ", ".join(TWO_ANSWER_SUBTASKS)
    two_answer = [
        f"- Two-answer subtasks ({two}): the oracle verdict 'incorrect' on a readable answer names the gold. They "
        "are flagged in the per-subtask table, and every pooled line is repeated without them."] if bench == "bbh" else []
    return [
        "- Scoring: **strict** is the headline (only the final answer statement after the last answer marker "
        "counts, and it must commit to exactly one answer); **flexible** is beside it (without a marker, the last "
        "committed answer counts). A row scored by scorer version 1 (a results file written before the two levels) "
        "has one level, the old scorer's, in the headline columns; what it cannot tell (the flexible level, the "
        "no-answer split of fixes) is –. Rows of different scorer versions are never compared.",
        "- 95% intervals: Wilson for accuracies and rates. A paired difference (Δ of an intrinsic row; row against "
        "row) gets the exact McNemar test (two-sided binomial test on the items only one side gets right) with its "
        "p-value, and the interval that agrees with it: exact (Clopper-Pearson) on the split of those items, widened "
        "by the exact interval of their share of N. Within noise: p ≥ 0.05.",
        "- Δ = Acc@t2 − Acc@t1. In oracle and retry_only modes only items wrong at trial 1 are retried, so Δ ≥ 0 "
        "by construction: it is shown (with the Wilson interval of the share of items fixed) but not tested (–). "
        "Whether reflection helped is the comparison with the retry_only row on the same items (Row against row).",
        "- – also marks a rate the protocol cannot produce: the break rate in oracle, retry_only (a right trial 1 "
        "is never retried) and single; everything after trial 1 in single.",
        "- Fix rate: right at trial 2, of the items wrong at trial 1; split into fixes of readable wrong answers (of "
        "the items wrong with a readable answer at trial 1) and fixes of no answer (of the items with none): "
        "recovering a readable answer is not reasoning. Break rate: wrong at trial 2, of the items right at trial 1.",
        *two_answer,
        *_benchmark_notes(bench),
        "- Detectable: the smallest difference the exact test finds 80% of the time at this N, given the observed "
        "number of items that differ (– when fewer than 6 differ: no split of so few reaches p < 0.05). A "
        "difference smaller than that is no evidence of no difference.",
        *_budget_notes(rows),
        *_trial1_notes(rows),
        *_overlap_notes(rows),
    ]


def _benchmark_notes(bench: str) -> list[str]:
    if bench == "math":
        return ["- MATH: the answer is the reply's final one (a box, else an answer statement), compared with the last "
                "box of the reference solution by value (reflectevo_tasks.math_answers, strict and flexible as above). "
                "Subtasks are MATH's seven subjects; items are the first N problems of each, in the file's order."]
    if bench == "mbpp":
        return ["- MBPP: the answer is the reply's last Python code block, run in the code sandbox against the task's "
                "three assert tests (reflectevo_tasks.code_answers); right means every test passed, no answer means no "
                "code block. Both levels read the same block. The oracle verdict and the retry are shown the first "
                "failing test with its error. Items are the first N tasks, in the file's order (task ids from 11)."]
    return []


def _numbers(ns: list[int]) -> str:
    """#1–#9 for a run of row numbers, else #1, #3, ..."""
    if len(ns) > 2 and ns == list(range(ns[0], ns[-1] + 1)):
        return f"#{ns[0]}–#{ns[-1]}"
    return ", ".join(f"#{n}" for n in ns)


def _slacks(rows: list[dict]) -> set:
    return {t["cap_slack"] for r in rows for t in (r.get("budgets") or {}).get("turns") or ()
            if t.get("cap_hits") is not None}


def _budget_notes(rows: list[dict]) -> list[str]:
    slacks = _slacks(rows)
    rule = (f"at least cap − {next(iter(slacks))} tokens" if len(slacks) == 1 and None not in slacks
            else "within the slack its count records (cap_slack in bbh.json)" if slacks
            else "close to its cap (no row here has its cap hits counted)")
    out = ["- Budgets (section Budgets): each turn's token cap (max_new_tokens) and stop sequences, and the replies "
           f"that ran into the cap: a reply whose text after the reply prefix, retokenised with the model's tokenizer, "
           f"is {rule}. Retokenising comes back short of what the model generated (after a reply prefix the engine "
           "replaces the whitespace the model opened with by one space, and tokens generated apart can merge), so the "
           "count takes that slack, and a reply that stopped on its own that close to its cap is counted too; the "
           "spread of counts around the cap is in leaderboards/measured/cap_hits.json (near_cap). Second-attempt "
           "budget: the tokens a row may spend after trial 1 before its final answer (retry_only: the retry cap; "
           "two-stage reflection: reflection cap + retry cap; one-stage: its one reply's cap). A comparison whose rows "
           "differ in it, or in the trial-1 cap, is marked in Row against row."]
    if any(r.get("one_stage_replies") for r in rows):
        out.append("- One-stage rows: the reply should hold the reflection, the heading \"Corrected solution:\" and the "
                   "corrected solution, and only what follows the heading is scored; a reply without the heading is "
                   "scored whole, reflection included (reflectevo_tasks.prompts.split_one_stage). How many replies lack "
                   "it, and how many of the answers credited at trial 2 come from such replies, is in Budgets.")
    return out


def _trial1_notes(rows: list[dict]) -> list[str]:
    out, seen = [], set()
    for r in rows:
        shared = r.get("trial1_shared")
        if not shared or tuple(shared["rows"]) in seen:
            continue
        seen.add(tuple(shared["rows"]))
        which = _numbers(shared["rows"])
        if shared["how"] == "trial1_from":
            out.append(f"- {which} share one trial 1 (taken by trial1_from from {shared['source']}): the same replies, "
                       "so their Acc@t1 is one measurement, not several, and between them only the second attempt "
                       "differs.")
        else:
            out.append(f"- {which} have the same trial-1 outcome on every item (no shared trial 1 recorded): their "
                       "Acc@t1 are not independent measurements.")
    return out


def _training_lines(rows: list[dict]) -> list[str]:
    """How much optimization each trained row had, and on how much of its data, where its adapter
    recorded it (adapters trained before these were recorded give no line)."""
    out = []
    for i, r in enumerate(rows, 1):
        if r.get("train_steps_after_warmup") is None:
            continue
        share = r.get("train_data_fraction")
        part = (f", on {share['questions']} of {share['of_questions']} training questions "
                f"(data fraction {share['fraction']})" if share else "")
        out.append(f"- #{i} {_label(r)}: {r['train_steps_after_warmup']} optimizer steps after warmup "
                   f"(the fewest of its stages){part}.")
    return ["", "Training of the trained rows (from their adapters' provenance):", "", *out] if out else []


def markdown(rows: list[dict], compared: list[dict] = (), skipped: list[str] = (), bench: str = "bbh",
             findings: str | None = None) -> str:
    out = [f"# {TITLES[bench]}: reflect-then-retry", "", *_notes(rows, bench), ""]
    if findings:  # written by people from the tables below, so it comes first and says whose it is
        out += ["## Findings", "", findings.strip(), ""]
    out += ["## Rows", "",
           "| # | base (revision) | reflector / adapter (revision) | setting | trained on (revision) | mode | instruction "
           "| scorer | N | Acc@t1 | Acc@t2 | trial 1 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        data = f"{r['train_data']}@{_short(r['train_data_revision'])}" if r["train_data"] else "–"
        scorer = f"v{r['scorer_version']}" + (f" ({r['headline_level']})" if r["scorer_version"] >= 2 else "")
        setting = (r["setting"] or "–") + (f" {_overlap_warning(r)}" if _overlapping(r) else "")
        out.append(f"| {i} | {r['base_model']} ({_short(r['base_revision'])}) | {r['reflector_label']} | {setting} | "
                   f"{data} | {_mode(r)} | {r['instruction']} | {scorer} | {r['n']} | {_pct(r['acc_t1'], r['acc_t1_ci'])} | "
                   f"{_pct(r['acc_t2'], r['acc_t2_ci'])} | {_trial1_cell(r)} |")
    out += _training_lines(rows)
    out += _budget_lines(rows)
    out += ["", "## Accuracy", "",
            "In % with 95% intervals; Acc and no-answer rates at the headline level unless marked flexible.", "",
            "| # | row | items | N | Acc@t1 | Acc@t2 | Acc@t1 flexible | Acc@t2 flexible | no answer t1 | no answer t2 "
            "| Δ | p (Δ) | within noise? | detectable Δ |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        for items, s in _pools(r):
            flex = s.get("flexible") or {}
            out.append(f"| {i} | {_label(r)} | {items} | {s['n']} | {_pct(s['acc_t1'], s['acc_t1_ci'])} | "
                       f"{_pct(s['acc_t2'], s['acc_t2_ci'])} | {_pct(flex.get('acc_t1'), flex.get('acc_t1_ci'))} | "
                       f"{_pct(flex.get('acc_t2'), flex.get('acc_t2_ci'))} | {_pct(s['no_answer_t1'])} | "
                       f"{_pct(s['no_answer_t2'])} | {_pct(s['delta'], s['delta_ci'])} | {_p(s['delta_p'])} | "
                       f"{_noise(s['delta_within_noise'])} | {_pm(s['delta_detectable'])} |")
    out += ["", "## Fixes and breaks", "", "In % with 95% intervals and (items / of items), at the headline level.", "",
            "| # | row | items | fix rate | fixes of readable wrong answers | fixes of no answer | break rate |",
            "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        for items, s in _pools(r):
            out.append(f"| {i} | {_label(r)} | {items} | {_pct_of(s['fix_rate'], s['fix_ci'], s['wrong_to_right'], s['wrong_t1'])} | "
                       f"{_pct_of(s['fix_readable_rate'], s['fix_readable_ci'], s['fixed_readable'], s['readable_wrong_t1'])} | "
                       f"{_pct_of(s['fix_no_answer_rate'], s['fix_no_answer_ci'], s['fixed_no_answer'], s['no_answer_t1_count'])} | "
                       f"{_pct_of(s['break_rate'], s['break_ci'], s['right_to_wrong'], s['right_t1'])} |")
    out += _subtask_lines(rows, bench)
    out += kind_lines(rows, lambda i: _label(rows[i - 1]))
    out += _comparison_lines(rows, compared, skipped)
    out += source_lines(compared, lambda i: _label(rows[i - 1]))
    out += scaling_lines(rows, scaling_groups(rows, _answering_model), _label, _pct, bench)
    out += ["", "## Reproduce", ""]
    for i, r in enumerate(rows, 1):
        extra = ""
        if r.get("train_command"):
            extra = f"; adapter trained with `{r['train_command']}`"
        out.append(f"{i}. `{r['command']}` (results file `{r['results_file']}`, N per subtask {r['n_per_subtask']}{extra})")
    return "\n".join(out) + "\n"


def _trial1_cell(r: dict) -> str:
    shared = r.get("trial1_shared")
    if not shared:
        return "own"
    return ("shared: " if shared["how"] == "trial1_from" else "same outcomes: ") + _numbers(shared["rows"])


_TURN_NAMES = {"trial1": "trial 1", "one_stage": "one-stage reply"}


def _stops(stops: list[list[str]]) -> str:
    """Stop sequences as code, | escaped for the table; one group per sampling of the turn."""
    groups = [", ".join("`" + x.replace("|", "\\|") + "`" for x in group) or "none" for group in stops]
    return " / ".join(groups) or "–"


def _caps(caps: list[int]) -> str:
    return " / ".join(str(c) for c in caps) or "–"


def _hits(t: dict) -> str:
    if t.get("cap_hits") is None:
        return "not recorded"
    return f"{_pct(t['cap_hit_rate'], t['cap_hit_ci'])} ({t['cap_hits']}/{t['replies']})"


def _budget_lines(rows: list[dict]) -> list[str]:
    out = ["", "## Budgets", "",
           "Token caps and stop sequences per turn, and the replies that reached the cap in % with 95% Wilson "
           "intervals (replies / of replies; see the notes for how reaching is counted). A trial 1 taken from another "
           "row (trial1_from) is that row's replies.", "",
           "| # | row | turn | cap (new tokens) | stop sequences | replies reaching the cap | counted from |",
           "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        b = r.get("budgets") or {}
        turns = b.get("turns") or []
        if b.get("trial1_cap_from"):
            k = b["trial1_cap_from"]
            given = next(t for t in rows[k - 1]["budgets"]["turns"] if t["turn"] == "trial1")
            out.append(f"| {i} | {_label(r)} | trial 1 | {_caps(given['max_new_tokens'])} | {_stops(given['stop'])} | "
                       f"#{k}'s replies | – |")
        if not turns:
            out.append(f"| {i} | {_label(r)} | – | not recorded | not recorded | not recorded | – |")
        for t in turns:
            out.append(f"| {i} | {_label(r)} | {_TURN_NAMES.get(t['turn'], t['turn'])} | {_caps(t['max_new_tokens'])} | "
                       f"{_stops(t['stop'])} | {_hits(t)} | {t['source'] or '–'} |")
    out += ["", "Second-attempt budget: the tokens a row may spend after trial 1 before its final answer.", "",
            "| # | row | trial-1 cap | second-attempt budget | made of |", "|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        b = r.get("budgets") or {}
        t1 = "not recorded" if b.get("trial1_cap") is None else str(b["trial1_cap"]) + (
            f" (#{b['trial1_cap_from']}'s)" if b.get("trial1_cap_from") else "")
        second = "not recorded" if b.get("second_attempt") is None else str(b["second_attempt"])
        out.append(f"| {i} | {_label(r)} | {t1} | {second} | {b.get('second_attempt_is') or '–'} |")
    one_stage = [(i, r) for i, r in enumerate(rows, 1) if r.get("one_stage_replies")]
    if one_stage:
        out += ["", "One-stage replies without the heading \"Corrected solution:\" (scored whole, reflection included), "
                "and the answers credited at trial 2 (right at the headline level) that come from them.", "",
                "| # | row | one-stage replies | without the heading | credited at trial 2 | credited from replies "
                "without the heading | counted from |", "|---|---|---|---|---|---|---|"]
        for i, r in one_stage:
            s = r["one_stage_replies"]
            if s["source"] is None:
                out.append(f"| {i} | {_label(r)} | not recorded | not recorded | not recorded | not recorded | "
                           f"– ({s['why']}) |")
                continue
            rate, ci = _rate(s["without_heading"], s["replies"])
            out.append(f"| {i} | {_label(r)} | {s['replies']} | {s['without_heading']} ({_pct(rate, ci)}) | "
                       f"{s['credited']} | {s['credited_without_heading']} of {s['credited']} | {s['source']} |")
    return out


def _subtask_lines(rows: list[dict], bench: str = "bbh") -> list[str]:
    names = sorted({s for r in rows for s in r["subtasks"]})
    out = ["", "## Per subtask", "",
           "Acc@t1 → Acc@t2 in % at the headline level for each row (columns numbered as above). The 95% Wilson "
           f"interval of every cell is in `{bench}.json`; at the per-subtask N below, it is wide (the last column gives "
           "its half-width for a score of 50%), so per-subtask differences are mostly within noise."
           + (" Two-answer subtasks are marked yes (see the notes above)." if bench == "bbh" else ""), "",
           "| subtask | " + ("two-answer | " if bench == "bbh" else "")
           + " | ".join(f"#{i}" for i in range(1, len(rows) + 1)) + " | N | ±95% at 50% |",
           "|---|" + ("---|" if bench == "bbh" else "") + "---|" * (len(rows) + 2)]
    for name in names:
        cells, ns = [], set()
        for r in rows:
            v = r["subtasks"].get(name)
            if v is None:
                cells.append("–")
                continue
            ns.add(v["n"])
            cells.append(f"{100 * v['acc_t1']:.0f} → {100 * v['acc_t2']:.0f}" if v.get("acc_t2") is not None
                         else f"{100 * v['acc_t1']:.0f}")
        n = min(ns) if ns else 0
        lo, hi = wilson_interval(n // 2, n) if n else (0.5, 0.5)
        half = 50 * (hi - lo)
        two = f"{'yes' if _two_answer(name) else 'no'} | " if bench == "bbh" else ""
        out.append(f"| {name} | {two}" + " | ".join(cells)
                   + f" | {'/'.join(str(x) for x in sorted(ns))} | {half:.0f} |")
    return out


def _comparison_lines(rows: list[dict], compared: list[dict], skipped: list[str]) -> list[str]:
    if not compared and not skipped:
        return []
    out = ["", "## Row against row", "",
           "Final accuracy (Acc@t2, or Acc@t1 for a row without a second attempt) of two rows on the same items, at "
           "the headline level, item by item: the difference in points with its 95% interval and exact McNemar "
           "p-value; 'only row' / 'only against' count the items one of the two gets right and the other does not. "
           "Within noise: p ≥ 0.05. Each comparison is repeated without the two-answer subtasks. Measure: 'final' "
           "compares final accuracies; two rows with different answering models differ from trial 1 on, so their "
           "comparison is followed by one on trial 1 ('trial 1': Acc@t1 against Acc@t1, in the final columns). "
           "Marked: what else differs between the two rows, their token budgets ('budgets differ: row vs against', "
           "the second-attempt budgets, see Budgets; 'trial-1 caps differ') and their answering models.", "",
           "| row | against | why | items | N | final (row) | final (against) | difference | p | only row "
           "| only against | within noise? | detectable | measure | marked |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in compared:
        row, against = rows[c["row"] - 1], rows[c["against"] - 1]
        pools = [("all", c)] + ([("w/o two-answer", c["without_two_answer"])] if c.get("without_two_answer") else [])
        why = c["why"] + (" ⚠ trained on evaluation items" if c.get("overlap") else "")
        for items, s in pools:
            out.append(f"| #{c['row']} {_label(row)} | #{c['against']} {_label(against)} | {why} | {items} | {s['n']} | "
                       f"{_pct(s['final'])} | {_pct(s['final_against'])} | {_pct(s['difference'], s['difference_ci'])} | "
                       f"{_p(s['p_value'])} | {s['only_row']} | {s['only_against']} | {_noise(s['within_noise'])} | "
                       f"{_pm(s['detectable'])} | {c.get('measure', 'final')} | {_marked(c)} |")
    finals = [c for c in compared if c.get("measure", "final") == "final"]
    for c in finals:
        row, against = rows[c["row"] - 1], rows[c["against"] - 1]
        # against retry-only, the protocol difference (a reflection or not) is what is measured
        if c["why"] not in (REFLECTION_VS_RETRY, REFLECTION_VS_SAME_BUDGET) and _mode(row) != _mode(against) \
                and _model(row) != _model(against):
            out.append(f"- #{c['row']} against #{c['against']}: the rows differ in protocol ({_mode(row)} vs "
                       f"{_mode(against)}) as well as in model, so the difference is not the model's alone.")
    for c in finals:
        if c.get("answering_models_differ"):
            row, against = (_answering_label(rows[c[k] - 1]) for k in ("row", "against"))
            out.append(f"- #{c['row']} against #{c['against']}: the answering models differ ({row} vs {against}), "
                       "so the rows differ from trial 1 on and the "
                       "difference of their final accuracies is not the second attempt's alone; the comparison on trial 1 "
                       "follows it in the table.")
    for c in finals:
        if c.get("overlap"):
            which = [f"#{n}" for n in (c["row"], c["against"]) if _overlapping(rows[n - 1])]
            out.append(f"- ⚠ #{c['row']} against #{c['against']}: {' and '.join(which)} trained on some of the items "
                       "compared, so the difference is not measured on held-out items.")
    for c in compared:
        if c["within_noise"] and c["items_needed"]:
            on = " on trial 1" if c.get("measure") == "trial 1" else ""
            out.append(f"- #{c['row']} against #{c['against']}{on}: to see a difference of {100 * abs(c['difference']):.1f} "
                       f"points 80% of the time when {c['only_row'] + c['only_against']} of {c['n']} items differ, "
                       f"the test needs about {c['items_needed']:,} items.")
    out += [f"- not compared: {line}" for line in skipped]
    return out


def _marked(c: dict) -> str:
    marks = [c["budgets_differ"]] if c.get("budgets_differ") else []
    if c.get("answering_models_differ"):
        marks.append("answering models differ")
    return "; ".join(marks) or "–"


def _answering_label(r: dict) -> str:
    if r["base_adapter"]:
        return f"{r['base_model']} with {r['base_adapter']}@{_short(r['base_adapter_revision'])}"
    return f"{r['base_model']} alone"


def _model(r: dict) -> tuple:
    return r["base_model"], r["base_revision"], r["reflector_label"], r["setting"]


def plots(rows: list[dict], folder: Path, bench: str = "bbh") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    made = []
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.5))
    ends = []
    for i, r in enumerate(rows):
        t1 = 100 * r["acc_t1"]
        lo1, hi1 = (100 * x for x in r["acc_t1_ci"])
        ax.errorbar([t1], [i], xerr=[[max(0.0, t1 - lo1)], [max(0.0, hi1 - t1)]], fmt="o", color="C0", capsize=3)
        ends += [lo1, hi1]
        if r.get("acc_t2") is not None:
            t2 = 100 * r["acc_t2"]
            lo2, hi2 = (100 * x for x in r["acc_t2_ci"])
            ax.annotate("", xy=(t2, i - 0.18), xytext=(t1, i - 0.18), arrowprops={"arrowstyle": "->", "color": "C1"})
            ax.errorbar([t2], [i - 0.18], xerr=[[max(0.0, t2 - lo2)], [max(0.0, hi2 - t2)]], fmt="|", color="C1", markersize=12, capsize=3)
            ends += [lo2, hi2]
    # arrows do not widen the axes by themselves
    ax.set_xlim(max(0.0, min(ends) - 3), min(100.0, max(ends) + 3))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(range(len(rows)), [f"#{i} {_label(r)}" for i, r in enumerate(rows, 1)])
    ax.set_xlabel("accuracy in % (headline level), 95% Wilson intervals")
    ax.legend(handles=[Line2D([], [], marker="o", color="C0", label="Acc@t1"),
                       Line2D([], [], marker="|", color="C1", markersize=12, label="Acc@t2")], fontsize=8, loc="best")
    fig.tight_layout()
    path = folder / f"{bench}_t1_t2.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    made.append(path)
    names, bars, intervals = subtask_deltas(rows)
    fig, ax = plt.subplots(figsize=(9, max(0.3 * len(names), 0.06 * len(names) * len(bars)) + 2))
    width = 0.8 / max(1, len(bars))
    for i, (label, vals) in enumerate(bars.items()):
        # max(0, ...): an interval end may miss its own estimate by a rounding error (Wilson at 0 of n)
        err = [[max(0.0, v - lo) for v, (lo, _) in zip(vals, intervals[label])],
               [max(0.0, hi - v) for v, (_, hi) in zip(vals, intervals[label])]]
        ax.barh([j + i * width for j in range(len(names))], vals, height=width, label=label, xerr=err,
                error_kw={"elinewidth": 0.6, "capsize": 1.5})
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks([j + (len(bars) - 1) * width / 2 for j in range(len(names))],
                  [f"{n} †" if _two_answer(n) else n for n in names], fontsize=7)
    ax.set_xlabel("Δ per subtask (points, 95% interval; † two-answer subtask)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / f"{bench}_subtask_delta.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    made.append(path)
    for group in scaling_groups(rows, _answering_model):
        made.append(plot_scaling(rows, group, folder / f"{bench}_scaling_{group['setting']}.png", _label))
    return made


def subtask_deltas(rows: list[dict]) -> tuple[list[str], dict[str, list[float]], dict[str, list[tuple[float, float]]]]:
    """Subtask names and, per row with a second attempt, its Δ in points on each with its 95% interval
    (a row without one, such as mode single, has no Δ and is left out rather than drawn as -Acc@t1)."""
    names = sorted({s for r in rows for s in r["subtasks"]})
    bars, intervals = {}, {}
    for i, r in enumerate(rows, 1):
        if r.get("acc_t2") is None:
            continue
        cells = [r["subtasks"].get(s, {}) for s in names]
        label = f"#{i} {_label(r)}"
        bars[label] = [100 * c["delta"] if c.get("delta") is not None else 0.0 for c in cells]
        intervals[label] = [(100 * c["delta_ci"][0], 100 * c["delta_ci"][1]) if c.get("delta_ci") else (0.0, 0.0)
                            for c in cells]
    return names, bars, intervals


def _find_files(results: list[str]) -> list[str]:
    files = []
    for pattern in results:
        found = sorted(glob.glob(os.path.join(pattern, "**", "results_*.json"), recursive=True)) if os.path.isdir(pattern) else glob.glob(pattern)
        if not found:
            raise UserError(f"{pattern}: no lm-eval results files")
        files += found
    return files


def read_findings(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--findings {path}: cannot be read ({exc})") from None
    if not text.strip():
        raise UserError(f"--findings {path}: the file is empty")
    if re.search(r"^#{1,2} ", text, flags=re.M):
        raise UserError(f"--findings {path}: use ### or deeper headings (it becomes the table's Findings section)")
    return text


def build(results: list[str], output_dir: str = "leaderboards", compare: str | None = None,
          cap_hits_file: str | Path | None = None, findings: str | Path | None = None) -> list[dict]:
    """Rows from results files (in the order given), the comparisons between rows (`compare`: 'B:A,…'
    with row numbers or results file names; by default those of `default_pairs`), written as
    bbh.md, bbh.json (rows), bbh_comparisons.json and PNG plots; rows of MATH and MBPP results as
    math.* and mbpp.*, one table per benchmark. `cap_hits_file`: cap hits counted after the fact
    (default CAP_HITS_FILE), for files whose passes did not count them; `findings`: a markdown file
    written from the tables, put first in the table as its Findings section."""
    files = _find_files(results)
    notes = read_findings(findings)
    loaded = [read_results(f) for f in files]
    benches = [benchmark(f, data) for f, data in zip(files, loaded)]
    if notes and len(set(benches)) > 1:
        raise UserError(f"--findings {findings}: one table's findings, and these files make {len(set(benches))}: "
                        "build each benchmark's table on its own")
    if compare and len(set(benches)) > 1:
        raise UserError(f"--compare numbers the rows of one table, and these files make {len(set(benches))} "
                        f"({', '.join(sorted(set(benches)))}): build each benchmark's table on its own")
    cap_hits = read_cap_hits(CAP_HITS_FILE if cap_hits_file is None else cap_hits_file)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for bench in dict.fromkeys(benches):
        mine = [(f, data) for f, data, b in zip(files, loaded, benches) if b == bench]
        rows = [row_from_results(f, data, cap_hits) for f, data in mine]
        codes = [item_codes(data) for _, data in mine]  # each file's outcome codes, read once
        link_trial1(rows, [trial1_codes(c) for c in codes])
        compared, skipped = comparisons(rows, [item_outcomes(c) for c in codes], compare,
                                        [item_outcomes(c, trial1=True) for c in codes])
        attach_sources(compared, codes, bench)
        compared, skipped = portable(compared), portable(skipped)
        (out / f"{bench}.json").write_text(json.dumps(rows, indent=1))
        (out / f"{bench}_comparisons.json").write_text(json.dumps({"compare": compare, "comparisons": compared,
                                                                   "not_compared": skipped}, indent=1))
        (out / f"{bench}.md").write_text(markdown(rows, compared, skipped, bench, notes))
        plots(rows, out, bench)
        all_rows += rows
    return all_rows


def push(output_dir: str, repo_id: str, tag: str | None = None) -> str:
    """Publish the built leaderboard folder (tables, plots) as a Hub dataset repo, one commit."""
    from reflectevo.hub.client import publish_folder

    # the project's license (pyproject.toml)
    tables = [Path(output_dir, f"{b}.md") for b in TITLES if Path(output_dir, f"{b}.md").is_file()]
    card = ("---\nlicense: apache-2.0\ntags: [reflectevo, leaderboard, bbh]\n---\n\n"
            + "\n".join(t.read_text(encoding="utf-8") for t in tables))
    return publish_folder(output_dir, repo_id, repo_type="dataset", tag=tag, card_text=card,
                          message="reflectevo leaderboard", token=os.environ.get("HF_TOKEN"))
