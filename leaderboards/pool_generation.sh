#!/usr/bin/env bash
# Issue #32, item 2: reflection data at scale from BBH's generation pool (never its test split), the
# training data of the test-split leaderboard. The exact command, resumable across sessions:
#
#   REFLECTEVO_BBH_DIR=$PWD/../shared/data/bbh nohup setsid nice -n 19 leaderboards/pool_generation.sh > runs/test-split-pool-gen.log 2>&1 &
#
# Stop it by ending its process group (`kill -- -PGID`, PGID from `ps -o pgid= -p PID`), then vLLM's
# engine: it leaves that group and outlives a killed parent (`pkill -f VLLM::EngineCore`).
# Never edit this file while it runs: bash reads a script as it goes.
#
# Why committed chunk by chunk: the whole pool is many hours of generation on a 2-core CPU, a session
# ends its background jobs, and a fresh checkout must resume where the last one stopped. `gen run`
# writes each finished chunk of $CHUNK questions atomically to $OUT/parts; this script copies every
# finished chunk, gzipped (deterministically: -n), to $STORE, which the session commits. On start, the
# committed chunks are unpacked into $OUT first, so `gen run` skips them (it resumes by chunk). The
# chunks hold everything (prompts, raw replies, verdicts), so a scorer change re-scores them without a
# rerun, and curation reads them as they are.
#
# Settings, and why:
# - engine vLLM (the `.venv-vllm` environment, scripts/setup-env.sh --vllm): about 5x the hf pipeline's
#   reflections per minute on this CPU (benchmarks/RESULTS.md); hf if that environment is missing.
# - 2 sampled instructions x 2 reflections each = 4 reflections per failed question (issue: >= 4).
# - the test-split leaderboard's token caps (leaderboards/test_split.sh): trial 1 and retry 384, the
#   reflection 128, chosen by the cap study (leaderboards/measured/cap-study/report.md, docs/results.md
#   "Token caps per turn"): trial-1 accuracy stops rising at 384; fixes do not rise with longer retries
#   or reflections, and a reflection past 128 tokens is most often a loop. The data a reflector is
#   trained on is then written under the caps it is evaluated with.
# - 9 of BBH's 27 subtasks: those where a reflection fixed at least one answer in any earlier
#   measurement (the BIG-bench-pool leaderboard's oracle row on 540 test items, this script's first
#   run on 112 pool questions, the cap study's 270): boolean_expressions, disambiguation_qa,
#   hyperbaton, logical_deduction_three_objects, movie_recommendation, ruin_names, snarks,
#   sports_understanding, tracking_shuffled_objects_three_objects. At this model's fix rate (about 1
#   in 100 clean reflections) the whole pool cannot give issue #32's 250 D+ rows
#   (leaderboards/measured/pool-gen/yield.md), so the generation goes where fixes were seen; four of
#   the nine are two-answer subtasks, counted apart by curation. 1,870 pool questions, interleaved
#   across the subtasks, so the early chunks already measure each one's yield.
# - seed 0, float32 (the figures of this project are float32 whatever the CPU), greedy trials and
#   retries, sampled reflections (temperature 0.8, seeded per chunk: a resumed run samples what an
#   uninterrupted one would).
#
# A second self-evolution round (leaderboards/test_split.sh) runs this script with REFLECTOR_PEFT=ADAPTER
# (round 1's best reflector writes the reflections, served merged into the weights) and
# TRIAL1_FROM=ROUND-1-RUN (trial 1 read back from round 1's records, `gen run --trial1_from`: the same
# greedy generator, so the same replies, without the fifth of the compute trial 1 costs), into its own
# OUT and STORE.
# GEN_LIMIT=N keeps the first N pool questions (a trial run, into another OUT and STORE).
#
# The first run (leaderboards/measured/pool-gen: 7 chunks, 112 questions) had 256-token caps on every
# turn and 21 subtasks; its yield table is what chose the nine. It resumes with
#   STORE=leaderboards/measured/pool-gen OUT=runs/pool-gen TRIAL_TOKENS=256 REFLECTION_TOKENS=256 \
#   SUBTASKS=boolean_expressions,causal_judgement,date_understanding,disambiguation_qa,formal_fallacies,geometric_shapes,hyperbaton,logical_deduction_five_objects,logical_deduction_seven_objects,logical_deduction_three_objects,movie_recommendation,navigate,reasoning_about_colored_objects,ruin_names,salient_translation_error_detection,snarks,sports_understanding,temporal_sequences,tracking_shuffled_objects_five_objects,tracking_shuffled_objects_three_objects,web_of_lies
set -euo pipefail
source "$(dirname "$0")/chunk_mirror.sh"
# `nice` alone does not yield the CPU here: with autogroup scheduling (Linux's default for desktops and
# many VMs) each session started by setsid is its own group, and groups share the CPU equally whatever
# their nice values. Measured: a niced vLLM job took ~70% of the 2 cores beside a pytest run until its
# group was niced as well. Lowering our own group is allowed without privileges.
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi

