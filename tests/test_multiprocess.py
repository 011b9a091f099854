"""The multi-process paths users take on clusters, run on this machine's CPU (issue 22).

* training: `accelerate launch --multi_gpu --num_processes 2 -m reflectevo_train ...` on the embedded
  model: on a machine without a GPU the two ranks form one gloo group (reflectevo_train/launch.py)
  and split the data; one adapter, one card, one provenance (with the world size) and one Hub
  commit come out; warnings and progress print once. `accelerate launch --cpu --num_processes 2`
  (one process unless mpirun is used) is refused with one line saying what to run instead.
* the shipped DeepSpeed / FSDP configs go through accelerate's own launch parsing and plugins
  (no GPU, and deepspeed itself is not installed: its plugin is built from accelerate's dataclass).
* generation: two `gen run --shard i/2` processes at once into two folders, merged, equal record
  by record (ids and content hashes) to a one-process greedy run.
* evaluation: `accelerate launch --multi_gpu --num_processes 2 -m lm_eval --model reflectevo ...`.

Every process here runs single-threaded (OMP_NUM_THREADS=1): two ranks on two cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import GREEDY_ARGS, ORACLE_LIMIT, ORACLE_MODEL_ARGS, ORACLE_SUBTASKS, eval_env, oracle_command  # noqa: E402
from hub_fixtures import hub, hub_server  # noqa: E402,F401
from ports import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCELERATE = str(BIN / "accelerate")
CONFIGS = REPO / "reflectevo_train" / "accelerate"


def _launch_two(module_args: list[str]) -> list[str]:
    """`accelerate launch` for two processes on this machine, every default given (so accelerate
    prints no advice), on a port of its own."""
    return [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
            "-m", *module_args]


def _run(cmd: list[str], env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _start(cmd: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """Start a process writing to a log file of its own: a pipe that nobody reads while the test
    waits on another process, or watches a folder, would fill and stall it."""
    n = len(list(cwd.glob("process-*.log")))
    log = cwd / f"process-{n}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _wait(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str]:
    proc.wait(timeout=timeout)
    return proc.returncode, proc.log.read_text(errors="replace")


# ------------------------------------------------------------------------------------- training
@pytest.fixture
def sample_dir(tmp_path, bbh_dir) -> str:
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path / "sample", bbh_dir, per_subtask=1))  # 4 rows per config


def _train_two(hub, tmp_path, sample_dir, setting: str) -> tuple[subprocess.CompletedProcess, Path, str]:
    repo, out = hub.repo(f"mp-{setting}"), tmp_path / "out"
    # 4 rows, 1 per process and step: 2 steps are one pass over the data only if both ranks train
    args = ["reflectevo_train", setting, "--config", "demo", "--dataset", sample_dir, "--output_dir", str(out),
            "--max_rows", "4", "--per_device_train_batch_size", "1", "--max_steps", "2", "--lora_r", "2",
            "--push_to_repo", repo, "--push_tag", "v1"]
    proc = _run(_launch_two(args), hub.subprocess_env(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, out, repo


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["one_stage", "dpo_pm"])
def test_two_processes_train_one_adapter_published_once(hub, tmp_path, sample_dir, setting):
    from huggingface_hub import hf_hub_download

    proc, out, repo = _train_two(hub, tmp_path, sample_dir, setting)
    prov = json.loads((out / "provenance.json").read_text())
    processes = prov["processes"]
    assert (processes["world_size"], processes["distributed_type"], processes["backend"]) == (2, "MULTI_CPU", "gloo")
    assert processes["effective_batch_size"] == 2
    (stage,) = prov["metrics"]["stages"]
    assert stage["global_step"] == 2 and stage["examples"] == 4
    assert stage["epochs"] == pytest.approx(1.0)  # one process alone would have seen half the rows
    assert stage["loss_finite"]
    # one adapter, one card, one provenance; nothing a second writer would leave
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".safetensors", ".json", ".md")) == \
        ["README.md", "adapter_config.json", "adapter_model.safetensors", "provenance.json", "push.json",
         "run_identity.json", "tokenizer.json", "tokenizer_config.json"]
    assert "- processes: 2 (data parallel, MULTI_CPU; effective batch 2" in (out / "README.md").read_text()

    # published once: one commit of the training run, tagged v1, holding what rank 0 wrote
    commits = [c for c in hub.api.list_repo_commits(repo) if c.title.startswith("reflectevo train")]
    assert len(commits) == 1
    assert [t.name for t in hub.api.list_repo_refs(repo).tags] == ["v1"]
    with open(hf_hub_download(repo, "provenance.json", revision="v1")) as fh:
        assert json.load(fh)["processes"]["world_size"] == 2
    with open(hf_hub_download(repo, "README.md", revision="v1")) as fh:
        assert "- processes: 2 (data parallel" in fh.read()

    # rank 0 speaks for the run: one summary, one warning, one set of progress bars, no rank-1 noise
    assert proc.stdout.count('"output_dir"') == 1
    assert proc.stderr.count("warning: stage") == 1
    assert proc.stderr.count("| 0/2 [") == 1  # the training bar (2 steps) starts once
    assert "[rank1]" not in proc.stderr and "parallel_mode != ParallelMode.DISTRIBUTED" not in proc.stderr
    assert "find_unused_parameters=True" not in proc.stderr


@pytest.mark.slow
def test_accelerate_cpu_flag_with_two_processes_is_refused(tmp_path, sample_dir):
    """accelerate starts one process for `--cpu --num_processes 2` (without mpirun): say so, train nothing."""
    cmd = [ACCELERATE, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "reflectevo_train", "one_stage", "--config", "demo",
           "--dataset", sample_dir, "--output_dir", str(tmp_path / "out")]
    proc = _run(cmd, {**os.environ, "HF_HUB_OFFLINE": "1"}, tmp_path, timeout=300)
    assert proc.returncode != 0
    # our own line; accelerate >= 1.16 then repeats the child's stderr inside its own traceback
    # ("RuntimeError: reflectevo train: error: ..."), which is the launcher's report, not ours
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("reflectevo train: error:")]
    assert len(lines) == 1 and "started a single process" in lines[0] and "--multi_gpu" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr.split("reflectevo train: error:")[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- shipped configs
def _launch_args(config: Path):
    """What `accelerate launch --config_file CONFIG -m reflectevo_train one_stage` decides, without launching."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parser = launch_command_parser()
    args, defaults, _ = _validate_launch_command(
        parser.parse_args(["--config_file", str(config), "-m", "reflectevo_train", "one_stage"]))
    return parser, args, defaults


