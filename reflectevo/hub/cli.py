"""``reflectevo hub``: run the local Hub server, resolve revisions.

``register`` also calls ``configure_endpoint_env()`` so that ``HF_HUB_DISABLE_XET=1`` is in place
for non-huggingface.co endpoints before any subcommand imports ``huggingface_hub``.
"""

from __future__ import annotations

import argparse

from reflectevo.errors import UserError
from reflectevo.hub.client import configure_endpoint_env


def register(subparsers: argparse._SubParsersAction) -> None:
    configure_endpoint_env()
    hub = subparsers.add_parser("hub", help="Hugging Face Hub helpers and a local Hub server",
                                description="Hugging Face Hub helpers and a local Hub-compatible server.")
    sub = hub.add_subparsers(dest="hub_command", metavar="HUB_COMMAND")

    serve = sub.add_parser(
        "serve", help="run a local Hub-compatible server in the foreground",
        description="Serve a Hub-compatible API on this machine (test infrastructure and an offline "
                    "stand-in for huggingface.co). Tokens: --token (repeatable) and/or the "
                    "comma-separated REFLECTEVO_HUB_TOKENS environment variable.")
    serve.add_argument("--data", required=True, help="data directory (created if missing)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (anything but loopback needs --allow_remote)")
    serve.add_argument("--allow_remote", action="store_true",
                       help="allow a non-loopback --host; the server speaks plain HTTP, so tokens and "
                            "upload links cross the network unencrypted")
    serve.add_argument("--token", action="append", default=[],
                       help="accepted token (repeatable) (default: those in $REFLECTEVO_HUB_TOKENS)")
    serve.add_argument("--user", default="local", help="user name reported by whoami")
    serve.add_argument("--quiet", action="store_true", help="do not log requests")
    serve.set_defaults(func=_serve)

    resolve = sub.add_parser("resolve", help="print the 40-hex commit sha of REPO@REVISION",
                             description="Resolve a branch, tag or sha to the commit sha it points to.")
    resolve.add_argument("ref", help="namespace/name[@revision] (also datasets/namespace/name@rev)")
    resolve.add_argument("--repo_type", choices=["model", "dataset", "space"], default=None,
                         help="kind of repo (default: the ref's datasets/ or spaces/ prefix, else model)")
    resolve.set_defaults(func=_resolve)

    hub.set_defaults(func=lambda args: (hub.print_help(), 2)[1])


def _serve(args: argparse.Namespace) -> int:
    from reflectevo.hub.server import TOKENS_ENV, run_foreground, tokens_from

    tokens = tokens_from(args.token)
    if not tokens:
        raise UserError(f"hub serve needs a token: pass --token or set {TOKENS_ENV}")
    try:
        return run_foreground(args.data, tokens, args.host, args.port, args.user, verbose=not args.quiet,
                              allow_remote=args.allow_remote)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"hub serve: {exc}") from exc


def _resolve(args: argparse.Namespace) -> int:
    from reflectevo.hub.client import parse_repo_ref, resolve_revision

    ref = parse_repo_ref(args.ref)
    repo_type = args.repo_type or ref.repo_type or "model"
    print(resolve_revision(ref.repo_id, ref.revision, repo_type))
    return 0
