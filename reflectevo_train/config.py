"""Settings, script arguments and recipe parsing for `reflectevo train`.

A run is configured the way TRL's example scripts are: three dataclasses (our `ScriptArguments`,
TRL's `ModelConfig`, and TRL's `SFTConfig` or `DPOConfig`), filled from YAML recipes and then from
command-line flags, so every TRL / transformers training argument can be overridden with
`--name value`.

Recipe layering (later wins), the one every command shares (reflectevo.settings): the built-in
recipe of the setting (`reflectevo_train/recipes/<setting>.yaml`), then each `--config FILE` in the
order given (a bare name such as `demo` means the built-in `recipes/demo.yaml`), then the
command-line flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from reflectevo.errors import UserError
from reflectevo.named_files import file_or_builtin
from reflectevo.settings import make_parser, parse, read_layer

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
                "recorded as the resolved sha) or a local curated folder with <config>.jsonl files "
                "(default: none; required)"})
    dataset_config: str | None = field(default=None, metadata={
        "help": "config (curated set) to read (default per setting: one_stage/two_stage d_plus, "
                "dpo_pm d_pm, dpo_pref d_pref, sft_qa sft_qa)"})
    dataset_split: str = field(default="train", metadata={"help": "split of the config"})
    max_rows: int | None = field(default=None, metadata={"help": "use only the first N rows, for smoke runs (default: every row)"})
    exclude_two_answer: bool = field(default=False, metadata={
        "help": "leave out rows on questions with two possible answers (yes/no, true/false, valid/invalid, "
                "two options), where the verdict \"incorrect\" names the gold and a fix can be elimination "
                "(default: keep them); the count left out is recorded"})
    validation_fraction: float = field(default=0.0, metadata={
        "help": "share of the training set's questions held out (whole questions, chosen by a hash of the "
                "question and --seed) for a validation loss measured during training and drawn with the "
                "training loss in loss_curves.png (default 0: none held out)"})
    data_fraction: float = field(default=1.0, metadata={
        "help": "train on about this share of the training questions (whole questions, ranked by a hash of the "
                "question and --seed, so a smaller share's questions are inside a larger one's; the validation "
                "slice is held out first and is the same for every share), for data-scaling curves "
                "(default 1: all)"})
    min_steps_after_warmup: int = field(default=0, metadata={
        "help": "raise --num_train_epochs to the fewest whole epochs that give each stage at least this many "
                "optimizer steps after warmup; the epochs used are recorded (default 0: the recipe's epochs; "
                "not used with --max_steps)"})
    resume: bool = field(default=False, metadata={
        "help": "go on with an interrupted run in --output_dir: the stages it finished are reused and the stage "
                "it was in continues from its newest complete checkpoint (needs a --save_strategy that writes "
                "checkpoints); refused where the folder was begun with other options or data; with nothing to "
                "resume it starts afresh (default: false, start afresh)"})
    instruction: str = field(default="default", metadata={
        "help": "reflection instruction written into training prompts; keep it equal to the evaluator's "
                "`instruction=` option (default 'default') so training and evaluation prompts match"})
    init_adapter: str | None = field(default=None, metadata={
        "help": "start from this LoRA adapter (folder or 'namespace/name@revision'), e.g. an SFT adapter "
                "before DPO; for DPO the model with this adapter is the reference (default: a fresh adapter)"})
    init_adapter_mode: str = field(default="continue", metadata={
        "help": "continue: keep training that adapter (DPO reference = a frozen copy of it; output is one "
                "adapter on the base); merge: merge it into the base weights first and train a fresh "
                "adapter on top (DPO reference = the merged model; output is the merged full model)",
        "choices": list(INIT_ADAPTER_MODES)})
    push_to_repo: str | None = field(default=None, metadata={
        "help": "publish the result to this Hub model repo NAME/ID, token from --hub_token, else HF_TOKEN "
                "(default: not published)"})
    push_tag: str | None = field(default=None, metadata={"help": "tag for the published commit (default: no tag)"})
    push_private: bool = field(default=False, metadata={"help": "create the repo as private"})
    hub_endpoint: str | None = field(default=None, metadata={
        "help": "Hub endpoint for data, adapters and publishing (default: $HF_ENDPOINT or huggingface.co)"})

    def check(self, setting: Setting) -> None:
        if not self.dataset:
            raise UserError("--dataset is required: a Hub dataset 'namespace/name@revision' or a curated folder")
        if self.max_rows is not None and self.max_rows < 1:
            raise UserError("--max_rows: must be at least 1")
        if not 0 <= self.validation_fraction < 1:
            raise UserError(f"--validation_fraction: expected a share in [0, 1), got {self.validation_fraction}")
        if not 0 < self.data_fraction <= 1:
            raise UserError(f"--data_fraction: expected a share in (0, 1], got {self.data_fraction}")
        if self.min_steps_after_warmup < 0:
            raise UserError(f"--min_steps_after_warmup: must be 0 or more, got {self.min_steps_after_warmup}")
        if self.init_adapter_mode not in INIT_ADAPTER_MODES:
            raise UserError(f"--init_adapter_mode: expected one of {', '.join(INIT_ADAPTER_MODES)}")
        if self.push_tag and not self.push_to_repo:
            raise UserError("--push_tag needs --push_to_repo")
        if self.push_to_repo and self.push_to_repo.count("/") != 1:
            raise UserError(f"--push_to_repo: expected NAME/ID, got {self.push_to_repo!r}")


def recipe_path(name_or_path: str) -> Path:
    """A recipe file, or the built-in recipe of that name (`one_stage`, `demo`, ...)."""
    return file_or_builtin(name_or_path, RECIPES_DIR, "recipe")


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


def dataclass_types(setting: Setting) -> list[type]:
    from trl import DPOConfig, ModelConfig, SFTConfig

    return [ScriptArguments, ModelConfig, DPOConfig if setting.is_dpo else SFTConfig]


CONFIG_HELP = ("recipe: a YAML file of option: value, or a built-in recipe name (demo, ...); repeatable, later "
               "recipes override earlier ones and the setting's own, options given here override every recipe "
               "(default: the setting's own recipe only)")


def build_parser(setting: Setting, prog: str = "reflectevo train"):
    """The options of a setting, with its built-in recipe as their defaults, so that --help shows
    the values a run starts from rather than TRL's."""
    parser = make_parser(dataclass_types(setting), f"{prog} {setting.name}", config_help=CONFIG_HELP)
    parser.set_defaults_with_config(**read_layer(RECIPES_DIR / f"{setting.name}.yaml"))
    return parser


def parse_run(setting_name: str, argv: list[str], prog: str = "reflectevo train") -> ParsedRun:
    """Parse `<setting> [--config R ...] [--option value ...]` into the three dataclasses."""
    setting = get_setting(setting_name)
    argv = list(argv)
    parsed = parse(dataclass_types(setting), argv, f"{prog} {setting.name}",
                   builtin=[RECIPES_DIR / f"{setting.name}.yaml"], find_config=recipe_path, config_help=CONFIG_HELP)
    script, model, training = parsed.values
    script.check(setting)
    hub_token = _take_secret(training)
    recipe = {k: _plain(_value_of(k, parsed.values)) for k in parsed.sources if k not in SECRET_OPTIONS}
    return ParsedRun(setting, script, model, training, recipe, parsed.files, redact_argv(argv), hub_token)


def _value_of(key: str, dataclasses: tuple) -> Any:
    return getattr(next(dc for dc in dataclasses if key in {f.name for f in fields(dc)}), key)


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
