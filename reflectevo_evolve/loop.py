"""The self-evolution loop: generate -> curate -> publish data -> train -> publish adapter -> evaluate.

    reflectevo evolve --config demo                 # the README's main job (built-in loops/demo.yaml)
    reflectevo evolve --config loop.yaml --rounds 2 --workdir runs/evolve-2
    reflectevo evolve --config demo --set gen.limit=60 --set eval.limit=3

Round r reflects with round r-1's adapter (round 1 with the base model) on trial-1 replies that round 1
generated (the generator does not change between rounds, so they are read back, not generated again), curates the records into
D+ / D± / Dpref / sft_qa, publishes them as dataset `<namespace>/<name>-data` tag `round-r`, trains
the configured setting on exactly that revision, publishes the adapter as
`<namespace>/<name>-<setting>` tag `round-r`, and evaluates it with `lm_eval --model reflectevo
--tasks reflectevo_bbh_test` (BBH's test split, which generation never draws from). Every results
file becomes a leaderboard row (`<workdir>/leaderboard`).

Every step is resumable: a finished step leaves `<workdir>/round-r/<step>.json`; re-running the same
command skips finished steps (generation also resumes inside a step, chunk by chunk).

Settings are layered as for every reflectevo command (docs/configuration.md): the defaults, each
`--config` loop file in order (a later file's section options merge into an earlier file's), the
`--set` assignments, then flags such as `--rounds 2` (`reflectevo evolve --help` lists them).

`hub: loopback` (the default) runs a Hub server on 127.0.0.1 for the loop, storing its repos under
`<workdir>/hub`, so the whole loop runs offline; `hub: endpoint` uses `$HF_ENDPOINT` (or
huggingface.co) with `$HF_TOKEN`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from reflectevo.errors import UserError
from reflectevo.named_files import file_or_builtin

LOOPS_DIR = Path(__file__).resolve().parent / "loops"
SECTIONS = ("gen", "curate", "train", "eval")
HUB_MODES = ("loopback", "endpoint")
# set by the loop itself, per round; a loop file may not set them
LOOP_OWNED = {"gen": {"output", "reflector_peft", "reflector_peft_revision", "trial1_from"},
              "train": {"dataset", "output_dir", "push_to_repo", "push_tag", "hub_endpoint", "init_adapter", "resume"}}
# engine: the lm-eval model's `base` (hf, or vllm where the vLLM environment exists)
EVAL_DEFAULTS = {"engine": "hf", "mode": "oracle", "limit": 1, "batch_size": 16, "device": "cpu", "dtype": "float32",
                 "instruction": None, "tasks": "reflectevo_bbh_test", "model_args": "", "chunk_size": 64}


@dataclass
class LoopConfig:
    workdir: str = field(default="runs/evolve", metadata={"help": "where every artefact of the loop goes"})
    rounds: int = field(default=1, metadata={"help": "rounds to run (more can be added to a workdir later)"})
    setting: str = field(default="one_stage", metadata={"help": "training setting: one_stage, two_stage, dpo_pm, dpo_pref"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "base model: generator, reflector of round 1, trained base"})
    hub: str = field(default="loopback", metadata={"help": "loopback: a Hub on 127.0.0.1 for this loop; endpoint: $HF_ENDPOINT"})
    namespace: str = field(default="local", metadata={"help": "namespace of the published dataset and adapter repos"})
    name: str = field(default="reflectevo", metadata={"help": "repos are <namespace>/<name>-data and <namespace>/<name>-<setting>"})
    train_from: str = field(default="previous", metadata={
        "help": "previous: round r continues round r-1's adapter; base: a fresh adapter each round"})
    baseline: bool = field(default=True, metadata={
        "help": "also evaluate the base model (prompt-based reflection, same protocol) as round 0"})
    # the step sections are mappings, each checked against its own command's options; a layer
    # (a loop file, --set section.option=value, or --gen '{option: value}') changes only the
    # options it names
    gen: dict = field(default_factory=dict, metadata={"help": "`reflectevo gen run` options (or --set gen.option=value)"})
    curate: dict = field(default_factory=dict, metadata={
        "help": "`reflectevo gen curate` options (or --set curate.option=value)"})
    train: dict = field(default_factory=dict, metadata={
        "help": "`reflectevo train <setting>` options; `config`: recipe layers (or --set train.option=value)"})
    eval: dict = field(default_factory=dict, metadata={
        "help": "lm-eval run: mode, limit, batch_size, device, dtype, instruction, tasks, model_args, chunk_size "
                "(or --set eval.option=value)"})

    def check(self) -> None:
        from reflectevo_train.config import SETTINGS

        if self.rounds < 1:
            raise UserError("--rounds: must be at least 1")
        if self.setting not in SETTINGS:
            raise UserError(f"setting: unknown {self.setting!r}; expected one of {', '.join(SETTINGS)}")
        if self.setting == "sft_qa":
            raise UserError("setting: sft_qa trains the answering model, not a reflector, so it cannot reflect in the "
                            "next round; train it with `reflectevo train sft_qa` on a round's dataset instead")
        if self.hub not in HUB_MODES:
            raise UserError(f"hub: expected one of {', '.join(HUB_MODES)}, got {self.hub!r}")
        if self.train_from not in ("previous", "base"):
            raise UserError(f"train_from: expected previous or base, got {self.train_from!r}")
        for section in SECTIONS:
            value = getattr(self, section)
            if not isinstance(value, dict):
                raise UserError(f"{section}: expected a mapping of option: value")
            owned = LOOP_OWNED.get(section, set()) & set(value)
            if owned:
                raise UserError(f"{section}: {', '.join(sorted(owned))} set by the loop itself, per round; remove it")
        unknown = set(self.eval) - set(EVAL_DEFAULTS)
        if unknown:
            raise UserError(f"eval: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(EVAL_DEFAULTS)}")
        if self.eval.get("engine", "hf") not in ("hf", "vllm"):
            raise UserError(f"eval: engine must be hf or vllm, not {self.eval['engine']!r}")
        from reflectevo_gen.config import GenConfig
        from reflectevo_gen.curate import CurateOptions

        for section, cls in (("gen", GenConfig), ("curate", CurateOptions)):
            section_values(cls, section, getattr(self, section))

    @property
    def data_repo(self) -> str:
        return f"{self.namespace}/{self.name}-data"

    @property
    def adapter_repo(self) -> str:
        return f"{self.namespace}/{self.name}-{self.setting}"


# ------------------------------------------------------------------------------------ config
SECTION_COMMANDS = {"gen": "reflectevo gen run", "curate": "reflectevo gen curate"}


def section_values(cls, section: str, options: dict):
    """A step section as its command's dataclass, typed and checked by the parser every command
    uses, so that a mistake stops the loop before its first step rather than in a later round."""
    from reflectevo.settings import parse

    (values,) = parse([cls], [], SECTION_COMMANDS[section], mapping_layers=[(section, options)],
                      takes_env=False).values
    return values


def loop_path(name_or_path: str) -> Path:
    return file_or_builtin(name_or_path, LOOPS_DIR, "loop")


def _set_dotted(data: dict, assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise UserError(f"--set {assignment!r}: expected section.option=value or option=value")
    value = yaml.safe_load(raw) if raw else ""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in SECTIONS:
        data.setdefault(parts[0], {})[parts[1]] = value
    elif len(parts) == 1:
        data[key] = value
    else:
        raise UserError(f"--set {assignment!r}: sections are {', '.join(SECTIONS)}")


CONFIG_HELP = ("loop: a YAML file, or a built-in loop name (demo); repeatable, later files override earlier ones "
               "(a section option by option); then --set section.option=value (repeatable), then the options here "
               "(default: no file)")


def _take_sets(argv: list[str]) -> tuple[dict, list[str]]:
    """(the --set assignments as one mapping, the other arguments)."""
    sets: dict = {}
    rest, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--set":
            if i + 1 >= len(argv):
                raise UserError("--set needs section.option=value")
            _set_dotted(sets, argv[i + 1])
            i += 2
            continue
        if a.startswith("--set="):
            _set_dotted(sets, a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return sets, rest


def load_config(argv: list[str]) -> LoopConfig:
    """The loop's settings, layered like every command's (reflectevo.settings): defaults <- each
    --config loop file in order <- the --set assignments <- the other flags (--rounds 2, ...).
    A section's mappings merge option by option across the layers."""
    from reflectevo.settings import parse

    sets, rest = _take_sets(list(argv))
    (cfg,) = parse([LoopConfig], rest, "reflectevo evolve", find_config=loop_path,
                   mapping_layers=[("--set", sets)] if sets else [], merge_keys=SECTIONS, description=__doc__,
                   config_help=CONFIG_HELP).values
    cfg.check()
    return cfg


