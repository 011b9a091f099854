"""Issue 20, items 6-8: generation folders and resume folders are not corrupted quietly.

- one writer per generation folder (an OS lock naming its holder); records of other settings are
  an error naming the chunk; each lm-eval rank keeps its own resume folder;
- every chunk carries a manifest (record count and ids), so a lost or doubled line is an error
  naming the chunk, in the store's reader and so in merge and curate;
- bad input is one line, with nothing written: a merged folder given to merge, a chunk line that is
  not an object or not UTF-8, a results file that is a JSON list, an invalid answer_regex.

Generation here runs the real pipeline with a scripted model (no weights), so it takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_gen.config import GenConfig
from reflectevo_gen.merge import merge
from reflectevo_gen.pipeline import Engines, run
from reflectevo.chunk_store import LOCK_NAME, MANIFEST, FolderLock, RecordStore, read_records
from reflectevo_tasks.engine import Engine, EngineConfig
from scripted_models import ScriptedChat
from test_lm_eval_tasks import ScriptedLM, fake_bbh, requests_for, scripted_model  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


class ScriptedGenerator(ScriptedChat):
    """Answers every question 'yes' and every reflection with one fixed line: with golds split
    between yes and no, half the questions are wrong at trial 1 and get reflections."""

    def generate_until(self, requests, disable_tqdm=False):
        return ["Diagnosis: I guessed. Plan: read again. So the answer is yes." for _ in requests]


def _engines() -> Engines:
    lm = Engine(EngineConfig(model="scripted"), lm=ScriptedGenerator())
    return Engines(lm, lm)


def _source(tmp_path: Path, n: int = 8, spec_extra: str = "", name: str = "yn") -> Path:
    data = tmp_path / "yn.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps({"q": f"Is {i} even?", "a": "yes" if i % 2 == 0 else "no"}) + "\n"
                                for i in range(n)))
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: yn\npath: {data}\ncolumns: {{question: q, answer: a}}\n{spec_extra}")
    return spec


def _cfg(tmp_path: Path, out: str, **kw) -> GenConfig:
    base = dict(output=str(tmp_path / out), source=str(_source(tmp_path)), chunk_size=3, reflections_per_instruction=1,
                instruction_ids="sample:1", trial_max_new_tokens=16, reflection_max_new_tokens=16, batch_size=8)
    return GenConfig(**{**base, **kw})


def _gen(tmp_path: Path, out: str = "run", **kw) -> Path:
    cfg = _cfg(tmp_path, out, **kw)
    run(cfg, engines=_engines(), show_progress=False)
    return Path(cfg.output)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding the folder's writer lock until killed."""
    code = ("import sys, time; from reflectevo.chunk_store import FolderLock; lock = FolderLock(sys.argv[1]); "
            "lock.acquire(); print('held', flush=True); time.sleep(600)")
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert p.stdout.readline().strip() == "held"
    return p


# ================================================================ item 6: one writer, one config

