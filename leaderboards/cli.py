"""`reflectevo leaderboard build RESULTS… --output leaderboards`: tables and plots from lm-eval results."""


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="build leaderboard tables and plots from lm-eval results files", description=__doc__)
    lsub = p.add_subparsers(dest="leaderboard_command", metavar="ACTION")
    b = lsub.add_parser("build", help="read results files (or folders of them) and write bbh.md, bbh.json, PNGs (math.*, mbpp.* for those tasks)")
    b.add_argument("results", nargs="+", help="results_*.json files or folders holding them")
    b.add_argument("--output", default="leaderboards", help="folder the tables and plots are written to")
    b.add_argument("--compare", default=None, metavar="ROW:AGAINST,…",
                   help="row-against-row comparisons on the same items, rows by number or results file name "
                        "('' for none) (default: each reflective row (oracle, intrinsic) against the retry_only row "
                        "of the same answering model, each trained row against the base model's row under the "
                        "same protocol (mode and one-stage), intrinsic against single)")
    b.add_argument("--findings", default=None, metavar="FILE",
                   help="a markdown file of findings written from these tables (headings ### or deeper), put "
                        "first in the table (default: none, no Findings section)")
    b.add_argument("--push_to_repo", default=None,
                   help="also publish the folder as this Hub dataset repo, token from HF_TOKEN (default: not published)")
    b.add_argument("--push_tag", default=None, help="tag for that commit (default: no tag)")
    b.set_defaults(func=_build)


def _build(args) -> int:
    from leaderboards.build import build, push

    rows = build(args.results, args.output, args.compare, findings=args.findings)
    # one table per benchmark: BBH rows in bbh.*, MATH rows in math.*, MBPP rows in mbpp.*
    print(f"{len(rows)} rows → {args.output}/<benchmark>.md, .json, _comparisons.json, _t1_t2.png, _subtask_delta.png "
          "(bbh, math, mbpp)")
    if args.push_to_repo:
        sha = push(args.output, args.push_to_repo, args.push_tag)
        print(f"published {args.push_to_repo}@{args.push_tag or 'main'} = {sha}")
    return 0