# ------------------------------------------------------------------------------------ steps
def _write_json(path: Path, value: Any) -> None:
    from reflectevo.chunk_store import write_atomic

    write_atomic(path, [json.dumps(value, indent=1, ensure_ascii=False)])


def step(folder: Path, name: str, fn: Callable[[], dict], log: Callable[[str], None]) -> dict:
    """Run `fn` once: its result is kept in `<folder>/<name>.json`, and a later run reuses it."""
    marker = folder / f"{name}.json"
    if marker.is_file():
        log(f"{folder.name} {name}: done earlier ({marker})")
        return json.loads(marker.read_text(encoding="utf-8"))
    log(f"{folder.name} {name}: running")
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = fn()
    result["seconds"] = round(time.monotonic() - t0, 1)
    _write_json(marker, result)
    return result


def _existing_tag(repo_id: str, repo_type: str, tag: str, endpoint: str) -> str | None:
    from reflectevo.hub.client import _api

    api = _api(endpoint, os.environ.get("HF_TOKEN"))
    try:
        refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    except Exception:  # no such repo yet
        return None
    return {t.name: t.target_commit for t in refs.tags}.get(tag)


def _publish_once(folder: Path, name: str, repo_id: str, repo_type: str, tag: str, endpoint: str,
                  publish: Callable[[], str]) -> str:
    """Publish at `tag` unless this loop already did (a kill between publishing and writing the
    step's marker). A tag this loop did not start to publish is someone else's: an error."""
    intent = folder / f"{name}.publishing"
    existing = _existing_tag(repo_id, repo_type, tag, endpoint)
    if existing is not None:
        if intent.is_file():
            return existing
        raise UserError(f"{repo_type} repo {repo_id} already has tag {tag!r} (commit {existing}) from another run; "
                        f"choose another --set name=… or namespace")
    _write_json(intent, {"repo": repo_id, "tag": tag})
    return publish()


