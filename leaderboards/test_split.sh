#!/usr/bin/env bash
# Issue #32: the measured leaderboard on BBH's test split (leaderboards/test-split/bbh.md), trained on
# reflections generated from BBH's pool. The exact command, resumable across sessions:
#
#   REFLECTEVO_BBH_DIR=$PWD/../shared/data/bbh nohup setsid leaderboards/test_split.sh > runs/test-split.log 2>&1 &
#
# Stop it by ending its process group (`kill -- -PGID`), then vLLM's engine, which outlives a killed
# lm_eval (`pkill -f VLLM::EngineCore`). Never edit this file while it runs: bash reads a script as it goes.
#
# The successor of leaderboards/measured.sh (whose rows, trained on the BIG-bench pool and evaluated on
# the first 20 items of each subtask with 128-token caps, stay in leaderboards/measured and
# leaderboards/bbh.md). What changed, and why:
# - items: BBH's whole test split (reflectevo_bbh_test: the first 34 items of each of the 27 subtasks,
#   918 items; reflectevo_tasks/bbh_split.py), which no generation source ever draws from;
# - caps chosen by the cap study (leaderboards/measured/cap-study/report.md, docs/results.md "Token caps
#   per turn"), the same for every row: trial 1 and the retry 384 new tokens with the task's stop
#   sequences, the reflection 128 with none; a one-stage reply 128 + 384 = 512 with none;
# - a retry_only row whose retry gets 512 tokens, the second-attempt budget of the reflective rows
#   (trial 1 unchanged), so that a gain over retry_only cannot be the extra tokens (the leaderboard
#   compares every reflective row with it as well);
# - training data from leaderboards/pool_generation.sh (BBH pool, 9 subtasks that yield fixes, the same
#   caps), curated with the current scorer and leak filter;
# - training with at least 30 optimizer steps after warmup and a tenth of the training questions held
#   out for validation loss (`reflectevo train --min_steps_after_warmup 30 --validation_fraction 0.1`);
#   each run's train/validation loss curves are copied to leaderboards/test-split/loss-curves/.
#
# Rows, in the issue's order, each committed as it finishes so that a partial table is honest:
#   base-single, base-retry_only, base-oracle, base-one_stage (the base model asked the one-stage way),
#   base-retry_only-512 (the budget-matched control), one_stage and two_stage trained; then
#   base-intrinsic, dpo_pm, dpo_pref, sft_qa and sft_qa's own retry_only row.
# Every row of the base model takes trial 1 from base-single (trial1_from=): the same greedy replies,
# one pass less, so their differences come from the second attempt alone. Rows resume chunk by chunk
# from their committed resume folders (leaderboards/rows.sh).
set -euo pipefail
# nice our whole autogroup, or a setsid job still takes half the CPU (leaderboards/pool_generation.sh says why)
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi
renice -n 19 -p $$ > /dev/null 2>&1 || true

PY=${PY:-.venv/bin}
OUT=${OUT:-runs/test-split}
CHUNK=${CHUNK:-64}
MODEL=smollm2-135m-instruct
TRIAL_TOKENS=384       # trial 1 and the retry
REFLECTION_TOKENS=128
MATCHED=$((REFLECTION_TOKENS + TRIAL_TOKENS))  # a reflective row's second-attempt budget
export HF_HUB_OFFLINE=1
# a model step may wait longer than vLLM's 300 s at nice 19 on a busy machine (pool_generation.sh)
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=${VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS:-604800}
mkdir -p "$OUT/eval"

TAG=test-split
BOARD=${BOARD:-leaderboards/test-split}  # another BOARD (and LIMIT=N items per subtask): a trial run elsewhere
RESULTS=$BOARD/rows                  # committed: one lm-eval results file per finished row
RESUME=${RESUME:-$BOARD/resume}      # committed: every row's finished chunks
MODEL_ARGS_COMMON="dtype=float32,max_gen_toks=$TRIAL_TOKENS,reflection_max_gen_toks=$REFLECTION_TOKENS,chunk_size=$CHUNK"
TASK_ARGS="--tasks reflectevo_bbh_test${LIMIT:+ --limit $LIMIT}"
ORDER=(base-single base-retry_only base-oracle base-one_stage base-retry_only-$MATCHED one_stage two_stage
       base-intrinsic dpo_pm dpo_pref sft_qa sft_qa-retry_only)
