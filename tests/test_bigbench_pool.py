"""The BIG-bench pool: task.json files, BBH items excluded, provenance of every item.

The archive is opt-in (package indexes no longer serve bigbench-1.0.0.tar.gz), so most tests build
the pool from a small archive written here in the sdist's layout; a few of its items copy real BBH
questions, read from the local BBH folder, so that the exclusion has something to catch. The tests
marked `real_archive` check the real pool and run only where REFLECTEVO_BIGBENCH_SDIST names a copy
of the archive (the first of them extracts it into the cache, which takes a while).

Nothing here reaches beyond 127.0.0.1.
"""

import functools
import io
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh, bigbench
from reflectevo_tasks.bigbench import BBHFilter, render_example

real_archive = pytest.mark.skipif(
    not os.environ.get(bigbench.ENV_SDIST),
    reason=f"needs the real {bigbench.SDIST_NAME}, which package indexes no longer serve: "
           f"set {bigbench.ENV_SDIST} to a local copy to run it")

PREFIX = bigbench.SDIST_TASKS_PREFIX
SPORTS_PREFIX = "Determine whether the following statement or statements are plausible or implausible:"
DEDUCTION_PREFIX = ("The following paragraphs each describe a set of three objects arranged in a fixed order. "
                    "The statements are logically consistent within each paragraph.")


def _norm(s):
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


# ---------------------------------------------------------------- the small archive

def _bbh_copies(bbh_dir):
    """Two BBH sports sentences and one BBH logical-deduction paragraph with its options, as the
    BIG-bench task they came from would hold them (BBH adds the question and the options)."""
    sports = [re.search(r'"(.*)"', q.question).group(1) for q in bbh.load_subtask("sports_understanding", bbh_dir, 2)]
    ld = bbh.load_subtask("logical_deduction_three_objects", bbh_dir, 1)[0]
    paragraph = ld.question.split("\nOptions:")[0].replace(DEDUCTION_PREFIX, "").strip()
    gold = dict(ld.options)[ld.answer[1]]
    return sports, {"input": paragraph, "target_scores": {t: int(t == gold) for _, t in ld.options}}


