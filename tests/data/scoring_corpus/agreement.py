"""Write agreement.md: how the scorer (reflectevo_tasks.answers.score) and lm-eval's own
`bbh_cot_zeroshot` filters agree with the corpus labels on the REAL replies.

lm-eval's side is computed with lm-eval's code: each subtask YAML of the installed
lm_eval/tasks/bbh/cot_zeroshot, loaded with lm-eval's YAML loader (so `!function utils.…` filters
resolve), its "strict-match" and "flexible-extract" filter chains, and its `exact_match` metric
with the YAML's ignore_case and regexes_to_ignore. lm-eval only says right or not right, so a
label agrees with it when (label verdict == correct) equals lm-eval's exact match. Only BBH rows
(trial 1, retries and one-stage replies) are compared with lm-eval; pool rows are not BBH.

Run from the repository root (tests/test_scoring_corpus.py checks the committed file is current):
    REFLECTEVO_BBH_DIR=../shared/data/bbh python tests/data/scoring_corpus/agreement.py
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus_rows import load, spec_of  # noqa: E402

OUT = HERE / "agreement.md"
LM_EVAL_FILTERS = {"strict": "strict-match", "flexible": "flexible-extract"}

# Why lm-eval's verdict differs from a label. Each class is a test on the row, the label and
# lm-eval's prediction; the first that holds names the disagreement. The descriptions go into
# agreement.md.
LM_EVAL_CLASSES = {
    "lm-eval-reads-first-marker": "lm-eval's strict-match takes the FIRST \"The answer is …\" of the reply; the "
                                  "label reads the LAST marker (the final answer statement)",
    "lm-eval-needs-its-marker-form": "lm-eval's strict-match knows only \"The answer is \", \"the answer is \", "
                                     "\"The answer: \", \"The final answer: \"; the label's marker is another form "
                                     "(\"The correct answer is\", \"answer is\" after \"So,\" is fine but "
                                     "\"the answer\" cut short is not)",
    "lm-eval-compares-whole-line": "lm-eval compares the whole rest of the marker line (\"(D) Lolita\", \"\\\"Yes\", "
                                   "\"Ye\" when the reply ends without a period) with the target; the label reads "
                                   "the candidate in it",
    "lm-eval-credits-a-refusal": "the label is no answer by a refusal rule (hedge, ruled out, enumeration, list cut "
                                 "off or run past the options, several numbers, a last sentence cut off) but "
                                 "lm-eval's filter picks one candidate out of it and it happens to be the target",
    "lm-eval-last-candidate-anywhere": "lm-eval's flexible-extract takes the last candidate anywhere in the reply "
                                       "(an echoed input, a later option, any digit run); the label reads the "
                                       "final answer statement or the last unit that names one",
    "lm-eval-finds-nothing": "lm-eval's filter finds nothing it can match (\"[invalid]\" or an empty string) or "
                             "a form its pattern lacks (a bare letter, option text, a number in words); the "
                             "label reads a committed answer",
}

SCORER_CLASSES = {
    "scorer-cycle-rule": "the scorer refuses a final answer statement when the last three answer statements "
                         "name three different options (its `_cycles` rule); RULES.md's list rule compares the "
                         "final statement with the one candidate-naming unit before it only, which here has "
                         "another lead-in (\"So the answer is (A)\" after \"The answer is (B).\") or names "
                         "the same option, so the label commits",
    "enumeration-of-two": "the final statement follows one built the same way that names another option "
                          "(\"The correct answer is (B).\\nThe correct answer is (C)\"): an enumeration by "
                          "RULES.md's list rule (decision 6); the scorer's cycle rule needs three",
    "integer-several-numbers": "the unit (or marker segment) names several numbers, an equation or a list of sums; "
                               "RULES.md (decision 4) refuses it, the scorer takes one number (the last, or the "
                               "result after \"=\")",
    "step-number": "the only numbers are step or list numbering (\"Step 1:\", \"8. 258\"); RULES.md (decision 5) "
                   "does not count them, the scorer does",
    "enumeration-in-steps": "the last units are \"Step N: The Nth option is (X).\" lines naming different options; "
                            "RULES.md's list rule (decision 6) makes them an enumeration, the scorer takes the last",
    "sentence-end-at-quote": "the marker sits in an echoed instruction ('So the answer is X.\" where X is ... like "
                             "(B).'); RULES.md ends the sentence at the closing quote, so the strict segment "
                             "names nothing; the scorer reads on to (B)",
    "marker-answer-was": "the only markers with a candidate say \"The answer was (B).\"; RULES.md counts "
                         "\"answer was\" as a marker (section 0), the scorer does not, so its strict level finds "
                         "no marker",
    "other": "none of the above: listed row by row for the lead to judge",
}


@lru_cache(maxsize=None)
def lm_eval_judge(subtask: str, filter_name: str):
    """A function (reply, target) -> (prediction, exact match) built from lm-eval's own YAML."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters import get_filter
    from lm_eval.tasks._yaml_loader import load_yaml

    task_dir = Path(list(find_spec("lm_eval").submodule_search_locations)[0]) / "tasks" / "bbh" / "cot_zeroshot"
    cfg = load_yaml(task_dir / f"{subtask}.yaml")
    chain = next(f for f in cfg["filter_list"] if f["name"] == filter_name)["filter"]
    filters = []
    for step in chain:
        fn = step["function"]
        kwargs = {k: v for k, v in step.items() if k != "function"}
        filters.append(fn(**kwargs) if callable(fn) else get_filter(fn)(**kwargs))
    metric = next(m for m in load_yaml(task_dir / "_cot_zeroshot_template_yaml")["metric_list"]
                  if m["metric"] == "exact_match")
    metric_kw = {k: v for k, v in metric.items() if k in ("ignore_case", "ignore_punctuation", "regexes_to_ignore")}

    def judge(reply: str, question: str, target: str):
        resps = [[reply]]
        for f in filters:
            resps = list(f.apply(resps, [{"input": question, "target": target}]))  # some return lazy maps
        first = resps[0]
        pred = first if isinstance(first, str) else list(first)[0]
        return pred, exact_match_hf_evaluate([pred], [target], **metric_kw)["exact_match"] == 1.0

    return judge


