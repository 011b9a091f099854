"""Data, plain-model prompt text and metrics of the `reflectevo_bbh*`, `reflectevo_math` and
`reflectevo_mbpp` lm-eval tasks.

Data (`load_bbh`, the tasks' `custom_dataset`): with REFLECTEVO_BBH_DIR set (or `bbh_dir` given
through `--metadata`), the local BBH release is read through `reflectevo_tasks.bbh`; otherwise
`SaylorTwift/bbh` is loaded from the Hub and the commit that `datasets` actually loaded is recorded
(a cached copy can differ from the one asked for; a mismatch with a requested commit is an error).
Every doc carries what the `reflectevo` model needs, because lm-eval never hands it the task
config: subtask, index, question, gold answer, the few-shot exemplars (empty for zero-shot), the
group it belongs to, and the dataset with its revision (for local files: a sha256 over the files
used).

The `reflectevo` model answers each request with one JSON trajectory (see TRAJECTORY_SCHEMA);
`process_results` re-scores the trial-1 and trial-2 replies it contains with
`reflectevo_tasks.answers.score`. A reply that is not such a trajectory came from a plain lm-eval
model: it is scored as trial 1 and no trial-2 metric is reported.

MATH and MBPP (`load_math`, `load_mbpp`) come from the local copy or Hub dataset that the `math`
and `mbpp` question sources read (reflectevo_tasks.math_mbpp: REFLECTEVO_MATH_DIR /
REFLECTEVO_MBPP_DIR / REFLECTEVO_DATA_DIR, or `math_source` / `mbpp_source` given through
--metadata as a path or ORG/NAME); their docs carry the answer kind and, for MBPP, the tests and
setup code the answers are run against. MBPP answers run in the code sandbox: where no isolated
one can be built, only with allow_unisolated_code=true (in the reflectevo model's model_args, or in
--metadata for a plain model), which the docs and trajectories record.

Metrics, per doc and then per subtask, at the headline scoring level (strict: see answers.py):
  acc_t1, acc_t2, delta (= acc_t2 - acc_t1), no_answer_t1, no_answer_t2: means of 0/1 (delta -1/0/1)
  acc_t1_flexible, acc_t2_flexible, no_answer_t1_flexible, no_answer_t2_flexible: the same at the
      flexible level
  wrong_to_right, right_to_wrong: shares of ALL docs that flipped (means of 0/1)
  fix_rate: wrong->right among trial-1 wrong docs; break_rate: right->wrong among trial-1 right docs
      (missing in oracle and retry_only modes, which never retry a right trial 1).
      Per doc they are pairs [flipped, in_subset]; `ratio` sums both and divides (None if the
      subset is empty), so a subtask reports the true pooled ratio.
Groups (lm-eval weights subtask values by subtask size) get every metric above except fix_rate
and break_rate: a size-weighted mean of per-subtask ratios is not the pooled ratio, and lm-eval
0.4.13 offers no per-metric group weights. The exact pooled group ratios follow from the group
row, fix_rate = wrong_to_right / (1 - acc_t1) and break_rate = right_to_wrong / acc_t1
(`pooled_rates`), and the `reflectevo` model also writes them into the results file under
config.reflectevo.pooled.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import bbh, code_scoring, math_mbpp
from reflectevo_tasks import bbh_split as split_side
from reflectevo_tasks.answers import CODE, FLEXIBLE, HEADLINE, MATH, NO_ANSWER, Verdict, score
from reflectevo_tasks.questions import Question

GROUPS = {(False, "all"): "reflectevo_bbh", (True, "all"): "reflectevo_bbh_fewshot", (False, "test"): "reflectevo_bbh_test"}
MATH_GROUP, MBPP_GROUP = "reflectevo_math", "reflectevo_mbpp"
MBPP_TASK = "test"  # MBPP's one task is its test split (task ids 11-510): reflectevo_mbpp_test
# every benchmark's groups, and the subtasks (task name = "<group>_<subtask>") of the non-BBH ones
BENCHMARK_GROUPS = {"bbh": tuple(GROUPS.values()), "math": (MATH_GROUP,), "mbpp": (MBPP_GROUP,)}
SUBTASKS = {MATH_GROUP: tuple(math_mbpp.SUBJECTS.values()), MBPP_GROUP: (MBPP_TASK,)}
TRAJECTORY_SCHEMA = "reflectevo.trajectory/1"
LOCAL_DATASET = "BBH release (local folder)"
PLAIN_TRIAL_CUE = "Let's think step by step."

RATE_METRICS = ("fix_rate", "break_rate")
T1_METRICS = ("acc_t1", "no_answer_t1")
T2_METRICS = ("acc_t2", "no_answer_t2", "delta", "wrong_to_right", "right_to_wrong")
FLEXIBLE_METRICS = ("acc_t1_flexible", "no_answer_t1_flexible", "acc_t2_flexible", "no_answer_t2_flexible")
ALL_METRICS = T1_METRICS + T2_METRICS + RATE_METRICS + FLEXIBLE_METRICS


# ---------------------------------------------------------------- data

def _hub_questions(subtask: str, revision: str | None) -> tuple[list[Question], str]:
    """Questions of one subtask from the Hub, and the commit `datasets` actually loaded."""
    import datasets

    try:
        builder = datasets.load_dataset_builder(bbh.HUB_DATASET, subtask, revision=revision)
        builder.download_and_prepare()
        rows = builder.as_dataset(split="test")
    except Exception as exc:  # network, auth, missing config: all end here
        raise UserError(
            f"could not load {bbh.HUB_DATASET} config {subtask!r} (revision {revision or 'main'}): "
            f"{type(exc).__name__}: {exc}. Offline? Point {bbh.ENV_DIR} at a local BBH folder."
        ) from None
    loaded = str(builder.hash or "")
    if revision and re.fullmatch(r"[0-9a-f]{7,40}", revision) and not loaded.startswith(revision):
        raise UserError(f"asked for {bbh.HUB_DATASET} at commit {revision}, but datasets loaded "
                        f"{loaded or 'an unknown commit'} (a cached copy?)")
    questions = [bbh.make_question(subtask, i, r["input"], r["target"]) for i, r in enumerate(rows)]
    return questions, loaded or "unknown"


def load_bbh(bbh_subtask: str, bbh_fewshot: bool = False, bbh_dir: str | None = None,
             bbh_revision: str | None = None, bbh_split: str = "all", **_metadata):
    """`custom_dataset` of every reflectevo_bbh task: a DatasetDict with one `test` split.

    lm-eval passes the task's dataset_kwargs (bbh_subtask, bbh_fewshot, bbh_split) together with
    its metadata (the model_args and --metadata), hence `**_metadata`. `bbh_split: test` keeps the
    items of BBH's test split (reflectevo_tasks.bbh_split); their doc ids stay their BBH indices.
    """
    import datasets

    fewshot = str(bbh_fewshot).lower() in ("1", "true", "yes")
    if (fewshot, bbh_split) not in GROUPS:
        raise UserError(f"bbh_split: expected 'all' or 'test' (zero-shot), got {bbh_split!r}")
    folder = bbh.data_dir(bbh_dir)  # UserError for a folder that is not a BBH release
    if folder is not None:
        questions = bbh.load_subtask(bbh_subtask, folder)
        used = [folder / "bbh" / f"{bbh_subtask}.json"]
        if fewshot:
            used.append(folder / "cot-prompts" / f"{bbh_subtask}.txt")
        dataset, revision, where = LOCAL_DATASET, bbh.sha256_manifest(folder, used), str(folder)
    else:
        questions, revision = _hub_questions(bbh_subtask, bbh_revision)
        dataset, where = bbh.HUB_DATASET, f"hf://datasets/{bbh.HUB_DATASET}"
    if bbh_split == "test":
        questions = split_side.test_side(bbh_subtask, questions)
    shots = [list(pair) for pair in bbh.cot_exemplars(bbh_subtask, None if folder is None else str(folder))] if fewshot else []
    rows = [{
        "id": q.id, "subtask": bbh_subtask, "index": q.index, "input": q.question, "target": q.answer,
        "fewshot": fewshot, "exemplars": shots, "group": GROUPS[(fewshot, bbh_split)],
        "dataset": dataset, "dataset_revision": revision, "dataset_location": where,
    } for q in questions]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def _flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _docs(questions: list[Question], subtask: str, group: str, origin, **extra) -> "datasets.DatasetDict":
    import datasets

    rows = [{
        "id": q.id, "subtask": subtask, "index": q.index, "input": q.question, "target": q.answer, "kind": q.kind,
        "source": q.source, **({"tests": list(q.tests), "setup": q.setup} if q.kind == CODE else {}),
        "fewshot": False, "exemplars": [], "group": group, "dataset": origin.dataset,
        "dataset_revision": origin.revision, "dataset_location": origin.location, **extra,
    } for q in questions]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_math(math_subject: str, math_source: str | None = None, **_metadata):
    """`custom_dataset` of the reflectevo_math tasks: the problems of one MATH subject, in file order
    (doc ids are their lines in the file)."""
    if math_subject not in SUBTASKS[MATH_GROUP]:
        raise UserError(f"math_subject: expected one of {', '.join(SUBTASKS[MATH_GROUP])}, got {math_subject!r}")
    questions, origin = math_mbpp.load("math", math_source or None)
    mine = [q for q in questions if q.source == f"math/{math_subject}"]
    if not mine:  # lm-eval cannot build a task without docs
        raise UserError(f"{origin.location}: no {math_subject} problems; run the tasks of the subjects it has "
                        f"(reflectevo_math_<subject>) rather than the reflectevo_math group")
    return _docs(mine, math_subject, MATH_GROUP, origin)


def load_mbpp(mbpp_source: str | None = None, allow_unisolated_code=False, **_metadata):
    """`custom_dataset` of reflectevo_mbpp_test: MBPP's tasks in file order, with their tests."""
    questions, origin = math_mbpp.load("mbpp", mbpp_source or None)
    extra = {"allow_unisolated_code": True} if _flag(allow_unisolated_code) else {}
    return _docs(questions, MBPP_TASK, MBPP_GROUP, origin, **extra)


