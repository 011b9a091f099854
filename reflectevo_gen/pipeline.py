"""The generation pipeline, batched across questions at every stage.

For each chunk of questions: trial 1 for all (one batched call) → verify → for every wrong one,
k reflections per selected instruction (one batched call) → one retry per reflection, built on
trial 1 (one batched call) → verify. Records go out one chunk at a time, atomically
(`reflectevo.chunk_store`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from reflectevo.errors import UserError
from reflectevo_gen.config import GenConfig
from reflectevo_gen.trial1_source import Trial1Source
from reflectevo.chunk_store import FolderLock, RecordStore, claim_folder, write_atomic
from reflectevo.portable import portable_paths
from reflectevo_tasks import bbh_split, code_scoring, protocol
from reflectevo_tasks.answers import CODE, CORRECT, score_many
from reflectevo_tasks.engine import Engine, EngineConfig, Sampling, engine_pair, parse_model_args
from reflectevo_tasks.instructions import Instruction, load_pool
from reflectevo_tasks.provenance import package_versions, utc_now
from reflectevo_tasks.questions import Question
from reflectevo_tasks.sources import load_questions


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def in_shard(question_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return stable_hash(question_id) % n == i


def select_instructions(cfg: GenConfig, question_id: str) -> list[Instruction]:
    pool = load_pool(cfg.instruction_pool)
    spec = cfg.instruction_ids.strip()
    if spec.startswith("sample:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise UserError(f"--instruction_ids: expected sample:K, got {spec!r}") from None
        ranked = sorted(pool.instructions, key=lambda ins: stable_hash(f"{question_id}|{ins.id}"))
        return ranked[: max(1, k)]
    return pool.select(spec)


@dataclass
class Engines:
    generator: Engine
    reflector: Engine


def engine_configs(cfg: GenConfig) -> tuple[EngineConfig, EngineConfig]:
    extra = parse_model_args(cfg.model_args, "--model_args")
    gen = EngineConfig(model=cfg.model, engine=cfg.engine, revision=cfg.model_revision, dtype=cfg.dtype,
                       batch_size=cfg.batch_size, device=cfg.device, model_args=extra)
    refl = EngineConfig(model=cfg.reflector or cfg.model, engine=cfg.engine,
                        revision=cfg.reflector_revision if cfg.reflector else cfg.model_revision,
                        peft=cfg.reflector_peft, peft_revision=cfg.reflector_peft_revision,
                        merge_adapter=cfg.reflector_merge_adapter, dtype=cfg.dtype,
                        batch_size=cfg.batch_size, device=cfg.device, model_args=extra)
    if cfg.reflector_merge_adapter and not cfg.reflector_peft:
        raise UserError("--reflector_merge_adapter needs an adapter to merge (--reflector_peft)")
    gen.check()
    refl.check()
    return gen, refl


def build_engines(cfg: GenConfig) -> Engines:
    """The generator and the reflector; on vLLM a LoRA reflector on the generator's model shares its
    engine (reflectevo_tasks.engine.engine_pair)."""
    generator, reflector = engine_pair(*engine_configs(cfg))
    return Engines(generator, reflector)


def samplings(cfg: GenConfig) -> dict[str, Sampling]:
    trial = Sampling(max_new_tokens=cfg.trial_max_new_tokens)
    return {
        "trial": trial,
        "reflection": Sampling(max_new_tokens=cfg.reflection_max_new_tokens, temperature=cfg.reflection_temperature,
                               top_p=cfg.reflection_top_p),
        "retry": trial,
    }


def plan_questions(cfg: GenConfig) -> tuple[list[Question], list[str]]:
    """The questions of this shard, in the source's order, and the rejected-row messages."""
    questions, rejected, _ = _plan(cfg)
    return questions, rejected


def _plan(cfg: GenConfig) -> tuple[list[Question], list[str], dict]:
    """plan_questions, and where the source's data came from (empty where the source does not say)."""
    report = load_questions(cfg.source, cfg.limit, cfg.bbh_dir, kinds=cfg.answer_kinds, ids=cfg.question_ids)
    bbh_split.refuse_test_items(report.questions, cfg.source)
    shard = cfg.shard_parts()
    return [q for q in report.questions if in_shard(q.id, shard)], report.rejected, report.origin


