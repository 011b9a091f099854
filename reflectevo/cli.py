"""The `reflectevo` command. Each subcommand lives beside the code it drives and registers itself
through a `register(subparsers)` function, so `reflectevo <cmd> --help` is the reference.

The subcommands are found through the `reflectevo.commands` entry points (pyproject.toml), not named
here: this module stands on the ground floor, and the packages whose commands it runs stand above it.

Every command speaks one style (reflectevo.settings): underscore options, --help naming each default,
repeatable `--config FILE.yaml` layers under the command-line options, and old spellings read for
one release with a deprecation line. The commands configured by dataclasses (`gen run`, `train`,
`evolve`) parse their own arguments through `settings.parse`; every other command's parser is
given the style here (`settings.one_style`), and its --config layers are read before it parses.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

from reflectevo import settings
from reflectevo.errors import UserError

ENTRY_POINTS = "reflectevo.commands"
# the order `reflectevo --help` lists them in (a command not named here is listed after them)
ORDER = ("model", "tasks", "hub", "gen", "train", "evolve", "leaderboard")


def commands() -> dict[str, str]:
    """Subcommand name -> module exposing register(subparsers), in help order."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}
    if not found:
        raise UserError("no subcommands are registered: reflectevo is not installed in this environment "
                        "(run scripts/setup-env.sh, or pip install -e .)")
    return dict(sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0])))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reflectevo",
        description="Self-reflection learning for small language models (ReflectEvo).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in commands().items():
        if only is not None and name != only:
            continue
        # every subcommand ships with the package: a module that will not import is a broken
        # install (a wheel that lost a package), reported as such rather than a subcommand gone
        module = importlib.import_module(module_name)
        module.register(sub)
    for command in leaf_parsers(parser):
        if not command.get_default("passthrough"):
            settings.one_style(command)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every runnable (sub)subcommand under `parser`: `gen curate`, `hub serve`, ..."""
    out = []
    for child in _subcommands(parser).values():
        out += leaf_parsers(child) if _subcommands(child) else [child]
    return out


def _command_at(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The parser of the subcommand `argv` names, and where its own arguments start."""
    at = 0
    while at < len(argv) and argv[at] in _subcommands(parser):
        parser = _subcommands(parser)[argv[at]]
        at += 1
    return parser, at


def main(argv: list[str] | None = None) -> int:
    from reflectevo.hub.client import configure_endpoint_env

    configure_endpoint_env()  # before any Hub library is imported: endpoint and xet settings
    # OpenMP's wait policy is left to the user: PASSIVE (idle workers sleep) is much faster when
    # several processes share the CPU, but cost ~30% on an idle 2-core machine (benchmarks/RESULTS.md)
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    env: dict[str, str] = {}
    try:
        parser = build_parser(only=first if first in commands() else None)
        command, at = _command_at(parser, argv)
        if command is not parser and not _subcommands(command) and not command.get_default("passthrough"):
            rest, env = settings.layer_defaults(command, argv[at:], command.prog)
            argv = argv[:at] + rest
    except UserError as exc:
        print(f"reflectevo: error: {exc}", file=sys.stderr)
        return 2
    # commands configured by dataclass parsers (TRL style) take their own options untouched
    args, rest = parser.parse_known_args(argv)
    os.environ.update(env)  # a layer's `env:`, once every layer and option has parsed
    if getattr(args, "passthrough", False):
        args.argv = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"reflectevo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reflectevo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
