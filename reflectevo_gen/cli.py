"""`reflectevo gen`: generate self-reflections, curate them, publish them.

    reflectevo gen run --limit 30 --output runs/x          # defaults: embedded model, BBH's generation pool
    reflectevo gen run --config gen.yaml --seed 1            # YAML settings (--config repeatable), CLI overrides
    reflectevo gen curate --input runs/x --output runs/x-curated
    reflectevo gen push --input runs/x-curated --push_to_repo NAME/ID --push_tag run-1
    reflectevo gen merge --inputs runs/s0 runs/s1 --output runs/all

`reflectevo gen <action> --help` lists every option of an action; each also takes `--config
FILE.yaml` (repeatable), whose options the command line overrides. Runs resume: re-running the same
command after a crash or kill continues where it stopped, and never duplicates a record.
"""

from __future__ import annotations

import argparse
import json
import os

from reflectevo.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("gen", help="generate, curate and publish self-reflection data", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    gsub = p.add_subparsers(dest="gen_command", metavar="ACTION")

    run = gsub.add_parser("run", help="trial 1 → reflect → retry on a question pool (see `gen run --help`)", add_help=False)
    run.add_argument("-h", "--help", action="store_true", dest="help_requested")
    run.set_defaults(func=_run, passthrough=True)

    # an option's second spelling is its old one, read for one release (reflectevo.settings.one_style)
    cur = gsub.add_parser("curate", help="build D+, D±, Dpref, sft_qa and statistics from a run",
                          description="Curate a generation run into D+, D±, Dpref and sft_qa, with statistics.")
    cur.add_argument("--input", required=True, help="run folder, or a curated folder whose raw records are curated again")
    cur.add_argument("--output", required=True, help="curated folder")
    cur.add_argument("--max_pairs", type=int, default=4, help="D± and Dpref pairs per question")
    cur.add_argument("--near_duplicate", type=float, default=0.8,
                     help="trigram Jaccard at which two reflections (or two D+ retries of a question) count as one")
    cur.add_argument("--min_margin", type=float, default=None,
                     help="Dpref pairs whose log-likelihood margin is below this are dropped and counted "
                          "(default: the measured noise, reflectevo_gen.curate.MARGIN_NOISE)")
    cur.add_argument("--ranking", default="loglik", choices=["loglik", "judge"],
                     help="Dpref ranking: judge-free log-likelihood of the gold answer, or a pairwise judge model")
    cur.add_argument("--judge_model", default=None, help="model that ranks Dpref pairs (default: the run's generator)")
    cur.add_argument("--batch_size", type=int, default=16, help="batch size of the ranking model")
    cur.add_argument("--allow_unisolated_code", action="store_true",
                     help="code items (mbpp) are scored by running their programs again: where no isolated sandbox "
                          "can be built, run them unisolated, as this user (default: refuse)")
    cur.set_defaults(func=_curate)

    push = gsub.add_parser("push", help="publish a curated folder to a Hub dataset repo (token from HF_TOKEN)",
                           description="Publish a curated folder as one commit (and tag) of a Hub dataset repo; "
                                       "the token comes from HF_TOKEN.")
    push.add_argument("--input", required=True, help="curated folder")
    push.add_argument("--push_to_repo", "--repo", required=True, help="dataset repo id, NAME/ID")
    push.add_argument("--push_tag", "--tag", default=None, help="tag for this run, e.g. run-1 (default: no tag)")
    push.add_argument("--push_private", "--private", action="store_true", help="create the repo as private")
    push.add_argument("--hub_endpoint", "--endpoint", default=None,
                      help="Hub endpoint (default: $HF_ENDPOINT or huggingface.co)")
    push.set_defaults(func=_push)

    merge = gsub.add_parser("merge", help="combine sharded run folders; refuses overlapping or inconsistent shards",
                            description="Combine the run folders of `gen run --shard i/N` into one run folder.")
    merge.add_argument("--inputs", nargs="+", required=True, help="the shards' run folders")
    merge.add_argument("--output", required=True, help="merged run folder")
    merge.set_defaults(func=_merge)


def _run(args) -> int:
    from reflectevo_gen.config import GenConfig, parse_config
    from reflectevo_gen.pipeline import run

    argv = args.argv + (["--help"] if args.help_requested else [])
    cfg = parse_config(GenConfig, argv, prog="reflectevo gen run")
    summary = run(cfg)
    print(json.dumps(summary, indent=1))
    print(f"records: {os.path.join(cfg.output, 'parts')}")
    return 0


def _curate(args) -> int:
    from reflectevo_gen.curate import CONFIGS, CurateOptions, curate_run, run_judge, stats_markdown

    extra = {} if args.min_margin is None else {"min_margin": args.min_margin}
    opts = CurateOptions(max_pairs=args.max_pairs, near_duplicate=args.near_duplicate, ranking=args.ranking,
                         allow_unisolated_code=args.allow_unisolated_code, **extra)
    result = curate_run(args.input, args.output, opts, run_judge(args.input, args.judge_model, args.batch_size))
    counts = {c: len(result[c]) for c in CONFIGS}
    print(stats_markdown(result["stats"], counts))
    print(f"curated: {args.output}")
    return 0


def _push(args) -> int:
    from reflectevo.hub.client import configure_endpoint_env

    configure_endpoint_env(args.hub_endpoint)
    from reflectevo_gen.publish import push

    sha = push(args.input, args.push_to_repo, tag=args.push_tag, private=args.push_private,
               token=os.environ.get("HF_TOKEN"), endpoint=args.hub_endpoint)
    print(f"pushed {args.push_to_repo} at {sha}" + (f" (tag {args.push_tag})" if args.push_tag else ""))
    return 0


def _merge(args) -> int:
    from reflectevo_gen.merge import merge

    print(json.dumps(merge(args.inputs, args.output), indent=1))
    return 0