def _task_files(bbh_dir) -> dict[str, dict]:
    sports, deduction = _bbh_copies(bbh_dir)
    plausible = {"plausible": 1, "implausible": 0}
    return {
        # many BIG-bench tasks list the right answer first
        "arithmetic_mc": {"task_prefix": "Answer the question.", "example_input_prefix": "\nQ: ", "examples": [
            {"input": f"What is {a} plus {b}?", "target_scores": {str(a + b): 1, str(a + b + 1): 0, str(a + b - 1): 0,
                                                                  str(a + b + 10): 0}}
            for a, b in [(2, 3), (7, 8), (11, 4), (20, 22), (9, 9), (13, 5)]]},
        "word_answers": {"examples": [
            {"input": "What colour is the sky on a clear day?", "target": "blue"},
            {"input": "How many legs does a spider have?", "target": "8"},
            {"input": "Name the capital of France.", "target": ["", "Paris", "paris"]},
            {"input": "What is minus three times four?", "target": "-12"},
            {"input": "Translate into French: the cat sleeps.", "target": " ".join(["mot"] * 20)},
        ]},
        "yes_no_questions": {"example_input_prefix": "Question:", "examples": [
            {"input": "Can penguins fly over the ocean?", "target_scores": {"Yes": 0, "No": 1}},
            {"input": "Do cats usually have whiskers?", "target_scores": {"yes.": 1, "no.": 0}},
            {"input": "Is ice colder than steam?", "target_scores": {"No": 0, "Yes": 1}},
        ]},
        "true_false_facts": {"examples": [
            {"input": "Water boils at 100 degrees Celsius at sea level.", "target_scores": {"True": 1, "False": 0}},
            {"input": "The moon is larger than the earth.", "target_scores": {"True": 0, "False": 1}},
        ]},
        "families": {"name": "families", "subtasks": ["siblings", "cousins"]},
        "families/siblings": {"examples": [
            {"input": "Ann has one brother, Bob. How many sisters does Bob have?", "target": "1"},
            {"input": "Who is your mother's son, if you have no brothers?", "target_scores": {"me": 1, "my uncle": 0}},
        ]},
        "families/cousins": {"example_input_prefix": "Riddle:", "examples": [
            {"input": "My aunt's child is my what?", "target": "cousin"},
            {"input": "How many grandparents does a person usually have?", "target": "4"},
        ]},
        "program_task": {"name": "program_task", "description": "its examples come from task.py"},
        "odd_items": {"examples": [
            "not an object",
            {"input": "", "target": "x"},
            {"input": 5, "target": "5"},
            {"input": "What has no answer?"},
            {"input": "Which is right?", "target_scores": {"this one": 1, "that one": 1}},
            {"input": "Which scores?", "target_scores": {"a": "high", "b": 0}},
            {"input": "Which is good?", "target_scores": {"a": 0, "b": 0}},
            {"input": "Pick a letter.", "target_scores": {c: int(c == "k") for c in "abcdefghijkl"}},
            {"input": "Read this. " + "The river bends and the road follows it. " * 40 + "Where does the road go?",
             "target": "along the river"},
            {"input": "What is the opposite of hot?", "target": "cold"},
            {"input": "Consider the story. " + "A farmer walks the long way to the market. " * 6
                      + "Who walks to the market?", "target": "the farmer"},
        ]},
        "sports_understanding": {"task_prefix": SPORTS_PREFIX, "examples": [
            {"input": sports[0], "target_scores": plausible},
            {"input": "Elias Lindholm scored a penalty kick.", "target_scores": {"plausible": 0, "implausible": 1}},
            {"input": sports[1], "target_scores": plausible},
            {"input": "Marta Vieira caught the screen pass in the red zone.", "target_scores": plausible},
        ]},
        # no task_prefix: BBH's own preamble would count towards the overlap of every item here
        "logical_deduction": {"examples": [
            deduction,
            # shares just under half of its word 8-grams with one BBH question
            {"input": "On a shelf, there are three books: a red book, a green book, and a white book. "
                      "The white book is the leftmost. The red book is to the right of the green book.",
             "target_scores": {"The red book is the rightmost": 1, "The green book is the rightmost": 0,
                               "The white book is the rightmost": 0}},
            {"input": "On a table, there are three fruits: a plum, a kiwi, and a mango. The kiwi is the cheapest. "
                      "The plum is more expensive than the mango.",
             "target_scores": {"The plum is the cheapest": 0, "The kiwi is the cheapest": 1,
                               "The mango is the cheapest": 0}},
        ]},
    }


# items each task contributes with no cap: all renderable items but the BBH copies and the overlong one
EXPECTED_PER_TASK = {"arithmetic_mc": 6, "word_answers": 4, "yes_no_questions": 3, "true_false_facts": 2,
                     "families/siblings": 2, "families/cousins": 2, "odd_items": 2, "sports_understanding": 2,
                     "logical_deduction": 2}
EXPECTED_BBH = 3

# in the archive but not task.json files of a task: extraction must skip all of them
_NOT_TASKS = {
    "bigbench-1.0.0/setup.py": b"# setup\n",
    "bigbench-1.0.0/bigbench/api/task.json": b"{}",
    f"{PREFIX}README.md": b"# tasks\n",
    f"{PREFIX}program_task/task.py": b"class Task: pass\n",
    f"{PREFIX}arithmetic_mc/results/scores.json": b"{}",
    f"{PREFIX}arithmetic_mc/task.json.bak": b"{}",
    f"{PREFIX}../escape/task.json": b'{"examples": []}',
}