def generate(cfg: LoopConfig, r: int, folder: Path, reflector: dict | None) -> dict:
    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import run

    options = {"model": cfg.model, **cfg.gen, "output": str(folder / "gen")}
    if reflector:
        options.update(reflector_peft=reflector["repo"], reflector_peft_revision=reflector["sha"])
    if r > 1:
        # the generator and its trial settings are the loop's, the same every round: round r's trial 1
        # is round r-1's, taken from its records rather than generated again (gen run checks it)
        options["trial1_from"] = str(folder.parent / f"round-{r - 1}" / "gen")
    summary = run(section_values(GenConfig, "gen", options))
    return {"records": str(folder / "gen"), "summary": summary}


def curate(cfg: LoopConfig, folder: Path) -> dict:
    from reflectevo_gen.curate import CONFIGS, CurateOptions, curate_run, run_judge, stats_markdown

    judge = run_judge(str(folder / "gen"), batch_size=cfg.gen.get("batch_size", 16))
    result = curate_run(str(folder / "gen"), str(folder / "curated"), section_values(CurateOptions, "curate", cfg.curate),
                        judge)
    counts = {c: len(result[c]) for c in CONFIGS}
    print(stats_markdown(result["stats"], counts), flush=True)
    return {"curated": str(folder / "curated"), "counts": counts}


def push_data(cfg: LoopConfig, r: int, folder: Path, endpoint: str) -> dict:
    from reflectevo_gen.publish import push

    tag = f"round-{r}"
    command = (f"reflectevo evolve (round {r}): reflectevo gen push --input {folder / 'curated'} "
               f"--push_to_repo {cfg.data_repo} --push_tag {tag}")
    sha = _publish_once(folder, "push_data", cfg.data_repo, "dataset", tag, endpoint,
                        lambda: push(str(folder / "curated"), cfg.data_repo, tag=tag, token=os.environ.get("HF_TOKEN"),
                                     endpoint=endpoint, command=command))
    return {"repo": cfg.data_repo, "tag": tag, "sha": sha}


def _option_args(options: dict) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        if key == "config":
            for layer in value if isinstance(value, list) else [value]:
                args += ["--config", str(layer)]
        elif isinstance(value, list):
            args += [f"--{key}", *[str(v) for v in value]]
        elif isinstance(value, bool):
            args += [f"--{key}", "true" if value else "false"]
        elif value is not None:
            args += [f"--{key}", str(value)]
    return args


