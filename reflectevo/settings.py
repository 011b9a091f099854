"""How every command is configured: dataclasses filled in layers, each layer overriding the last.

    dataclass defaults <- built-in YAML (where the command ships one) <- each --config YAML, in the
    order given <- mapping layers a command adds (evolve's --set) <- command-line options

`reflectevo gen run`, `reflectevo train <setting>`, `reflectevo evolve` and the lm-eval model's
--model_args (where `config=FILE.yaml` is the YAML layer and the other model_args are the command
line) all go through `parse` here. The parser is TRL's (HfArgumentParser underneath), so a value
from YAML is typed and checked the same way as the same value given as a flag. A YAML file may also
hold `env:`, a mapping of environment variables set once every layer has been read and checked.

Mistakes are one UserError naming the file (or the command line) and the option.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from reflectevo.errors import UserError

COMMAND_LINE = "command line"
ENV_KEY = "env"
CONFIG_HELP = ("YAML file of option: value (repeatable; later files override earlier ones, and options given "
               "here override every file)")


@dataclass
class Parsed:
    values: tuple  # one instance per dataclass, in the order they were given
    sources: dict[str, str] = field(default_factory=dict)  # option -> the layer that set it last, in first-set order
    files: list[str] = field(default_factory=list)  # YAML layers read, in order
    env: dict[str, str] = field(default_factory=dict)  # what the layers' `env:` mappings set


def flag_label(key: str) -> str:
    return f"--{key}"


def make_parser(dataclass_types: Sequence[type], prog: str, description: str | None = None,
                config_help: str = CONFIG_HELP):
    """TRL's parser over the dataclasses, raising UserError instead of printing usage and exiting."""
    from trl import TrlParser

    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    parser = TrlParser(dataclass_types=list(dataclass_types), prog=prog, description=description,
                       formatter_class=Formatter, exit_on_error=False)
    for action in parser._actions:
        if action.type is dict:  # a mapping option takes a YAML mapping on the command line too
            action.type, action.metavar = _yaml_mapping, "'{OPTION: VALUE, ...}'"
    # listed for --help; `parse` takes the --config layers out before the parser sees the arguments
    parser.add_argument("--config", action="append", metavar="YAML", help=config_help)

    def error(message: str):
        raise UserError(f"{prog}: {message}")

    parser.error = error
    return parser


def _yaml_mapping(text: str) -> dict:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{option: value}}', got {text!r}")
    return value


def existing_file(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f"--config {name}: no such file")
    return path


def split_configs(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the --config values in order, the other arguments)."""
    configs, rest, i = [], [], 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise UserError("--config needs a YAML file")
            configs.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--config="):
            configs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return configs, rest


def read_layer(path: Path) -> dict:
    """One YAML layer: a mapping of option: value (an empty file is an empty layer)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a YAML mapping of option: value")
    return data


def parse(dataclass_types: Sequence[type], argv: Sequence[str], prog: str, *,
          builtin: Iterable[Path] = (), find_config: Callable[[str], Path] = existing_file,
          mapping_layers: Iterable[tuple[str, dict]] = (), merge_keys: Iterable[str] = (),
          description: str | None = None, config_help: str = CONFIG_HELP,
          label: Callable[[str], str] = flag_label, takes_env: bool = True) -> Parsed:
    """Fill `dataclass_types` from the layers (see the module's docstring) and `argv`.

    builtin: YAML files read first; find_config: turns a --config value into a file; mapping_layers:
    (name, mapping) read after the files; merge_keys: options whose mapping values merge key by key
    across layers (the command line included) instead of replacing each other; label: how an
    option is spelt in messages; description, config_help: for --help; takes_env: whether a layer
    may hold `env:`."""
    merge_keys = set(merge_keys)
    configs, rest = split_configs(argv)
    files = list(builtin) + [find_config(c) for c in configs]
    layers = [(str(f), read_layer(f)) for f in files] + list(mapping_layers)
    parser = make_parser(dataclass_types, prog, description, config_help)
    merged, sources, env = _merge_layers(parser, layers, prog, merge_keys, takes_env)
    parser.set_defaults_with_config(**{k: _as_default(parser, k, v, sources[k]) for k, v in merged.items()})
    given = cli_keys(parser, rest)
    try:
        *values, remaining = parser.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
    except argparse.ArgumentError as exc:
        raise UserError(_value_error(exc, given, sources, label)) from None
    except ValueError as exc:  # raised by a dataclass's own __post_init__ (TRL's and transformers' checks)
        raise UserError(str(exc).strip().splitlines()[0]) from None
    if remaining:
        raise UserError(f"unknown option(s) for `{prog}`: {' '.join(remaining)} (see `{prog} --help`)")
    values = values[:len(dataclass_types)]
    for key in given:
        sources[key] = COMMAND_LINE
        if key in merge_keys and isinstance(merged.get(key), dict):
            holder = next(v for v in values if hasattr(v, key))
            setattr(holder, key, {**merged[key], **getattr(holder, key)})
    for name, value in env.items():
        os.environ[name] = value
    return Parsed(tuple(values), sources, [str(f) for f in files], env)


