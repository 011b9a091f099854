"""The cache of lm-eval's task index (harness_plugins/task_index_cache.py): the index it gives is the
one lm-eval builds, a changed, new or deleted file (an included one too) is seen, and a broken cache
file costs a rebuild, not the run."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

import harness_plugins.lm_eval_hook  # noqa: F401  (installs the cache on lm-eval's index)
from harness_plugins import task_index_cache

LM_EVAL_TASKS = Path(__import__("lm_eval.tasks", fromlist=["x"]).__file__).parent


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECTEVO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(task_index_cache.OPT_OUT_ENV, raising=False)
    return tmp_path / "cache"


def build(paths):
    """(index as comparable data, the build's counts: parsed, reused)."""
    from lm_eval.tasks._index import TaskIndex

    index = TaskIndex.build([Path(p) for p in paths])
    last = TaskIndex.build.last
    data = {name: (e.kind, str(e.yaml_path), e.cfg, sorted(e.tags)) for name, e in index.items()}
    return data, (last.parsed, last.reused) if last is not None else None


def uncached(paths, monkeypatch):
    monkeypatch.setenv(task_index_cache.OPT_OUT_ENV, "0")
    try:
        return build(paths)[0]
    finally:
        monkeypatch.delenv(task_index_cache.OPT_OUT_ENV)


def age(*files: Path, seconds: float = 60) -> None:
    """Files older than the cache's settling time, as files on disk usually are."""
    past = time.time() - seconds
    for f in files:
        os.utime(f, (past, past))


def write_tasks(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = [root / "_common.yaml", root / "alpha.yaml", root / "beta.yaml", root / "group.yaml"]
    files[0].write_text("output_type: generate_until\ndoc_to_text: '{{question}}'\nmetadata:\n  version: 1\n")
    files[1].write_text("include: _common.yaml\ntask: t_alpha\ntag: [t_tag]\ndataset_path: json\n")
    files[2].write_text("include: _common.yaml\ntask: t_beta\nprocess_results: !function utils.score\n")
    files[3].write_text("group: t_group\ntask: [t_alpha, t_beta]\n")
    age(*files)
    return files


def test_a_cached_index_equals_lm_evals_own_and_sees_every_change(tmp_path, cache_dir, monkeypatch):
    tasks = tmp_path / "tasks"
    files = write_tasks(tasks)
    first, counts = build([tasks])
    assert counts == (4, 0) and first == uncached([tasks], monkeypatch)
    assert set(first) == {"t_alpha", "t_beta", "t_group", "t_tag"}
    assert (cache_dir / task_index_cache.CACHE_NAME).is_file()

    again, counts = build([tasks])
    assert counts == (0, 4) and again == first

    # an included file changes: it and both tasks that include it are parsed again, the group is not
    files[0].write_text("output_type: generate_until\ndoc_to_text: '{{q}}'\nmetadata:\n  version: 2\n")
    age(files[0], seconds=30)
    changed, counts = build([tasks])
    assert counts == (3, 1) and changed == uncached([tasks], monkeypatch)
    assert changed["t_alpha"][2]["metadata"] == {"version": 2}

    # a new file, a deleted one
    (tasks / "gamma.yaml").write_text("include: _common.yaml\ntask: t_gamma\n")
    age(tasks / "gamma.yaml")
    files[2].unlink()
    later, counts = build([tasks])
    assert later == uncached([tasks], monkeypatch) and "t_gamma" in later and "t_beta" not in later
    stored = pickle.loads((cache_dir / task_index_cache.CACHE_NAME).read_bytes())["entries"]
    assert not any("beta.yaml" in key for key in stored), "a deleted file's entry is dropped"


def test_a_file_written_just_now_is_not_cached(tmp_path, cache_dir):
    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    (tasks / "fresh.yaml").write_text("task: t_fresh\n")  # mtime: now
    build([tasks])
    _, counts = build([tasks])
    assert counts == (1, 4), "a file within the settling time could still change unseen: parsed again"


def test_a_broken_or_foreign_cache_file_costs_a_rebuild(tmp_path, cache_dir, monkeypatch):
    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    store = cache_dir / task_index_cache.CACHE_NAME
    expected = uncached([tasks], monkeypatch)
    build([tasks])
    good = pickle.loads(store.read_bytes())["entries"]
    other_version = {"0.0.1" + key[key.index(":"):]: entry for key, entry in good.items()}
    for junk in (b"not a pickle", pickle.dumps(["a list"]), pickle.dumps({"format": 99, "entries": good}),
                 pickle.dumps({"format": task_index_cache.FORMAT, "entries": {"x": 1, **{k: (v[0], "str") for k, v in good.items()}}}),
                 pickle.dumps({"format": task_index_cache.FORMAT, "entries": other_version})):
        store.write_bytes(junk)
        index, counts = build([tasks])
        assert index == expected and counts == (4, 0)
        assert set(pickle.loads(store.read_bytes())["entries"]) >= set(good)


def test_a_parse_error_is_reported_as_lm_eval_reports_it_and_never_cached(tmp_path, cache_dir, monkeypatch):
    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    (tasks / "broken.yaml").write_text("task: [unclosed\n")
    age(tasks / "broken.yaml")
    index, _ = build([tasks])
    assert index == uncached([tasks], monkeypatch) and len(index) == 4
    stored = pickle.loads((cache_dir / task_index_cache.CACHE_NAME).read_bytes())["entries"]
    assert not any("broken.yaml" in key for key in stored)


def test_switched_off_it_reads_and_writes_nothing(tmp_path, cache_dir, monkeypatch):
    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    monkeypatch.setenv(task_index_cache.OPT_OUT_ENV, "0")
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tasks), include_defaults=False)
    assert "t_group" in tm.all_groups and not cache_dir.exists()


def test_a_real_lm_eval_folder_with_includes_indexes_the_same_from_the_cache(tmp_path, cache_dir, monkeypatch):
    """lm-eval's own BBH tasks (three variants that include shared templates), and our task folder."""
    from harness_plugins.lm_eval_hook import task_dir

    paths = [LM_EVAL_TASKS / "bbh", Path(task_dir())]
    expected = uncached(paths, monkeypatch)
    first, (parsed, reused) = build(paths)
    again, counts = build(paths)
    assert first == expected == again and counts == (0, parsed) and reused == 0
    assert {"reflectevo_bbh", "bbh_cot_fewshot_snarks"} <= set(again)


def test_the_task_manager_uses_it(tmp_path, cache_dir):
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import TaskIndex

    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    TaskManager(include_path=str(tasks), include_defaults=False)
    tm = TaskManager(include_path=str(tasks), include_defaults=False)
    assert TaskIndex.build.last.reused == 4 and "t_alpha" in tm.all_subtasks