source "$(dirname "$0")/rows.sh"  # choose_engine, evaluate (one row)
choose_engine

SHARED="trial1_from=$RESUME/base-single"
evaluate base-single "mode=single"
evaluate base-retry_only "mode=retry_only,$SHARED"
evaluate base-oracle "mode=oracle,$SHARED"
evaluate base-one_stage "mode=oracle,one_stage=true,$SHARED"
evaluate "base-retry_only-$MATCHED" "mode=retry_only,retry_max_gen_toks=$MATCHED,$SHARED"

# Training data: the pool generation runs to its end (it resumes after its committed chunks), then is
# curated. The curated sets are committed with their statistics; a fresh checkout trains from them.
DATA=$BOARD/training-data
GEN_OUT=${GEN_OUT:-runs/test-split-pool-gen}
if [ ! -f "$DATA/stats.md" ]; then
    OUT="$GEN_OUT" leaderboards/pool_generation.sh
    rm -rf "$OUT/curated"
    "$PY/reflectevo" gen curate --input "$GEN_OUT" --output "$OUT/curated"
    rm -rf "$DATA.partial" && cp -r "$OUT/curated" "$DATA.partial" && mv "$DATA.partial" "$DATA"
fi

# Published to a loopback Hub server (hub-protocol: the project's Hub stand-in) with a tag; what the
# push answered (repo, tag, commit) is committed beside the sets. The server's token lives only in this
# process's environment.
HUB_REPO=${HUB_REPO:-local/reflectevo-bbh-pool}
HUB_TAG=${HUB_TAG:-test-split-v1}
HUB_PORT=${HUB_PORT:-8767}
publish_data() {
    local record=$BOARD/training-data-hub.txt token server rc=0
    [ -f "$record" ] && return 0
    token=$("$PY/python" -c 'import secrets; print(secrets.token_hex(16))')
    "$PY/reflectevo" hub serve --data "$OUT/hub" --port "$HUB_PORT" --token "$token" --quiet &
    server=$!
    for _ in $(seq 1 60); do
        "$PY/python" - "http://127.0.0.1:$HUB_PORT/api/whoami-v2" 2> /dev/null <<'PY' && break
import sys, urllib.error, urllib.request
try:  # any HTTP answer (401 without a token) means the server is up
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
        sleep 1
    done
    HF_TOKEN=$token HF_HUB_OFFLINE=0 "$PY/reflectevo" gen push --input "$DATA" --push_to_repo "$HUB_REPO" \
        --push_tag "$HUB_TAG" --hub_endpoint "http://127.0.0.1:$HUB_PORT" > "$record.partial" || rc=$?
    kill "$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
    if [ "$rc" = 0 ]; then mv "$record.partial" "$record"; else echo "[$TAG] training data not published (rc=$rc)"; fi
}
publish_data

