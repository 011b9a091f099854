"""The `reflectevo` command. Each subcommand lives beside the code it drives and registers itself
here through a `register(subparsers)` function, so `reflectevo <cmd> --help` is the reference."""

from __future__ import annotations

import argparse
import importlib
import sys

from reflectevo.errors import UserError

# name -> module exposing register(subparsers); imported lazily so `reflectevo --help` stays fast
SUBCOMMANDS = {
    "model": "reflectevo.model_cli",
    "tasks": "reflectevo_tasks.cli",
    "hub": "reflectevo.hub.cli",
    "gen": "reflectevo_gen.cli",
    "train": "reflectevo_train.cli",
    "evolve": "reflectevo.evolve",
    "leaderboard": "leaderboards.cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reflectevo",
        description="Self-reflection learning for small language models (ReflectEvo).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        # every subcommand ships with the package: a missing module is a broken install (a wheel
        # that lost a package), reported as such rather than a subcommand silently gone
        module = importlib.import_module(module_name)
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reflectevo.hub.client import configure_endpoint_env

    configure_endpoint_env()  # before any Hub library is imported: endpoint and xet settings
    # OpenMP's wait policy is left to the user: PASSIVE (idle workers sleep) is much faster when
    # several processes share the CPU, but cost ~30% on an idle 2-core machine (benchmarks/RESULTS.md)
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in SUBCOMMANDS else None)
    # commands configured by dataclass parsers (TRL style) take their own options untouched
    args, rest = parser.parse_known_args(argv)
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
