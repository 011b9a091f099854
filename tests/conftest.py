"""Test settings that must hold before any Hugging Face library is imported.

Nothing in the suite may reach beyond 127.0.0.1: the default Hub endpoint is a closed loopback
port, Hub tests start their own loopback server and point clients at it explicitly, and
network_guard makes any other connection fail at once with the test's name.
"""

import os
from pathlib import Path

os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Under pytest-xdist (`-n`, on by default in pyproject.toml) each worker, and every process a test
# starts, gets its share of the cores: two workers each running torch on every core are slower
# together than one. The worker count is in the environment before this file is imported.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

_SHARED_BBH = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh"
if "REFLECTEVO_BBH_DIR" not in os.environ and _SHARED_BBH.is_dir():
    os.environ["REFLECTEVO_BBH_DIR"] = str(_SHARED_BBH)
elif os.environ.get("REFLECTEVO_BBH_DIR"):
    # the README gives it relative to the clone; tests run lm_eval from other folders
    os.environ["REFLECTEVO_BBH_DIR"] = os.path.abspath(os.environ["REFLECTEVO_BBH_DIR"])

import pytest  # noqa: E402

from network_guard import install as _guard_network  # noqa: E402

_guard_network()

REPO = Path(__file__).resolve().parents[1]

# Model runs asserted on by two files (the fixtures below), each with the xdist group of the files
# that use it: a group runs on one worker, so the run is made once. The greedy reference and the
# oracle evaluation share one group (tests/test_multiprocess.py uses both), which comes to about half
# the slow tier beside the demo generation's.
JOINING_RUNS = {"demo_generation": "demo_generation", "greedy_reference": "greedy_and_oracle",
                "oracle_eval": "greedy_and_oracle"}
