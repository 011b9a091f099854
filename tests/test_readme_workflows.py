"""The README's three workflows (generate and publish a dataset; train and publish an adapter;
evaluate with lm_eval and build the leaderboard) run as written against the local Hub server, with
options appended that shrink them to minutes on a CPU: the demo loop's generation settings,
the embedded model's demo training recipe, and lm_eval on one item of each of two subtasks with
64-token turns.

The generation step starts from a copy of the session's demo generation (conftest's
demo_generation, shared with tests/test_gen_pipeline.py and tests/test_evolve.py), as from a run
killed after its last chunk: `gen run` must find it to be its own run and generate nothing. Making
the same records again would be minutes of the same model work; `gen run` from scratch through the
command line is what tests/test_multiprocess.py's greedy reference does. Every later step runs as a
new user's would. Moved from tests/test_readme_commands.py (test_the_readme_workflows_run_as_written),
whose every check it keeps; it used to generate 8 of the demo's questions itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from ports import free_port
from test_readme_commands import (README, ROOT, SHELL_LANGS, _env, _section, _table, _workspace, fenced_blocks,
                                  logical_lines)

pytestmark = pytest.mark.slow

EVAL_TASKS = "reflectevo_bbh_test_boolean_expressions,reflectevo_bbh_test_navigate"


def _demo_gen_options() -> str:
    """The demo loop's gen section as `gen run` options: the settings of the copied generation."""
    import yaml

    gen = yaml.safe_load((ROOT / "reflectevo_evolve" / "loops" / "demo.yaml").read_text())["gen"]
    ids = ",".join(q.strip() for q in gen.pop("question_ids").split(",") if q.strip())
    return f" --question_ids {ids}" + "".join(f" --{key} {value}" for key, value in gen.items())


def _shrink(line: str, port: int) -> str:
    """The README's line with options appended that make it take minutes on a CPU."""
    line = line.replace("8765", str(port))
    if line.startswith("reflectevo gen run"):
        line += _demo_gen_options()
    elif line.startswith("reflectevo train"):
        line += " --config demo --max_length 768"
    elif line.startswith("lm_eval"):  # two subtasks of the README's task group (lm_eval adds up repeated --tasks)
        line = re.sub(r"(--model_args )(\S+)", r"\1\2,dtype=float32,max_gen_toks=64,reflection_max_gen_toks=64",
                      line) + " --limit 1 --device cpu"
        line = re.sub(r"--tasks reflectevo_bbh_test(?=\s)", f"--tasks {EVAL_TASKS}", line)
    return line


def _gen_summary(stdout: str) -> dict:
    """The JSON summary `gen run` prints first on stdout (the Hub server's lines come before it)."""
    start = stdout.index("\n{") + 1
    return json.JSONDecoder().raw_decode(stdout[start:])[0]


@pytest.mark.timeout(2400)
def test_the_readme_workflows_run_as_written(tmp_path, demo_generation):
    text = README.read_text()
    workflows = _section(README, "Workflows")
    lines = [line for lang, body, _ in fenced_blocks(workflows) if lang in SHELL_LANGS for line in logical_lines(body)
             if "--help" not in line]
    assert any(line.startswith("reflectevo hub serve") for line in lines), text
    (gen_line,) = [line for line in lines if line.startswith("reflectevo gen run")]
    gen_output = re.search(r"--output (\S+)", gen_line).group(1)
    port = free_port()
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    for line in lines:
        script += _shrink(line, port) + "\n"
        if line.startswith("reflectevo hub serve"):  # wait until it answers
            script += (f"for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
                       "sleep 0.2; done\n")
    work = _workspace(tmp_path)
    gen_cfg, demo_summary = demo_generation
    shutil.copytree(gen_cfg.output, work / gen_output)
    # its own process group, so that a timeout also ends the Hub server and whatever step was running
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=2300)
    finally:
        try:
            os.killpg(proc.pid, 9)  # the script's trap ends the server too; this covers a timeout
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, f"{script}\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-6000:]}"
    summary = _gen_summary(out)
    assert summary["resumed_chunks"] == summary["chunks"] == demo_summary["chunks"], summary  # nothing generated
    assert summary["records"] == demo_summary["records"], summary
    board = (work / "runs" / "leaderboard" / "bbh.md").read_text()
    rows = _table(_section(work / "runs" / "leaderboard" / "bbh.md", "Rows"))
    assert len(rows) == 3, board  # header, the trained reflector, the retry_only baseline
    assert "me/reflector" in board and "retry_only" in board
