"""An opt-in question pool from BIG-bench (Apache-2.0); the default pool is `bbh-pool`.

BIG-bench ships its tasks as `task.json` files inside the sdist `bigbench-1.0.0.tar.gz`. Package
indexes no longer serve that file (PyPI keeps only a stub `bigbench 0.0.1`), so this source works
only where the archive can be had: set REFLECTEVO_BIGBENCH_SDIST to a local copy, or point
PIP_INDEX_URL at an index that still lists it. Without either, use the default source `bbh-pool`
(BBH's generation pool) or a column-mapped dataset spec `.yaml` (see `reflectevo_tasks.custom`).

The archive's sha256 is checked, only its `task.json` files are extracted into the cache, and a
pool file is built from them (`build_pool` also takes any folder of task.json files in the same
layout, which is how the tests build a pool without the archive):

- multiple-choice items are rendered in BBH's style (`Options:` then `(A) …`), options in a
  fixed pseudo-random order (many BIG-bench tasks list the right answer first); items whose
  options are exactly Yes/No or True/False keep that answer kind;
- free-text items stay free text (integer answers are scored as integers);
- every item that appears in BIG-Bench Hard, as a test item or a CoT exemplar, is excluded, so
  no training pool contains an evaluation item (word 8-gram overlap, see `BBHFilter`);
- each item records its source task and its index in that task's `examples` list.

Questions longer than `max_chars` (1,200 by default) are left out. The pool takes up to `per_task`
items per task file, chosen by a stable hash, and interleaves tasks so that the first N items of the
pool cover as many tasks as possible.
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
ENV_SDIST = "REFLECTEVO_BIGBENCH_SDIST"  # a local copy of the archive, for machines without an index serving it
SDIST_TASKS_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"
POOL_VERSION = "2"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GENERIC_INPUT_PREFIXES = {"", "q:", "question:", "input:", "q", "context:"}
_COMPLETE = ".complete"


def bigbench_dir() -> Path:
    return cache_root() / "bigbench" / "1.0.0"


# ---------------------------------------------------------------- fetching the archive

def _ways_out() -> str:
    return (f"the BIG-bench pool is opt-in: set {ENV_SDIST} to a local copy of {SDIST_NAME} "
            f"(sha256 {SDIST_SHA256}), or use the source `bbh-pool` (the default, BBH's generation pool) "
            f"or a column-mapped dataset spec .yaml (see reflectevo_tasks/custom.py)")


class _Unavailable(Exception):
    """The index cannot give us the archive; fetch_sdist turns this into the one UserError."""


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
        raise _Unavailable(f"cannot read the package index at {url} ({type(exc).__name__}: {exc})") from None
    files = data.get("files") if isinstance(data, dict) else None
    for f in files if isinstance(files, list) else ():
        if isinstance(f, dict) and f.get("filename") == SDIST_NAME and f.get("url"):
            return f["url"]
    raise _Unavailable(f"{url}: {SDIST_NAME} not listed by the package index")


def _download(url: str, path: Path) -> None:
    tmp = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=600) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, path)
    except Exception as exc:  # URLError, HTTPError, a connection cut mid-body: all mean "not from here"
        tmp.unlink(missing_ok=True)
        raise _Unavailable(f"downloading {url} failed ({type(exc).__name__}: {exc})") from None


def fetch_sdist(dest_dir: Path) -> Path:
    """The verified archive: from $REFLECTEVO_BIGBENCH_SDIST, or downloaded from the index once."""
    local = os.environ.get(ENV_SDIST)
    downloaded = False
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise UserError(f"{path}: no such file (set by {ENV_SDIST}); {_ways_out()}")
    else:
        dest_dir.mkdir(parents=True, exist_ok=True)
        path = dest_dir / SDIST_NAME
        if not path.is_file():
            try:
                _download(_sdist_url(), path)
            except _Unavailable as exc:
                raise UserError(f"{SDIST_NAME} is not available: {exc}; {_ways_out()}") from None
            downloaded = True
    digest = file_sha256(path)
    if digest != SDIST_SHA256:
        if downloaded:
            path.unlink()  # a bad download kept in the cache would fail every later run the same way
        raise UserError(f"{path}: sha256 {digest} does not match the published {SDIST_SHA256}")
    return path


def extract_tasks(archive: Path, target: Path, prefix: str = SDIST_TASKS_PREFIX, verified_sha256: str = "") -> Path:
    """Extract only the task.json files under `prefix` of a .tar.gz into `target`, laid out as
    <task>[/<subtask>]/task.json, replacing `target` in one rename. The archive is not verified
    here, so tests can extract an archive they wrote; fetch_sdist checks the real one."""
    with replaced_on_success(Path(target), ".extract-") as work:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if not (member.isfile() and member.name.startswith(prefix) and member.name.endswith("/task.json")):
                        continue
                    rel = Path(member.name[len(prefix):])
                    if ".." in rel.parts or rel.is_absolute():
                        continue  # a crafted archive must not write outside the target
                    out = work / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UserError(f"{archive}: cannot extract task.json files ({type(exc).__name__}: {exc})") from None
        # tasks_dir reuses only a folder with this marker; it holds the archive's checked sha256, empty if unchecked
        (work / _COMPLETE).write_text(verified_sha256)
    return Path(target)


def tasks_dir() -> Path:
    """The cached folder of BIG-bench task.json files, fetched, verified and extracted on first use."""
    root = bigbench_dir()
    target = root / "tasks"
    if (target / _COMPLETE).is_file():
        return target
    return extract_tasks(fetch_sdist(root), target, verified_sha256=SDIST_SHA256)


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


def pool_path(per_task: int, pool_dir: str | os.PathLike | None = None) -> Path:
    return Path(pool_dir if pool_dir is not None else bigbench_dir()) / f"pool-v{POOL_VERSION}-per{per_task}.jsonl"


def _iter_task_files(root: Path):
    for path in sorted(root.rglob("task.json")):
        yield "/".join(path.relative_to(root).parts[:-1]), path


def build_pool(per_task: int = 50, bbh_folder=None, max_options: int = 10, max_chars: int = 1200,
               tasks_folder: str | os.PathLike | None = None,
               pool_dir: str | os.PathLike | None = None) -> PoolInfo:
    """Write the pool file (atomically) and its manifest; reuse them when already built.

    `tasks_folder` is a folder of <task>[/<subtask>]/task.json files to build from (default: the
    cached BIG-bench archive, fetched on first use). `pool_dir` is where the pool and its manifest
    go: by default the cache for the archive, and `tasks_folder` itself for a folder given here, so
    a pool built from other files never stands in for the real one.
    """
    from_archive = tasks_folder is None
    if pool_dir is None and not from_archive:
        pool_dir = tasks_folder
    path = pool_path(per_task, pool_dir)
    manifest_path = path.with_suffix(".manifest.json")
    if path.is_file() and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        return PoolInfo(path, manifest["items"], manifest["tasks"], manifest["excluded_bbh"], manifest)
    if from_archive:
        root = tasks_dir()
    else:
        root = Path(tasks_folder).expanduser()
        if not root.is_dir():
            raise UserError(f"{root}: no such folder of BIG-bench task.json files")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for _, _, q in chosen:
            f.write(json.dumps(q.to_dict(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    manifest = {
        "pool_version": POOL_VERSION,
        "source": "bigbench==1.0.0" if from_archive else f"task.json files in {root}",
        "sdist_sha256": SDIST_SHA256 if from_archive else None,
        "license": "Apache-2.0", "per_task": per_task, "max_options": max_options, "max_chars": max_chars,
        "items": len(chosen), "tasks": len(per_task_counts), "excluded_bbh": excluded,
        "items_per_task": per_task_counts, "pool_sha256": file_sha256(path),
    }
    # the manifest is what marks the pool as built: it too appears whole or not at all
    tmp_manifest = manifest_path.with_suffix(".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp_manifest, manifest_path)
    return PoolInfo(path, len(chosen), len(per_task_counts), excluded, manifest)


def load_pool(limit: int | None = None, per_task: int = 50, tasks: list[str] | None = None,
              keep: Callable[[Question], bool] | None = None, bbh_folder=None,
              tasks_folder: str | os.PathLike | None = None,
              pool_dir: str | os.PathLike | None = None) -> list[Question]:
    """Pool items in pool order; `tasks` keeps those of some tasks (a task names its subtasks too)."""
    info = build_pool(per_task, bbh_folder, tasks_folder=tasks_folder, pool_dir=pool_dir)
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