def train(cfg: LoopConfig, r: int, folder: Path, data: dict, counts: dict, previous: dict | None, endpoint: str) -> dict:
    from reflectevo_train.config import parse_run
    from reflectevo_train.run import train as run_training

    from reflectevo_train.config import SETTINGS

    needed = cfg.train.get("dataset_config") or SETTINGS[cfg.setting].default_config
    rows = counts.get(needed)
    if rows == 0:
        raise UserError(f"round {r}: curation left no {needed} rows to train {cfg.setting} on "
                        f"({folder / 'curated'}); generate more, e.g. --set gen.limit=… or "
                        f"--set gen.reflections_per_instruction=…, in a new --workdir")
    tag = f"round-{r}"
    argv = _option_args({"model_name_or_path": cfg.model, **cfg.train})
    argv += ["--dataset", f"{data['repo']}@{data['sha']}", "--output_dir", str(folder / "train"),
             "--push_to_repo", cfg.adapter_repo, "--push_tag", tag, "--hub_endpoint", endpoint]
    if previous and cfg.train_from == "previous":
        argv += ["--init_adapter", f"{previous['repo']}@{previous['sha']}"]
    if (folder / "train").is_dir():  # a stopped attempt: it goes on from its checkpoints, if it saved any
        argv += ["--resume", "true"]
    parsed = parse_run(cfg.setting, argv, prog="reflectevo evolve: train")
    from reflectevo_train.config import redact_argv

    def publish_training() -> str:
        result = run_training(parsed)
        return result.push["sha"]

    try:
        sha = _publish_once(folder, "train", cfg.adapter_repo, "model", tag, endpoint, publish_training)
    except UserError as exc:
        raise UserError(f"round {r}, train {cfg.setting}: {exc}") from None
    return {"repo": cfg.adapter_repo, "tag": tag, "sha": sha, "output_dir": str(folder / "train"),
            "command": "reflectevo train " + cfg.setting + " " + " ".join(shlex.quote(a) for a in redact_argv(argv))}


def eval_model_args(cfg: LoopConfig, adapter: dict | None, folder: Path) -> str:
    from reflectevo_train.config import SETTINGS

    ev = {**EVAL_DEFAULTS, **cfg.eval}
    args = [f"base={ev['engine']}", f"pretrained={cfg.model}", f"mode={ev['mode']}", f"dtype={ev['dtype']}"]
    if ev["chunk_size"]:  # a killed evaluation resumes at its last finished chunk in the round's folder
        args += [f"chunk_size={ev['chunk_size']}", f"resume={folder / 'eval-chunks'}"]
    if ev["instruction"]:
        args.append(f"instruction={ev['instruction']}")
    if adapter:
        args += [f"reflector_peft={adapter['repo']}", f"reflector_revision={adapter['sha']}"]
    if SETTINGS[cfg.setting].eval_options:
        # round 0 (the base model) too: a trained round is compared with the base model under the
        # same protocol, so that a protocol change (one-stage) is never read as the training's gain
        args.append(SETTINGS[cfg.setting].eval_options)
    if ev["model_args"]:
        args.append(str(ev["model_args"]))
    return ",".join(args)


def evaluate(cfg: LoopConfig, folder: Path, adapter: dict | None, endpoint: str) -> dict:
    """`lm_eval --model reflectevo … --tasks reflectevo_bbh_test` in a subprocess, as a user would run it."""
    ev = {**EVAL_DEFAULTS, **cfg.eval}
    out = folder / "eval"
    cmd = [str(Path(sys.executable).with_name("lm_eval")), "--model", "reflectevo",
           "--model_args", eval_model_args(cfg, adapter, folder), "--tasks", ev["tasks"],
           "--batch_size", str(ev["batch_size"]), "--device", str(ev["device"]),
           "--output_path", str(out), "--log_samples"]
    if ev["limit"]:
        cmd += ["--limit", str(ev["limit"])]
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}  # it only reads public repos
    env["HF_ENDPOINT"] = endpoint
    log_path = folder / "eval.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise UserError(f"evaluation failed (exit {proc.returncode}); log {log_path}:\n  " + "\n  ".join(tail))
    results = sorted(out.rglob("results_*.json"))
    if not results:
        raise UserError(f"evaluation wrote no results file under {out}; log {log_path}")
    return {"results": str(results[-1]), "log": str(log_path), "command": " ".join(shlex.quote(c) for c in cmd)}


# ------------------------------------------------------------------------------------ the hub
@contextlib.contextmanager
def hub_session(cfg: LoopConfig, workdir: Path) -> Iterator[str]:
    """The endpoint the loop publishes to. In loopback mode, a server on 127.0.0.1 with a token made
    for this process alone (kept in memory and in this process's environment, never written)."""
    from reflectevo.hub.client import configure_endpoint_env

    if cfg.hub == "endpoint":
        yield configure_endpoint_env()
        return
    from reflectevo.hub.server import serve_in_thread

    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    token = "hf_" + secrets.token_hex(20)
    server = serve_in_thread(str(workdir / "hub"), [token], user=cfg.namespace)
    # the loop's Hub is this machine: offline flags (which would stop every Hub call) do not apply
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "0"
    os.environ["HF_TOKEN"] = token
    try:
        yield configure_endpoint_env(server.url)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------ the loop
