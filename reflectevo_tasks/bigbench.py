"""The default question pool for generating training data: BIG-bench (Apache-2.0).

BIG-bench ships its tasks as `task.json` files inside the PyPI sdist `bigbench==1.0.0`. We fetch
that archive once (checking its sha256), extract only the `task.json` files into the cache, and
build a pool file from them:

- multiple-choice items are rendered in BBH's style (`Options:` then `(A) …`), options in a
  fixed pseudo-random order (many BIG-bench tasks list the right answer first); items whose
  options are exactly Yes/No or True/False keep that answer kind;
- free-text items stay free text (integer answers are scored as integers);
- every item that appears in BIG-Bench Hard, as a test item or a CoT exemplar, is excluded, so
  no training pool contains an evaluation item (word 8-gram overlap, see `BBHFilter`);
- each item records its source task and its index in that task's `examples` list.

Questions longer than `max_chars` (1,200 by default) are left out. The pool takes up to `per_task` items per task file, chosen by a stable hash, and interleaves
tasks so that the first N items of the pool cover as many tasks as possible.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reflectevo.atomic_folder import replaced_on_success
from reflectevo.embedded_model import cache_root, file_sha256
from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks.questions import Question

SDIST_NAME = "bigbench-1.0.0.tar.gz"
SDIST_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
ENV_SDIST = "REFLECTEVO_BIGBENCH_SDIST"  # a local copy of the archive, for machines without PyPI
POOL_VERSION = "2"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GENERIC_INPUT_PREFIXES = {"", "q:", "question:", "input:", "q", "context:"}


def bigbench_dir() -> Path:
    return cache_root() / "bigbench" / "1.0.0"


# ---------------------------------------------------------------- fetching the archive

def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _sdist_url() -> str:
    """Look the archive up in the package index's JSON simple API (PEP 691)."""
    url = f"{_index_url()}/bigbench/"
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = json.loads(resp.read())
    except Exception as exc:
        raise UserError(f"cannot reach the package index at {url} ({exc}); download {SDIST_NAME} "
                        f"elsewhere and set {ENV_SDIST} to its path") from None
    for f in data.get("files", []):
        if f.get("filename") == SDIST_NAME:
            return f["url"]
    raise UserError(f"{url}: {SDIST_NAME} not listed by the package index")


def fetch_sdist(dest_dir: Path) -> Path:
    """The verified archive: from $REFLECTEVO_BIGBENCH_SDIST, or downloaded from the index."""
    local = os.environ.get(ENV_SDIST)
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise UserError(f"{path}: no such file (set by {ENV_SDIST})")
    else:
        dest_dir.mkdir(parents=True, exist_ok=True)
        path = dest_dir / SDIST_NAME
        if not path.is_file():
            tmp = path.with_suffix(".part")
            with urllib.request.urlopen(_sdist_url(), timeout=600) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            os.replace(tmp, path)
    digest = file_sha256(path)
    if digest != SDIST_SHA256:
        raise UserError(f"{path}: sha256 {digest} does not match the published {SDIST_SHA256}")
    return path


def tasks_dir() -> Path:
    """Folder of extracted task.json files (<task>[/<subtask>]/task.json), extracting on first use."""
    root = bigbench_dir()
    target = root / "tasks"
    if (target / ".complete").is_file():
        return target
    archive = fetch_sdist(root)
    with replaced_on_success(target, ".extract-") as work:
        prefix = "bigbench-1.0.0/bigbench/benchmark_tasks/"
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not (member.isfile() and member.name.startswith(prefix) and member.name.endswith("/task.json")):
                    continue
                rel = Path(member.name[len(prefix):])
                if ".." in rel.parts:
                    continue
                out = work / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (work / ".complete").write_text(SDIST_SHA256)
    return target


# ---------------------------------------------------------------- rendering items

def _stable_rank(*parts) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def _question_text(task_def: dict, example: dict) -> str:
    prefix = (task_def.get("task_prefix") or "").strip()
    input_prefix = (task_def.get("example_input_prefix") or "").strip()
    body = str(example.get("input", "")).strip()
    if input_prefix.lower() not in _GENERIC_INPUT_PREFIXES:
        body = f"{input_prefix} {body}"
    return f"{prefix}\n\n{body}".strip() if prefix else body