def question(doc: dict) -> Question:
    if doc.get("kind") in (MATH, CODE):
        return Question(id=doc["id"], source=doc["source"], index=int(doc["index"]), question=doc["input"],
                        answer=doc["target"], kind=doc["kind"], tests=tuple(doc.get("tests") or ()),
                        setup=doc.get("setup") or "")
    return bbh.make_question(doc["subtask"], int(doc["index"]), doc["input"], doc["target"])


def exemplars(doc: dict) -> tuple[tuple[str, str], ...]:
    return tuple((q, a) for q, a in (doc.get("exemplars") or ()))


def is_task_doc(doc) -> bool:
    return isinstance(doc, dict) and {"subtask", "index", "input", "target"} <= doc.keys()


def doc_to_text(doc: dict) -> str:
    """BBH's own chain-of-thought prompt text (for MATH the same form, for MBPP the task with its
    tests and our request for one code block). Only plain lm-eval models read it: the `reflectevo`
    model builds its prompts from the doc with `reflectevo_tasks.prompts` and the chat template."""
    if doc.get("kind") == CODE:
        from reflectevo_tasks.prompts import CODE_REQUEST

        return f"{doc['input']}\n\n{CODE_REQUEST}\n"
    turns = [f"Q: {q}\nA: {PLAIN_TRIAL_CUE}\n{a}" for q, a in exemplars(doc)]
    turns.append(f"Q: {doc['input']}\nA: {PLAIN_TRIAL_CUE}")
    return "\n\n".join(turns)


