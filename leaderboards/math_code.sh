#!/usr/bin/env bash
# Issue #31, item 4: MATH and MBPP shown working with the embedded model. The exact commands,
# resumable across sessions:
#
#   REFLECTEVO_DATA_DIR=$PWD/../shared/data nohup setsid nice -n 19 leaderboards/math_code.sh > runs/math_code.log 2>&1 &
#
# Stop it by ending its process group (`kill -- -PGID`, PGID from `ps -o pgid= -p PID`), then vLLM's
# engine: it leaves that group and outlives a killed parent (`pkill -f VLLM::EngineCore`).
# Never edit this file while it runs: bash reads a script as it goes (replace it whole: `mv`).
#
# What it makes, per source (mbpp, then math):
# - rows single, retry_only and oracle of the `reflectevo` lm-eval model on the source's first items
#   (lm-eval's --limit, file order): MBPP's first $LIMIT tasks (task ids 11-110 at 100), MATH's first
#   ceil($LIMIT / 7) problems of each of its 7 subjects (15 each, 105 problems at 100). retry_only and
#   oracle take trial 1 from the single row (trial1_from): the same greedy replies, one pass less, so
#   the two differ by their second attempt alone. Each row's results file goes to $STORE/<source>-<mode>.json
#   and leaderboards/math.md, leaderboards/mbpp.md (strict headline level, Wilson intervals, budgets,
#   no-answer rates, oracle against retry_only item by item) are rebuilt from the rows finished so far.
# - a generation run (`gen run`, the project's oracle pipeline: 2 sampled instructions x 2 reflections
#   per failed item) on $LIMIT items of the source that the rows above do NOT measure (the first ones in
#   file order after them; their ids in $STORE/gen-<source>.ids), so that the leaderboard's items and the
#   reflection data are disjoint, then `gen curate`: its statistics (stats.md, stats.json) and curated sets
#   go to $STORE/curated-<source>/.
#
# Committed chunk by chunk: a session ends its background jobs, and a fresh checkout must resume where
# the last one stopped. The rows keep every finished chunk of $CHUNK docs in $STORE/resume/<row>
# (resume=), inside the committed tree, as leaderboards/measured.sh does; `gen run` writes each finished
# chunk of $CHUNK questions to $OUT, and this script copies each one, gzipped (-n: deterministic), to
# $STORE/gen-<source>/parts, and unpacks the committed ones into $OUT on start (gen run resumes by
# chunk). Commit $STORE and leaderboards/math.* and mbpp.* as rows and chunks finish.
#
# Settings, and why:
# - engine vLLM where its environment exists (`scripts/setup-env.sh --vllm`; about 5x the hf pipeline's
#   throughput on this CPU, benchmarks/RESULTS.md), else hf; ENGINE=hf|vllm asks for one. One engine per
#   run of this script's outputs: a store begun on the other is refused, not mixed.
# - $TOKENS (256) new tokens for every turn (trial 1, reflection, retry): the project's default cap of
#   trials and retries; a MATH solution or an MBPP program cut shorter is mostly cut off.
# - greedy trials and retries, greedy reflections in the rows (the lm-eval model's default), sampled
#   reflections in generation (temperature 0.8, seeded per chunk); float32 (no native bf16 on this CPU).
# - MBPP answers run in the code sandbox; where no isolated one can be built the script stops with the
#   sandbox's error (ALLOW_UNISOLATED=1 passes --allow_unisolated_code / allow_unisolated_code=true, which
#   every record and results file then records).
# At this model's size most answers are wrong before and after the retry: the tables show the machinery
# working, with intervals that say how little a few fixes mean.
set -euo pipefail
source "$(dirname "$0")/chunk_mirror.sh"
# nice our whole autogroup, or a setsid job still takes half the CPU (leaderboards/pool_generation.sh says why)
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi

PY=${PY:-.venv/bin}
OUT=${OUT:-runs/math-code}
STORE=${STORE:-leaderboards/measured-math-code}  # committed
TABLES=${TABLES:-leaderboards}                   # math.md / mbpp.md (and .json, _comparisons.json, PNGs)
LIMIT=${LIMIT:-100}
CHUNK=${CHUNK:-16}
TOKENS=${TOKENS:-256}
SOURCES=${SOURCES:-mbpp math}
MODEL=smollm2-135m-instruct
export HF_HUB_OFFLINE=1
# vLLM ends its engine when one model step takes longer than this (300 s by default); at nice 19 on a
# busy 2-core machine a step can wait longer (leaderboards/pool_generation.sh)
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=${VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS:-604800}
if [ -z "${REFLECTEVO_DATA_DIR:-}" ] && { [ -z "${REFLECTEVO_MATH_DIR:-}" ] || [ -z "${REFLECTEVO_MBPP_DIR:-}" ]; }; then
    echo "[math-code] set REFLECTEVO_DATA_DIR (a folder holding math/ and mbpp/, e.g. \$PWD/../shared/data)" >&2
    exit 2