MAX_WORKERS = 4  # each worker of the slow tier holds models and lm_eval (1-3 GB); past 4 memory, not cores, limits
# slow groups in the order workers should take them, longest first (from `--durations`; the rest
# follow in file order, then the fast tests fill the gaps): a long group started last would run alone
LONGEST_FIRST = ("demo_generation", "greedy_and_oracle",
                 "test_math_mbpp_cli", "test_train_settings")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most MAX_WORKERS."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def _name_groups(items) -> None:
    """Put each test's xdist group into its id as `id@group`, which is how `--dist loadgroup` reads it.
    pytest-xdist 3.8 does this by setting `item._nodeid`, which pytest 9 no longer reads (its ids are
    `item._id`): measured with pytest 9.2, tests of one group ran on both workers. Done here the
    way each pytest reads it; if xdist adds its suffix too, the group after the last `@` is the same."""
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid.rpartition("::")[2]:
            continue
        grouped = f"{item.nodeid}@{'_'.join(names)}"
        try:
            from _pytest.nodeid import coerce_node_id  # pytest >= 9
        except ImportError:
            item._nodeid = grouped
        else:
            item._id = coerce_node_id(grouped)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Give each slow test an xdist group (`--dist loadgroup` runs a group on one worker): its file,
    so that a file's fixtures are made once, or the run of JOINING_RUNS it uses. Fast tests stay
    ungrouped and are spread one by one. Under xdist, slow groups go first, longest first."""
    slow = [item for item in items if item.get_closest_marker("slow")]
    group = {}
    for item in slow:
        group[item.nodeid] = next((g for r, g in JOINING_RUNS.items() if r in item.fixturenames), item.module.__name__)
    joined = {item.module.__name__: group[item.nodeid] for item in slow
              if group[item.nodeid] in JOINING_RUNS.values()}
    for item in slow:  # a file with one test on a joining run goes with it whole (its module fixtures once)
        group[item.nodeid] = joined.get(item.module.__name__, group[item.nodeid])
        item.add_marker(pytest.mark.xdist_group(group[item.nodeid]))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        ordered = sorted(slow, key=lambda item: rank.get(group[item.nodeid], len(rank)))  # stable
        slow_ids = set(group)
        items[:] = ordered + [item for item in items if item.nodeid not in slow_ids]
        if config.getvalue("loadgroup"):
            _name_groups(items)


@pytest.fixture(scope="session")
def bbh_dir() -> str:
    d = os.environ.get("REFLECTEVO_BBH_DIR")
    if not d:
        pytest.skip("no local BBH folder (set REFLECTEVO_BBH_DIR)")
    return d


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    from reflectevo.embedded_model import embedded_model_dir as folder

    return str(folder())


@pytest.fixture(scope="session")
def engine(embedded_model_dir):
    """One embedded-model engine shared by the tests that generate (loading costs seconds)."""
    from reflectevo_tasks.engine import Engine, EngineConfig

    return Engine(EngineConfig(batch_size=16))


# ------------------------------------------------------------------------------------------------
# Model runs shared by several test files. Each is minutes of CPU; made once per session and only
# when a test asks for it, so `pytest -m "not slow"` and single-file runs pay for what they use.

DEMO_LOOP = REPO / "reflectevo_evolve" / "loops" / "demo.yaml"


@pytest.fixture(scope="session")
def demo_generation(tmp_path_factory, embedded_model_dir):
    """The README demo's generation step: 16 questions of BBH's generation pool on which the embedded
    model can fix some answers, with the demo loop's whole gen section (2 instructions x 4
    reflections per wrong answer, 128-token turns, float32, seed 0). Returns (GenConfig, summary);
    the records are in cfg.output.

    This model fixes a few percent of its failures, so a test-sized run taken blindly would leave
    D+, D± and Dpref empty. The slice (the demo loop's gen.question_ids, reflectevo_evolve/loops/demo.yaml,
    which says how it was picked) is 12 questions it answers right at trial 1 and 4 on which a real run
    at these settings saw reflections fix the answer; the fixes here are sampled afresh, so they can
    still fail to come.

    Shared because it is the suite's longest model run: tests/test_gen_pipeline.py checks the records
    and their curation; the evolve end-to-end test (tests/test_evolve.py) gives a copy to the loop's
    gen step and the README workflows test (tests/test_readme_workflows.py) one to the README's
    `gen run`, each of which must find it to be its own run (same settings) and resume it."""
    import yaml

    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import Engines, run
    from reflectevo_tasks.engine import Engine, EngineConfig

    out = tmp_path_factory.mktemp("demo-gen") / "gen"
    demo = yaml.safe_load(DEMO_LOOP.read_text(encoding="utf-8"))["gen"]
    cfg = GenConfig(output=str(out), **demo)
    lm = Engine(EngineConfig(dtype=cfg.dtype, batch_size=cfg.batch_size))  # what `gen run` builds from cfg
    summary = run(cfg, engines=Engines(lm, lm), show_progress=False)
    return cfg, summary


# 8 questions in chunks of 2, greedy everywhere (reflections at temperature 0): a run's records are
# a function of its settings, so runs made in other ways (killed and resumed, sharded) must equal it
GREEDY_ARGS = ["--limit", "8", "--chunk_size", "2", "--trial_max_new_tokens", "24", "--reflection_max_new_tokens", "24",
               "--reflection_temperature", "0", "--reflections_per_instruction", "1", "--batch_size", "8"]


@pytest.fixture(scope="session")
def greedy_reference(tmp_path_factory, bbh_dir, embedded_model_dir) -> Path:
    """`reflectevo gen run GREEDY_ARGS`, uninterrupted, in one process: what the SIGKILLed and resumed
    run and the merged concurrent shards of tests/test_multiprocess.py must equal."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("greedy") / "ref"
    p = subprocess.run([sys.executable, "-m", "reflectevo", "gen", "run", "--output", str(out), *GREEDY_ARGS],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


# One oracle-mode evaluation of two subtasks through the real `lm_eval` command. One thread: the
# two-process runs of tests/test_multiprocess.py (one thread per rank) are compared with it item by item.
ORACLE_SUBTASKS = ("boolean_expressions", "date_understanding")
ORACLE_LIMIT = 4  # per subtask; even, so that two ranks split every subtask without padding
# float32: bf16 prefill is ~5x slower on a CPU without native bf16
ORACLE_MODEL_ARGS = "base=hf,pretrained=smollm2-135m-instruct,dtype=float32,max_gen_toks=64,reflection_max_gen_toks=48"
ORACLE_BATCH = 16


def oracle_command(out: Path, model_args: str = ORACLE_MODEL_ARGS) -> list[str]:
    """`lm_eval` arguments (after the program) of the shared oracle evaluation, with other model_args if given."""
    return ["--model", "reflectevo", "--model_args", model_args,
            "--tasks", ",".join(f"reflectevo_bbh_{s}" for s in ORACLE_SUBTASKS), "--limit", str(ORACLE_LIMIT),
            "--device", "cpu", "--batch_size", str(ORACLE_BATCH), "--log_samples", "--output_path", str(out)]


def eval_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def oracle_eval(tmp_path_factory, bbh_dir, embedded_model_dir) -> dict:
    """`lm_eval --model reflectevo` in oracle mode, one process, on ORACLE_LIMIT items of each of
    ORACLE_SUBTASKS: its output folder and stderr. tests/test_lm_eval_cli.py checks its metrics,
    trajectories and provenance; tests/test_multiprocess.py checks that two processes give the same."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("oracle-eval")
    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    proc = subprocess.run([lm_eval, *oracle_command(tmp / "out")], cwd=tmp, env=eval_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"out": tmp / "out", "stderr": proc.stderr}
