"""BIG-Bench Hard split in two: a test split that evaluation measures on, and a generation pool that
reflections and training data come from. No item is on both sides.

The rule (version SPLIT_VERSION):
- the test split is the first TEST_PER_SUBTASK items of every subtask, in the release's order, so
  the 540 items the leaderboard measured before the split (the first 20 of each) lie inside it;
- every other item is in the pool, except an item whose normalised text (`normalise`) equals a
  test item's, or an earlier pool item's (BBH repeats four questions, two of them with opposite
  gold answers).

TEST_PER_SUBTASK comes from a power calculation on the leaderboard's measured discordance rates
(`scripts/bbh_split_power.py`, which writes `reflectevo_tasks/data/bbh_split_power.md`): the
exact McNemar test must find a 3-point difference against retry_only with 80% power.

The committed manifest (`reflectevo_tasks/data/bbh_split.json`, built by `build_manifest` from a
BBH release folder) lists the ids on each side, counts per subtask, the rule's hash and the
sha256 of the normalised text of every BBH item, so that a question can be recognised as a test
item by id or by text with no BBH data at hand (a Hub user, a dataset spec that copies BBH text).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from functools import lru_cache
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_tasks import bbh
from reflectevo_tasks.questions import Question

SPLIT_VERSION = "1"
TEST_PER_SUBTASK = 34
MANIFEST_PATH = Path(__file__).resolve().parent / "data" / "bbh_split.json"
RULE = (f"bbh-split v{SPLIT_VERSION}: test = the first {TEST_PER_SUBTASK} items of each BBH subtask in release "
        "order; pool = the other items, less any whose normalised text (NFKC, lower case, runs of white "
        "space as one space) equals a test item's or an earlier pool item's; pool order = round-robin over "
        "the subtasks (position in subtask, then subtask order)")
TEXT_HASH_CHARS = 16


def normalise(text: str) -> str:
    """The text two items must share to count as the same question. Punctuation is kept: BBH's Dyck
    and Boolean items differ only in brackets and operators."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:TEXT_HASH_CHARS]