def write_archive(path: Path, files: dict[str, dict]) -> Path:
    def add(tar, name, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(f"{PREFIX}arithmetic_mc")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for task, content in files.items():
            add(tar, f"{PREFIX}{task}/task.json", json.dumps(content).encode())
        for name, data in _NOT_TASKS.items():
            add(tar, name, data)
        link = tarfile.TarInfo(f"{PREFIX}linked/task.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "../arithmetic_mc/task.json"
        tar.addfile(link)
    return path


@pytest.fixture(scope="module")
def task_files(bbh_dir):
    return _task_files(bbh_dir)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, task_files):
    return write_archive(tmp_path_factory.mktemp("sdist") / bigbench.SDIST_NAME, task_files)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, archive):
    return bigbench.extract_tasks(archive, tmp_path_factory.mktemp("extracted") / "tasks")


@pytest.fixture(scope="module")
def small(tmp_path_factory, tasks, bbh_dir):
    """The pool built from the small archive, and a loader for it."""
    out = tmp_path_factory.mktemp("pool")
    info = bigbench.build_pool(50, bbh_dir, tasks_folder=tasks, pool_dir=out)
    load = functools.partial(bigbench.load_pool, bbh_folder=bbh_dir, tasks_folder=tasks, pool_dir=out)
    return info, load


def _copy(tasks: Path, dest: Path) -> Path:
    return Path(shutil.copytree(tasks, dest))


# ---------------------------------------------------------------- extraction

def test_extraction_keeps_only_task_json_files(tasks, task_files):
    found = {p.relative_to(tasks).as_posix() for p in tasks.rglob("*") if p.is_file()}
    assert found == {f"{t}/task.json" for t in task_files} | {".complete"}
    assert not (tasks.parent / "escape").exists()
    assert json.loads((tasks / "families/cousins/task.json").read_text()) == task_files["families/cousins"]


def test_extraction_replaces_the_target_and_rejects_a_broken_archive(tmp_path, archive):
    target = tmp_path / "tasks"
    (target / "stale").mkdir(parents=True)
    (target / "stale" / "task.json").write_text("{}")
    bigbench.extract_tasks(archive, target)
    assert not (target / "stale").exists() and (target / "arithmetic_mc" / "task.json").is_file()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(UserError, match=re.escape(str(broken))):
        bigbench.extract_tasks(broken, target)
    assert (target / "arithmetic_mc" / "task.json").is_file()  # a failed extraction leaves the old folder
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract-")] == []


# ---------------------------------------------------------------- getting the real archive