# ---------------------------------------------------------------- metrics

def parse_trajectory(reply) -> dict | None:
    """The trajectory a `reflectevo` model returned, or None for any other reply."""
    if not isinstance(reply, str) or not reply.startswith("{"):
        return None
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("schema") == TRAJECTORY_SCHEMA else None


def unisolated_code_allowed(doc: dict, reply) -> bool:
    """Whether the run that made `reply` allowed code to run unisolated: said by its docs (the plain
    model's --metadata) or by the reflectevo model's trajectory."""
    traj = parse_trajectory(reply)
    return bool(doc.get("allow_unisolated_code")) or bool(((traj or {}).get("run") or {}).get("allow_unisolated_code"))


def trial_verdicts(doc: dict, reply: str, level: str = HEADLINE) -> tuple[Verdict, Verdict | None]:
    """Score trial 1 and (when there is one) trial 2 of a reply at `level`, from the texts alone."""
    if doc.get("kind") == CODE:
        with code_scoring.allowing_unisolated(unisolated_code_allowed(doc, reply)):
            return _trial_verdicts(doc, reply, level)
    return _trial_verdicts(doc, reply, level)


def _trial_verdicts(doc: dict, reply: str, level: str) -> tuple[Verdict, Verdict | None]:
    q = question(doc)
    traj = parse_trajectory(reply)
    if traj is None:
        return score(reply if isinstance(reply, str) else "", q.answer, q.spec, level), None
    v1 = score(traj["trial1"]["reply"], q.answer, q.spec, level)
    t2 = traj.get("trial2")
    if not t2:
        return v1, None
    if t2.get("from") == "trial1":  # oracle mode kept a right trial 1: nothing was retried
        return v1, v1
    return v1, score(t2.get("reply") or "", q.answer, q.spec, level)


