"""Curation of generation records into the training sets of the paper, plus statistics.

- `d_plus`: trial 1 wrong, retry right (setting I and II data); per question, a row whose retry is
  a copy or near-copy of an earlier row's retry is dropped and counted (greedy retries after
  different reflections are often the same text, and copies would weigh one target several times).
- `d_pm`  (D±): same question and trial 1; chosen = a reflection whose retry was right, rejected =
  one whose retry was wrong; near-duplicate reflections dropped; at most `max_pairs` per question,
  paired round-robin so the pairs use as many distinct chosen and rejected reflections as they can.
- `d_pref`: pairs of reflections whose retries were both right, ranked by a judge model (pairwise
  prompt, both orders) or judge-free by the log-likelihood of the gold answer in the retry context;
  a log-likelihood pair whose margin is below `min_margin` (the measured noise) is dropped, counted.
- `sft_qa`: question → a correct trial-1 answer (the SFT baseline).

Outcomes are re-read with `answers.score` (whatever level it returns), not taken from the records,
so a curated set always follows the current scorer. Reflections that assert the gold answer
(`reflectevo_tasks.leaks.asserts_gold`, with its measured error) are dropped everywhere and
counted per answer kind.

Code items are scored by running their programs again in the sandbox (all of a run's at once, in
parallel; --allow_unisolated_code as for gen run where no isolated sandbox can be built). Their
reflection and retry prompts showed the first failing test of trial 1, so every row of a set that
holds code items carries it as `trial1_feedback` (None for other items), and training rebuilds the
prompts with it.

Near-duplicate texts: equal after normalisation (lower case, punctuation and runs of white space
removed), or word-trigram Jaccard similarity at or above `near_duplicate` (0.8 by default).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo.chunk_store import read_records, write_atomic
from reflectevo_tasks import prompts
from reflectevo_tasks import answers, bbh, bbh_split, code_scoring, leaks
from reflectevo_tasks.answers import CODE, CORRECT
from reflectevo_tasks.questions import Question

CONFIGS = ("raw", "d_plus", "d_pm", "d_pref", "sft_qa")
TRAINING_CONFIGS = CONFIGS[1:]
RANKINGS = ("loglik", "judge")


# The noise of the log-likelihood ranking, measured on the committed training data
# (leaderboards/measured/training-data/raw.jsonl; the embedded model on CPU, float32; `margin_noise`):
# every reflection Dpref could rank (10 non-leaking reflections with a right retry, 6 questions) was
# scored as written and again with its white space re-laid (blank lines collapsed; line breaks made
# spaces; one sentence per line), which changes no word. Over the 24 re-laid variants the score moved
# by 0.007 to 0.56 (median 0.14); the 95th percentile (nearest rank) is 0.32. A pair whose margin is
# smaller is ordered by layout as much as by content. 24 variants is a small sample: re-measure with
# `margin_noise` on a larger run and pass --min_margin (or curate.min_margin in a loop file).
MARGIN_NOISE = 0.32


@dataclass
class CurateOptions:
    max_pairs: int = 4
    near_duplicate: float = 0.8  # word-trigram Jaccard at or above which two texts are one
    ranking: str = "loglik"
    min_margin: float = MARGIN_NOISE  # Dpref (loglik) pairs with a smaller score margin are dropped
    allow_unisolated_code: bool = False  # code items: run their programs unisolated where no sandbox can be built


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _trigrams(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def _similar(a: str, b: str, threshold: float) -> bool:
    if _normalised(a) == _normalised(b):
        return True
    ta, tb = _trigrams(a), _trigrams(b)
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) >= threshold


def _reflection_text(rec: dict) -> str:
    return rec["reflection"]["output"].strip()


def _question(rec: dict) -> Question:
    return Question.from_dict(rec["question"])


def _common(rec: dict) -> dict:
    q = rec["question"]
    return {"question_id": rec["question_id"], "source": rec["source"], "question": q["question"], "gold": rec["gold"],
            "kind": q["kind"], "question_json": json.dumps(q, ensure_ascii=False), "trial1": rec["trial1"]["output"]}


def _dedupe(recs: list[dict], threshold: float, text=_reflection_text) -> list[dict]:
    """The records in order, less any whose `text` is a near-duplicate of an earlier kept one."""
    kept: list[dict] = []
    for r in recs:
        if not any(_similar(text(r), text(k), threshold) for k in kept):
            kept.append(r)
    return kept


def _retry_text(rec: dict) -> str:
    return rec["retry"]["output"].strip()


def spread_pairs(k: int, m: int, cap: int) -> list[tuple[int, int]]:
    """Up to `cap` distinct (chosen, rejected) index pairs out of k x m, walked along diagonals so
    that the first pairs cover the longer side once while cycling through the shorter one: with a
    cap of 4 they use min(k, 4) distinct chosen and min(m, 4) distinct rejected where k x m allows."""
    pairs: list[tuple[int, int]] = []
    if k <= 0 or m <= 0 or cap <= 0:
        return pairs
    if k >= m:
        for d in range(m):
            pairs += [(i, (i + d) % m) for i in range(k)]
            if len(pairs) >= cap:
                break
    else:
        for d in range(k):
            pairs += [((j + d) % k, j) for j in range(m)]
            if len(pairs) >= cap:
                break
    return pairs[:cap]


def spread_combinations(n: int, cap: int) -> list[tuple[int, int]]:
    """Up to `cap` unordered pairs of n items, neighbours first ((0,1), (1,2), ..., then (0,2), ...),
    so the first pairs do not all share item 0."""
    pairs: list[tuple[int, int]] = []
    for d in range(1, n):
        pairs += [(i, i + d) for i in range(n - d)]
        if len(pairs) >= cap:
            break
    return pairs[:cap]


def _flatten_raw(rec: dict) -> dict:
    """The raw config keeps every field; nested parts as JSON strings so all rows share a schema."""
    out = {}
    for k, v in rec.items():
        out[k] = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) or v is None else v
    return out


def _loglik_request(rec: dict, reflection: str):
    q = _question(rec)
    p = prompts.retry_prompt(q, rec["trial1"]["output"], reflection, rec["trial1"]["outcome"],
                             feedback_text=_trial1_feedback(rec, q))
    return p, prompts.gold_reply(q)


def rank_pairs_loglik(pairs: list[tuple[dict, dict]], engine) -> list[tuple[float, float]]:
    """log P(gold answer line | retry context with the reflection), for both sides of each pair."""
    requests = [_loglik_request(rec, _reflection_text(rec)) for a, b in pairs for rec in (a, b)]
    scores = engine.loglikelihood(requests)
    return [(scores[2 * i], scores[2 * i + 1]) for i in range(len(pairs))]


def _relaid(text: str) -> list[str]:
    """The same words with the white space laid out differently: blank lines collapsed, every line
    break turned into a space, one sentence per line. Only variants that differ from the text count."""
    variants = [re.sub(r"\n\s*\n+", "\n", text), " ".join(text.split()), re.sub(r"(?<=[.!?]) +(?=\S)", "\n", text)]
    return list(dict.fromkeys(v for v in variants if v != text))


def margin_noise(records: list[dict], engine, options: CurateOptions | None = None) -> list[float]:
    """How far the log-likelihood score moves when a reflection's white space is re-laid and no
    word changes: |score(variant) - score(as written)| for every variant of every reflection that
    Dpref could rank (non-leaking reflections whose retry was right). The default `min_margin` is
    the 95th percentile of these on the measured training data (MARGIN_NOISE)."""
    opts = options or CurateOptions()
    by_q: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_q[r["question_id"]].append(r)
    # a run made before the split, or records put together by hand, must not turn test items into training data
    bbh_split.refuse_test_items([_question(recs[0]) for recs in by_q.values()], "curation input")
    requests, owners = [], []
    for qid in sorted(by_q):
        q = _question(by_q[qid][0])
        right = [r for r in by_q[qid] if r["reflection"] is not None and _reflection_text(r)
                 and not leaks.asserts_gold(_reflection_text(r), q.answer, q.spec, q.question)
                 and _outcome(r["retry"]["output"], q) == CORRECT]
        for r in _dedupe(right, opts.near_duplicate):
            variants = _relaid(_reflection_text(r))
            if variants:
                owners.append(len(variants))
                requests += [_loglik_request(r, t) for t in [_reflection_text(r), *variants]]
    scores = engine.loglikelihood(requests) if requests else []
    diffs, at = [], 0
    for n in owners:
        base = scores[at]
        diffs += [abs(scores[at + 1 + i] - base) for i in range(n)]
        at += 1 + n
    return diffs


def rank_pairs_judge(pairs: list[tuple[dict, dict]], engine) -> list[tuple[float, float]]:
    """Wins out of two (both presentation orders) from a pairwise judge prompt."""
    from reflectevo_tasks.engine import Sampling

    reqs = []
    for a, b in pairs:
        q = _question(a)
        reqs.append(prompts.judge_prompt(q, a["trial1"]["output"], _reflection_text(a), _reflection_text(b)))
        reqs.append(prompts.judge_prompt(q, a["trial1"]["output"], _reflection_text(b), _reflection_text(a)))
    outs = engine.generate(reqs, Sampling(max_new_tokens=8))

    def pick(text: str) -> int | None:
        m = re.search(r"Reflection\s*([12])", text)
        return int(m.group(1)) if m else None

    scores = []
    for i in range(len(pairs)):
        first, second = pick(outs[2 * i]), pick(outs[2 * i + 1])
        a_wins = (first == 1) + (second == 2)
        b_wins = (first == 2) + (second == 1)
        scores.append((float(a_wins), float(b_wins)))
    return scores


def _outcome(output: str, q: Question) -> str:
    """The verdict curation uses: `answers.score` at whatever level it returns."""
    return answers.score(output, q.answer, q.spec).outcome


def _trial1_feedback(rec: dict, q: Question) -> str | None:
    """What the reflection and retry prompts of a record showed beyond the verdict (code: the first
    failing test of trial 1), as the current scorer gives it."""
    return answers.score(rec["trial1"]["output"], q.answer, q.spec).feedback if q.kind == CODE else None


def _prepare_code(records: list[dict]) -> bool:
    """Run every program of the records' code items (trial 1, retries, and the reflections the leak
    filter reads) in the sandbox at once, in parallel; False when there are none."""
    pairs = []
    for r in records:
        q = _question(r)
        if q.kind != CODE:
            continue
        spec = q.spec
        pairs.append((r["trial1"]["output"], spec))
        if r.get("reflection") is not None:
            pairs += [(r["reflection"]["output"], spec), (r["retry"]["output"], spec)]
    if pairs:
        code_scoring.check_sandbox("gen curate")
        code_scoring.prepare(pairs)
    return bool(pairs)


def curate(records: list[dict], options: CurateOptions | None = None, engine=None) -> dict:
    """Build all configs from records. Needs an engine only for Dpref ranking."""
    opts = options or CurateOptions()
    with code_scoring.allowing_unisolated(opts.allow_unisolated_code):
        return _curate(records, opts, engine)


def _curate(records: list[dict], opts: CurateOptions, engine) -> dict:
    if opts.ranking not in RANKINGS:
        raise UserError(f"--ranking: expected one of {', '.join(RANKINGS)}, got {opts.ranking!r}")
    if not (isinstance(opts.min_margin, (int, float)) and opts.min_margin >= 0):
        raise UserError(f"--min_margin: expected a number >= 0, got {opts.min_margin!r}")
    by_q: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_q[r["question_id"]].append(r)
    # a run made before the split, or records put together by hand, must not turn test items into training data
    bbh_split.refuse_test_items([_question(recs[0]) for recs in by_q.values()], "curation input")
    has_code = _prepare_code(records)
    out = {c: [] for c in CONFIGS}
    out["raw"] = [_flatten_raw(r) for r in records]
    counts = {"leaked_by_kind": defaultdict(int), "reflections_by_kind": defaultdict(int), "d_plus_duplicates": 0,
              "chosen": set(), "rejected": set()}
    pref_candidates: list[tuple[dict, dict]] = []
    for qid in sorted(by_q):
        recs = by_q[qid]
        first = recs[0]
        q = _question(first)
        if _outcome(first["trial1"]["output"], q) == CORRECT:
            out["sft_qa"].append({**_common(first), "answer": first["trial1"]["output"]})
            continue
        clean = []
        for r in recs:
            if r["reflection"] is None or not _reflection_text(r):
                continue
            counts["reflections_by_kind"][q.kind] += 1
            if leaks.asserts_gold(_reflection_text(r), q.answer, q.spec, q.question):
                counts["leaked_by_kind"][q.kind] += 1
            else:
                clean.append(r)
        right, wrong = [], []
        for r in clean:
            (right if _outcome(r["retry"]["output"], q) == CORRECT else wrong).append(r)
        d_plus = _dedupe(right, opts.near_duplicate, text=_retry_text)
        counts["d_plus_duplicates"] += len(right) - len(d_plus)
        for r in d_plus:
            out["d_plus"].append({**_common(r), "reflection": _reflection_text(r), "retry": r["retry"]["output"],
                                  "instruction_id": r["reflection"]["instruction_id"], "record_id": r["record_id"]})
        right_u, wrong_u = _dedupe(right, opts.near_duplicate), _dedupe(wrong, opts.near_duplicate)
        for i, j in spread_pairs(len(right_u), len(wrong_u), opts.max_pairs):
            c, w = right_u[i], wrong_u[j]
            counts["chosen"].add(c["record_id"])
            counts["rejected"].add(w["record_id"])
            out["d_pm"].append({**_common(c), "chosen": _reflection_text(c), "rejected": _reflection_text(w),
                                "chosen_retry": c["retry"]["output"], "rejected_retry": w["retry"]["output"],
                                "chosen_record_id": c["record_id"], "rejected_record_id": w["record_id"]})
        pref_candidates += [(right_u[i], right_u[j]) for i, j in spread_combinations(len(right_u), opts.max_pairs)]
    ties = low_margin = 0
    if pref_candidates:
        if engine is None:
            raise UserError("ranking Dpref pairs needs a model; pass one (the generator by default)")
        ranker = rank_pairs_loglik if opts.ranking == "loglik" else rank_pairs_judge
        for (a, b), (sa, sb) in zip(pref_candidates, ranker(pref_candidates, engine)):
            if sa == sb:
                ties += 1
                continue
            if opts.ranking == "loglik" and abs(sa - sb) < opts.min_margin:
                low_margin += 1
                continue
            chosen, rejected, sc, sr = (a, b, sa, sb) if sa > sb else (b, a, sb, sa)
            out["d_pref"].append({**_common(chosen), "chosen": _reflection_text(chosen), "rejected": _reflection_text(rejected),
                                  "ranking": opts.ranking, "score_chosen": sc, "score_rejected": sr,
                                  "chosen_record_id": chosen["record_id"], "rejected_record_id": rejected["record_id"]})
    if has_code:  # one schema for every row of a set: the column is there, empty for other items
        feedback = {qid: _trial1_feedback(recs[0], _question(recs[0])) for qid, recs in by_q.items()}
        for config in ("d_plus", "d_pm", "d_pref", "sft_qa"):
            for row in out[config]:
                row["trial1_feedback"] = feedback[row["question_id"]]
    two = {qid for qid, recs in by_q.items() if bbh.has_two_answers(_question(recs[0]))}
    drops = {"two_answer_rows": {c: sum(row["question_id"] in two for row in out[c]) for c in TRAINING_CONFIGS},
             "leaks_by_kind": dict(sorted(counts["leaked_by_kind"].items())),
             "reflections_by_kind": dict(sorted(counts["reflections_by_kind"].items())),
             "d_plus_duplicates_dropped": counts["d_plus_duplicates"],
             "d_pm_distinct_chosen": len(counts["chosen"]), "d_pm_distinct_rejected": len(counts["rejected"]),
             "dpref_candidates": len(pref_candidates), "dpref_ties_dropped": ties, "dpref_low_margin_dropped": low_margin}
    out["stats"] = statistics(records, drops, opts)
    if has_code:
        out["stats"]["code_sandbox"] = code_scoring.describe()
    return out


def _words(text: str) -> int:
    return len(text.split())


def statistics(records: list[dict], drops: dict, opts: CurateOptions) -> dict:
    """Per source task: questions, wrong at trial 1, reflections, fixed, and mean lengths (words);
    then what curation dropped and why, and the leak filter's measured error."""
    rows: dict[str, dict] = {}
    questions_seen: set[str] = set()
    for r in records:
        task = r["source"]
        q = _question(r)
        row = rows.setdefault(task, {"questions": 0, "wrong_t1": 0, "reflections": 0, "fixed": 0, "q_fixed": set(),
                                     "len_q": [], "len_t1": [], "len_refl": [], "len_retry": []})
        if r["question_id"] not in questions_seen:
            questions_seen.add(r["question_id"])
            row["questions"] += 1
            row["wrong_t1"] += _outcome(r["trial1"]["output"], q) != CORRECT
            row["len_q"].append(_words(r["question"]["question"]))
            row["len_t1"].append(_words(r["trial1"]["output"]))
        if r["reflection"] is not None:
            row["reflections"] += 1
            row["len_refl"].append(_words(r["reflection"]["output"]))
            row["len_retry"].append(_words(r["retry"]["output"]))
            if _outcome(r["retry"]["output"], q) == CORRECT:
                row["fixed"] += 1
                row["q_fixed"].add(r["question_id"])

    def mean(xs):
        return round(sum(xs) / len(xs), 1) if xs else 0.0

    table = []
    for task in sorted(rows):
        row = rows[task]
        table.append({"source": task, "questions": row["questions"], "wrong_t1": row["wrong_t1"],
                      "reflections": row["reflections"], "fixed_reflections": row["fixed"],
                      "questions_fixed": len(row["q_fixed"]),
                      "share_fixed": round(row["fixed"] / row["reflections"], 3) if row["reflections"] else 0.0,
                      "mean_words_question": mean(row["len_q"]), "mean_words_trial1": mean(row["len_t1"]),
                      "mean_words_reflection": mean(row["len_refl"]), "mean_words_retry": mean(row["len_retry"])})
    total_refl = sum(t["reflections"] for t in table)
    total_fixed = sum(t["fixed_reflections"] for t in table)
    return {"per_source": table, "questions": len(questions_seen), "reflections": total_refl,
            "share_fixed": round(total_fixed / total_refl, 3) if total_refl else 0.0,
            "leaking_reflections_dropped": sum(drops["leaks_by_kind"].values()), **drops,
            "leak_filter": leak_filter_error(),
            # curate() refused any record of BBH's test split, so no row here is an evaluation item
            "bbh_split": bbh_split.describe(),
            # every fixed / not fixed verdict above is this scorer's (answers.score, the headline level)
            "scoring_version": answers.SCORING_VERSION, "scoring_level": answers.HEADLINE,
            "options": {"max_pairs": opts.max_pairs, "near_duplicate": opts.near_duplicate, "ranking": opts.ranking,
                        "min_margin": opts.min_margin}}