@pytest.fixture
def no_archive(monkeypatch, tmp_path):
    """No local archive, an empty cache, and no proxy that could carry a request off this machine."""
    monkeypatch.delenv(bigbench.ENV_SDIST, raising=False)
    monkeypatch.setenv("REFLECTEVO_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"


def _assert_ways_out(message: str):
    assert bigbench.ENV_SDIST in message and bigbench.SDIST_NAME in message
    assert "bbh-pool" in message and "custom.py" in message


def test_unreachable_index_names_both_ways_out(no_archive, monkeypatch, bbh_dir):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # the discard port: refused at once
    with pytest.raises(UserError) as err:
        bigbench.tasks_dir()
    _assert_ways_out(str(err.value))
    assert "127.0.0.1:9" in str(err.value)
    with pytest.raises(UserError) as err:
        bigbench.load_pool(5, bbh_folder=bbh_dir)
    _assert_ways_out(str(err.value))
    assert not (bigbench.bigbench_dir() / "tasks").exists()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fake_index(monkeypatch, listed: list[str], archive: Path | None = None):
    """An index that lists `listed` for bigbench and serves `archive` for any file it lists."""
    calls = []

    def urlopen(req, timeout=None):
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        calls.append(url)
        if url.endswith("/bigbench/"):
            files = [{"filename": n, "url": f"http://127.0.0.1:9/files/{n}"} for n in listed]
            return _Response(json.dumps({"name": "bigbench", "files": files}).encode())
        if archive is not None:
            return _Response(archive.read_bytes())
        raise urllib.error.URLError("no such file")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_index_without_the_archive_names_both_ways_out(no_archive, monkeypatch):
    calls = _fake_index(monkeypatch, ["bigbench-0.0.1.tar.gz", "bigbench-0.0.1-py3-none-any.whl"])
    with pytest.raises(UserError, match="not listed by the package index") as err:
        bigbench.tasks_dir()
    _assert_ways_out(str(err.value))
    assert len(calls) == 1


def test_downloaded_archive_is_checked_against_the_published_sha256(no_archive, monkeypatch, archive):
    calls = _fake_index(monkeypatch, [bigbench.SDIST_NAME], archive)
    with pytest.raises(UserError, match=f"does not match the published {bigbench.SDIST_SHA256}"):
        bigbench.tasks_dir()
    assert calls[-1].endswith(f"/files/{bigbench.SDIST_NAME}")
    assert not (bigbench.bigbench_dir() / "tasks").exists()
    # a download that fails the check is not kept, so the next run fetches afresh
    assert not list(bigbench.bigbench_dir().glob("bigbench-1.0.0*"))


def test_failed_download_leaves_no_partial_file(no_archive, monkeypatch):
    _fake_index(monkeypatch, [bigbench.SDIST_NAME])
    with pytest.raises(UserError, match="downloading") as err:
        bigbench.tasks_dir()
    _assert_ways_out(str(err.value))
    assert not list(bigbench.bigbench_dir().glob("bigbench-1.0.0*"))


def test_local_archive_is_checked_too(no_archive, monkeypatch, archive, tmp_path):
    monkeypatch.setenv(bigbench.ENV_SDIST, str(archive))
    with pytest.raises(UserError, match="does not match the published"):
        bigbench.tasks_dir()
    missing = tmp_path / "nowhere" / bigbench.SDIST_NAME
    monkeypatch.setenv(bigbench.ENV_SDIST, str(missing))
    with pytest.raises(UserError, match=re.escape(str(missing))):
        bigbench.tasks_dir()


# ---------------------------------------------------------------- the pool from the small archive

def test_pool_counts_and_manifest(small):
    info, _ = small
    assert info.manifest["items_per_task"] == EXPECTED_PER_TASK
    assert info.items == sum(EXPECTED_PER_TASK.values()) and info.tasks == len(EXPECTED_PER_TASK)
    assert info.excluded_bbh == info.manifest["excluded_bbh"] == EXPECTED_BBH
    assert info.manifest["pool_version"] == bigbench.POOL_VERSION and info.manifest["sdist_sha256"] is None
    assert info.manifest["pool_sha256"] == bigbench.file_sha256(info.path)
    assert info.path.name == f"pool-v{bigbench.POOL_VERSION}-per50.jsonl"


def test_pool_is_varied_and_interleaved(small):
    info, load = small
    pool = load()
    assert len(pool) == info.items
    assert Counter(q.source for q in pool) == {f"bigbench/{t}": n for t, n in EXPECTED_PER_TASK.items()}
    first = load(len(EXPECTED_PER_TASK))
    assert len({q.source for q in first}) == len(EXPECTED_PER_TASK)  # the first items cover different tasks
    assert {q.kind for q in pool} == {A.CHOICE, A.FREE_TEXT, A.INTEGER, A.YES_NO, A.TRUE_FALSE}
    # round-robin: the n-th item of every task comes before any task's (n+1)-th, tasks in a fixed order
    seen = Counter()
    keys = []
    for q in pool:
        task = q.source.split("/", 1)[1]
        keys.append((seen[task], bigbench._stable_rank(task)))
        seen[task] += 1
    assert keys == sorted(keys)


def test_every_item_records_source_task_and_index(small, task_files):
    _, load = small
    for q in load():
        task = q.source.split("/", 1)[1]
        example = task_files[task]["examples"][q.index]
        assert q.id == f"bigbench/{task}/{q.index}"
        assert _norm(example["input"]) in _norm(q.question), q.id
        if q.kind == A.CHOICE:
            gold_text = dict(q.options)[q.answer[1]]
            best = max(example["target_scores"], key=example["target_scores"].get)
            assert gold_text == best.strip()


def test_choice_rendering_in_the_pool(small, task_files, bbh_dir, tmp_path, tasks):
    info, load = small
    golds = set()
    for q in load(tasks=["arithmetic_mc"]):
        example = task_files["arithmetic_mc"]["examples"][q.index]
        assert q.question.startswith(f"Answer the question.\n\n{example['input']}\nOptions:\n(A) ")
        lines = q.question.split("\nOptions:\n")[1].splitlines()
        assert lines == [f"({letter}) {text}" for letter, text in q.options]
        assert sorted(t for _, t in q.options) == sorted(example["target_scores"])
        assert dict(q.options)[q.answer[1]] == next(iter(example["target_scores"]))
        golds.add(q.answer)
    assert len(golds) > 1  # the right answer, listed first in the task, is not always (A)
    # the option order is a function of the item alone: a second build writes the same bytes
    again = bigbench.build_pool(50, bbh_dir, tasks_folder=tasks, pool_dir=tmp_path)
    assert again.path != info.path and again.path.read_bytes() == info.path.read_bytes()


def test_two_answer_kinds_and_free_text_in_the_pool(small):
    _, load = small
    by_id = {q.id: q for q in load()}
    yn = by_id["bigbench/yes_no_questions/1"]
    assert yn.kind == A.YES_NO and yn.answer == "Yes" and "\nOptions:\n- " in yn.question
    assert yn.question.startswith("Do cats")  # a generic input prefix ("Question:") is dropped
    assert by_id["bigbench/families/cousins/0"].question == "Riddle: My aunt's child is my what?"
    assert by_id["bigbench/yes_no_questions/0"].answer == "No"
    tf = by_id["bigbench/true_false_facts/1"]
    assert tf.kind == A.TRUE_FALSE and tf.answer == "False" and tf.question.endswith("Options:\n- True\n- False")
    assert by_id["bigbench/word_answers/1"].kind == A.INTEGER and by_id["bigbench/word_answers/3"].answer == "-12"
    assert by_id["bigbench/word_answers/2"].answer == "Paris"  # the first non-empty target of a list
    assert by_id["bigbench/families/cousins/0"].kind == A.FREE_TEXT
    assert "bigbench/word_answers/4" not in by_id  # a 20-word target cannot be scored by exact match
    odd = {q.index for q in by_id.values() if q.source == "bigbench/odd_items"}
    assert odd == {9, 10}


def test_tasks_filter_and_subtasks(small):
    _, load = small
    assert {q.source for q in load(tasks=["families"])} == {"bigbench/families/siblings", "bigbench/families/cousins"}
    assert {q.source for q in load(tasks=["families/cousins"])} == {"bigbench/families/cousins"}
    assert [q.id for q in load(keep=lambda q: q.kind == A.TRUE_FALSE)] == [
        q.id for q in load() if q.kind == A.TRUE_FALSE]
    assert not any(q.source.startswith("bigbench/program_task") for q in load())


def test_bbh_copies_are_excluded_and_near_misses_kept(small, task_files, bbh_dir):
    _, load = small
    pool = load()
    sports, deduction = _bbh_copies(bbh_dir)
    texts = [_norm(q.question) for q in pool]
    for raw in sports + [deduction["input"]]:
        assert not any(_norm(raw) in t for t in texts), raw
    kept = {(q.source, q.index) for q in pool}
    assert {("bigbench/sports_understanding", 1), ("bigbench/sports_understanding", 3),
            ("bigbench/logical_deduction", 1), ("bigbench/logical_deduction", 2)} <= kept
    # independent check by substring, as on the real pool: no kept raw input occurs inside a BBH question
    bbh_text = " || ".join(_norm(q.question) for q in bbh.load_all(bbh_dir))
    bbh_text += " || " + " || ".join(_norm(x) for x in bbh.exemplar_questions(bbh_dir))
    for q in pool:
        raw = _norm(task_files[q.source.split("/", 1)[1]]["examples"][q.index]["input"])
        assert not (len(raw.split()) >= 4 and raw in bbh_text), q.id


def test_per_task_cap_takes_a_stable_choice(tasks, bbh_dir, tmp_path):
    info = bigbench.build_pool(2, bbh_dir, tasks_folder=tasks, pool_dir=tmp_path)
    assert info.path.name == f"pool-v{bigbench.POOL_VERSION}-per2.jsonl"
    assert info.manifest["items_per_task"] == {t: min(n, 2) for t, n in EXPECTED_PER_TASK.items()}
    picked = {q.index for q in bigbench.load_pool(per_task=2, bbh_folder=bbh_dir, tasks_folder=tasks,
                                                  pool_dir=tmp_path, tasks=["arithmetic_mc"])}
    assert picked == set(sorted(range(6), key=lambda i: bigbench._stable_rank("arithmetic_mc", i))[:2])


def test_max_chars_leaves_long_questions_out(tasks, bbh_dir, tmp_path, small):
    info = bigbench.build_pool(50, bbh_dir, max_chars=200, tasks_folder=tasks, pool_dir=tmp_path)
    pool = bigbench.load_pool(bbh_folder=bbh_dir, tasks_folder=tasks, pool_dir=tmp_path)
    assert pool and all(len(q.question) <= 200 for q in pool)
    assert info.manifest["max_chars"] == 200 and "odd_items" in info.manifest["items_per_task"]
    assert "bigbench/odd_items/10" not in {q.id for q in pool}
    assert "bigbench/odd_items/10" in {q.id for q in small[1]()}  # within the default 1,200
    assert info.items < small[0].items


def test_a_built_pool_is_reused(tasks, bbh_dir, tmp_path):
    folder = _copy(tasks, tmp_path / "tasks")
    first = bigbench.build_pool(50, bbh_dir, tasks_folder=folder)
    assert first.path.parent == folder  # without pool_dir the pool sits beside its task files
    stamp = first.path.stat().st_mtime_ns
    (folder / "word_answers" / "task.json").write_text(json.dumps({"examples": []}))
    second = bigbench.build_pool(50, bbh_dir, tasks_folder=folder)
    assert second == first and first.path.stat().st_mtime_ns == stamp
    assert len(bigbench.load_pool(bbh_folder=bbh_dir, tasks_folder=folder)) == first.items
    assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize("content", [b'{"examples": [', b'{"examples": ["\xff\xfe"]}'])
def test_malformed_task_json_is_a_user_error_naming_the_file(tasks, bbh_dir, tmp_path, content):
    folder = _copy(tasks, tmp_path / "tasks")
    bad = folder / "broken_task" / "task.json"
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(str(bad))):
        bigbench.build_pool(50, bbh_dir, tasks_folder=folder, pool_dir=tmp_path / "pool")
    assert not list((tmp_path / "pool").glob("pool-*"))