# every setting gets 30 optimizer steps after warmup whatever its set's size (epochs raised to fit, both
# recorded), a tenth of its questions held out for validation loss, and its loss curves kept (training
# loss logged at every step: the recipes log every 5th, which draws a 30-step curve with 6 points)
TRAIN_ARGS=${TRAIN_ARGS---min_steps_after_warmup 30 --validation_fraction 0.1 --logging_steps 1}
# Examples per optimizer step by the size of the set a setting trains on (its recipe per dataset size).
# The recipes' 2 x 8 = 16 per step suit sets of thousands of rows. On a set of about a hundred they
# give 6 steps an epoch, so the 30-step floor would take 5 epochs or more of 16-example steps: in the
# trial run of this script a DPO step of 16 pairs took 14 minutes on this CPU (beside the pool
# generation). Smaller steps reach the floor in fewer epochs and a fraction of the compute:
#   under 200 rows 2 x 2 = 4 per step; under 800 rows 2 x 4 = 8; from 800 rows the recipe's 16.
# The accumulation used is in each adapter's provenance (its command line and recipe).
declare -A CONFIG_OF=([one_stage]=d_plus [two_stage]=d_plus [dpo_pm]=d_pm [dpo_pref]=d_pref [sft_qa]=sft_qa)
accumulation_for() {  # accumulation_for SETTING: --gradient_accumulation_steps N, or nothing (the recipe's)
    local file=$DATA/${CONFIG_OF[$1]}.jsonl rows=0
    [ -f "$file" ] && rows=$(wc -l < "$file")  # no file: `reflectevo train` fails on it with one line
    if [ "$rows" -lt 200 ]; then echo "--gradient_accumulation_steps 2"
    elif [ "$rows" -lt 800 ]; then echo "--gradient_accumulation_steps 4"; fi
}
CURVES=$BOARD/loss-curves
# Adapters are served merged into the weights (merge_adapter=true, recorded in each row): vLLM's CPU
# build runs LoRA about 4x slower per doc (benchmarks/RESULTS.md); docs/results.md compares the two.
MERGED="merge_adapter=true"
declare -A EVAL_ARGS=(
    [one_stage]="mode=oracle,$SHARED,reflector_peft=$OUT/train/one_stage,one_stage=true,$MERGED"
    [two_stage]="mode=oracle,$SHARED,reflector_peft=$OUT/train/two_stage,$MERGED"
    [dpo_pm]="mode=oracle,$SHARED,reflector_peft=$OUT/train/dpo_pm,$MERGED"
    [dpo_pref]="mode=oracle,$SHARED,reflector_peft=$OUT/train/dpo_pref,$MERGED"
    [sft_qa]="mode=oracle,peft=$OUT/train/sft_qa,$MERGED"   # the answering model itself
)
train() {  # train SETTING: an adapter in $OUT/train/SETTING (kept while its provenance is there)
    local setting=$1
    if [ ! -f "$OUT/train/$setting/provenance.json" ]; then
        rm -rf "$OUT/train/$setting"
        # shellcheck disable=SC2086  # TRAIN_ARGS and the accumulation are lists of options
        "$PY/reflectevo" train "$setting" --dataset "$DATA" --output_dir "$OUT/train/$setting" \
            $(accumulation_for "$setting") $TRAIN_ARGS \
            || { echo "[$TAG] $setting: not trained (see the error above)"; return 1; }
    fi
    mkdir -p "$CURVES"
    cp "$OUT/train/$setting/loss_curves.png" "$CURVES/$setting.png.copying" && mv "$CURVES/$setting.png.copying" "$CURVES/$setting.png"
}
trained_row() {  # trained_row SETTING: train (unless its row is done) and evaluate
    local setting=$1
    if [ -f "$RESULTS/$setting.json" ]; then
        echo "[$TAG] $setting: finished ($RESULTS/$setting.json)"
        return
    fi
    train "$setting" || return 0  # a setting whose curated set is empty fails with one line; the others go on
    evaluate "$setting" "${EVAL_ARGS[$setting]}"
}

trained_row one_stage
trained_row two_stage
evaluate base-intrinsic "mode=intrinsic,$SHARED"
trained_row dpo_pm
trained_row dpo_pref
trained_row sft_qa
# sft_qa answers with its own adapter, so its trial 1 is its own: its retry_only row is its control
if [ -f "$RESULTS/sft_qa.json" ]; then
    [ -f "$RESULTS/sft_qa-retry_only.json" ] || train sft_qa
    evaluate sft_qa-retry_only "mode=retry_only,peft=$OUT/train/sft_qa,$MERGED,trial1_from=$RESUME/sft_qa"
fi
echo "[$TAG] done ($(date -u +%FT%TZ))"
