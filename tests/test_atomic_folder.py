"""A folder built with replaced_on_success appears whole or not at all."""

import json
import os
from pathlib import Path

import pytest

from reflectevo.atomic_folder import replaced_on_success


def test_success_replaces_the_target_and_failure_leaves_it_alone(tmp_path):
    target = tmp_path / "out"
    with replaced_on_success(target) as work:
        (work / "a.txt").write_text("one")
        assert not target.exists()  # nothing visible until the block ends
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with replaced_on_success(target) as work:
            (work / "a.txt").write_text("half")
            raise RuntimeError("killed half-way")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no scratch folder left behind
    with replaced_on_success(target) as work:
        (work / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def _convert_in_child(cache: str, log: str) -> None:
    """A process asking for the embedded model with a stand-in converter that takes a while, logs
    each conversion and writes the marker as the real one does."""
    import time

    from reflectevo import embedded_model as E

    os.environ["REFLECTEVO_CACHE"] = cache

    def slow_convert(gguf, target):
        with E.replaced_on_success(target, ".convert-") as work:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            time.sleep(0.5)
            (work / E._MARKER).write_text(json.dumps({"revision": "x"}))

    E.convert_gguf = slow_convert
    E.gguf_path = lambda: Path("unused.gguf")
    E.embedded_model_dir()


def test_processes_that_ask_for_the_embedded_model_together_convert_it_once(tmp_path):
    import multiprocessing

    log = tmp_path / "conversions.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_convert_in_child, args=(str(tmp_path / "cache"), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1  # one converted; the others waited and found its folder
    folder = tmp_path / "cache" / "models"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == ["smollm2-135m-instruct"]