def test_missing_tasks_folder_is_a_user_error(tmp_path, bbh_dir):
    with pytest.raises(UserError, match="no such folder"):
        bigbench.build_pool(50, bbh_dir, tasks_folder=tmp_path / "absent", pool_dir=tmp_path)


# ---------------------------------------------------------------- rules that need no archive

def test_filter_catches_lightly_reworded_items():
    flt = BBHFilter(['Is the following sentence plausible? "Joe Burrow caught the back shoulder fade in the Superbowl."',
                     "The following paragraphs each describe a set of three objects arranged in a fixed order. "
                     "On a shelf, there are three books: a black book, an orange book, and a blue book. The blue book "
                     "is to the right of the orange book.\nOptions:\n(A) The black book is the leftmost"])
    assert flt.is_bbh("Determine plausibility.\n\nJoe Burrow caught the back shoulder fade in the Superbowl",
                      "Joe Burrow caught the back shoulder fade in the Superbowl")
    assert flt.is_bbh("On a shelf, there are three books: a black book, an orange book, and a blue book. "
                      "The blue book is to the right of the orange book.\nOptions:\n(A) x")
    assert not flt.is_bbh("On a shelf, there are three books: a red book, a green book, and a white book. "
                          "The white book is the leftmost.\nOptions:\n(A) x")


