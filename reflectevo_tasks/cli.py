"""`reflectevo tasks`: inspect question sources and answer questions with a model (trial 1 only).

    reflectevo tasks list                         sources and BBH subtasks
    reflectevo tasks pool                         build the BIG-bench pool and print its manifest
    reflectevo tasks answer --source bbh --limit 2  greedy-answer and score questions
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from reflectevo.errors import UserError


def add_engine_args(p) -> None:
    """Model/engine options shared by every command that runs a model (spelt as in `gen run`)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="smollm2-135m-instruct", help="model id, local folder or short name")
    # a second spelling is the old one, read for one release (reflectevo.settings.one_style)
    g.add_argument("--model_revision", "--revision", default=None,
                   help="model revision: branch, tag or commit (default: the model's main branch)")
    g.add_argument("--engine", default="hf", choices=["hf", "vllm", "local-chat-completions"], help="lm-eval model type used as the engine")
    g.add_argument("--dtype", default=None, help="float32, bfloat16, … (default: the model's own)")
    g.add_argument("--batch_size", type=int, default=16, help="engine batch size")
    g.add_argument("--device", default=None, help="e.g. cpu, cuda (default: cpu for the hf engine)")
    g.add_argument("--model_args", default="", help="extra lm-eval model_args, k=v,k=v (default: none)")


def engine_config_from_args(args, **overrides):
    from reflectevo_tasks.engine import EngineConfig, parse_model_args

    extra = parse_model_args(args.model_args, "--model_args")
    cfg = EngineConfig(model=args.model, engine=args.engine, revision=args.model_revision, dtype=args.dtype,
                       batch_size=args.batch_size, device=args.device, model_args=extra)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.check()
    return cfg


def register(sub) -> None:
    p = sub.add_parser("tasks", help="question sources, prompts and scoring", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="tasks_command", metavar="ACTION")

    ls = tsub.add_parser("list", help="list question sources and BBH subtasks",
                         description="List the question sources and BBH's subtasks with their answer kinds.")
    ls.set_defaults(func=_list)

    pool = tsub.add_parser("pool", help="build the opt-in BIG-bench pool (needs bigbench-1.0.0.tar.gz: "
                                        "$REFLECTEVO_BIGBENCH_SDIST or an index serving it)",
                           description="Build the opt-in BIG-bench pool and print its manifest.")
    pool.add_argument("--per_task", type=int, default=50, help="questions drawn from each BIG-bench task")
    pool.add_argument("--bbh_dir", default=None, help="local BBH folder used to exclude BBH items (default: $REFLECTEVO_BBH_DIR or the Hub)")
    pool.set_defaults(func=_pool)

    ans = tsub.add_parser("answer", help="greedy-answer questions with chain of thought and score them",
                          description="Greedy-answer questions with chain of thought (trial 1 only) and score them.")
    ans.add_argument("--source", default="bbh", help="bbh[:subtask,…], bigbench[:task,…], math[:PATH|:ORG/NAME], "
                                                     "mbpp[:PATH|:ORG/NAME] or a dataset spec .yaml")
    ans.add_argument("--limit", type=int, default=None,
                     help="questions per BBH subtask (bbh) or in all (other sources) (default: every question)")
    ans.add_argument("--bbh_dir", default=None, help="local BBH folder (default: $REFLECTEVO_BBH_DIR, else the Hub)")
    ans.add_argument("--fewshot", action="store_true", help="3-shot CoT from the BBH CoT prompts (bbh only)")
    ans.add_argument("--max_new_tokens", type=int, default=256, help="max new tokens of an answer")
    ans.add_argument("--output", default=None, help="write one JSON line per question here (default: print only)")
    add_engine_args(ans)
    ans.set_defaults(func=_answer)


def _list(args) -> int:
    from reflectevo_tasks import bbh

    print("sources: bbh[:subtask,…]  bigbench[:task,…]  math[:PATH|:ORG/NAME]  mbpp[:PATH|:ORG/NAME]  <dataset spec>.yaml")
    print("BBH subtasks (answer kind):")
    for s in bbh.SUBTASKS:
        print(f"  {s:42s} {bbh.ANSWER_KIND[s]}")
    return 0


def _pool(args) -> int:
    from reflectevo_tasks import bigbench

    info = bigbench.build_pool(args.per_task, args.bbh_dir)
    m = dict(info.manifest)
    m.pop("items_per_task", None)
    print(f"pool: {info.path}")
    print(json.dumps(m, indent=1))
    return 0


def _answer(args) -> int:
    from reflectevo_tasks import bbh, prompts
    from reflectevo_tasks.answers import score
    from reflectevo_tasks.engine import Engine, Sampling
    from reflectevo_tasks.sources import load_questions
    from reflectevo_tasks.stats import format_rate

    if args.source.split(":")[0] == "bbh" and args.limit is not None:
        names = args.source.partition(":")[2]
        subtasks = [s for s in names.split(",") if s] or list(bbh.SUBTASKS)
        questions = [q for s in subtasks for q in bbh.load_subtask(bbh.check_subtask(s), args.bbh_dir, args.limit)]
    else:
        report = load_questions(args.source, args.limit, args.bbh_dir)
        for msg in report.rejected:
            print(f"rejected: {msg}", file=sys.stderr)
        questions = report.questions
    if not questions:
        raise UserError(f"{args.source}: no questions to answer")
    if args.fewshot and not all(q.source.startswith("bbh/") for q in questions):
        raise UserError("--fewshot needs BBH questions (the CoT exemplars come from BBH's CoT prompts)")
    engine = Engine(engine_config_from_args(args))
    plist = [prompts.trial_prompt(q, bbh.cot_exemplars(q.source.split("/")[1], args.bbh_dir) if args.fewshot else ())
             for q in questions]
    replies = engine.generate(plist, Sampling(max_new_tokens=args.max_new_tokens))
    outcomes: Counter = Counter()
    out = open(args.output, "w", encoding="utf-8") if args.output else None
    try:
        for q, p, r in zip(questions, plist, replies):
            v = score(r, q.answer, q.spec)
            outcomes[v.outcome] += 1
            print(f"{q.id:48s} gold={v.gold:12.12s} got={str(v.extracted):12.12s} {v.outcome}")
            if out:
                out.write(json.dumps({"question": q.to_dict(), "messages": p.as_list(), "reply": r,
                                      "extracted": v.extracted, "outcome": v.outcome, "engine": engine.describe()}) + "\n")
    finally:
        if out:
            out.close()
    n = len(questions)
    print(f"accuracy {format_rate(outcomes['correct'], n)}; no answer found: {outcomes['no_answer']}/{n}")
    print(f"model {engine.cfg.model} @ {engine.describe()['model_revision']}")
    return 0