def chunks(questions: list[Question], size: int) -> list[list[Question]]:
    return [questions[i:i + size] for i in range(0, len(questions), size)]


def _turn(turn: protocol.Turn) -> dict:
    return {"messages": turn.prompt.as_list(), "reply_prefix": turn.prompt.reply_prefix, "output": turn.output}


def process_chunk(chunk_id: int, questions: list[Question], engines: Engines, cfg: GenConfig,
                  provenance: dict, progress=None, trial1: Trial1Source | None = None) -> list[dict]:
    """The protocol (oracle mode, several instructions and samples per wrong answer) over one chunk,
    as records: one per right trial 1, one per reflection of a wrong one. `trial1`: an earlier run
    whose stored trial 1 is taken instead of the first pass."""
    s = samplings(cfg)
    stage = progress.stage if progress is not None else (lambda text: None)

    def run_pass(turn, engine, prompt_list, sampling_list):
        stage({"trial1": "trial 1", "reflection": "reflections", "retry": "retries"}[turn] + f": {len(prompt_list)}")
        # reflections are seeded per chunk, so a resumed run samples exactly what an uninterrupted one would
        seed = cfg.seed * 1_000_003 + chunk_id if turn == "reflection" else None
        return engine.generate(prompt_list, list(sampling_list), seed=seed)

    items = [protocol.Item(question=q, sampling=s["trial"], instructions=tuple(select_instructions(cfg, q.id)))
             for q in questions]
    settings = protocol.Settings(mode="oracle", reflection=s["reflection"], samples=cfg.reflections_per_instruction)
    same = engines.reflector is engines.generator
    runs = protocol.run(items, engines.generator, None if same else engines.reflector, settings, run_pass=run_pass,
                        trial1=trial1.replies(questions) if trial1 is not None else None)

    now = utc_now()
    common = {"chunk": chunk_id, "seed": cfg.seed, "config_hash": cfg.identity_hash(), **provenance}

    def base(r: protocol.Trajectory) -> dict:
        q, v = r.item.question, r.verdict
        return {"question_id": q.id, "source": q.source, "index": q.index, "question": q.to_dict(), "gold": q.answer,
                "trial1": {**_turn(r.trial1), "extracted": v.extracted, "outcome": v.outcome, **_feedback(v)}}

    # every retry of the chunk scored at once: code items' programs run in parallel
    retries = [(r, att) for r in runs for att in r.attempts]
    retry_verdicts = dict(zip((id(att) for _, att in retries),
                              score_many((att.retry, r.item.question.answer, r.item.question.spec) for r, att in retries)))
    records = []
    for r in runs:
        if r.verdict.outcome == CORRECT:
            records.append({"record_id": f"{r.item.question.id}#t1", **base(r), "reflection": None, "retry": None,
                            **common, "created_at": now})
        for att in r.attempts:
            q = r.item.question
            reflection_turn, retry_turn = att.turns
            v2 = retry_verdicts[id(att)]
            ins = att.instruction
            records.append({
                "record_id": f"{q.id}#{ins.id}#{att.sample}", **base(r),
                "reflection": {**_turn(reflection_turn), "instruction_id": ins.id, "pool": ins.pool,
                               "pool_version": ins.pool_version, "sample": att.sample},
                "retry": {**_turn(retry_turn), "extracted": v2.extracted, "outcome": v2.outcome, **_feedback(v2)},
                **common, "created_at": now,
            })
    records.sort(key=lambda rec: rec["record_id"])
    if progress is not None:
        progress.update_counts(questions=len(questions), wrong=sum(not r.verdict.correct for r in runs),
                               reflections=sum(len(r.attempts) for r in runs),
                               fixed=sum(rec["retry"] is not None and rec["retry"]["outcome"] == CORRECT for rec in records))
    return records


def _feedback(verdict) -> dict:
    """What the environment said of an attempt beyond its verdict (code: the first failing test), for
    the records of items that have it; other records keep the fields they always had."""
    return {} if verdict.feedback is None else {"feedback": verdict.feedback}