def test_second_writer_is_refused_naming_the_holder_and_leaves_its_files(tmp_path):
    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        # the first writer's chunk in flight: an old second run deleted it at start
        in_flight = folder / "parts" / f".chunk-000000.jsonl.tmp-{holder.pid}"
        in_flight.parent.mkdir(parents=True)
        in_flight.write_text("half a chunk\n")
        with pytest.raises(UserError) as err:
            run(_cfg(tmp_path, "run"), engines=_engines(), show_progress=False)
        msg = str(err.value)
        assert "\n" not in msg and "another process is writing here" in msg
        assert f"pid {holder.pid} on {socket.gethostname()}, started 20" in msg and "--output" in msg
        assert in_flight.exists() and not (folder / "run_config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the OS dropped the dead holder's lock: its stale lock file does not block the next run
    assert (folder / LOCK_NAME).exists()
    run(_cfg(tmp_path, "run"), engines=_engines(), show_progress=False)
    assert not (folder / LOCK_NAME).exists() and not in_flight.exists()
    assert len(read_records(folder)) == 8  # 4 right at trial 1, 4 wrong with one reflection each


_SLOW_WRITER = """
import os, sys, time
from reflectevo_gen.config import GenConfig
from reflectevo_gen.pipeline import Engines, run
from reflectevo_tasks.engine import Engine, EngineConfig
from test_data_safety import ScriptedGenerator

class Slow(ScriptedGenerator):
    def generate_until(self, requests, disable_tqdm=False):
        time.sleep(0.15)
        return super().generate_until(requests)

print("ready", flush=True)  # imports done: both start writing together once the test says go
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
lm = Engine(EngineConfig(model="scripted"), lm=Slow())
cfg = GenConfig(output=sys.argv[1], source=sys.argv[2], chunk_size=2, reflections_per_instruction=1,
                instruction_ids="sample:1", trial_max_new_tokens=16, reflection_max_new_tokens=16, batch_size=8)
run(cfg, engines=Engines(lm, lm), show_progress=False)
"""


def test_two_writers_started_together_one_proceeds(tmp_path):
    """Before the lock both ran to the end, each generating the chunks the other was writing."""
    spec, folder = _source(tmp_path, n=16), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(folder), str(spec), str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
    go.touch()
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 1], results
    refused = next(err for rc, err in results if rc)
    winner = next(p.pid for p, (rc, _) in zip(procs, results) if rc == 0)
    assert f"another process is writing here (pid {winner} on " in refused
    assert len(read_records(folder)) == 16 and not (folder / LOCK_NAME).exists()


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with FolderLock(tmp_path / "f"):
        with pytest.raises(UserError, match=f"pid {os.getpid()} on"):
            FolderLock(tmp_path / "f").acquire()
    with FolderLock(tmp_path / "f"):  # released, so taken again
        pass


def test_records_of_other_settings_are_an_error_naming_the_chunk(tmp_path):
    mine, other = _gen(tmp_path, "mine"), _gen(tmp_path, "other", seed=7)
    stray = mine / "parts" / "chunk-000001.jsonl"
    stray.write_bytes((other / "parts" / "chunk-000001.jsonl").read_bytes())
    with pytest.raises(UserError, match=r"chunk-000001\.jsonl: line 2 .* other settings"):
        read_records(mine)
    # a resumed run finds it before generating anything
    (mine / "parts" / "chunk-000002.jsonl").unlink()
    with pytest.raises(UserError, match=r"chunk-000001\.jsonl: .* other settings"):
        run(_cfg(tmp_path, "mine"), engines=None, show_progress=False)


class _Rank1of2(ScriptedLM):
    rank, world_size = 1, 2

    def __init__(self, gold):
        super().__init__(gold)
        self.gathered: list = []

    def gather_object(self, obj, dst=0):
        """As lm-eval's models do on a rank other than dst: hand the object over, get nothing back."""
        self.gathered.append(obj)
        return None


def test_each_rank_keeps_its_own_resume_folder(fake_bbh, tmp_path):  # noqa: F811
    from harness_plugins.reflect_model import ReflectEvoLM
    from reflectevo_tasks import bbh

    gold = {q.question: q.answer for s in bbh.SUBTASKS for q in bbh.load_subtask(s, fake_bbh)}
    folder = tmp_path / "resume"
    reqs = requests_for("boolean_expressions")
    rank1 = ReflectEvoLM.from_engines(Engine(EngineConfig(model="scripted-base"), lm=_Rank1of2(gold)),
                                      chunk_size=2, resume=str(folder))
    rank1.generate_until(reqs)
    assert sorted(p.name for p in (folder / "rank-1-of-2" / "parts").iterdir()) == ["chunk-000000.jsonl", "chunk-000001.jsonl"]
    # its records went to rank 0 for the results block, one per doc
    assert [len(obj["docs"]) for obj in rank1.base.lm.gathered] == [len(reqs)]
    assert not (folder / "parts").exists() and not (folder / "settings.json").exists()
    # a single process keeps the folder itself, next to the ranks' folders
    single = scripted_model(fake_bbh, chunk_size=2, resume=str(folder))
    single.generate_until(reqs)
    assert (folder / "parts" / "chunk-000000.jsonl").is_file() and (folder / "settings.json").is_file()
    # rank 1 of 2 resumes from its own folder: no generation at all
    again = ReflectEvoLM.from_engines(Engine(EngineConfig(model="scripted-base"), lm=_Rank1of2(gold)),
                                      chunk_size=2, resume=str(folder))
    again.generate_until(reqs)
    assert again.base.lm.calls == []
    # trial 1 from a two-process run is read from the same rank's folder, and only there
    from harness_plugins.reflect_model import Chunking

    shared = Chunking.parse(2, None, str(folder)).for_rank(1, 2)
    assert shared.trial1_from == str(folder / "rank-1-of-2")
    with pytest.raises(UserError, match="has no rank-0-of-2/ resume folder"):
        Chunking.parse(2, None, str(folder)).for_rank(0, 2)


