"""How every command is configured: dataclasses filled in layers, each layer overriding the last.

    dataclass defaults <- built-in YAML (where the command ships one) <- each --config YAML, in the
    order given <- mapping layers a command adds (evolve's --set) <- command-line options

`reflectevo gen run`, `reflectevo train <setting>`, `reflectevo evolve` and the lm-eval model's
--model_args (where `config=FILE.yaml` is the YAML layer and the other model_args are the command
line) all go through `parse` here. The parser is TRL's (HfArgumentParser underneath), so a value
from YAML is typed and checked the same way as the same value given as a flag. A YAML file may also
hold `env:`, a mapping of environment variables set once every layer has been read and checked.

Mistakes are one UserError naming the file (or the command line) and the option.

Every command also speaks one command-line style (`one_style`): options are spelt with underscores
(`--batch_size`, as TRL's scripts and the dataclass fields), --help names each option's default,
and an option's other spellings (the hyphenated one, or an older name) are still read for one
release, each use printing one deprecation line that names the current spelling. The subcommands
parsed by plain argparse get the same --config layers through `layer_defaults`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from reflectevo.errors import UserError

COMMAND_LINE = "command line"
ENV_KEY = "env"
CONFIG_HELP = ("YAML file of option: value (repeatable; later files override earlier ones, and options given "
               "here override every file) (default: no file)")


@dataclass
class Parsed:
    values: tuple  # one instance per dataclass, in the order they were given
    sources: dict[str, str] = field(default_factory=dict)  # option -> the layer that set it last, in first-set order
    files: list[str] = field(default_factory=list)  # YAML layers read, in order
    env: dict[str, str] = field(default_factory=dict)  # what the layers' `env:` mappings set


def flag_label(key: str) -> str:
    return f"--{key}"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help names every option's default: "(default: X)" is added to its help text unless the text
    names the default itself, in words, as "(default…" (None would tell the reader nothing)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or "(default" in text.lower():
            return text
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """HelpFormatter for a command whose description is laid out by hand (a module docstring)."""


class OldSpelling(argparse.Action):
    """An option's old spelling, read for one release: each use prints one line on stderr that names
    the current spelling, then does what the current spelling does. Hidden from --help."""

    def __init__(self, option_strings, dest, current: argparse.Action, **_):
        super().__init__(option_strings, current.dest, nargs=current.nargs, const=current.const,
                         default=argparse.SUPPRESS, type=current.type, choices=current.choices,
                         help=argparse.SUPPRESS, metavar=current.metavar)
        self.current = current

    @property
    def new_spelling(self) -> str:
        return self.current.option_strings[0]

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and goes in the next release; use {self.new_spelling}",
              file=sys.stderr)
        # argparse counts an option as given only when its own action runs, so a required option
        # given by its old spelling would otherwise be reported missing
        self.current.required = False
        self.current(parser, namespace, values, self.new_spelling)


def one_style(parser: argparse.ArgumentParser, formatter=HelpFormatter) -> argparse.ArgumentParser:
    """Give a command's parser the shared style: one spelling per option, its first long one (any
    other long spelling becomes an OldSpelling, and so does the hyphenated twin of an underscore
    option); --help naming defaults; a --config option (the layers themselves are read by `parse`
    or `layer_defaults`, before the parser sees the arguments)."""
    parser.formatter_class = formatter
    if "--config" not in parser._option_string_actions:
        parser.add_argument("--config", action="append", metavar="YAML", help=CONFIG_HELP)
    for action in list(parser._actions):
        if isinstance(action, OldSpelling):
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs:
            continue
        old = longs[1:]
        hyphenated = "--" + longs[0][2:].replace("_", "-")
        if hyphenated != longs[0] and hyphenated not in parser._option_string_actions:
            old.append(hyphenated)
        for spelling in old:
            if spelling in action.option_strings:
                action.option_strings.remove(spelling)
                del parser._option_string_actions[spelling]
        if old:
            parser.add_argument(*old, action=OldSpelling, current=action)
    return parser


def make_parser(dataclass_types: Sequence[type], prog: str, description: str | None = None,
                config_help: str = CONFIG_HELP):
    """TRL's parser over the dataclasses, raising UserError instead of printing usage and exiting."""
    from trl import TrlParser

    parser = TrlParser(dataclass_types=list(dataclass_types), prog=prog, description=description,
                       formatter_class=RawHelpFormatter, exit_on_error=False)
    for action in parser._actions:
        if action.type is dict:  # a mapping option takes a YAML mapping on the command line too
            action.type, action.metavar = _yaml_mapping, "'{OPTION: VALUE, ...}'"
    # listed for --help; `parse` takes the --config layers out before the parser sees the arguments
    parser.add_argument("--config", action="append", metavar="YAML", help=config_help)
    one_style(parser, RawHelpFormatter)

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


def layer_defaults(parser: argparse.ArgumentParser, argv: Sequence[str], prog: str,
                   find_config: Callable[[str], Path] = existing_file) -> tuple[list[str], dict[str, str]]:
    """The --config layers of a command parsed by plain argparse (not a dataclass): each option a
    layer sets becomes the parser's default, typed and checked as the same value given as a flag,
    so that what the command line gives still overrides it; an option or positional a layer sets is
    no longer required on the command line. A repeatable option (`hub serve --token`) given on the
    command line adds to the layers' values. Returns (argv less the --config layers, the layers'
    `env:` mapping, to be set once the arguments have parsed)."""
    configs, rest = split_configs(argv)
    layers = [(str(f), read_layer(f)) for f in (find_config(c) for c in configs)]
    merged, sources, env = _merge_layers(parser, layers, prog, set(), True)
    for key, value in merged.items():
        action = next(a for a in parser._actions if a.dest == key and not isinstance(a, OldSpelling))
        action.default = _layer_value(parser, action, value, sources[key])
        action.required = False
        if not action.option_strings:
            action.nargs = {None: "?", "+": "*"}.get(action.nargs, action.nargs)
    return rest, env


def _layer_value(parser: argparse.ArgumentParser, action: argparse.Action, value, source: str):
    """A YAML value for an argparse option, converted and checked by the option's own type and choices."""
    key = action.dest
    if value is None:  # null: "not set", which only an option that is unset by default can be
        if action.default is not None:
            raise UserError(f"{source}: {key}: expected a value, got null")
        return None
    if action.nargs == 0:  # a flag: store_true and the like
        if not isinstance(value, bool):
            raise UserError(f"{source}: {key}: expected true or false, got {value!r}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if not many and isinstance(value, (list, dict)):
        raise UserError(f"{source}: {key}: expected one value, got {value!r}")
    items = value if isinstance(value, list) else [value]
    typed = []
    for item in items:
        if isinstance(item, (list, dict)):
            raise UserError(f"{source}: {key}: expected a list of values, got {value!r}")
        text = ("true" if item else "false") if isinstance(item, bool) else str(item)
        try:
            converted = parser._get_value(action, text)
            parser._check_value(action, converted)
        except argparse.ArgumentError as exc:
            raise UserError(f"{source}: {key}: {exc.message}") from None
        typed.append(converted)
    return typed if many else typed[0]


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