_LM_STRICT = re.compile(r"(?<=The answer is )(.*)(?=.)|(?<=the answer is )(.*)(?=.)|(?<=The answer: )(.*)(?=.)"
                        r"|(?<=The final answer: )(.*)(?=.)")
REFUSAL_RULES = {"M3", "M4", "M8", "F2", "F3", "F4", "F7", "F8"}


def classify_lm_eval(row: dict, level: str, pred: str, lm_right: bool) -> str:
    lab = row[f"expected_{level}"]
    if lm_right and lab["verdict"] == "no_answer" and row["rule"] in REFUSAL_RULES:
        return "lm-eval-credits-a-refusal"
    if pred in ("[invalid]", "") and lab["verdict"] == "correct":
        return "lm-eval-finds-nothing"
    if level == "strict":
        hits = [m for m in _LM_STRICT.finditer(row["reply"])]
        if len(hits) > 1 and lm_right != (lab["verdict"] == "correct"):
            last = next(g for g in hits[-1].groups() if g is not None)
            if last.strip() != pred.strip():
                return "lm-eval-reads-first-marker"
        if hits and lab["verdict"] == "correct" and not lm_right:
            return "lm-eval-compares-whole-line"
        if not hits and lab["answer"] is not None:
            return "lm-eval-needs-its-marker-form"
        if lm_right and lab["verdict"] == "no_answer":
            return "lm-eval-needs-its-marker-form" if not hits else "lm-eval-compares-whole-line"
    else:
        if lab["verdict"] == "correct" and not lm_right:
            return "lm-eval-finds-nothing" if row["kind"] == "choice" and not re.search(r"\([A-Z]\)", row["reply"]) \
                else "lm-eval-last-candidate-anywhere"
        return "lm-eval-last-candidate-anywhere"
    return "unclassified"