def test_rendering_rules():
    task_def = {"task_prefix": "Answer the question.", "example_input_prefix": "\nQ: "}
    mc = render_example("t", 3, task_def, {"input": "2+2?", "target_scores": {"4": 1, "5": 0, "6": 0}})
    assert mc.kind == A.CHOICE and mc.question.startswith("Answer the question.\n\n2+2?\nOptions:\n(A) ")
    assert dict(mc.options)[mc.answer[1]] == "4" and mc.id == "bigbench/t/3"
    # the order depends on task, index and option text, not on the order the task lists them in
    same = render_example("t", 3, task_def, {"input": "2+2?", "target_scores": {"6": 0, "4": 1, "5": 0}})
    assert same == mc
    yn = render_example("t", 0, {}, {"input": "Is it?", "target_scores": {"Yes": 0, "No": 1}})
    assert yn.kind == A.YES_NO and yn.answer == "No" and "- Yes\n- No" in yn.question
    tf = render_example("t", 0, {}, {"input": "Is it?", "target_scores": {"false": 1, "true": 0}})
    assert tf.kind == A.TRUE_FALSE and tf.answer == "False" and tf.question.endswith("- true\n- false")
    assert render_example("t", 0, {}, {"input": "x", "target_scores": {"a": 1, "b": 1}}) is None  # two right answers
    assert render_example("t", 0, {}, {"input": "x", "target_scores": {c: int(c == "a") for c in "abc"}},
                          max_options=2) is None
    num = render_example("t", 0, {}, {"input": "7*6?", "target": ["42"]})
    assert num.kind == A.INTEGER and num.answer == "42"
    assert render_example("t", 0, {}, {"input": "Translate: …", "target": " ".join(["w"] * 20)}) is None


