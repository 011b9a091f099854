"""`reflectevo train`: the trainer's subcommand (see the package docstring for the full story).

    reflectevo train one_stage --dataset NAME/ID@run-1
    reflectevo train dpo_pm --config my.yaml --learning_rate 5e-6 --push_to_repo NAME/ID --push_tag v1
    reflectevo train two_stage --help        # every option of that setting
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from reflectevo.hub.client import configure_endpoint_env

    configure_endpoint_env()  # before any Hub library is imported
    import reflectevo_train
    from reflectevo_train.config import SETTINGS

    p = sub.add_parser("train", help="train a reflector (settings I-IV and the QA baseline) with TRL",
                       description=reflectevo_train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       add_help=False)
    p.add_argument("setting", nargs="?", choices=list(SETTINGS), help="what to train (first argument)")
    p.add_argument("-h", "--help", action="store_true", dest="help_requested")
    p.set_defaults(func=_run, passthrough=True, _train_parser=p)


def _run(args) -> int:
    from reflectevo_train.run import main

    if args.setting is None:
        args._train_parser.print_help()
        return 0 if args.help_requested else 2
    argv = [args.setting, *args.argv] + (["--help"] if args.help_requested else [])
    return main(argv)