def classify_scorer(row: dict, level: str, verdict) -> str:
    lab = row[f"expected_{level}"]
    got = verdict.extracted if verdict.outcome != "no_answer" else None
    if verdict.refusal == "enumeration" and lab["answer"] is not None and row["rule"] in ("M1", "M2"):
        return "scorer-cycle-rule"
    if row["rule"] == "M8" and got is not None:
        return "enumeration-of-two"
    if row["kind"] == "integer" and got is not None and lab["answer"] is None:
        if row["rule"] in ("M3", "F2"):
            return "integer-several-numbers"
        if row["rule"] == "N1" or re.search(rf"(?m)^(?:Step\s+)?{re.escape(got)}[.:)]", row["reply"]):
            return "step-number"
    if row["rule"] == "F4" and got is not None and re.search(r"(?m)^Step \d+: The \w+ option is", row["reply"]):
        return "enumeration-in-steps"
    if level == "strict" and row["rule"] == "F1" and got is not None and re.search(r'answer is X\."', row["reply"]):
        return "sentence-end-at-quote"
    if level == "strict" and got is None and lab["answer"] is not None and re.search(r"answer was", row["reply"]):
        return "marker-answer-was"
    return "other"


def compute(rows: list[dict]) -> dict:
    from reflectevo_tasks import answers as A

    real = [r for r in rows if r["origin"] == "real"]
    written = [r for r in rows if r["origin"] == "written"]
    out = {"real": len(real), "written": len(written), "scorer": {}, "scorer_written": {}, "lm_eval": {},
           "lm_scorer": {}, "mismatch_rows": [], "lm_rows": []}
    for level in A.LEVELS:
        for group, key in ((real, "scorer"), (written, "scorer_written")):
            agree, classes = 0, Counter()
            for r in group:
                v = A.score(r["reply"], r["gold"], spec_of(r), level=level)
                lab = r[f"expected_{level}"]
                got = {"verdict": v.outcome, "answer": v.extracted if v.outcome != A.NO_ANSWER else None}
                if got == lab:
                    agree += 1
                    continue
                why = classify_scorer(r, level, v)
                classes[why] += 1
                if key == "scorer":
                    out["mismatch_rows"].append((r["id"], level, r["rule"], lab, got, v.refusal, why))
            out[key][level] = (agree, len(group), classes)
    bbh_real = [r for r in real if r.get("spec_from") == "bbh"]
    for level, filt in LM_EVAL_FILTERS.items():
        agree, classes, agree_scorer = 0, Counter(), 0
        for r in bbh_real:
            pred, right = lm_eval_judge(r["subtask"], filt)(r["reply"], r["question"], r["gold"])
            lab = r[f"expected_{level}"]
            ours = A.score(r["reply"], r["gold"], spec_of(r), level=level).correct
            agree_scorer += ours == right
            if (lab["verdict"] == "correct") == right:
                agree += 1
                continue
            why = classify_lm_eval(r, level, pred, right)
            classes[why] += 1
            out["lm_rows"].append((r["id"], level, r["rule"], lab["verdict"], lab["answer"], pred, right, why))
        out["lm_eval"][level] = (agree, len(bbh_real), classes)
        out["lm_scorer"][level] = (agree_scorer, len(bbh_real))
    return out


def _pct(a: int, n: int) -> str:
    return f"{a}/{n} ({100 * a / n:.1f}%)" if n else "0/0"


def _short(x) -> str:
    s = "—" if x is None else str(x)
    return s.replace("|", "\\|").replace("\n", "\\n")[:60]


