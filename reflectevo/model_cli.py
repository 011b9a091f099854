"""`reflectevo model`: locate (and on first use, convert) models by short name."""

from __future__ import annotations

from reflectevo.embedded_model import EMBEDDED_SHORT_NAME, model_revision, resolve_model


def register(sub) -> None:
    p = sub.add_parser("model", help="locate models by short name", description=__doc__)
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    path = msub.add_parser("path", help="print the local folder of a model (converting the embedded one on first use)",
                           description="Print the local folder of a model, converting the embedded one on first use.")
    path.add_argument("name", nargs="?", default=EMBEDDED_SHORT_NAME, help="model short name")
    path.add_argument("--revision", action="store_true", help="print the revision (GGUF sha256) on a second line")
    path.set_defaults(func=_path)


def _path(args) -> int:
    print(resolve_model(args.name))
    if args.revision:
        print(model_revision(args.name))
    return 0
