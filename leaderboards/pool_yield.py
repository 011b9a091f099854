"""What the pool generation has yielded so far, per subtask and per answer kind, and what the
issue's targets would cost at that rate (issue #32, item 2).

    .venv/bin/python -m leaderboards.pool_yield [--store leaderboards/measured/pool-gen] [--output FILE]

Reads the committed chunks (gzipped, as leaderboards/pool_generation.sh stores them) and counts with
the project's own definitions: verdicts from `answers.score` at the headline level (as curation
reads them, not the verdicts stored at generation time), leaks from the curation's leak filter,
and D+ rows from `curate` itself. The two-answer subtasks are counted apart: there a verdict of
"incorrect" names the gold, so a fix there teaches flipping rather than reflecting.
"""

from __future__ import annotations

import argparse
import gzip
import math
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from reflectevo.chunk_store import read_records
from reflectevo_gen.curate import CurateOptions, curate
from reflectevo_tasks import answers, leaks
from reflectevo_tasks.bbh import TWO_ANSWER_SUBTASKS
from reflectevo_tasks.questions import Question

STORE = Path(__file__).resolve().parent / "measured" / "pool-gen"
TARGET_D_PLUS = 250  # issue #32's target for the D+ set
POOL = "bbh-pool"


def stored_records(store: Path) -> list[dict]:
    """Every record of the committed chunks, read (and checked) as a run folder."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        (run / "parts").mkdir()
        shutil.copy(store / "run_config.json", run / "run_config.json")
        for packed in sorted((store / "parts").glob("chunk-*.jsonl.gz")):
            (run / "parts" / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(packed.read_bytes()))
        return read_records(run)


def _subtask(question_id: str) -> str:
    return question_id.split("/")[1]


def tally(records: list[dict]) -> dict[str, dict]:
    """Per subtask: questions, wrong or unanswered at trial 1, reflections, leaked, fixed retries (a
    clean reflection whose retry is right) and curated D+ rows."""
    rows: dict[str, dict] = defaultdict(lambda: dict.fromkeys(
        ("questions", "wrong_t1", "reflections", "leaked", "fixes", "d_plus"), 0))
    by_q: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_q[r["question_id"]].append(r)
    for qid, recs in by_q.items():
        q = Question.from_dict(recs[0]["question"])
        row = rows[_subtask(qid)]
        row["kind"] = q.kind
        row["questions"] += 1
        if answers.score(recs[0]["trial1"]["output"], q.answer, q.spec).outcome == answers.CORRECT:
            continue
        row["wrong_t1"] += 1
        for r in recs:
            if r["reflection"] is None:
                continue
            row["reflections"] += 1
            if leaks.asserts_gold(r["reflection"]["output"].strip(), q.answer, q.spec, q.question):
                row["leaked"] += 1
            elif answers.score(r["retry"]["output"], q.answer, q.spec).outcome == answers.CORRECT:
                row["fixes"] += 1
    # D+ as curation makes it (leak filter, near-duplicate retries dropped); no pairs, so no ranking model
    for r in curate(records, CurateOptions(max_pairs=0))["d_plus"]:
        rows[_subtask(r["question_id"])]["d_plus"] += 1
    return dict(rows)


def _rate(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "–"


def _line(name: str, kind: str, r: dict) -> str:
    per_q = r["d_plus"] / r["questions"] if r["questions"] else 0
    need = f"{math.ceil(TARGET_D_PLUS / per_q):,}" if per_q else "∞"
    return (f"| {name} | {kind} | {r['questions']} | {r['wrong_t1']} | {r['reflections']} | {r['leaked']} | "
            f"{r['fixes']} | {_rate(r['fixes'], r['reflections'] - r['leaked'])} | {r['d_plus']} | {need} |")


def _sum(rows) -> dict:
    rows = list(rows)
    keys = ("questions", "wrong_t1", "reflections", "leaked", "fixes", "d_plus")
    return {k: sum(r[k] for r in rows) for k in keys}


TURNS = (("trial 1", "trial1", "trial"), ("reflection", "reflection", "reflection"), ("retry", "retry", "retry"))


def reply_tokens(turn: dict, tokenizer) -> int:
    """A stored reply's new tokens as the lm-eval plugin counts them (its text after the reply prefix,
    retokenised)."""
    from harness_plugins.reflect_model import generated_tokens

    return generated_tokens(turn["output"], turn.get("reply_prefix") or "",
                            lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))


def cap_hits(records: list[dict], tokenizer) -> list[dict]:
    """Per turn: replies, the cap they were generated under and how many reached it (the plugin's rule,
    harness_plugins.reflect_model.reaches_cap). Trial 1 counts once per question (each of a question's
    records repeats it); reflections and retries once per record that has them."""
    from harness_plugins.reflect_model import reaches_cap

    seen, rows = set(), []
    for name, field, sampling in TURNS:
        caps, replies, reached = set(), 0, 0
        for r in records:
            turn = r.get(field)
            if not turn or turn.get("output") is None:
                continue
            if field == "trial1":
                if r["question_id"] in seen:
                    continue
                seen.add(r["question_id"])
            cap = r["sampling"][sampling]["max_new_tokens"]
            caps.add(cap)
            replies += 1
            reached += reaches_cap(reply_tokens(turn, tokenizer), cap)
        rows.append({"turn": name, "caps": sorted(caps), "replies": replies, "reached": reached})
    return rows


def cap_report(rows: list[dict]) -> list[str]:
    from reflectevo_tasks.stats import wilson_interval

    lines = ["## Replies that reached their token cap", "",
             "The plugin's rule (harness_plugins.reflect_model.reaches_cap): a reply whose text after its reply "
             "prefix, retokenised with the model's tokenizer, is at least cap − 3 tokens. In % with 95% Wilson "
             "intervals.", "", "| turn | cap (new tokens) | replies | reaching the cap |", "|---|---|---:|---|"]
    for r in rows:
        lo, hi = wilson_interval(r["reached"], r["replies"]) if r["replies"] else (None, None)
        share = (f"{100 * r['reached'] / r['replies']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] ({r['reached']}/{r['replies']})"
                 if r["replies"] else "–")
        lines.append(f"| {r['turn']} | {', '.join(map(str, r['caps'])) or '–'} | {r['replies']} | {share} |")
    return lines


def report(rows: dict[str, dict], store: Path, caps: list[dict] | None = None) -> str:
    head = ("| subtask | answer kind | questions | wrong at t1 | reflections | leaked | fixes | fixes per clean "
            "reflection | D+ rows | questions for 250 D+ at this rate |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"# Pool generation yield ({len(list((store / 'parts').glob('chunk-*')))} chunks committed)", "",
             "Generated by `python -m leaderboards.pool_yield` from the committed chunks of "
             "`leaderboards/pool_generation.sh` (settings in its header and `run_config.json`). Verdicts are "
             f"re-read with the current scorer (v{answers.SCORING_VERSION}, {answers.HEADLINE} level) as curation "
             "reads them; D+ rows are curation's own (leak filter and near-duplicate retries applied). The last "
             f"column divides the D+ target ({TARGET_D_PLUS}) by D+ rows per question so far: with a handful "
             "of questions per subtask it is a rough guide, and ∞ means no row yet.", "",
             "## Per subtask", "", head]
    order = sorted(rows, key=lambda s: (-rows[s]["d_plus"], s))
    lines += [_line(s + (" (two-answer)" if s in TWO_ANSWER_SUBTASKS else ""), rows[s]["kind"], rows[s]) for s in order]
    lines += ["", "## Per answer kind", "", head.replace("| subtask | answer kind |", "| answer kind | subtasks |")]
    kinds = defaultdict(list)
    for s, r in rows.items():
        kinds[r["kind"]].append(s)
    for kind in sorted(kinds):
        lines.append(_line(kind, str(len(kinds[kind])), _sum(rows[s] for s in kinds[kind])))
    two = [rows[s] for s in rows if s in TWO_ANSWER_SUBTASKS]
    rest = [rows[s] for s in rows if s not in TWO_ANSWER_SUBTASKS]
    lines += ["", "## All, and without the two-answer subtasks", "", head.replace("| subtask |", "| set |")]
    lines.append(_line("all", "–", _sum(rows.values())))
    lines.append(_line("two-answer subtasks", "–", _sum(two)))
    lines.append(_line("other subtasks", "–", _sum(rest)))
    if caps is not None:
        lines += [""] + cap_report(caps)
    return "\n".join(lines) + "\n"


def _tokenizer(records: list[dict]):
    """The embedded model's tokenizer, the one model the pool generation runs (refused for another)."""
    from transformers import AutoTokenizer

    from reflectevo.embedded_model import EMBEDDED_SHORT_NAME, embedded_model_dir
    from reflectevo.errors import UserError

    models = {r["models"][role]["model"] for r in records for role in ("generator", "reflector")}
    if models - {EMBEDDED_SHORT_NAME}:
        raise UserError(f"pool_yield: cap counts need the generating model's tokenizer; these records come from "
                        f"{', '.join(sorted(models))}, and only {EMBEDDED_SHORT_NAME} is known here")
    return AutoTokenizer.from_pretrained(embedded_model_dir())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--store", default=str(STORE), help="folder of run_config.json and parts/chunk-*.jsonl.gz")
    parser.add_argument("--output", default=None, help="markdown file to write (default: STORE/yield.md)")
    args = parser.parse_args(argv)
    store = Path(args.store)
    records = stored_records(store)
    text = report(tally(records), store, cap_hits(records, _tokenizer(records)))
    out = Path(args.output) if args.output else store / "yield.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
