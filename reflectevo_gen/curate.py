"""Curation of generation records into the training sets of the paper, plus statistics.

- `d_plus`: trial 1 wrong, retry right (setting I and II data).
- `d_pm`  (D±): same question and trial 1; chosen = a reflection whose retry was right, rejected =
  one whose retry was wrong; at most `max_pairs` per question; near-duplicate reflections dropped.
- `d_pref`: pairs of reflections whose retries were both right, ranked by a judge model (pairwise
  prompt, both orders) or judge-free by the log-likelihood of the gold answer in the retry context.
- `sft_qa`: question → a correct trial-1 answer (the SFT baseline).
Reflections that give the gold answer away are dropped everywhere and counted.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_gen.store import read_records, write_atomic
from reflectevo_tasks import prompts
from reflectevo_tasks.answers import CORRECT, mentions_answer
from reflectevo_tasks.questions import Question

CONFIGS = ("raw", "d_plus", "d_pm", "d_pref", "sft_qa")
RANKINGS = ("loglik", "judge")


@dataclass
class CurateOptions:
    max_pairs: int = 4
    near_duplicate: float = 0.8  # word-trigram Jaccard at or above which two reflections are one
    ranking: str = "loglik"


def _trigrams(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def _similar(a: str, b: str, threshold: float) -> bool:
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


def _dedupe(recs: list[dict], threshold: float) -> list[dict]:
    kept: list[dict] = []
    for r in recs:
        if not any(_similar(_reflection_text(r), _reflection_text(k), threshold) for k in kept):
            kept.append(r)
    return kept


def _flatten_raw(rec: dict) -> dict:
    """The raw config keeps every field; nested parts as JSON strings so all rows share a schema."""
    out = {}
    for k, v in rec.items():
        out[k] = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) or v is None else v
    return out


def rank_pairs_loglik(pairs: list[tuple[dict, dict]], engine) -> list[tuple[float, float]]:
    """log P(gold answer line | retry context with the reflection), for both sides of each pair."""
    requests = []
    for a, b in pairs:
        for rec in (a, b):
            q = _question(rec)
            p = prompts.retry_prompt(q, rec["trial1"]["output"], _reflection_text(rec), rec["trial1"]["outcome"])
            requests.append((p, f" {prompts.ANSWER_LINE} {q.answer}."))
    scores = engine.loglikelihood(requests)
    return [(scores[2 * i], scores[2 * i + 1]) for i in range(len(pairs))]


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


def curate(records: list[dict], options: CurateOptions | None = None, engine=None) -> dict:
    """Build all configs from records. Needs an engine only for Dpref ranking."""
    opts = options or CurateOptions()
    if opts.ranking not in RANKINGS:
        raise UserError(f"--ranking: expected one of {', '.join(RANKINGS)}, got {opts.ranking!r}")
    by_q: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_q[r["question_id"]].append(r)
    out = {c: [] for c in CONFIGS}
    out["raw"] = [_flatten_raw(r) for r in records]
    leaked = 0
    pref_candidates: list[tuple[dict, dict]] = []
    for qid in sorted(by_q):
        recs = by_q[qid]
        first = recs[0]
        if first["trial1"]["outcome"] == CORRECT:
            out["sft_qa"].append({**_common(first), "answer": first["trial1"]["output"]})
            continue
        refl = [r for r in recs if r["reflection"] is not None]
        q = _question(first)
        clean = []
        for r in refl:
            if mentions_answer(_reflection_text(r), q.answer, q.spec):
                leaked += 1
            elif _reflection_text(r):
                clean.append(r)
        right = [r for r in clean if r["retry"]["outcome"] == CORRECT]
        wrong = [r for r in clean if r["retry"]["outcome"] != CORRECT]
        for r in right:
            out["d_plus"].append({**_common(r), "reflection": _reflection_text(r), "retry": r["retry"]["output"],
                                  "instruction_id": r["reflection"]["instruction_id"], "record_id": r["record_id"]})
        right_u, wrong_u = _dedupe(right, opts.near_duplicate), _dedupe(wrong, opts.near_duplicate)
        for c, w in list(itertools.product(right_u, wrong_u))[: opts.max_pairs]:
            out["d_pm"].append({**_common(c), "chosen": _reflection_text(c), "rejected": _reflection_text(w),
                                "chosen_retry": c["retry"]["output"], "rejected_retry": w["retry"]["output"],
                                "chosen_record_id": c["record_id"], "rejected_record_id": w["record_id"]})
        pref_candidates += list(itertools.combinations(right_u, 2))[: opts.max_pairs]
    if pref_candidates:
        if engine is None:
            raise UserError("ranking Dpref pairs needs a model; pass one (the generator by default)")
        ranker = rank_pairs_loglik if opts.ranking == "loglik" else rank_pairs_judge
        ties = 0
        for (a, b), (sa, sb) in zip(pref_candidates, ranker(pref_candidates, engine)):
            if sa == sb:
                ties += 1
                continue
            chosen, rejected, sc, sr = (a, b, sa, sb) if sa > sb else (b, a, sb, sa)
            out["d_pref"].append({**_common(chosen), "chosen": _reflection_text(chosen), "rejected": _reflection_text(rejected),
                                  "ranking": opts.ranking, "score_chosen": sc, "score_rejected": sr,
                                  "chosen_record_id": chosen["record_id"], "rejected_record_id": rejected["record_id"]})
    else:
        ties = 0
    out["stats"] = statistics(records, leaked, ties, opts)
    return out


def _words(text: str) -> int:
    return len(text.split())


def statistics(records: list[dict], leaked: int, ties: int, opts: CurateOptions) -> dict:
    """Per source task: questions, wrong at trial 1, reflections, fixed, and mean lengths (words)."""
    rows: dict[str, dict] = {}
    questions_seen: set[str] = set()
    for r in records:
        task = r["source"]
        row = rows.setdefault(task, {"questions": 0, "wrong_t1": 0, "reflections": 0, "fixed": 0, "q_fixed": set(),
                                     "len_q": [], "len_t1": [], "len_refl": [], "len_retry": []})
        if r["question_id"] not in questions_seen:
            questions_seen.add(r["question_id"])
            row["questions"] += 1
            row["wrong_t1"] += r["trial1"]["outcome"] != CORRECT
            row["len_q"].append(_words(r["question"]["question"]))
            row["len_t1"].append(_words(r["trial1"]["output"]))
        if r["reflection"] is not None:
            row["reflections"] += 1
            row["len_refl"].append(_words(r["reflection"]["output"]))
            row["len_retry"].append(_words(r["retry"]["output"]))
            if r["retry"]["outcome"] == CORRECT:
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
            "leaking_reflections_dropped": leaked, "dpref_ties_dropped": ties,
            "options": {"max_pairs": opts.max_pairs, "near_duplicate": opts.near_duplicate, "ranking": opts.ranking}}


def stats_markdown(stats: dict, counts: dict[str, int]) -> str:
    lines = ["| source task | questions | wrong at t1 | reflections | fixed by retry | share fixed | words: question | trial 1 | reflection | retry |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in stats["per_source"]:
        lines.append(f"| {t['source']} | {t['questions']} | {t['wrong_t1']} | {t['reflections']} | {t['fixed_reflections']} | "
                     f"{100 * t['share_fixed']:.1f}% | {t['mean_words_question']} | {t['mean_words_trial1']} | "
                     f"{t['mean_words_reflection']} | {t['mean_words_retry']} |")
    lines.append("")
    lines.append("Rows per config: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + ". "
                 f"Reflections fixed after retry: {100 * stats['share_fixed']:.1f}% of {stats['reflections']}. "
                 f"Dropped: {stats['leaking_reflections_dropped']} reflections that stated the gold answer, "
                 f"{stats['dpref_ties_dropped']} tied Dpref pairs.")
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
        from reflectevo_tasks.engine import Engine, EngineConfig

        cfg_path = Path(run_folder) / "run_config.json"
        ident = json.loads(cfg_path.read_text())["identity"] if cfg_path.is_file() else {}
        return Engine(EngineConfig(model=judge_model or ident.get("model") or "smollm2-135m-instruct",
                                   engine=ident.get("engine", "hf"), dtype=ident.get("dtype"),
                                   revision=None if judge_model else ident.get("model_revision"), batch_size=batch_size))

    return _LazyEngine(load)


def curate_run(run_folder: str, output: str, options: CurateOptions | None = None, engine=None) -> dict:
    records = read_records(run_folder)
    result = curate(records, options, engine)
    write_curated(result, output, str(run_folder))
    return result
