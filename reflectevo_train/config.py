"""Settings, script arguments and recipe parsing for `reflectevo train`.

A run is configured the way TRL's example scripts are: three dataclasses (our `ScriptArguments`,
TRL's `ModelConfig`, and TRL's `SFTConfig` or `DPOConfig`), filled from YAML recipes and then from
command-line flags, so every TRL / transformers training argument can be overridden with
`--name value`.

Recipe layering (later wins): the built-in recipe of the setting
(`reflectevo_train/recipes/<setting>.yaml`), then each `--config FILE` in the order given (a bare
name such as `demo` means the built-in `recipes/demo.yaml`), then the command-line flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from reflectevo.errors import UserError
from reflectevo.named_files import file_or_builtin

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
ACCELERATE_DIR = Path(__file__).resolve().parent / "accelerate"


@dataclass(frozen=True)
class Setting:
    """One training setting of the paper (or the QA baseline)."""

    name: str
    method: str  # "sft" or "dpo"
    default_config: str  # dataset config (curated split) it reads
    columns: tuple[str, ...]  # columns every row must have
    stages: tuple[str, ...]  # what each stage learns, in order
    summary: str
    eval_options: str = ""  # extra reflectevo model_args for evaluation
    adapter_role: str = "reflector"  # evaluated as the reflector, or ("base") as the answering model itself

    @property
    def is_dpo(self) -> bool:
        return self.method == "dpo"


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("one_stage", "sft", "d_plus", ("question_json", "trial1", "reflection", "retry"), ("one_stage",),
                "I: SFT on D+; question + failed attempt -> reflection, then the corrected solution",
                "one_stage=true"),
        Setting("two_stage", "sft", "d_plus", ("question_json", "trial1", "reflection", "retry"),
                ("reflection", "retry"),
                "II: two SFT stages on D+, one adapter; stage 1 question + failed attempt -> reflection, "
                "stage 2 question + failed attempt + reflection -> corrected attempt"),
        Setting("dpo_pm", "dpo", "d_pm", ("question_json", "trial1", "chosen", "rejected"), ("preference",),
                "III: DPO on D±; chosen/rejected reflections on the same failed attempt"),
        Setting("dpo_pref", "dpo", "d_pref", ("question_json", "trial1", "chosen", "rejected"), ("preference",),
                "IV: DPO on Dpref; ranked pairs of reflections that both led to a right retry"),
        Setting("sft_qa", "sft", "sft_qa", ("question_json", "answer"), ("answer",),
                "baseline: SFT on question -> correct chain-of-thought answer", adapter_role="base"),
    )
}
INIT_ADAPTER_MODES = ("continue", "merge")


@dataclass
class ScriptArguments:
    """Our options; TRL's ModelConfig (model, LoRA, quantization) and SFTConfig / DPOConfig
    (everything about the optimisation) are parsed beside them."""

    dataset: str | None = field(default=None, metadata={
        "help": "training data: a Hub dataset repo 'namespace/name@revision' (branch, tag or sha; "
                "recorded as the resolved sha) or a local curated folder with <config>.jsonl files"})
    dataset_config: str | None = field(default=None, metadata={
        "help": "config (curated set) to read; default per setting: one_stage/two_stage d_plus, "
                "dpo_pm d_pm, dpo_pref d_pref, sft_qa sft_qa"})
    dataset_split: str = field(default="train", metadata={"help": "split of the config"})
    max_rows: int | None = field(default=None, metadata={"help": "use only the first N rows (smoke runs)"})
    instruction: str = field(default="default", metadata={
        "help": "reflection instruction written into training prompts; keep it equal to the evaluator's "
                "`instruction=` option (default 'default') so training and evaluation prompts match"})
    init_adapter: str | None = field(default=None, metadata={
        "help": "start from this LoRA adapter (folder or 'namespace/name@revision'), e.g. an SFT adapter "
                "before DPO; for DPO the model with this adapter is the reference"})
    init_adapter_mode: str = field(default="continue", metadata={
        "help": "continue: keep training that adapter (DPO reference = a frozen copy of it; output is one "
                "adapter on the base); merge: merge it into the base weights first and train a fresh "
                "adapter on top (DPO reference = the merged model; output is the merged full model)",
        "choices": list(INIT_ADAPTER_MODES)})
    push_to_repo: str | None = field(default=None, metadata={
        "help": "publish the result to this Hub model repo NAME/ID (token from --hub_token, else HF_TOKEN)"})
    push_tag: str | None = field(default=None, metadata={"help": "tag for the published commit"})
    push_private: bool = field(default=False, metadata={"help": "create the repo as private"})
    hub_endpoint: str | None = field(default=None, metadata={
        "help": "Hub endpoint for data, adapters and publishing (default: $HF_ENDPOINT or huggingface.co)"})

    def check(self, setting: Setting) -> None:
        if not self.dataset:
            raise UserError("--dataset is required: a Hub dataset 'namespace/name@revision' or a curated folder")
        if self.max_rows is not None and self.max_rows < 1:
            raise UserError("--max_rows: must be at least 1")
        if self.init_adapter_mode not in INIT_ADAPTER_MODES:
            raise UserError(f"--init_adapter_mode: expected one of {', '.join(INIT_ADAPTER_MODES)}")
        if self.push_tag and not self.push_to_repo:
            raise UserError("--push_tag needs --push_to_repo")
        if self.push_to_repo and self.push_to_repo.count("/") != 1:
            raise UserError(f"--push_to_repo: expected NAME/ID, got {self.push_to_repo!r}")


def recipe_path(name_or_path: str) -> Path:
    """A recipe file, or the built-in recipe of that name (`one_stage`, `demo`, ...)."""
    return file_or_builtin(name_or_path, RECIPES_DIR, "recipe")


def read_recipe(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read recipe ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of option: value")
    return data


def _pop_configs(argv: list[str]) -> tuple[list[str], list[str]]:
    """(--config values in order, the other arguments)."""
    configs, rest, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            if i + 1 >= len(argv):
                raise UserError("--config needs a recipe file or a built-in recipe name")
            configs.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--config="):
            configs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return configs, rest


def _cli_keys(argv: list[str]) -> list[str]:
    keys = []
    for a in argv:
        if a.startswith("--") and len(a) > 2:
            key = a[2:].split("=", 1)[0].replace("-", "_")
            if key.startswith("no_"):
                key = key[3:]
            keys.append(key)
    return keys


# Options whose values are credentials. TRL's configs inherit `hub_token` from transformers; it is
# taken out of the parsed arguments (so the Trainer never pickles it into training_args.bin) and
# kept only on ParsedRun.hub_token, and neither the recipe record nor the recorded command holds it.
SECRET_OPTIONS = ("hub_token",)


def redact_argv(argv: list[str]) -> list[str]:
    """`argv` without any secret option or its value (`--hub_token X` and `--hub_token=X` both go)."""
    flags = {f"--{name}" for name in SECRET_OPTIONS} | {f"--{name.replace('_', '-')}" for name in SECRET_OPTIONS}
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        if a.split("=", 1)[0] in flags:
            continue
        out.append(a)
    return out


@dataclass
class ParsedRun:
    setting: Setting
    script: ScriptArguments
    model: Any  # trl.ModelConfig
    training: Any  # trl.SFTConfig or trl.DPOConfig
    recipe: dict  # the effective value of every option set by a recipe layer or on the command line
    recipe_files: list[str]
    argv: list[str]  # as given, less secret options (it is recorded as the run's command)
    hub_token: str | None = field(default=None, repr=False)  # --hub_token (flag or recipe); never recorded

    def token(self) -> str | None:
        """The Hub token for data, starting adapters and publishing: --hub_token, else HF_TOKEN."""
        return self.hub_token or os.environ.get("HF_TOKEN") or None


def build_parser(setting: Setting, prog: str = "reflectevo train"):
    from trl import DPOConfig, ModelConfig, SFTConfig, TrlParser

    return TrlParser(dataclass_types=[ScriptArguments, ModelConfig, DPOConfig if setting.is_dpo else SFTConfig],
                     prog=f"{prog} {setting.name}")


def parse_run(setting_name: str, argv: list[str], prog: str = "reflectevo train") -> ParsedRun:
    """Parse `<setting> [--config R ...] [--option value ...]` into the three dataclasses."""
    setting = get_setting(setting_name)
    argv = list(argv)
    configs, rest = _pop_configs(argv)
    files = [RECIPES_DIR / f"{setting.name}.yaml"] + [recipe_path(c) for c in configs]
    merged: dict = {}
    for f in files:
        merged.update(read_recipe(f))
    env = merged.pop("env", None) or {}
    if not isinstance(env, dict):
        raise UserError("recipe key 'env' must be a mapping of VARIABLE: value")
    for k, v in env.items():
        os.environ[str(k)] = str(v)
    parser = build_parser(setting, prog)
    unknown = parser.set_defaults_with_config(**merged)
    if unknown:
        keys = sorted({u[2:] for u in unknown[::2]})
        raise UserError(f"recipe option(s) not known to `{prog} {setting.name}`: {', '.join(keys)} "
                        f"(see `{prog} {setting.name} --help`)")
    try:
        script, model, training = parser.parse_args_into_dataclasses(args=rest)
    except ValueError as exc:  # unknown flags, bad values caught by the dataclasses
        raise UserError(str(exc).strip().splitlines()[0]) from None
    script.check(setting)
    hub_token = _take_secret(training)
    known = {f.name for dc in (script, model, training) for f in fields(dc)} - set(SECRET_OPTIONS)
    keys = [k for k in list(merged) + _cli_keys(rest) if k in known]
    recipe = {}
    for k in dict.fromkeys(keys):
        for dc in (script, model, training):
            if k in {f.name for f in fields(dc)}:
                recipe[k] = _plain(getattr(dc, k))
                break
    return ParsedRun(setting, script, model, training, recipe, [str(f) for f in files], redact_argv(argv), hub_token)


def _take_secret(training) -> str | None:
    """Move the token off the training arguments, which the Trainer saves with every model."""
    token = getattr(training, "hub_token", None)
    if hasattr(training, "hub_token"):
        training.hub_token = None
    return token or None


def _plain(value: Any) -> Any:
    """A YAML/JSON-safe copy of an option value (enums to their value, sets to lists)."""
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def get_setting(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise UserError(f"unknown training setting {name!r}; expected one of {', '.join(SETTINGS)}") from None