def rule_hash() -> str:
    return hashlib.sha256(RULE.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- building and reading the manifest

def build_manifest(folder: str | Path) -> dict:
    """The split of the BBH release in `folder`, by the rule above."""
    local = bbh.data_dir(folder)
    subtasks: dict[str, dict] = {}
    test_hashes: set[str] = set()
    texts: dict[str, list[str]] = {}
    for s in bbh.SUBTASKS:
        qs = bbh.load_subtask(s, local)
        if len(qs) <= TEST_PER_SUBTASK:
            raise UserError(f"{local}/bbh/{s}.json: {len(qs)} items, the split needs more than {TEST_PER_SUBTASK}")
        texts[s] = [text_hash(q.question) for q in qs]
        test_hashes.update(texts[s][:TEST_PER_SUBTASK])
    seen = set(test_hashes)
    for s in bbh.SUBTASKS:
        pool, dropped = [], []
        for i, h in enumerate(texts[s][TEST_PER_SUBTASK:], start=TEST_PER_SUBTASK):
            if h in seen:
                dropped.append(i)
                continue
            seen.add(h)
            pool.append(i)
        subtasks[s] = {"items": len(texts[s]), "test": TEST_PER_SUBTASK, "pool": len(pool),
                       "dropped_duplicates": dropped, "test_indices": list(range(TEST_PER_SUBTASK)),
                       "pool_indices": pool, "text_sha256": texts[s]}
    return {
        "split": "bbh-split", "version": SPLIT_VERSION, "rule": RULE, "rule_sha256": rule_hash(),
        "test_per_subtask": TEST_PER_SUBTASK, "text_hash": f"sha256 of normalise(question), first {TEXT_HASH_CHARS} hex",
        "bbh_files_sha256": bbh.sha256_manifest(local, [local / "bbh" / f"{s}.json" for s in bbh.SUBTASKS]),
        "totals": {"items": sum(v["items"] for v in subtasks.values()),
                   "test": sum(v["test"] for v in subtasks.values()),
                   "pool": sum(v["pool"] for v in subtasks.values()),
                   "dropped_duplicates": sum(len(v["dropped_duplicates"]) for v in subtasks.values())},
        "subtasks": subtasks,
    }


def write_manifest(manifest: dict, path: Path = MANIFEST_PATH) -> None:
    """One line per subtask keeps the committed file short and its diffs readable."""
    head = {k: v for k, v in manifest.items() if k != "subtasks"}
    body = ",\n".join(f"  {json.dumps(s)}: {json.dumps(e)}" for s, e in manifest["subtasks"].items())
    text = json.dumps(head, indent=1)[:-2] + ',\n "subtasks": {\n' + body + "\n }\n}\n"
    assert json.loads(text) == manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@lru_cache(maxsize=1)
def manifest() -> dict:
    try:
        data = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{MANIFEST_PATH}: cannot read the BBH split manifest ({exc})") from None
    if data.get("version") != SPLIT_VERSION or data.get("rule_sha256") != rule_hash():
        raise UserError(f"{MANIFEST_PATH}: built by another split rule (version {data.get('version')}); rebuild it "
                        "with `python scripts/bbh_split_power.py --write-manifest`")
    return data


def describe() -> dict:
    """What a dataset card or provenance block records about the split."""
    m = manifest()
    return {"split": m["split"], "version": m["version"], "rule": m["rule"], "rule_sha256": m["rule_sha256"],
            "test_items": m["totals"]["test"], "pool_items": m["totals"]["pool"]}


@lru_cache(maxsize=1)
def _test_sets() -> tuple[frozenset[str], frozenset[str]]:
    m = manifest()
    ids, hashes = set(), set()
    for s, entry in m["subtasks"].items():
        ids.update(f"bbh/{s}/{i}" for i in entry["test_indices"])
        hashes.update(entry["text_sha256"][i] for i in entry["test_indices"])
    return frozenset(ids), frozenset(hashes)


def item_text_hash(item_id: str) -> str | None:
    """The text hash of a BBH item by its id (bbh/<subtask>/<index>), None for another id."""
    parts = item_id.split("/")
    if len(parts) != 3 or parts[0] != "bbh":
        return None
    entry = manifest()["subtasks"].get(parts[1])
    try:
        return entry["text_sha256"][int(parts[2])] if entry else None
    except (ValueError, IndexError):
        return None


def in_test_split(q: Question) -> bool:
    ids, hashes = _test_sets()
    return q.id in ids or text_hash(q.question) in hashes


def refuse_test_items(questions: list[Question], source: str) -> None:
    """Generation never sees an evaluation item: one error that names the offending items."""
    hits = [q.id for q in questions if in_test_split(q)]
    if hits:
        shown = ", ".join(hits[:5]) + (f" and {len(hits) - 5} more" if len(hits) > 5 else "")
        raise UserError(f"source {source!r}: {len(hits)} question(s) are in the BBH test split ({shown}), which "
                        f"evaluation measures on; generate from bbh-pool[:subtask,…] instead "
                        f"(split {MANIFEST_PATH.name}, version {SPLIT_VERSION})")


# ---------------------------------------------------------------- what a training set holds

def _first_text(*values) -> str | None:
    return next((v for v in values if isinstance(v, str) and v.strip()), None)


def row_question(row: dict) -> tuple[str | None, str | None]:
    """(id, text) of a training row's question. Curated rows carry both as columns and again in
    question_json; another dataset may carry either, or neither."""
    q = row.get("question_json")
    if isinstance(q, str):
        try:
            q = json.loads(q)
        except ValueError:
            q = None
    q = q if isinstance(q, dict) else {}
    return _first_text(row.get("question_id"), q.get("id")), _first_text(row.get("question"), q.get("question"))


def training_items(rows: list[dict]) -> dict:
    """The distinct questions `rows` hold, by id and by text hash, so that an evaluation can tell whether
    it measures on items a model was trained on (the same question under another id included). A row
    without an id or a text makes the block incomplete: what is listed is then a lower bound, and
    `count` is left out when some row names neither."""
    ids, hashes, questions, complete = set(), set(), set(), True
    for row in rows:
        qid, text = row_question(row)
        digest = text_hash(text) if text else None
        ids.update([qid] if qid else [])
        hashes.update([digest] if digest else [])
        questions.add(qid or digest)
        complete = complete and bool(qid and digest)
    out: dict = {} if None in questions else {"count": len(questions)}
    if ids:
        out["question_ids"] = sorted(ids)
    if hashes:
        out["text_sha256"] = sorted(hashes)
    out["complete"] = complete
    return out


# ---------------------------------------------------------------- the two sides as question lists

def _subtasks(names: list[str] | None) -> list[str]:
    return [bbh.check_subtask(s) for s in names] if names else list(bbh.SUBTASKS)


def _checked(q: Question, expected: str, where: str) -> Question:
    if text_hash(q.question) != expected:
        raise UserError(f"{where}: BBH item {q.id} differs from the one the split was built from "
                        f"({MANIFEST_PATH.name}); is this another BBH release?")
    return q


def test_side(subtask: str, questions: list[Question]) -> list[Question]:
    """The test-split items of one subtask's questions (all of them, in BBH's order), each checked
    against the text the split was built from."""
    entry = manifest()["subtasks"][bbh.check_subtask(subtask)]
    if len(questions) <= max(entry["test_indices"]):
        raise UserError(f"bbh-test: BBH subtask {subtask} has {len(questions)} items here, fewer than its test split")
    return [_checked(questions[i], entry["text_sha256"][i], "bbh-test") for i in entry["test_indices"]]


def test_questions(folder=None, subtasks: list[str] | None = None) -> list[Question]:
    """The test split, subtask by subtask in BBH's order."""
    return [q for s in _subtasks(subtasks) for q in test_side(s, bbh.load_subtask(s, folder))]


def pool_questions(folder=None, subtasks: list[str] | None = None) -> list[Question]:
    """The generation pool, interleaved across subtasks so that its first N items cover as many
    subtasks as possible."""
    per_subtask = []
    for s in _subtasks(subtasks):
        entry = manifest()["subtasks"][s]
        qs = bbh.load_subtask(s, folder)
        if len(qs) != entry["items"]:
            raise UserError(f"bbh-pool: BBH subtask {s} has {len(qs)} items here, {entry['items']} in the release "
                            f"the split was built from ({MANIFEST_PATH.name})")
        per_subtask.append([_checked(qs[i], entry["text_sha256"][i], "bbh-pool") for i in entry["pool_indices"]])
    longest = max((len(x) for x in per_subtask), default=0)
    return [qs[k] for k in range(longest) for qs in per_subtask if k < len(qs)]