def run_loop(cfg: LoopConfig, log: Callable[[str], None] = print) -> dict:
    from leaderboards.build import build

    workdir = Path(cfg.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _check_or_write_loop_config(cfg, workdir)
    report: dict = {"workdir": str(workdir), "rounds": []}
    with hub_session(cfg, workdir) as endpoint:
        report["hub"] = {"mode": cfg.hub, "endpoint": endpoint,
                         **({"data_dir": str(workdir / "hub")} if cfg.hub == "loopback" else {})}
        results = []
        if cfg.baseline:
            base_dir = workdir / "round-0"
            ev = step(base_dir, "eval", lambda: evaluate(cfg, base_dir, None, endpoint), log)
            results.append(ev["results"])
            report["baseline"] = ev
        previous = None
        for r in range(1, cfg.rounds + 1):
            folder = workdir / f"round-{r}"
            gen = step(folder, "gen", lambda: generate(cfg, r, folder, previous), log)
            cur = step(folder, "curate", lambda: curate(cfg, folder), log)
            data = step(folder, "push_data", lambda: push_data(cfg, r, folder, endpoint), log)
            adapter = step(folder, "train", lambda: train(cfg, r, folder, data, cur["counts"], previous, endpoint), log)
            ev = step(folder, "eval", lambda: evaluate(cfg, folder, adapter, endpoint), log)
            results.append(ev["results"])
            report["rounds"].append({"round": r, "gen": gen, "curate": cur, "data": data, "adapter": adapter, "eval": ev})
            previous = adapter
        board = workdir / "leaderboard"
        rows = build(results, str(board))
        report["leaderboard"] = {"folder": str(board), "rows": len(rows)}
    _write_json(workdir / "report.json", report)
    return report


def _check_or_write_loop_config(cfg: LoopConfig, workdir: Path) -> None:
    """A workdir belongs to one loop configuration (more rounds may be added later)."""
    from reflectevo.chunk_store import claim_folder

    from reflectevo_train.config import SECRET_OPTIONS

    mine = {k: v for k, v in asdict(cfg).items() if k not in ("workdir", "rounds")}
    # a token in the loop's train section is used, never written down
    mine["train"] = {k: v for k, v in mine["train"].items() if k not in SECRET_OPTIONS}
    claim_folder(workdir / "loop.json", mine, "a loop", "use another --workdir or the same settings")


def summary_text(report: dict) -> str:
    lines = [f"workdir: {report['workdir']}", f"hub: {report['hub']['endpoint']}"
             + (f" (repos stored in {report['hub']['data_dir']})" if "data_dir" in report["hub"] else "")]
    if "baseline" in report:
        lines.append(f"round 0 (base model): results {report['baseline']['results']}")
    for rd in report["rounds"]:
        lines += [
            f"round {rd['round']}:",
            f"  records   {rd['gen']['records']}  ({rd['gen']['summary']['records']} rows, "
            f"{rd['gen']['summary']['fixed_by_retry']} fixed by retry)",
            f"  curated   {rd['curate']['curated']}  {rd['curate']['counts']}",
            f"  dataset   {rd['data']['repo']}@{rd['data']['tag']} = {rd['data']['sha']}",
            f"  adapter   {rd['adapter']['repo']}@{rd['adapter']['tag']} = {rd['adapter']['sha']}  (local {rd['adapter']['output_dir']})",
            f"  results   {rd['eval']['results']}",
        ]
    board = report["leaderboard"]["folder"]
    lines.append(f"leaderboard: {board}/bbh.md, bbh.json, bbh_comparisons.json, bbh_t1_t2.png, bbh_subtask_delta.png")
    table = (Path(board) / "bbh.md").read_text(encoding="utf-8").split("\n\n")
    lines += [""] + next(t.splitlines() for t in table if t.startswith("| #"))  # the main table only
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ CLI
def register(sub) -> None:
    p = sub.add_parser("evolve", help="run the self-evolution loop (generate, curate, train, evaluate) for N rounds",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    # every option is LoopConfig's, read by the shared parser (`reflectevo evolve --help` lists them)
    p.add_argument("-h", "--help", action="store_true", dest="help_requested")
    p.set_defaults(func=_main, passthrough=True)


def _main(args) -> int:
    cfg = load_config(args.argv + (["--help"] if args.help_requested else []))
    report = run_loop(cfg, log=lambda msg: print(f"[evolve] {msg}", file=sys.stderr, flush=True))
    print(summary_text(report))
    return 0