def test_committed_resume_folders_still_resume_in_place():
    from harness_plugins.reflect_model import Chunking

    root = REPO / "leaderboards" / "measured" / "resume"
    folders = sorted(p for p in root.iterdir() if (p / "parts").is_dir()) if root.is_dir() else []
    if not folders:
        pytest.skip("no committed resume folders in this checkout")
    for folder in folders:
        chunking = Chunking.parse(64, str(folder)).for_rank(0, 1)
        assert chunking.resume == str(folder)  # one process: the folder itself, as before
        store = RecordStore(folder)
        for n in sorted(store.done_chunks()):
            records = store.read_chunk(n)
            assert records and all(set(r) >= {"key", "trajectory"} for r in records)


# ================================================================ item 7: lost and doubled lines

def test_lost_or_doubled_line_is_an_error_naming_the_chunk_in_read_merge_and_curate(tmp_path):
    from reflectevo_gen.curate import curate_run

    folder = _gen(tmp_path, "s0", shard="0/1")
    chunk = folder / "parts" / "chunk-000000.jsonl"
    lines = _lines(chunk)
    assert MANIFEST in json.loads(lines[0]) and len(lines) == 1 + json.loads(lines[0])[MANIFEST]["count"]
    for damaged, what in ((lines[:2] + lines[3:], "lost 1"), (lines + [lines[1]], "extra or doubled 1")):
        _write_lines(chunk, damaged)
        with pytest.raises(UserError, match=rf"chunk-000000\.jsonl: holds \d+ records?, its manifest lists \d+ \({what}: "):
            read_records(folder)
        with pytest.raises(UserError, match=rf"chunk-000000\.jsonl: .*{what}"):
            merge([str(folder)], str(tmp_path / "merged"))
        with pytest.raises(UserError, match=rf"chunk-000000\.jsonl: .*{what}"):
            curate_run(str(folder), str(tmp_path / "curated"), engine=object())
        assert not (tmp_path / "merged").exists() and not (tmp_path / "curated").exists()
    _write_lines(chunk, lines)
    assert merge([str(folder)], str(tmp_path / "merged"))["records"] == 8
    # the merged folder's chunks carry manifests and the shards' config hashes
    _write_lines(tmp_path / "merged" / "parts" / "chunk-000000.jsonl",
                 _lines(tmp_path / "merged" / "parts" / "chunk-000000.jsonl")[:-1])
    with pytest.raises(UserError, match="lost 1"):
        read_records(tmp_path / "merged")


def test_chunks_without_a_manifest_are_read_with_a_note_and_doubles_still_caught(tmp_path, capsys):
    folder = _gen(tmp_path, "old", shard="0/1")
    for chunk in sorted((folder / "parts").iterdir()):  # as written before manifests existed
        _write_lines(chunk, _lines(chunk)[1:])
    assert len(read_records(folder)) == 8
    err = capsys.readouterr().err
    assert "chunk-000000.jsonl, chunk-000001.jsonl, chunk-000002.jsonl written without a record manifest" in err
    chunk = folder / "parts" / "chunk-000001.jsonl"
    lines = _lines(chunk)
    _write_lines(chunk, lines + [lines[0]])
    with pytest.raises(UserError, match=r"chunk-000001\.jsonl: record .* appears 2 times"):
        read_records(folder)
    # a lost line goes unseen by the reader there, but merge counts against the run's summary
    _write_lines(chunk, lines[1:])
    assert len(read_records(folder)) == 7
    with pytest.raises(UserError, match="holds 7 records, its summary.json says 8"):
        merge([str(folder)], str(tmp_path / "merged"))