def render(res: dict, corpus: list[dict]) -> str:
    lines = ["# Scoring corpus: agreement on the real replies", "",
             "Generated by `tests/data/scoring_corpus/agreement.py` (do not edit by hand; "
             "`tests/test_scoring_corpus.py` checks it is current).", "",
             f"Corpus: {res['real']} real replies, {res['written']} written cases. Labels follow RULES.md.", ""]
    kinds = Counter((r["origin"], r["kind"]) for r in corpus)
    lines += ["## Corpus size", "", "| kind | real | written |", "|---|---|---|"]
    for kind in sorted({k for _, k in kinds}):
        lines.append(f"| {kind} | {kinds[('real', kind)]} | {kinds[('written', kind)]} |")
    turns = Counter(r.get("turn") for r in corpus if r["origin"] == "real")
    rules = Counter((r["origin"], r["rule"]) for r in corpus)
    lines += ["", "Real replies by turn: " + ", ".join(f"{t} {n}" for t, n in sorted(turns.items())), "",
              "| rule | real | written |", "|---|---|---|"]
    for rule in sorted({r for _, r in rules}):
        lines.append(f"| {rule} | {rules[('real', rule)]} | {rules[('written', rule)]} |")
    lines += ["", "## The scorer against the labels", "",
              "`reflectevo_tasks.answers.score(reply, gold, spec, level=...)`; agreement means the same verdict and "
              "the same canonical answer.", "", "| level | real | written |", "|---|---|---|"]
    for level in res["scorer"]:
        a, n, _ = res["scorer"][level]
        aw, nw, _ = res["scorer_written"][level]
        lines.append(f"| {level} | {_pct(a, n)} | {_pct(aw, nw)} |")
    lines += ["", "Real replies where the scorer and the label differ (the lead decides which is wrong):", ""]
    if res["mismatch_rows"]:
        classes = Counter(row[-1] for row in res["mismatch_rows"])
        for name, n in classes.most_common():
            lines.append(f"- **{name}** ({n}): {SCORER_CLASSES[name]}")
        lines += ["", "| id | level | rule | label | scorer | refusal | class |", "|---|---|---|---|---|---|---|"]
        for rid, level, rule, lab, got, refusal, why in res["mismatch_rows"]:
            lines.append(f"| {rid} | {level} | {rule} | {lab['verdict']} {_short(lab['answer'])} | "
                         f"{got['verdict']} {_short(got['answer'])} | {_short(refusal)} | {why} |")
    else:
        lines.append("none.")
    lines += ["", "## lm-eval `bbh_cot_zeroshot` against the labels", "",
              "BBH real replies only (trial 1, retries and one-stage). strict-match is compared with the strict label, "
              "flexible-extract with the flexible label.", "",
              "| level | lm-eval filter | agrees with the labels | agrees with the scorer |", "|---|---|---|---|"]
    for level, filt in LM_EVAL_FILTERS.items():
        a, n, _ = res["lm_eval"][level]
        s, _ = res["lm_scorer"][level]
        lines.append(f"| {level} | {filt} | {_pct(a, n)} | {_pct(s, n)} |")
    lines += ["", "Disagreements with the labels, by class:", ""]
    all_classes = Counter(row[-1] for row in res["lm_rows"])
    for level in LM_EVAL_FILTERS:
        _, _, classes = res["lm_eval"][level]
        lines.append(f"- {level}: " + (", ".join(f"{k} {v}" for k, v in classes.most_common()) or "none"))
    lines += ["", "Classes:", ""]
    for name in LM_EVAL_CLASSES:
        if all_classes[name]:
            lines.append(f"- **{name}**: {LM_EVAL_CLASSES[name]}")
    lines += ["", "| id | level | rule | label | lm-eval prediction | lm-eval right | class |",
              "|---|---|---|---|---|---|---|"]
    for rid, level, rule, verdict, answer, pred, right, why in res["lm_rows"]:
        lines.append(f"| {rid} | {level} | {rule} | {verdict} {_short(answer)} | {_short(pred)} | "
                     f"{'yes' if right else 'no'} | {why} |")
    return "\n".join(lines) + "\n"


def generate() -> str:
    corpus = load()
    return render(compute(corpus), corpus)


def main() -> None:
    OUT.write_text(generate(), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