fi

if [ -z "${ENGINE:-}" ]; then
    if [ -f "$STORE/ENGINE" ]; then ENGINE=$(cat "$STORE/ENGINE");
    elif [ -x .venv-vllm/bin/lm_eval ]; then ENGINE=vllm; else ENGINE=hf; fi
fi
case "$ENGINE" in hf | vllm) ;; *) echo "[math-code] ENGINE must be hf or vllm, not '$ENGINE'" >&2; exit 2 ;; esac
if [ -f "$STORE/ENGINE" ] && [ "$(cat "$STORE/ENGINE")" != "$ENGINE" ]; then
    echo "[math-code] $STORE was begun on $(cat "$STORE/ENGINE"); ENGINE=$ENGINE would not resume it:" \
         "give it another STORE and OUT" >&2
    exit 2
fi
mkdir -p "$STORE/resume" "$OUT/eval" && echo "$ENGINE" > "$STORE/ENGINE"
if [ "$ENGINE" = vllm ]; then
    RUN_PY=${RUN_PY:-.venv-vllm/bin}
    EVAL_ENGINE="base=vllm,enforce_eager=True"  # on CPU: no graph compilation at each engine start
    GEN_ENGINE=(--engine vllm --model_args enforce_eager=True --batch_size 128)
else
    RUN_PY=${RUN_PY:-$PY}
    EVAL_ENGINE="base=hf"
    GEN_ENGINE=(--engine hf --batch_size 32)
fi
UNISOLATED_ARG="" UNISOLATED_FLAG=()
if [ "${ALLOW_UNISOLATED:-0}" = 1 ]; then UNISOLATED_ARG=",allow_unisolated_code=true" UNISOLATED_FLAG=(--allow_unisolated_code); fi
echo "[math-code] engine $ENGINE, $LIMIT items per source, sources: $SOURCES ($(date -u +%FT%TZ))"

per_task() {  # the --limit of a source's rows: MBPP has one task, MATH one per subject
    if [ "$1" = math ]; then echo $(( (LIMIT + 6) / 7 )); else echo "$LIMIT"; fi
}

# ------------------------------------------------------------------ rows

retire_stale_resume() {  # a resume folder whose docs were gated by another strict scorer is set aside, not reused
    local folder=$1
    [ -f "$folder/settings.json" ] || return 0
    "$PY/python" - "$folder/settings.json" <<'PY' && return 0
import json, sys
from reflectevo_tasks.answers import GATE_VERSION
settings = json.load(open(sys.argv[1]))
single = settings.get("protocol", {}).get("mode") == "single"
sys.exit(0 if single or settings.get("scoring_version") == GATE_VERSION else 1)
PY
    echo "[math-code] $folder: gated by another scorer version; moved to $folder.old-scorer"
    rm -rf "$folder.old-scorer" && mv "$folder" "$folder.old-scorer"
}