def _merge_layers(parser, layers: list[tuple[str, dict]], prog: str, merge_keys: set[str], takes_env: bool):
    known = {a.dest for a in parser._actions} - {"help", "config"}
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    env: dict[str, str] = {}
    for name, data in layers:
        data = dict(data)
        if takes_env:
            env.update(_env_of(name, data.pop(ENV_KEY, None)))
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise UserError(f"{name}: unknown option(s) {', '.join(unknown)} for `{prog}` "
                            f"(see `{prog} --help`)")
        for key, value in data.items():
            if key in merge_keys and isinstance(value, dict) and isinstance(merged.get(key), dict):
                value = {**merged[key], **value}
            merged[key] = value
            sources[key] = name
    return merged, sources, env


def _env_of(name: str, value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{name}: {ENV_KEY} must be a mapping of VARIABLE: value")
    return {str(k): str(v) for k, v in value.items()}


def _as_default(parser, key: str, value, source: str):
    """A YAML scalar handed to the parser as text, so that argparse types and checks it exactly as
    it would the same value given as a flag (argparse converts only defaults that are strings)."""
    action = next(a for a in parser._actions if a.dest == key)
    if isinstance(value, (bool, int, float)) and action.type not in (None, dict):
        return str(value)
    if isinstance(value, (list, dict)) and action.nargs not in ("+", "*") and _is_scalar(action.type):
        raise UserError(f"{source}: {key}: expected one value, got {value!r}")
    return value


def _is_scalar(kind) -> bool:
    from transformers.hf_argparser import string_to_bool

    return kind in (int, float, string_to_bool)


def cli_keys(parser, argv: Sequence[str]) -> list[str]:
    """The options `argv` sets, by dataclass field name (`--hub-token`, `--no_x` and unique
    abbreviations included)."""
    flags = parser._option_string_actions
    keys = []
    for a in argv:
        if not a.startswith("--") or len(a) == 2:
            continue
        flag = a.split("=", 1)[0]
        action = flags.get(flag)
        if action is None and parser.allow_abbrev:
            matches = {flags[f] for f in flags if f.startswith(flag)}
            action = matches.pop() if len(matches) == 1 else None
        if action is not None and action.dest not in ("help", "config"):
            keys.append(action.dest)
    return list(dict.fromkeys(keys))


def _value_error(exc: argparse.ArgumentError, given: list[str], sources: dict[str, str],
                 label: Callable[[str], str]) -> str:
    name = (exc.argument_name or "").split("/")[0]
    key = name.lstrip("-").replace("-", "_")
    if not key:
        return exc.message
    if key in given or key not in sources:
        return f"{label(key)}: {exc.message}"
    return f"{sources[key]}: {key}: {exc.message}"


def mapping_argv(options: dict) -> list[str]:
    """`--key=value` for each option that has a value (None and "" mean: not given), so a mapping of
    strings (lm-eval's model_args) is typed by the same parser as a command line."""
    return [f"--{k}={v}" for k, v in options.items() if v is not None and v != ""]