def _launch_options(parser) -> set[str]:
    return {a.dest for a in parser._actions}


def _plugin_from_env(monkeypatch, env: dict, plugin_class):
    """Build accelerate's plugin the way a launched process does: from the launcher's environment."""
    for key in list(os.environ):
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    return plugin_class()


def _check_config_keys(config: Path, section: str, parser, defaults) -> dict:
    from accelerate.commands.config.config_args import ClusterConfig

    raw = yaml.safe_load(config.read_text())
    unknown_top = sorted(set(raw) - set(ClusterConfig.__dataclass_fields__))
    assert not unknown_top, f"{config.name}: not accelerate config fields: {unknown_top}"
    # accelerate copies each key of the section onto the launch arguments of the same name, and an
    # unknown name is dropped without a word: every key must be one of them
    unknown = sorted(set(raw[section]) - _launch_options(parser))
    assert not unknown, f"{config.name}: {section} keys accelerate launch does not know: {unknown}"
    assert getattr(defaults, section) == raw[section]
    return raw


def test_shipped_deepspeed_config_is_what_accelerate_builds(monkeypatch):
    """DeepSpeed is not installed here (and needs GPUs): the launch arguments, the environment the
    launcher gives each process, and accelerate's DeepSpeedPlugin built from it are checked."""
    from accelerate.utils import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    config = CONFIGS / "deepspeed_zero3.yaml"
    parser, args, defaults = _launch_args(config)
    raw = _check_config_keys(config, "deepspeed_config", parser, defaults)
    assert args.use_deepspeed and not args.use_fsdp and args.num_processes == raw["num_processes"]
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    plugin = _plugin_from_env(monkeypatch, env, DeepSpeedPlugin)
    zero = plugin.deepspeed_config["zero_optimization"]
    assert plugin.zero_stage == 3 and zero["stage"] == 3
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # the saved adapter loads without DeepSpeed
    assert zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    assert plugin.zero3_init_flag is True