def leak_filter_error() -> dict:
    """The gold-leak filter and its error on the labelled set, as the card and stats.json quote it."""
    e = leaks.MEASURED_ERROR
    return {"filter": "reflectevo_tasks.leaks.asserts_gold", "labelled_set": leaks.LABELLED_SET,
            "labelled_reflections": e["rows"], "labelled_leaks": e["leaks"], "labelled_keeps": e["keeps"],
            "missed_leaks": e["missed"], "false_drops": e["false_drops"]}


def _share(n: int, d: int) -> str:
    return f"{n} of {d} ({100 * n / d:.1f}%)" if d else f"{n} of 0"


def stats_markdown(stats: dict, counts: dict[str, int]) -> str:
    lines = ["| source task | questions | wrong at t1 | reflections | fixed by retry | share fixed | words: question | trial 1 | reflection | retry |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in stats["per_source"]:
        lines.append(f"| {t['source']} | {t['questions']} | {t['wrong_t1']} | {t['reflections']} | {t['fixed_reflections']} | "
                     f"{100 * t['share_fixed']:.1f}% | {t['mean_words_question']} | {t['mean_words_trial1']} | "
                     f"{t['mean_words_reflection']} | {t['mean_words_retry']} |")
    lines.append("")
    lines.append("Rows per config: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + ". "
                 f"Reflections fixed after retry: {100 * stats['share_fixed']:.1f}% of {stats['reflections']}.")
    two = stats.get("two_answer_rows")
    if two is not None:
        lines.append("")
        lines.append("Rows on questions with two possible answers, where the verdict \"incorrect\" names the gold "
                     "(a retry can be right by elimination): "
                     + ", ".join(f"{c} {n} of {counts.get(c, 0)} ({counts.get(c, 0) - n} without them)" for c, n in two.items())
                     + ".")
    lines.append("")
    lines += ["| dropped or counted | n |", "|---|---|"]
    by_kind = stats.get("leaks_by_kind", {})
    refl_by_kind = stats.get("reflections_by_kind", {})
    kinds = ", ".join(f"{k} {_share(n, refl_by_kind.get(k, 0))}" for k, n in by_kind.items()) or "none"
    lines.append(f"| reflections that assert the gold answer (by answer kind: {kinds}) | {stats['leaking_reflections_dropped']} |")
    lines.append(f"| D+ rows whose retry copies an earlier one of the same question | {stats.get('d_plus_duplicates_dropped', 0)} |")
    lines.append(f"| D± distinct chosen / rejected reflections | {stats.get('d_pm_distinct_chosen', 0)} / "
                 f"{stats.get('d_pm_distinct_rejected', 0)} |")
    lines.append(f"| Dpref candidate pairs / tied / margin below {stats['options'].get('min_margin', 0)} | "
                 f"{stats.get('dpref_candidates', 0)} / {stats['dpref_ties_dropped']} / {stats.get('dpref_low_margin_dropped', 0)} |")
    f = stats.get("leak_filter")
    if f:
        lines.append("")
        lines.append(f"Gold-leak filter `{f['filter']}`, measured on {f['labelled_reflections']} labelled real reflections "
                     f"({f['labelled_set']}): missed leaks {_share(f['missed_leaks'], f['labelled_leaks'])} labelled leaks, "
                     f"false drops {_share(f['false_drops'], f['labelled_keeps'])} labelled keeps.")
    return "\n".join(lines)


def write_curated(result: dict, folder: str | Path, source_run: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for c in CONFIGS:
        write_atomic(folder / f"{c}.jsonl", [json.dumps(r, ensure_ascii=False) for r in result[c]])
        counts[c] = len(result[c])
    stats = result["stats"]
    write_atomic(folder / "stats.json", [json.dumps({**stats, "counts": counts, "source_run": source_run}, indent=1)])
    write_atomic(folder / "stats.md", [stats_markdown(stats, counts)])


def read_curated(folder: str | Path) -> dict[str, list[dict]]:
    folder = Path(folder)
    if not (folder / "stats.json").is_file():
        raise UserError(f"{folder}: not a curated folder (no stats.json); run `reflectevo gen curate` first")
    out = {}
    for c in CONFIGS:
        path = folder / f"{c}.jsonl"
        out[c] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out["stats"] = json.loads((folder / "stats.json").read_text())
    return out


class _LazyEngine:
    """Loads the ranking model only if there are Dpref pairs to rank."""

    def __init__(self, factory):
        self.factory, self.engine = factory, None

    def __getattr__(self, name):
        if self.engine is None:
            self.engine = self.factory()
        return getattr(self.engine, name)


def run_judge(run_folder: str, judge_model: str | None = None, batch_size: int = 16):
    """The model that ranks Dpref pairs: `judge_model`, else the run's own generator at its recorded
    revision, engine and dtype. Loaded on first use only."""

    def load():
        from reflectevo_tasks.engine import Engine, EngineConfig, parse_model_args

        cfg_path = Path(run_folder) / "run_config.json"
        ident = json.loads(cfg_path.read_text())["identity"] if cfg_path.is_file() else {}
        # the run's engine options too: vLLM on CPU needs e.g. enforce_eager and max_model_len again
        extra = parse_model_args(ident.get("model_args") or "", f"{cfg_path}: model_args")
        return Engine(EngineConfig(model=judge_model or ident.get("model") or "smollm2-135m-instruct",
                                   engine=ident.get("engine", "hf"), dtype=ident.get("dtype"),
                                   revision=None if judge_model else ident.get("model_revision"), batch_size=batch_size,
                                   model_args=extra))

    return _LazyEngine(load)


def read_raw_records(folder: str | Path) -> list[dict]:
    """The records of a curated folder's raw config (raw.jsonl keeps every record, its nested parts
    as JSON strings): curating them again needs no generation, e.g. after a scorer change."""
    path = Path(folder) / "raw.jsonl"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}: row {n} is not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {n} is not an object")
        out.append({k: json.loads(v) if isinstance(v, str) and (v[:1] in "{[" or v == "null") else v
                    for k, v in row.items()})
    ids = Counter(r.get("record_id") for r in out)
    doubled = sorted(i for i, c in ids.items() if c > 1)
    if doubled:
        raise UserError(f"{path}: record {doubled[0]} appears {ids[doubled[0]]} times (a doubled row)")
    return out


def curate_run(run_folder: str, output: str, options: CurateOptions | None = None, engine=None) -> dict:
    """Curate a generation run folder, or again the raw records of a curated folder."""
    folder = Path(run_folder)
    records = read_raw_records(folder) if (folder / "raw.jsonl").is_file() and not (folder / "parts").is_dir() \
        else read_records(run_folder)
    result = curate(records, options, engine)
    write_curated(result, output, str(run_folder))
    return result