def _breaks_possible(reply) -> bool:
    """Oracle and retry_only never retry a right trial 1, so they cannot break one: their break
    rate is not a measurement (reported as missing, not as 0)."""
    traj = parse_trajectory(reply)
    mode = ((traj or {}).get("run") or {}).get("mode")
    from reflectevo_tasks.protocol import GATED

    return mode not in GATED


def metrics(v1: Verdict, v2: Verdict | None, breaks_possible: bool = True) -> dict:
    c1 = int(v1.correct)
    out = {"acc_t1": c1, "no_answer_t1": int(v1.outcome == NO_ANSWER)}
    if v2 is None:
        return out
    c2 = int(v2.correct)
    fixed, broken = int(c2 and not c1), int(c1 and not c2)
    out.update(acc_t2=c2, no_answer_t2=int(v2.outcome == NO_ANSWER), delta=c2 - c1,
               wrong_to_right=fixed, right_to_wrong=broken,
               fix_rate=[fixed, 1 - c1], break_rate=[broken, c1] if breaks_possible else [0, 0])
    return out


def process_results(doc: dict, results: list) -> dict:
    """Metrics at the headline level, and accuracies and no-answer rates at the flexible one
    (suffix `_flexible`)."""
    reply = results[0] if results else ""
    out = metrics(*trial_verdicts(doc, reply), breaks_possible=_breaks_possible(reply))
    flexible = metrics(*trial_verdicts(doc, reply, FLEXIBLE))
    for key in FLEXIBLE_METRICS:
        base = key[:-len("_flexible")]
        if base in flexible:
            out[key] = flexible[base]
    return out


def ratio(items) -> float | None:
    """Aggregation of fix_rate / break_rate: sum of numerators over sum of denominators."""
    num = sum(int(i[0]) for i in items)
    den = sum(int(i[1]) for i in items)
    return num / den if den else None


def pooled_rates(row: dict, filter_key: str = "none") -> dict:
    """Exact pooled fix_rate / break_rate of a group row (or any task row) of a results file."""
    acc1 = row.get(f"acc_t1,{filter_key}")
    fixed = row.get(f"wrong_to_right,{filter_key}")
    broken = row.get(f"right_to_wrong,{filter_key}")
    if acc1 is None or fixed is None or broken is None:
        return {"fix_rate": None, "break_rate": None}
    return {"fix_rate": fixed / (1 - acc1) if acc1 < 1 else None,
            "break_rate": broken / acc1 if acc1 > 0 else None}


# ---------------------------------------------------------------- log hygiene

class _QuietCustomDataset(logging.Filter):
    """lm-eval warns once per task that uses `custom_dataset` about --metadata; for our 60-odd tasks
    that is noise (the docs explain the metadata keys we read: bbh_dir, math_source, mbpp_source)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("reflectevo_") and "Custom kwargs can be passed" in msg)


_task_logger = logging.getLogger("lm_eval.api.task")
if not any(isinstance(f, _QuietCustomDataset) for f in _task_logger.filters):
    _task_logger.addFilter(_QuietCustomDataset())