def render_example(task: str, index: int, task_def: dict, example: dict, max_options: int = 10) -> Question | None:
    """A BIG-bench example as a Question, or None when it has no single checkable answer."""
    if not isinstance(example, dict) or not isinstance(example.get("input"), str) or not example["input"].strip():
        return None
    stem = _question_text(task_def, example)
    scores = example.get("target_scores")
    common = dict(id=f"bigbench/{task}/{index}", source=f"bigbench/{task}", index=index)
    if isinstance(scores, dict) and scores:
        try:
            values = {str(k): float(v) for k, v in scores.items()}
        except (TypeError, ValueError):
            return None
        best = max(values.values())
        winners = [k for k, v in values.items() if v == best]
        if best <= 0 or len(winners) != 1 or len(values) > max_options or len(values) < 2:
            return None
        gold_text = winners[0]
        lowered = {k.strip().lower().rstrip(".") for k in values}
        for kind, pair in ((A.YES_NO, {"yes", "no"}), (A.TRUE_FALSE, {"true", "false"})):
            if lowered == pair:
                opts = "\n".join(f"- {o}" for o in sorted(values, key=lambda s: s.strip().lower() != sorted(pair)[1]))
                gold = gold_text.strip().rstrip(".").capitalize()
                return Question(question=f"{stem}\nOptions:\n{opts}", answer=gold, kind=kind, **common)
        order = sorted(values, key=lambda k: _stable_rank(task, index, k))
        options = tuple((LETTERS[i], o.strip()) for i, o in enumerate(order))
        lines = "\n".join(f"({l}) {t}" for l, t in options)
        gold = f"({LETTERS[order.index(gold_text)]})"
        return Question(question=f"{stem}\nOptions:\n{lines}", answer=gold, kind=A.CHOICE, options=options, **common)
    target = example.get("target")
    if isinstance(target, list):
        target = next((t for t in target if isinstance(t, str) and t.strip()), None)
    if not isinstance(target, str) or not target.strip() or len(target.split()) > 10:
        return None  # long free-text targets (translations, essays) cannot be checked by exact match
    target = target.strip()
    kind = A.INTEGER if re.fullmatch(r"-?\d+", target) else A.FREE_TEXT
    return Question(question=stem, answer=target, kind=kind, **common)


# ---------------------------------------------------------------- excluding BBH items

_TOKEN = re.compile(r"[a-z0-9]+")
NGRAM = 8


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: list[str], n: int = NGRAM) -> set[int]:
    return {hash(" ".join(tokens[i:i + n])) for i in range(len(tokens) - n + 1)}


def _stem(question: str) -> str:
    return question.split("\nOptions:")[0]


class BBHFilter:
    """Flags pool items that are BBH test items or CoT exemplars.

    BBH re-words its BIG-bench sources only lightly (a prefix joined to the input, options
    appended, a short input wrapped in a question), so an item is a BBH item when at least
    `threshold` of the word 8-grams of its question, or of its raw input, occur in one BBH
    question; a raw input of 4 to 7 words must not occur in any BBH question, and a shorter one
    must not equal one. Exclusion errs on the side of dropping: a false positive costs one
    training item.
    """

    def __init__(self, bbh_questions: list[str], threshold: float = 0.5):
        self.threshold = threshold
        self.index: dict[int, set[int]] = {}
        self.short: set[str] = set()
        stems = []
        for i, q in enumerate(bbh_questions):
            toks = _tokens(_stem(q))
            stems.append(" ".join(toks))
            self.short.add(" ".join(toks))
            for g in _ngrams(toks):
                self.index.setdefault(g, set()).add(i)
        self.joined = " | " + " | ".join(stems) + " | "

    def _overlaps(self, toks: list[str]) -> bool:
        grams = _ngrams(toks)
        hits: dict[int, int] = {}
        for g in grams:
            for i in self.index.get(g, ()):
                hits[i] = hits.get(i, 0) + 1
        return bool(hits) and max(hits.values()) >= self.threshold * len(grams)

    def is_bbh(self, question: str, raw_input: str | None = None) -> bool:
        for text in (_stem(question), raw_input):
            if not text:
                continue
            toks = _tokens(text)
            if len(toks) >= NGRAM:
                if self._overlaps(toks):
                    return True
            elif len(toks) >= 4:
                if f" {' '.join(toks)} " in self.joined:
                    return True
            elif " ".join(toks) in self.short:
                return True
        return False


