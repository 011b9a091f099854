"""What a user outside this checkout gets (issue 20): no Hub token is ever written, a published
adapter names its base by Hub id and loads with PEFT's Auto class, the model card's metadata, and a
non-editable wheel install that has every subcommand.

The slow tests train a LoRA adapter for one optimizer step on the embedded model (a few seconds each)
and publish to a loopback Hub, or build and install the wheel into a fresh virtual environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import hub, hub_server, isolate_hub_client  # noqa: E402,F401

from reflectevo.embedded_model import UPSTREAM_ID  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _new_token() -> str:
    return "hf_" + secrets.token_hex(16)  # shaped like a real one, unique per test run


def _card_meta(text: str) -> dict:
    assert text.startswith("---\n"), text[:80]
    return yaml.safe_load(text.split("---\n", 2)[1])


def _files_containing(needle: str, roots: list[Path], skip: set[Path] = frozenset()) -> list[str]:
    """Every file under `roots` whose bytes contain `needle` (raw, or as it would appear in JSON)."""
    forms = {needle.encode(), json.dumps(needle).encode()}
    hits = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                if path in skip or path.is_symlink():
                    continue
                data = path.read_bytes()
                if any(f in data for f in forms):
                    hits.append(str(path))
    return hits


def _train_argv(dataset: str, out: Path, repo: str) -> list[str]:
    """One optimizer step on one row, a checkpoint saved (its files are searched too), pushed at v1."""
    return ["train", "one_stage", "--config", "demo", "--dataset", dataset, "--output_dir", str(out),
            "--max_rows", "1", "--per_device_train_batch_size", "1", "--max_steps", "1", "--lora_r", "2",
            "--save_strategy", "steps", "--save_steps", "1", "--push_to_repo", repo, "--push_tag", "v1"]


# ------------------------------------------------------------------------------------- fast checks
def _provenance(model_name: str, kind: str = "lora_adapter") -> dict:
    return {"base_model": {"name": model_name, "revision": "sha256:" + "0" * 64}, "artifact": {"kind": kind},
            "dataset": {"kind": "hub", "repo_id": "me/data", "config": "d_plus", "revision": "run-1", "sha": "a" * 40},
            "instruction": {"id": "default"}, "seed": 42, "recipe": {"max_steps": 1},
            "metrics": {"stages": [{"stage": "one_stage", "examples": 1, "global_step": 1, "train_loss": 1.0,
                                    "train_runtime": 1.0}]},
            "command": "reflectevo train one_stage", "package_versions": {}}


def test_card_metadata_names_license_language_pipeline_and_base():
    from reflectevo_train.card import model_card
    from reflectevo_train.config import SETTINGS

    meta = _card_meta(model_card(_provenance("smollm2-135m-instruct"), SETTINGS["one_stage"], "me/refl", "v1"))
    assert meta["license"] == "apache-2.0"  # SmolLM2-135M-Instruct's license
    assert meta["language"] == ["en"] and meta["pipeline_tag"] == "text-generation"
    assert meta["library_name"] == "peft" and meta["base_model"] == UPSTREAM_ID
    assert meta["base_model_relation"] == "adapter" and meta["datasets"] == ["me/data"]
    # the embedded conversion's own revision stays in our section of the metadata
    assert meta["reflectevo"]["base_model"] == {"name": "smollm2-135m-instruct", "revision": "sha256:" + "0" * 64}
    full = _card_meta(model_card(_provenance("someone/other-model", "full_model"), SETTINGS["dpo_pm"], "me/m", None))
    assert full["library_name"] == "transformers" and full["base_model"] == "someone/other-model"
    assert "license" not in full  # an unknown base's license is not guessed
    assert full["pipeline_tag"] == "text-generation" and full["language"] == ["en"]


@pytest.mark.parametrize("how", ["flag", "flag=", "dashed flag", "recipe"])
def test_hub_token_is_used_but_not_kept_in_the_parsed_run(tmp_path, monkeypatch, how):
    from reflectevo_train.card import command_line
    from reflectevo_train.config import parse_run

    token = _new_token()
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    argv = ["--dataset", "me/data@v1", "--max_steps", "2"]
    if how == "flag":
        argv += ["--hub_token", token]
    elif how == "flag=":
        argv += [f"--hub_token={token}"]
    elif how == "dashed flag":
        argv += ["--hub-token", token]
    else:
        (tmp_path / "mine.yaml").write_text(f"hub_token: {token}\n")
        argv += ["--config", str(tmp_path / "mine.yaml")]
    run = parse_run("one_stage", argv)
    assert run.token() == token  # it wins over HF_TOKEN
    assert run.training.hub_token is None  # the Trainer pickles its arguments into training_args.bin
    recorded = json.dumps(run.recipe) + command_line(run.setting, run.argv) + repr(run) + repr(run.training)
    assert token not in recorded and "hub_token" not in run.recipe
    assert run.recipe["max_steps"] == 2 and "--max_steps" in run.argv
    monkeypatch.delenv("HF_TOKEN")
    assert parse_run("one_stage", ["--dataset", "me/data@v1"]).token() is None


# ------------------------------------------------------------------------------------- tokens, end to end
@pytest.mark.slow
def test_no_token_is_written_locally_or_to_the_hub(tmp_path, monkeypatch, capfd, bbh_dir, embedded_model_dir):
    """A dataset published by `reflectevo gen push` (HF_TOKEN) and by its Python function (token=),
    then an adapter trained and published with the token in HF_TOKEN, in `--hub_token`, and in a
    recipe file: no token is in any file written locally (outputs, checkpoints, Hub and datasets
    caches, temp folders), in any file the Hub stores, or in what was printed."""
    from huggingface_hub import HfApi

    from reflectevo.cli import main
    from reflectevo.hub.client import use_endpoint
    from reflectevo.hub.server import serve_in_thread
    from reflectevo_gen.publish import push
    from reflectevo_train.sample import write_sample

    tokens = {way: _new_token() for way in ("gen push", "push()", "env", "flag", "recipe")}
    hub_data = tmp_path / "hub-data"
    server = serve_in_thread(str(hub_data), list(tokens.values()))
    work = tmp_path / "work"  # everything the toolkit writes goes under here
    isolate_hub_client(monkeypatch, work)  # Hub and datasets caches, no credential files, loopback only
    (work / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work / "tmp"))
    user_files = tmp_path / "user"  # what the user wrote (the recipe holding a token): not searched
    user_files.mkdir()
    recipe = user_files / "secret.yaml"
    recipe.write_text(f"hub_token: {tokens['recipe']}\n")
    sample = write_sample(work / "curated", bbh_dir, per_subtask=1)
    try:
        with use_endpoint(server.url):
            monkeypatch.setenv("HF_TOKEN", tokens["gen push"])
            assert main(["gen", "push", "--input", str(sample), "--push_to_repo", "tester/data", "--push_tag", "data-v1"]) == 0
            monkeypatch.delenv("HF_TOKEN")
            push(str(sample), "tester/data-2", tag="data-v1", token=tokens["push()"])
            exit_codes = {}
            for way in ("env", "flag", "recipe"):
                argv = _train_argv("tester/data@data-v1", work / f"out-{way}", f"tester/refl-{way}")
                if way == "env":
                    monkeypatch.setenv("HF_TOKEN", tokens["env"])
                elif way == "flag":
                    argv += ["--hub_token", tokens["flag"]]
                else:
                    argv += ["--config", str(recipe)]
                exit_codes[way] = main(argv)  # checked after the search: a failed push has written files too
                monkeypatch.delenv("HF_TOKEN", raising=False)
        printed = capfd.readouterr()
        for way, token in tokens.items():
            hits = _files_containing(token, [work, hub_data])
            assert not hits, f"the token given by {way} is stored in {hits}"
            assert token not in printed.out and token not in printed.err, f"the token given by {way} was printed"
        assert _files_containing(tokens["recipe"], [user_files]) == [str(recipe)]  # the search finds what is there
        # each run published with the token given its way (the Hub refuses writes without one)
        assert exit_codes == {"env": 0, "flag": 0, "recipe": 0}, printed.err[-3000:]
        for way in exit_codes:
            files = HfApi(endpoint=server.url, token=False).list_repo_files(f"tester/refl-{way}", revision="v1")
            assert "adapter_model.safetensors" in files and "provenance.json" in files, way
            assert (work / f"out-{way}" / "checkpoint-1" / "training_args.bin").is_file()  # searched above
    finally:
        server.stop()


# ------------------------------------------------------------------------------------- the adapter's base
@pytest.mark.slow
def test_published_adapter_loads_with_auto_peft_from_its_base_hub_id(hub, tmp_path, monkeypatch, sample_dir,
                                                                      embedded_model_dir):
    """The adapter names its base `HuggingFaceTB/SmolLM2-135M-Instruct`. PEFT's AutoPeftModelForCausalLM
    loads the published adapter from the (loopback) Hub and its base by that id; the base is found as
    a local folder of that name under the working directory (the converted embedded model, linked
    there), since nothing here may download the real one. The loopback Hub does not hold the base,
    so that folder is the only way the id can resolve. Our own engine loads the same adapter with no
    such folder."""
    import torch
    from huggingface_hub import hf_hub_download
    from peft import AutoPeftModelForCausalLM
    from safetensors.torch import load_file

    from reflectevo.cli import main

    repo = hub.repo("auto-peft")
    out = tmp_path / "out"
    argv = _train_argv(sample_dir, out, repo)
    assert main(argv) == 0
    with open(hf_hub_download(repo, "adapter_config.json", revision="v1")) as fh:
        config = json.load(fh)
    assert config["base_model_name_or_path"] == UPSTREAM_ID and config.get("revision") is None
    with open(hf_hub_download(repo, "provenance.json", revision="v1")) as fh:
        base = json.load(fh)["base_model"]
    assert base["name"] == "smollm2-135m-instruct" and base["hub_id"] == UPSTREAM_ID
    assert base["revision"].startswith("sha256:")  # the conversion's revision: the GGUF's sha256
    with open(hf_hub_download(repo, "README.md", revision="v1")) as fh:
        meta = _card_meta(fh.read())
    assert (meta["base_model"], meta["library_name"], meta["license"], meta["pipeline_tag"], meta["language"]) == \
        (UPSTREAM_ID, "peft", "apache-2.0", "text-generation", ["en"])

    # our own loaders are given the base explicitly and never read base_model_name_or_path: the
    # engine (lm-eval's hf model + the adapter) loads it where that id resolves to nothing
    from peft import PeftModel

    from reflectevo_tasks.engine import Engine, EngineConfig

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    engine = Engine(EngineConfig(peft=str(out), batch_size=1))
    assert isinstance(engine.lm.model, PeftModel)
    del engine

    cwd = tmp_path / "cwd"
    (cwd / UPSTREAM_ID).parent.mkdir(parents=True)
    (cwd / UPSTREAM_ID).symlink_to(embedded_model_dir, target_is_directory=True)
    monkeypatch.chdir(cwd)
    model = AutoPeftModelForCausalLM.from_pretrained(repo, revision="v1")
    assert model.peft_config["default"].base_model_name_or_path == UPSTREAM_ID
    assert model.get_base_model().name_or_path == UPSTREAM_ID
    saved = load_file(str(out / "adapter_model.safetensors"))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved) > 0
    for name, value in saved.items():
        key = next(k for k in loaded if k.replace(".default", "") == name)
        assert torch.equal(loaded[key], value), name
    own = load_file(os.path.join(embedded_model_dir, "model.safetensors"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(model.get_base_model().state_dict()[q.replace(".weight", ".base_layer.weight")], own[q])


@pytest.fixture
def sample_dir(tmp_path, bbh_dir) -> str:
    from reflectevo_train.sample import write_sample

    return str(write_sample(tmp_path / "sample", bbh_dir, per_subtask=1))


# ------------------------------------------------------------------------------------- the wheel
def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The project's wheel installed (not editable) into a fresh virtual environment whose only other
    path is this environment's site-packages, for the dependencies. That path is added by a .pth line,
    which appends it after the new environment's own site-packages and does not run the .pth files
    there (this checkout's editable-install hook among them), so the package comes from the wheel."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    try:
        import hatchling  # noqa: F401  (the build backend: build here, no index needed)

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []  # pip fetches the backend from the package index
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(dist), str(REPO)],
                   check=True, capture_output=True, text=True, cwd=root)
    (wheel,) = dist.glob("reflectevo-*.whl")
    venv = root / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = _venv_python(venv)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_reflectevo_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, cwd=root)
    return venv


def _run_installed(venv: Path, args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_install_has_every_subcommand_task_and_leaderboard(installed_wheel, tmp_path):
    import tomllib

    # the subcommands this checkout declares (the wheel must register every one of them)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["reflectevo.commands"]
    venv, py = installed_wheel, str(_venv_python(installed_wheel))
    # leaderboards/ ships as code only: the measured rows, their chunks and the long-run scripts stay here
    import zipfile

    (wheel,) = (installed_wheel.parent / "dist").glob("reflectevo-*.whl")
    shipped = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("leaderboards/")]
    assert shipped and all(n.endswith(".py") for n in shipped), [n for n in shipped if not n.endswith(".py")][:5]
    where = json.loads(_run_installed(venv, [py, "-c", (
        "import json, importlib; print(json.dumps({m: importlib.import_module(m).__file__ for m in "
        "('reflectevo', 'reflectevo_tasks', 'reflectevo_gen', 'reflectevo_train', 'harness_plugins', 'reflectevo_evolve', "
        "'leaderboards')}))")],
        tmp_path))
    for module, path in where.items():  # from the installed wheel, not this checkout
        assert Path(path).resolve().is_relative_to(venv.resolve()), (module, path)

    helptext = _run_installed(venv, [str(venv / "bin" / "reflectevo"), "--help"], tmp_path)
    section = helptext.split("positional arguments:")[1].split("options:")[0]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("    ") and line[4:5].strip()]
    missing = [name for name in declared if name not in listed]
    assert not missing, f"subcommands missing from an installed wheel: {missing}\n{helptext}"

    tasks = _run_installed(venv, [py, "-m", "lm_eval", "ls", "tasks"], tmp_path)
    assert "reflectevo_bbh " in tasks and "reflectevo_bbh_navigate" in tasks and "reflectevo_bbh_test " in tasks
    # the BBH split's manifest ships inside the package: generation refuses test items wherever it is installed
    split = _run_installed(venv, [py, "-c", "from reflectevo_tasks import bbh_split; print(bbh_split.describe()['test_items'])"],
                           tmp_path)
    assert split.strip() == "918"

    # the committed rows: the current scorer's, or (until those are measured) the superseded v1 set
    committed = REPO / "leaderboards" / "measured"
    # (cap_hits.json beside them is not a results file: scripts/cap_hits.py's counts for them)
    measured = sorted(str(p) for p in committed.glob("*.json") if p.name != "cap_hits.json") \
        or sorted(str(p) for p in committed.glob("v1/*.json"))
    assert measured, f"no committed results under {committed}"
    board = tmp_path / "board"
    _run_installed(venv, [str(venv / "bin" / "reflectevo"), "leaderboard", "build", *measured, "--output", str(board)],
                   tmp_path)
    rows = json.loads((board / "bbh.json").read_text())
    assert len(rows) == len(measured)
    assert (board / "bbh.md").is_file() and (board / "bbh_t1_t2.png").stat().st_size > 0