class Progress:
    """tqdm bar over questions with live counts (and ETA from tqdm), and the pass a chunk is in:
    on a CPU one chunk can take many minutes, and the bar only moves when a chunk ends."""

    def __init__(self, total: int, initial: int, disable: bool = False):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="q", desc="generate", disable=disable, file=sys.stderr)
        self.counts = {"wrong@t1": 0, "reflections": 0, "fixed": 0}

    def stage(self, text: str) -> None:
        self.bar.set_postfix({**self.counts, "now": text})

    def update_counts(self, questions: int, wrong: int, reflections: int, fixed: int) -> None:
        self.counts["wrong@t1"] += wrong
        self.counts["reflections"] += reflections
        self.counts["fixed"] += fixed
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update(questions)

    def close(self) -> None:
        self.bar.close()


def run(cfg: GenConfig, engines: Engines | None = None, show_progress: bool = True) -> dict:
    """Generate records into cfg.output, resuming where an earlier run stopped. Returns a summary."""
    cfg.check()
    select_instructions(cfg, "check")  # unknown pool or ids fail before any model is loaded
    # the source is read (and its spec checked) before anything is written to the output folder
    questions, rejected, origin = _plan(cfg)
    if not questions:
        raise UserError(f"{cfg.source}: no questions for shard {cfg.shard}")
    # how the source's data and (for code) the sandbox are recorded in every record; BBH records
    # keep the fields they always had
    # (a local file by a path relative to the working folder: records are committed and published)
    extra = {"data": portable_paths(origin)} if origin else {}
    with code_scoring.allowing_unisolated(cfg.allow_unisolated_code):
        if any(q.kind == CODE for q in questions):  # refused here, before any model loads, if code cannot run
            extra["code_sandbox"] = code_scoring.check_sandbox(f"gen run --source {cfg.source}")
        folder = Path(cfg.output)
        with FolderLock(folder, "wait for that run to finish or use another --output"):
            claim_folder(folder / "run_config.json", {"identity": cfg.identity(), "config_hash": cfg.identity_hash()},
                         "a run", "use another --output")
            for msg in rejected:
                print(f"rejected: {msg}", file=sys.stderr)
            return _generate(cfg, folder, questions, rejected, engines, show_progress, extra)


def _generate(cfg: GenConfig, folder: Path, questions: list[Question], rejected: list[str], engines: Engines | None,
              show_progress: bool, extra_provenance: dict | None = None) -> dict:
    store = RecordStore(folder)
    store.clean_temporaries()  # ours from a killed run: the lock keeps any other writer out
    all_chunks = chunks(questions, cfg.chunk_size)
    done = store.done_chunks()
    if done:
        store.read()  # finished chunks of other settings, damaged or with lost lines fail before any generation
    todo = [c for c in range(len(all_chunks)) if c not in done]
    trial1 = None
    if cfg.trial1_from and todo:
        if Path(cfg.trial1_from).resolve() == folder.resolve():
            raise UserError(f"--trial1_from {cfg.trial1_from}: the output folder itself; name the earlier run's folder")
        trial1 = Trial1Source.load(cfg.trial1_from, cfg.identity())
        for c in todo:  # every question checked before any model loads
            trial1.replies(all_chunks[c])
        extra_provenance = {**(extra_provenance or {}), "trial1_from": portable_paths(trial1.describe())}
    if todo and engines is None:
        engines = build_engines(cfg)
    provenance = {}
    if engines is not None:
        # records are committed and published: an adapter folder is named relative to the working folder
        provenance = {"models": portable_paths({"generator": engines.generator.describe(),
                                                "reflector": engines.reflector.describe()}),
                      "sampling": {k: v.to_dict() for k, v in samplings(cfg).items()},
                      "versions": package_versions(), **(extra_provenance or {})}
    progress = Progress(len(questions), sum(len(all_chunks[c]) for c in done), disable=not show_progress)
    try:
        for c in todo:
            store.write_chunk(c, process_chunk(c, all_chunks[c], engines, cfg, provenance, progress, trial1))
    finally:
        progress.close()
    write_atomic(folder / "rejected.txt", rejected) if rejected else None
    records = store.read()
    summary = {"questions": len(questions), "chunks": len(all_chunks), "resumed_chunks": len(done),
               "records": len(records), "rejected_rows": len(rejected),
               "wrong_at_t1": len({r["question_id"] for r in records if r["trial1"]["outcome"] != CORRECT}),
               "reflections": sum(r["reflection"] is not None for r in records),
               "fixed_by_retry": sum(r["retry"] is not None and r["retry"]["outcome"] == CORRECT for r in records)}
    write_atomic(folder / "summary.json", [json.dumps(summary, indent=1)])
    return summary