PY=${PY:-.venv/bin}
OUT=${OUT:-runs/test-split-pool-gen}
STORE=${STORE:-leaderboards/test-split/pool-gen}
CHUNK=${CHUNK:-16}
TRIAL_TOKENS=${TRIAL_TOKENS:-384}
REFLECTION_TOKENS=${REFLECTION_TOKENS:-128}
SUBTASKS=${SUBTASKS:-boolean_expressions,disambiguation_qa,hyperbaton,logical_deduction_three_objects,movie_recommendation,ruin_names,snarks,sports_understanding,tracking_shuffled_objects_three_objects}
export HF_HUB_OFFLINE=1
# vLLM ends its engine when one model step takes longer than this (300 s by default). At nice 19 on a
# busy 2-core machine, or while the job is paused (SIGSTOP) for a benchmark, a step can wait longer
# than that: the first run of this script died that way, 40 minutes into its first chunk.
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=${VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS:-604800}
ATTEMPTS=${ATTEMPTS:-3}  # gen run restarted after a crash (it resumes after the last finished chunk)
ROUND_ARGS=()
if [ -n "${REFLECTOR_PEFT:-}" ]; then ROUND_ARGS+=(--reflector_peft "$REFLECTOR_PEFT" --reflector_merge_adapter true); fi
if [ -n "${TRIAL1_FROM:-}" ]; then ROUND_ARGS+=(--trial1_from "$TRIAL1_FROM"); fi
if [ -n "${GEN_LIMIT:-}" ]; then ROUND_ARGS+=(--limit "$GEN_LIMIT"); fi

if [ -z "${ENGINE:-}" ]; then
    if [ -x .venv-vllm/bin/reflectevo ]; then ENGINE=vllm; else ENGINE=hf; fi
fi
if [ "$ENGINE" = vllm ]; then
    GEN_PY=${GEN_PY:-.venv-vllm/bin}
    ENGINE_ARGS=(--engine vllm --model_args enforce_eager=True --batch_size 128)
else
    GEN_PY=${GEN_PY:-$PY}
    ENGINE_ARGS=(--engine hf --batch_size 32)
fi
if [ -f "$STORE/run_config.json" ] && ! grep -q "\"engine\": \"$ENGINE\"" "$STORE/run_config.json"; then
    echo "[pool-gen] $STORE was begun on another engine; ENGINE=$ENGINE would not resume it" >&2
    exit 2
fi

# committed chunks first: gen run resumes after them
unpack_chunks "$STORE" "$OUT"

echo "[pool-gen] engine $ENGINE; $(ls "$STORE"/parts | wc -l) chunks committed so far ($(date -u +%FT%TZ))"
rc=1
for attempt in $(seq 1 "$ATTEMPTS"); do
    "$GEN_PY/reflectevo" gen run --source "bbh-pool:$SUBTASKS" --output "$OUT" "${ENGINE_ARGS[@]}" --dtype float32 \
        --instruction_ids sample:2 --reflections_per_instruction 2 \
        --trial_max_new_tokens "$TRIAL_TOKENS" --reflection_max_new_tokens "$REFLECTION_TOKENS" \
        --chunk_size "$CHUNK" --seed 0 ${ROUND_ARGS[@]+"${ROUND_ARGS[@]}"} &
    GEN=$!
    while kill -0 "$GEN" 2> /dev/null; do
        pack_chunks "$OUT" "$STORE"
        sleep 30
    done
    wait "$GEN" && rc=0 || rc=$?
    pack_chunks "$OUT" "$STORE"
    [ "$rc" = 0 ] && break
    echo "[pool-gen] gen run ended with rc=$rc (attempt $attempt of $ATTEMPTS; $(date -u +%FT%TZ))"
done
echo "[pool-gen] gen run ended with rc=$rc; $(ls "$STORE"/parts | wc -l) chunks committed ($(date -u +%FT%TZ))"
exit "$rc"