# ---------------------------------------------------------------- the real archive (opt-in)

@pytest.fixture(scope="module")
def pool(bbh_dir):
    return bigbench.build_pool(50, bbh_dir)


@functools.lru_cache(maxsize=None)
def _examples(task):
    return json.loads((bigbench.tasks_dir() / task / "task.json").read_text())["examples"]


@real_archive
def test_real_pool_is_large_varied_and_interleaved(pool, bbh_dir):
    assert pool.items > 20000 and pool.tasks > 500
    first = bigbench.load_pool(60, bbh_folder=bbh_dir)
    assert len({q.source for q in first}) == 60  # the first items cover different tasks
    kinds = {q.kind for q in bigbench.load_pool(3000, bbh_folder=bbh_dir)}
    assert {A.CHOICE, A.FREE_TEXT, A.YES_NO} <= kinds


@real_archive
def test_real_items_record_source_task_and_index(pool, bbh_dir):
    for q in bigbench.load_pool(200, bbh_folder=bbh_dir):
        example = _examples(q.source.split("/", 1)[1])[q.index]
        assert _norm(example["input"]) in _norm(q.question), q.id
        if q.kind == A.CHOICE:
            gold_text = dict(q.options)[q.answer[1]]
            best = max(example["target_scores"], key=example["target_scores"].get)
            assert gold_text == best.strip()


@real_archive
def test_no_real_pool_item_is_a_bbh_item(pool, bbh_dir):
    """Independent check by substring: no pool item's raw input occurs inside a BBH question."""
    bbh_text = " || ".join(_norm(q.question) for q in bbh.load_all(bbh_dir))
    bbh_text += " || " + " || ".join(_norm(x) for x in bbh.exemplar_questions(bbh_dir))
    sources = {s.split("_")[0] for s in bbh.SUBTASKS}
    checked = 0
    for q in bigbench.load_pool(bbh_folder=bbh_dir):
        task = q.source.split("/", 1)[1]
        if task.split("/")[0].split("_")[0] not in sources:
            continue
        raw = _norm(_examples(task)[q.index]["input"])
        checked += 1
        assert not (len(raw.split()) >= 6 and raw in bbh_text), q.id
    assert checked > 500
    assert pool.excluded_bbh > 1000