def test_shipped_fsdp_config_is_what_accelerate_builds(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env
    from torch.distributed.fsdp import StateDictType

    config = CONFIGS / "fsdp.yaml"
    parser, args, defaults = _launch_args(config)
    _check_config_keys(config, "fsdp_config", parser, defaults)
    assert args.use_fsdp and not args.use_deepspeed
    env = prepare_multi_gpu_env(args)
    plugin = _plugin_from_env(monkeypatch, env, FullyShardedDataParallelPlugin)
    assert plugin.fsdp_version == 2
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.reshard_after_forward is True and plugin.cpu_ram_efficient_loading is True
    assert plugin.activation_checkpointing is False
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


# ------------------------------------------------------------------------------------- generation
def _gen(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return _start([sys.executable, "-m", "reflectevo", "gen", *args], cwd, env)


def _finish(proc: subprocess.Popen, timeout: int = 600) -> None:
    returncode, out = _wait(proc, timeout)
    assert returncode == 0, out[-3000:]


# what a record says about its run rather than about the question: a shard's settings (and so its
# config_hash, which the stored content_hash covers) name the shard; chunk numbers count within a run
RUN_FIELDS = ("config_hash", "content_hash", "created_at", "chunk")


def _generated_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k not in RUN_FIELDS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume_equals_uninterrupted_run(tmp_path, greedy_reference):
    """`gen run` SIGKILLed inside its second, third and fourth chunk (of four), each time by a new
    process that resumed the last one's chunks, then run to the end: its records equal the
    uninterrupted run's (the session's greedy reference, conftest, shared with the sharding test
    below). Moved from tests/test_gen_pipeline.py (test_sigkill_at_three_points_then_resume_equals_uninterrupted_run),
    whose tests run on another worker, to share that reference run; it used 12 questions and left a
    finished chunk between kills, which only made the run longer."""
    import random
    import signal

    from reflectevo.chunk_store import read_records

    def record_set(folder):
        return sorted((r["record_id"], r["content_hash"]) for r in read_records(folder))

    ref, killed = greedy_reference, tmp_path / "killed"
    rng = random.Random(7)
    parts = killed / "parts"
    endings = []
    for _ in range(3):
        p = _gen(["run", "--output", str(killed), *GREEDY_ARGS], tmp_path)
        target = 1 + len(list(parts.glob("chunk-*.jsonl")) if parts.exists() else [])  # one more chunk
        deadline = time.time() + 600
        while time.time() < deadline and p.poll() is None:
            if parts.exists() and len(list(parts.glob("chunk-*.jsonl"))) >= target:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 1.5))  # somewhere inside the next chunk
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        endings.append(p.wait())
    assert endings == [-signal.SIGKILL] * 3  # each process was killed, none ran to the end
    _finish(_gen(["run", "--output", str(killed), *GREEDY_ARGS], tmp_path), timeout=900)
    assert record_set(killed) == record_set(ref)
    assert not list(parts.glob(".*tmp*"))


@pytest.mark.slow
def test_two_concurrent_shards_merge_to_the_one_process_run(tmp_path, bbh_dir, greedy_reference):
    """8 questions, greedy everywhere (the generation tests' settings): the shards (two processes at
    once) merged and one process give the same records, id by id, with the same generated content.
    The one-process run is the session's greedy reference (conftest, shared with the SIGKILL test
    above); a shard's settings name the shard, so only the generated content is compared."""
    from reflectevo.chunk_store import read_records

    shards = [_gen(["run", "--output", f"s{i}", "--shard", f"{i}/2", *GREEDY_ARGS], tmp_path) for i in range(2)]
    for proc in shards:
        _finish(proc)
    _finish(_gen(["merge", "--inputs", "s0", "s1", "--output", "merged"], tmp_path))

    def by_id(folder: Path) -> dict[str, dict]:
        records = read_records(folder)
        ids = [r["record_id"] for r in records]
        assert len(ids) == len(set(ids)), f"{folder}: a record twice"
        return {r["record_id"]: r for r in records}

    one = by_id(greedy_reference)
    merged = by_id(tmp_path / "merged")
    shard_records = [by_id(tmp_path / f"s{i}") for i in range(2)]
    questions = [{r["question_id"] for r in recs.values()} for recs in shard_records]
    assert questions[0] and questions[1] and not questions[0] & questions[1]  # both shards had work
    assert questions[0] | questions[1] == {r["question_id"] for r in one.values()}
    assert len({r["question_id"] for r in one.values()}) == 8
    assert sorted(merged) == sorted(one)
    for record_id, record in one.items():
        got = merged[record_id]
        shard = next(recs[record_id] for recs in shard_records if record_id in recs)
        assert got["content_hash"] == shard["content_hash"], record_id  # merge copies records as they are
        assert _generated_hash(got) == _generated_hash(record), record_id