def bbh_filter(bbh_folder=None) -> BBHFilter:
    from reflectevo_tasks import bbh

    questions = [q.question for q in bbh.load_all(bbh_folder)]
    questions += bbh.exemplar_questions(bbh_folder)
    return BBHFilter(questions)


# ---------------------------------------------------------------- the pool

@dataclass(frozen=True)
class PoolInfo:
    path: Path
    items: int
    tasks: int
    excluded_bbh: int
    manifest: dict


def pool_path(per_task: int) -> Path:
    return bigbench_dir() / f"pool-v{POOL_VERSION}-per{per_task}.jsonl"


def _iter_task_files(root: Path):
    for path in sorted(root.rglob("task.json")):
        yield "/".join(path.relative_to(root).parts[:-1]), path


def build_pool(per_task: int = 50, bbh_folder=None, max_options: int = 10, max_chars: int = 1200) -> PoolInfo:
    """Write the pool file (atomically) and its manifest; reuse them when already built."""
    path = pool_path(per_task)
    manifest_path = path.with_suffix(".manifest.json")
    if path.is_file() and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        return PoolInfo(path, manifest["items"], manifest["tasks"], manifest["excluded_bbh"], manifest)
    root = tasks_dir()
    flt = bbh_filter(bbh_folder)
    chosen: list[tuple[int, int, Question]] = []
    excluded = 0
    per_task_counts: dict[str, int] = {}
    for task, file in _iter_task_files(root):
        try:
            task_def = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{file}: malformed task.json ({exc})") from None
        examples = task_def.get("examples") if isinstance(task_def, dict) else None
        if not isinstance(examples, list):
            continue  # parent tasks whose examples live in subtasks, or programmatic tasks
        order = sorted(range(len(examples)), key=lambda i: _stable_rank(task, i))
        taken = 0
        for i in order:
            if taken >= per_task:
                break
            q = render_example(task, i, task_def, examples[i], max_options)
            if q is None or len(q.question) > max_chars:
                continue  # small models have short contexts; long items also dominate run time
            if flt.is_bbh(q.question, str(examples[i].get("input", ""))):
                excluded += 1
                continue
            chosen.append((taken, _stable_rank(task), q))
            taken += 1
        if taken:
            per_task_counts[task] = taken
    chosen.sort(key=lambda x: (x[0], x[1]))  # round-robin across tasks
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for _, _, q in chosen:
            f.write(json.dumps(q.to_dict(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    manifest = {
        "pool_version": POOL_VERSION, "source": "bigbench==1.0.0", "sdist_sha256": SDIST_SHA256,
        "license": "Apache-2.0", "per_task": per_task, "max_options": max_options, "max_chars": max_chars,
        "items": len(chosen), "tasks": len(per_task_counts), "excluded_bbh": excluded,
        "items_per_task": per_task_counts, "pool_sha256": file_sha256(path),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return PoolInfo(path, len(chosen), len(per_task_counts), excluded, manifest)


def load_pool(limit: int | None = None, per_task: int = 50, tasks: list[str] | None = None,
              keep: Callable[[Question], bool] | None = None) -> list[Question]:
    info = build_pool(per_task)
    out = []
    with open(info.path, encoding="utf-8") as f:
        for line in f:
            q = Question.from_dict(json.loads(line))
            if tasks and not any(q.source == f"bigbench/{t}" or q.source.startswith(f"bigbench/{t}/") for t in tasks):
                continue
            if keep is not None and not keep(q):
                continue
            out.append(q)
            if limit is not None and len(out) >= limit:
                break
    return out
