"""Write real.jsonl: real replies of the embedded model (SmolLM2-135M-Instruct), each with the
labels a reader gave it under RULES.md (labels_real.txt), never labels from a scorer.

Sources (the `source` field of each row names file and record):
- tests/data/bbh_outputs.jsonl: trial-1 replies on BBH (key bbh:<subtask>/<index>);
- leaderboards/measured/training-data/raw.jsonl: the BIG-bench pool, trial-1 replies
  (key pool:<question id>:trial1) and retries (key pool:<record id>:retry);
- one-stage replies (key onestage:<subtask>/<index>): not stored in the repository, so they come
  from an lm-eval run's --log_samples folder given with --onestage DIR (reflectevo model,
  one_stage=true, mode=intrinsic; the reply is the trajectory's trial2 reply). Without --onestage
  the one-stage rows already in real.jsonl are kept as they are;
- the measured leaderboard's resume folders, leaderboards/measured/resume/<row>/parts/*.jsonl: BBH
  trajectories of every protocol (key resume:<row>:<subtask>/<index>:<trial1|trial2>; a trial2 is a
  retry or a one-stage reply, as its "from" says).

Run from the repository root:
    REFLECTEVO_BBH_DIR=../shared/data/bbh python tests/data/scoring_corpus/build_real.py [--onestage DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))

from corpus_rows import canonical_gold, check_row, label, question_fields  # noqa: E402

LABELS = HERE / "labels_real.txt"
OUT = HERE / "real.jsonl"
BBH_FILE = "tests/data/bbh_outputs.jsonl"
POOL_FILE = "leaderboards/measured/training-data/raw.jsonl"
RESUME_DIR = "leaderboards/measured/resume"


def read_labels() -> list[tuple[str, str, str | None, str | None, str]]:
    out = []
    for n, line in enumerate(LABELS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise SystemExit(f"{LABELS}:{n}: expected key|rule|strict|flexible|note, got {len(parts)} fields")
        key, rule, strict, flexible, note = parts
        out.append((key, rule, None if strict == "-" else strict, None if flexible == "-" else flexible, note))
    return out


def bbh_replies() -> dict[str, dict]:
    rows = [json.loads(x) for x in (ROOT / BBH_FILE).read_text().splitlines()]
    return {f"bbh:{r['subtask']}/{r['index']}": r for r in rows}


def pool_replies() -> dict[str, tuple[dict, str, str]]:
    """key -> (record, turn, reply)."""
    out = {}
    for line in (ROOT / POOL_FILE).read_text().splitlines():
        rec = json.loads(line)
        trial1 = json.loads(rec["trial1"])
        out.setdefault(f"pool:{rec['question_id']}:trial1", (rec, "trial1", trial1["output"]))
        if rec.get("retry") and rec["retry"] != "null":
            out[f"pool:{rec['record_id']}:retry"] = (rec, "retry", json.loads(rec["retry"])["output"])
    return out


def resume_replies() -> dict[str, tuple[str, str, str]]:
    """key -> (chunk file, turn, reply) for every BBH trajectory of the resume folders."""
    out = {}
    for path in sorted((ROOT / RESUME_DIR).glob("*/parts/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if "trajectory" not in rec:  # the chunk's manifest line
                continue
            traj = json.loads(rec["trajectory"])
            _, subtask, index = traj["id"].split("/")
            for trial in ("trial1", "trial2"):
                t = traj.get(trial)
                if not t or t.get("reply") is None or t.get("from") == "trial1":  # no second attempt
                    continue
                turn = "trial1" if trial == "trial1" else t["from"]
                out[f"resume:{path.parts[-3]}:{subtask}/{index}:{trial}"] = (path.relative_to(ROOT).as_posix(), turn,
                                                                            t["reply"])
    return out


def onestage_replies(folder: Path) -> dict[str, tuple[str, str]]:
    """key -> (samples file name, reply) from an lm-eval --log_samples folder."""
    out = {}
    files = sorted(folder.rglob("samples_*.jsonl"))
    if not files:
        raise SystemExit(f"{folder}: no samples_*.jsonl files (run lm_eval with --log_samples)")
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            resp = sample["resps"][0][0] if isinstance(sample["resps"][0], list) else sample["resps"][0]
            traj = json.loads(resp)
            if not traj.get("trial2") or traj["trial2"].get("from") != "one_stage":
                raise SystemExit(f"{path}: doc {traj.get('id')} has no one-stage reply (run with one_stage=true)")
            _, subtask, index = traj["id"].split("/")
            out[f"onestage:{subtask}/{index}"] = (path.name, traj["trial2"]["reply"])
    return out


def make_row(key, rule, strict, flexible, note, bbh, pool, onestage, kept, resume) -> dict:
    if key.startswith("bbh:"):
        src = bbh[key]
        q = question_fields(key)
        row = {"id": f"real/{key}", "origin": "real", "source": f"{BBH_FILE} subtask={src['subtask']} "
               f"index={src['index']} turn=trial1", "turn": "trial1", **q, "reply": src["reply"]}
    elif key.startswith("pool:"):
        rec, turn, reply = pool[key]
        q = json.loads(rec["question"])
        rid = rec["question_id"] if turn == "trial1" else rec["record_id"]
        row = {"id": f"real/{key}", "origin": "real", "source": f"{POOL_FILE} record={rec['record_id']} turn={turn}",
               "turn": turn, "spec_from": "record", "subtask": rec["source"].split("/", 1)[1], "record": rid,
               "kind": q["kind"], "question": q["question"], "options": q["options"],
               "vocabulary": q["vocabulary"], "gold": rec["gold"], "reply": reply}
    elif key.startswith("resume:"):
        chunk, turn, reply = resume[key]
        q = question_fields("bbh:" + key.split(":")[2])
        row = {"id": f"real/{key}", "origin": "real", "source": f"{chunk} doc=bbh/{q['subtask']}/{q['index']} "
               f"{key.rsplit(':', 1)[1]} turn={turn}", "turn": turn, **q, "reply": reply}
    elif key.startswith("onestage:"):
        if onestage is None:
            if key not in kept:
                raise SystemExit(f"{key}: no one-stage reply in real.jsonl yet; pass --onestage DIR")
            row = {k: v for k, v in kept[key].items()
                   if k not in ("expected_strict", "expected_flexible", "rule", "note")}
        else:
            fname, reply = onestage[key]
            q = question_fields("bbh:" + key.split(":", 1)[1])
            row = {"id": f"real/{key}", "origin": "real",
                   "source": f"lm-eval --log_samples {fname} (reflectevo one_stage=true mode=intrinsic, "
                   f"smollm2-135m-instruct) doc={q['subtask']}/{q['index']} turn=one_stage",
                   "turn": "one_stage", **q, "reply": reply}
    else:
        raise SystemExit(f"{LABELS}: unknown key {key}")
    old = kept.get(key)
    if old is not None and old["reply"] != row["reply"]:
        # a re-recorded source under an old label: the label was given to another reply
        raise SystemExit(f"{key}: the reply differs from the one labelled in real.jsonl; label it again")
    gold = canonical_gold(row["gold"], row["kind"])
    row.update(expected_strict=label(strict, gold), expected_flexible=label(flexible, gold), rule=rule, note=note)
    check_row(row, key)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onestage", type=Path, help="lm-eval --log_samples folder of a one-stage run")
    args = ap.parse_args()
    kept = {}
    if OUT.is_file():
        for line in OUT.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            kept[row["id"].split("/", 1)[1]] = row
    onestage = onestage_replies(args.onestage) if args.onestage else None
    bbh, pool, resume = bbh_replies(), pool_replies(), resume_replies()
    rows = [make_row(*lab, bbh, pool, onestage, kept, resume) for lab in read_labels()]
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"{LABELS}: a key is labelled twice")
    tmp = OUT.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(OUT)
    print(f"wrote {len(rows)} real replies to {OUT}")


if __name__ == "__main__":
    main()