# ------------------------------------------------------------------------------------- evaluation
# the session's oracle evaluation (conftest) is the one-process run: 2 subtasks x 4 docs, so 2 docs of
# each per rank and lm-eval pads no rank with a repeated request
EVAL_TASKS = ORACLE_SUBTASKS
EVAL_LIMIT = ORACLE_LIMIT
EVAL_ARGS = ORACLE_MODEL_ARGS
CHUNK_SIZE = 1  # 4 chunks per rank
HEADLINE_METRICS = ("acc_t1", "acc_t2", "delta", "wrong_to_right", "right_to_wrong", "no_answer_t1", "no_answer_t2")
# lm-eval's HFLM splits the docs over `accelerate launch` processes only when it counts GPUs: on CPU
# every process would call itself rank 0 of 1, evaluate every doc and claim the same resume folder
# (the reflectevo model joins them itself: harness_plugins/reflect_model.py, _join_data_parallel).


def _lm_eval_args(out: Path, model_args: str) -> list[str]:
    return ["lm_eval", *oracle_command(out, model_args)]


def _read_eval(out: Path) -> dict:
    """The results file (there must be exactly one) and, per task, doc id -> what happened to it."""
    results = sorted(out.glob("*/results_*.json"))
    assert len(results) == 1, f"{len(results)} results files under {out}"
    items: dict[str, dict] = {}
    for path in out.glob("*/samples_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            t = json.loads(sample["resps"][0][0])
            items.setdefault(t["task"], {})
            key = sample["doc_id"]
            assert key not in items[t["task"]], f"{t['task']} doc {key} logged twice"
            items[t["task"]][key] = {
                "trial1": (t["trial1"]["verdict"], t["trial1"]["reply"]),
                "trial2": None if t["trial2"] is None else (t["trial2"].get("verdict"), t["trial2"]["reply"]),
                "metrics": {m: sample.get(m) for m in HEADLINE_METRICS},
            }
    return {"results": json.loads(results[0].read_text()), "items": items}


@pytest.fixture(scope="module")
def one_process_eval(oracle_eval):
    """The session's one-process oracle evaluation (conftest; tests/test_lm_eval_cli.py checks it)."""
    return _read_eval(oracle_eval["out"])


def _eval_two(tmp: Path, resume: Path, chunk_size: int = CHUNK_SIZE) -> subprocess.Popen:
    args = _lm_eval_args(tmp / "out", f"{EVAL_ARGS},chunk_size={chunk_size},resume={resume}")
    cmd = _launch_two(args)
    return _start(cmd, tmp, eval_env())


def _assert_same_outcomes(two: dict, one: dict) -> None:
    assert sorted(two["items"]) == sorted(one["items"]) == [f"reflectevo_bbh_{t}" for t in EVAL_TASKS]
    for task, docs in one["items"].items():
        assert sorted(two["items"][task]) == sorted(docs) == list(range(EVAL_LIMIT)), task
        for doc_id, item in docs.items():
            assert two["items"][task][doc_id] == item, (task, doc_id)
        for metric in HEADLINE_METRICS:
            key = f"{metric},none"
            assert two["results"]["results"][task][key] == one["results"]["results"][task][key], (task, metric)
        assert two["results"]["results"][task]["sample_len"] == EVAL_LIMIT


@pytest.fixture(scope="module")
def two_process_eval(tmp_path_factory, bbh_dir, embedded_model_dir) -> dict:
    """One two-process run (one chunk of 1 doc kept per rank at a time), SIGKILLed to the launcher and
    both ranks once each rank has stored a chunk (of 4), then run again to the end. What it saw is
    kept and its failures are the tests' to report.

    One run serves both questions asked of two processes: does the result equal one process's (the
    run's second half computes the chunks the kill lost, on both ranks, and gathers every rank's), and
    does a killed run resume from each rank's chunks. They were two runs of the same evaluation."""
    tmp = tmp_path_factory.mktemp("eval-two")
    resume = tmp / "resume"
    run = {"out": tmp / "out", "resume": resume, "ended_before_kill": None, "before": {}, "results_before": []}
    proc = _eval_two(tmp, resume)
    if _watch_for_unsplit_run(proc, resume):
        return {**run, "returncode": "killed", "stderr": "every process ran as rank 0 of 1: the resume folder itself "
                                                         "was claimed, not one per rank"}
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        done = [len(list(resume.glob(f"rank-{r}-of-2/parts/chunk-*.jsonl"))) for r in range(2)]
        if min(done) >= 1:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        returncode, err = _wait(proc)
        return {**run, "ended_before_kill": err[-3000:], "returncode": returncode, "stderr": err}
    _kill_run(proc)
    run["before"] = _chunks(resume)
    run["results_before"] = list(run["out"].glob("*/results_*.json"))
    returncode, err = _wait(_eval_two(tmp, resume))
    return {**run, "returncode": returncode, "stderr": err, "after": _chunks(resume)}


def _kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it, as a job scheduler does. torchrun starts each
    rank in a session of its own, so a signal to the launcher's process group would orphan the ranks
    (and they would go on writing the resume folder)."""
    import psutil

    launcher = psutil.Process(proc.pid)
    family = [launcher, *launcher.children(recursive=True)]
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    _, alive = psutil.wait_procs(family[1:], timeout=60)
    assert not alive, f"processes outlived SIGKILL: {alive}"


def _watch_for_unsplit_run(proc: subprocess.Popen, resume: Path) -> bool:
    """Until the run ends: if a process claims the resume folder itself (it calls itself the only
    rank), kill the run at once and say so, rather than wait for two copies of the whole evaluation."""
    while proc.poll() is None:
        if (resume / "settings.json").exists():
            _kill_run(proc)
            return True
        if all((resume / f"rank-{r}-of-2" / "settings.json").is_file() for r in range(2)):
            return False
        time.sleep(0.1)
    return False


def _two(run: dict) -> dict:
    assert run["returncode"] == 0, run["stderr"][-4000:]
    return _read_eval(run["out"])


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process_item_by_item(two_process_eval, request):
    """On the killed and resumed run (two_process_eval): it must end where an uninterrupted one would."""
    two = _two(two_process_eval)
    # the one-process run only once the two-process run has worked (it is the expensive part)
    _assert_same_outcomes(two, request.getfixturevalue("one_process_eval"))
    # each rank kept its own share of the chunks: 2 tasks x 2 docs per rank, 1 doc per chunk
    resume = two_process_eval["resume"]
    for rank in range(2):
        folder = resume / f"rank-{rank}-of-2"
        assert (folder / "settings.json").is_file()
        assert len(list(folder.glob("parts/chunk-*.jsonl"))) == 4, folder
    assert not (resume / "parts").exists()  # nothing written to the shared folder itself
    assert two["results"]["config"]["reflectevo"]["chunking"]["resume"].endswith("rank-0-of-2")


@pytest.mark.slow
def test_two_process_results_block_covers_every_rank(two_process_eval, request):
    block = _two(two_process_eval)["results"]["config"]["reflectevo"]
    assert (two_process_eval["resume"] / "rank-1-of-2" / "settings.json").is_file()  # the docs were split
    one = request.getfixturevalue("one_process_eval")["results"]["config"]["reflectevo"]
    assert block["outcomes"] == one["outcomes"] and block["outcomes_flexible"] == one["outcomes_flexible"]
    assert block["pooled"] == one["pooled"] and block["second_attempt"] == one["second_attempt"]
    assert block["samples"] == one["samples"] == EVAL_LIMIT * len(EVAL_TASKS)

def _chunks(resume: Path) -> dict[str, bytes]:
    return {str(p.relative_to(resume)): p.read_bytes() for p in sorted(resume.glob("rank-*-of-2/parts/chunk-*.jsonl"))}


@pytest.mark.slow
def test_killed_two_process_evaluation_resumes_from_each_ranks_chunks(two_process_eval, request):
    """SIGKILL to the launcher and both ranks once each rank has stored a chunk (of 4); the rerun
    keeps those chunks as they are, runs the rest and ends where an uninterrupted run would.
    (two_process_eval does the kill and the rerun; the tests above check the same run's result.)"""
    assert two_process_eval["returncode"] != "killed", two_process_eval["stderr"]
    assert two_process_eval["ended_before_kill"] is None, \
        "the run ended before it could be killed: " + two_process_eval["ended_before_kill"]
    before = two_process_eval["before"]
    assert before and len(before) < 8 and not two_process_eval["results_before"]

    returncode, err = two_process_eval["returncode"], two_process_eval["stderr"]
    assert returncode == 0, err[-4000:]
    after = two_process_eval["after"]
    assert len(after) == 8 and all(after[name] == data for name, data in before.items())
    two = _read_eval(two_process_eval["out"])
    _assert_same_outcomes(two, request.getfixturevalue("one_process_eval"))
    # the results block counts what every rank reused (gathered on rank 0)
    assert two["results"]["config"]["reflectevo"]["chunking"]["reused_chunks"] == len(before)