# ================================================================ item 8: one line, nothing written

def _one_line_cli(args: list[str]) -> str:
    p = subprocess.run([sys.executable, "-m", "reflectevo", *args], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reflectevo: error: "), p.stderr
    return lines[0]


def test_merging_a_merged_folder_is_one_line(tmp_path):
    folder = _gen(tmp_path, "s0", shard="0/1")
    merge([str(folder)], str(tmp_path / "merged"))
    line = _one_line_cli(["gen", "merge", "--inputs", str(tmp_path / "merged"), "--output", str(tmp_path / "again")])
    assert "merged: already a merged folder; merge the shard folders it came from" in line
    assert not (tmp_path / "again").exists()
    with pytest.raises(UserError, match="already holds a run"):
        merge([str(folder)], str(tmp_path / "merged"))


@pytest.mark.parametrize("bad, message", [
    (b"[1, 2, 3]", "line 2 is not a JSON object"),
    (b'"just a string"', "line 2 is not a JSON object"),
    (b'{"record_id": "caf\xe9"}', "not UTF-8 text"),
])
def test_a_chunk_line_that_is_not_an_object_or_not_utf8_is_one_error(tmp_path, bad, message):
    from reflectevo_gen.curate import curate_run

    folder = _gen(tmp_path, "run")
    chunk = folder / "parts" / "chunk-000000.jsonl"
    raw = chunk.read_bytes().split(b"\n")
    chunk.write_bytes(b"\n".join(raw[:1] + [bad] + raw[2:]))
    with pytest.raises(UserError, match=rf"chunk-000000\.jsonl: {message}"):
        read_records(folder)
    with pytest.raises(UserError, match=rf"chunk-000000\.jsonl: {message}"):
        curate_run(str(folder), str(tmp_path / "curated"), engine=object())
    assert not (tmp_path / "curated").exists()


def test_a_results_file_that_is_a_json_list_is_one_error(tmp_path):
    from leaderboards.build import build

    results = tmp_path / "results_2026.json"
    results.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"results_2026\.json: not an lm-eval results file \(a JSON list"):
        build([str(results)], str(tmp_path / "board"))
    results.write_text('{"config": [1]}')
    with pytest.raises(UserError, match="no reflectevo provenance block"):
        build([str(results)], str(tmp_path / "board"))
    assert not (tmp_path / "board").exists()


@pytest.mark.parametrize("regex, message", [
    ("'#### ([0-9'", "is not a valid regular expression"),
    ("'#### [0-9]+'", "needs a group"),
])
def test_an_invalid_answer_regex_fails_before_anything_is_written(tmp_path, regex, message):
    spec = _source(tmp_path, spec_extra=f"answer_regex: {regex}\n", name="bad")
    with pytest.raises(UserError, match=rf"bad\.yaml: answer_regex .* {message}"):
        run(_cfg(tmp_path, "run", source=str(spec)), engines=_engines(), show_progress=False)
    assert not (tmp_path / "run").exists()


def test_rejected_rows_count_from_one_as_the_file_reads(tmp_path):
    from reflectevo_tasks.sources import load_questions

    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": "Is it?", "a": "yes"}\n{"q": "", "a": "no"}\n\n{torn\n')
    spec = tmp_path / "rows.yaml"
    spec.write_text(f"name: rows\npath: {data}\ncolumns: {{question: q, answer: a}}\n")
    report = load_questions(str(spec))
    assert [m.split(": ")[1] for m in report.rejected] == ["row 2", "row 4"]  # line 3 is blank
    assert [q.id for q in report.questions] == ["custom/rows/0"]  # ids keep counting from 0