latest_results() { ls "$OUT/eval/$1"/*/results_*.json 2> /dev/null | tail -n 1 || true; }

publish_rows() {  # leaderboards/math.md and mbpp.md from every row finished so far, in a fixed order
    local files=() source mode
    for source in mbpp math; do
        for mode in single retry_only oracle; do
            [ -f "$STORE/$source-$mode.json" ] && files+=("$STORE/$source-$mode.json")
        done
    done
    [ ${#files[@]} -gt 0 ] || return 0
    "$PY/reflectevo" leaderboard build "${files[@]}" --output "$TABLES" \
        || echo "[math-code] tables not rebuilt (see the error above)"
}

evaluate() {  # evaluate SOURCE MODE MODEL_ARGS: one row, skipped once its results file is in $STORE
    local source=$1 mode=$2 args=$3 name="$1-$2"
    if [ -f "$STORE/$name.json" ]; then
        echo "[math-code] $name: finished ($STORE/$name.json)"
        return
    fi
    if [ -z "$(latest_results "$name")" ]; then
        rm -rf "$OUT/eval/$name"
        retire_stale_resume "$STORE/resume/$name"
        echo "[math-code] $name: lm_eval --model_args $args ($(date -u +%FT%TZ))"
        "$RUN_PY/lm_eval" --model reflectevo \
            --model_args "$EVAL_ENGINE,pretrained=$MODEL,dtype=float32,max_gen_toks=$TOKENS,reflection_max_gen_toks=$TOKENS,chunk_size=$CHUNK,resume=$STORE/resume/$name,mode=$mode$UNISOLATED_ARG$args" \
            --tasks "reflectevo_$source" --limit "$(per_task "$source")" --batch_size 32 --device cpu \
            --output_path "$OUT/eval/$name" --log_samples
    fi
    # committed without the absolute paths of this machine (they become relative to the repo)
    "$PY/python" -m reflectevo.portable "$(latest_results "$name")" "$STORE/$name.json"
    publish_rows
}

# ------------------------------------------------------------------ generation

gen_ids() {  # gen_ids SOURCE FILE: the first $LIMIT items of SOURCE that its rows do not measure
    "$PY/python" - "$1" "$LIMIT" "$(per_task "$1")" "$2" <<'PY'
import sys
from collections import Counter
from reflectevo_tasks import math_mbpp

source, limit, per_task, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
questions, origin = math_mbpp.load(source)
taken = Counter()
measured = set()
for q in questions:  # lm-eval's --limit N: the first N docs of each task (MATH: of each subject), in file order
    task = q.source if source == "math" else "mbpp"
    if taken[task] < per_task:
        measured.add(q.id)
        taken[task] += 1
chosen = [q.id for q in questions if q.id not in measured][:limit]
with open(path, "w") as f:
    f.write(f"# the first {limit} {source} items ({origin.revision}) that the rows' --limit {per_task} does not measure\n")
    f.write("\n".join(chosen) + "\n")
PY
}

generate() {  # generate SOURCE: gen run on items the rows do not measure, then its curation statistics
    local source=$1 run="$OUT/gen-$1" store="$STORE/gen-$1" curated="$STORE/curated-$1" gen rc
    if [ -f "$curated/stats.md" ]; then
        echo "[math-code] gen $source: curated ($curated/stats.md)"
        return
    fi
    [ -f "$STORE/gen-$source.ids" ] || gen_ids "$source" "$STORE/gen-$source.ids"
    unpack_chunks "$store" "$run"  # committed chunks first: gen run resumes after them
    echo "[math-code] gen $source: gen run on $STORE/gen-$source.ids ($(date -u +%FT%TZ))"
    "$RUN_PY/reflectevo" gen run --source "$source" --question_ids "@$STORE/gen-$source.ids" --output "$run" \
        "${GEN_ENGINE[@]}" --dtype float32 --instruction_ids sample:2 --reflections_per_instruction 2 \
        --trial_max_new_tokens "$TOKENS" --reflection_max_new_tokens "$TOKENS" --chunk_size "$CHUNK" --seed 0 \
        "${UNISOLATED_FLAG[@]}" &
    gen=$!
    while kill -0 "$gen" 2> /dev/null; do
        pack_chunks "$run" "$store"
        sleep 30
    done
    wait "$gen" && rc=0 || rc=$?
    pack_chunks "$run" "$store"
    [ "$rc" = 0 ] || { echo "[math-code] gen $source: gen run ended with rc=$rc" >&2; return "$rc"; }
    rm -rf "$OUT/curated-$source"
    "$RUN_PY/reflectevo" gen curate --input "$run" --output "$OUT/curated-$source" "${UNISOLATED_FLAG[@]}"
    # the sets and their statistics; raw.jsonl holds the records, committed already as $store/parts
    rm -rf "$curated.partial" && mkdir -p "$curated.partial"
    cp "$OUT/curated-$source"/{stats.md,stats.json,d_plus.jsonl,d_pm.jsonl,d_pref.jsonl,sft_qa.jsonl} "$curated.partial/"
    rm -rf "$curated" && mv "$curated.partial" "$curated"
}

for source in $SOURCES; do
    case "$source" in mbpp | math) ;; *) echo "[math-code] SOURCES: mbpp and/or math, not '$source'" >&2; exit 2 ;; esac
    evaluate "$source" single ""
    SHARED=",trial1_from=$STORE/resume/$source-single"
    evaluate "$source" retry_only "$SHARED"
    evaluate "$source" oracle "$SHARED"
done
for source in $SOURCES; do
    generate "$source"
done
echo "[math-code] done ($(date -u +%FT%TZ))"
