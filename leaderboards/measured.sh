#!/usr/bin/env bash
# The measured leaderboard for the embedded model (leaderboards/bbh.md): the exact commands.
#
#   REFLECTEVO_BBH_DIR=$PWD/../shared/data/bbh nohup setsid nice -n 19 leaderboards/measured.sh > runs/measured.log 2>&1 &
#
# To stop it, end its whole process group (`kill -- -PGID`, PGID from `ps -o pgid= -p PID`): vLLM's
# engine processes outlive a killed lm_eval. Never edit this file while it runs: bash reads a script
# as it goes.
#
# After each row, its results file is copied to leaderboards/measured/ (paths made relative) and
# leaderboards/bbh.md is rebuilt from the rows finished so far, with the leaderboard's default
# comparisons (below).
#
# Every row is evaluated on the same items: the first $LIMIT items of each of the 27 BBH subtasks
# (lm-eval's --limit takes the first N docs), greedy, float32, with the token caps of CAPS below: 128 new
# tokens for trial 1, the reflection and the retry (at 256 the script would need about twice as long).
# Trial 1 and the retry stop at the task's stop sequences (</s>, Q:, <|im_end|>); the reflection has none.
# A one-stage reply (rows 5 and 6) holds reflection and corrected solution in one turn, capped at the two
# caps added (256) and with no stop sequences: after trial 1 it has 256 tokens, as reflection + retry do,
# where retry_only has 128. leaderboards/bbh.md (Budgets) gives every row's caps, stop sequences and the
# share of replies that ran into the cap: more than half in every turn of every row (cap_hits.json). Rows:
#   1-4  the base model in modes single, retry_only, oracle (prompt-based reflection) and intrinsic;
#   5    the base model asked the one_stage way (oracle, one reply holding reflection and corrected
#        answer): the control for one_stage, which is evaluated that way;
#   6-10 oracle mode after training on data generated from the BIG-bench pool (never BBH):
#        one_stage, two_stage, dpo_pm, dpo_pref as the reflector, and sft_qa as the answering model.
#        Their committed training data (leaderboards/measured/training-data) came from that pool, whose
#        archive a fresh machine can no longer download; were it deleted, `gen run` below would draw from
#        today's default, BBH's generation pool (bbh-pool), whose items are disjoint from the first
#        $LIMIT items of each subtask evaluated here (they lie in BBH's test split).
# Resumable across sessions: a row's output is its results file in leaderboards/measured; inside a
# row the plugin keeps every finished chunk of $CHUNK docs in $RESUME/<row> (resume=), and those
# chunks are committed too, so a killed row, or one cut off by the end of a session, resumes on a
# fresh checkout and loses at most one chunk. Every row whose answering model is the base model takes
# its trial 1 from the base-single row (trial1_from=): the same greedy replies it would generate, one
# pass less, and rows that share trial 1 exactly, so their differences come from the second attempt
# alone. The curated training sets are committed as well. On this 2-core CPU the whole script takes
# about ten hours; the log says where it is. Commit leaderboards/measured and leaderboards/bbh.* as
# rows finish (and the resume folders before a session ends).
set -euo pipefail
# nice our whole autogroup, or a setsid job still takes half the CPU (leaderboards/pool_generation.sh says why)
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi

PY=${PY:-.venv/bin}
OUT=${OUT:-runs/measured}
LIMIT=${LIMIT:-20}
QUESTIONS=${QUESTIONS:-120}
CHUNK=${CHUNK:-64}
MODEL=smollm2-135m-instruct
TOKENS=128
CAPS="max_gen_toks=$TOKENS,reflection_max_gen_toks=$TOKENS"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT/eval"

TAG=measured
RESULTS=leaderboards/measured  # committed: one lm-eval results file per finished row
# committed too: every row's stored chunks (the trajectories: prompts, raw replies, verdicts), so a row
# resumes in a later session on a fresh checkout, and a scorer change re-scores replies without a rerun
RESUME=${RESUME:-leaderboards/measured/resume}
BOARD=leaderboards
MODEL_ARGS_COMMON="dtype=float32,$CAPS,chunk_size=$CHUNK"
TASK_ARGS="--tasks reflectevo_bbh --limit $LIMIT"
ORDER=(base-single base-retry_only base-oracle base-intrinsic base-one_stage one_stage two_stage dpo_pm dpo_pref sft_qa)
source "$(dirname "$0")/rows.sh"  # begun_engine, choose_engine, evaluate (one row)
choose_engine

# Rows are compared item by item with the leaderboard's default pairs (leaderboards/build.py), by the
# exact McNemar test: did reflection help? each reflective row against retry_only (a second try with the
# verdict and no reflection) on the same items, never its delta against 0 (oracle and retry_only cannot
# break a right answer, so their delta is >= 0 by construction); did training help? each trained row
# against the base model under the same protocol (one_stage against the base model asked the one-stage
# way, the others against the base model's oracle row); intrinsic (no verdict) against single. sft_qa
# answers with its own adapter, so it differs from the base model at trial 1 already: that pair is compared
# on trial 1 as well. A pair whose token budgets differ is marked so (see Budgets in bbh.md).

SHARED="trial1_from=$RESUME/base-single"
evaluate base-single "mode=single"
for mode in retry_only oracle intrinsic; do
    evaluate "base-$mode" "mode=$mode,$SHARED"
done
# one_stage is evaluated with its own protocol, which alone changes the scores (the base model gets
# sports_understanding from 5% to 60% that way): against this row, one_stage's Δ is the training's
evaluate base-one_stage "mode=oracle,one_stage=true,$SHARED"

# training data: the committed rows' came from the BIG-bench pool (BBH items excluded by construction);
# generated anew it comes from the default source, bbh-pool. The project's default settings except:
# - the token caps, which match the evaluation's;
# - 4 reflections per instruction (8 per failed question, not 4): D± and Dpref need fixing
#   reflections on the same question, and this model fixes few of its failures on retry;
# - only questions with BBH's answer kinds (options, yes/no, true/false, a number): 77% of the pool's
#   first 120 questions want free text (translations, list functions, data wrangling), which this
#   model never gets right, before or after reflecting (measured: 2 fixes in 232 reflections on the
#   unfiltered pool's first 32 questions, both on multiple-choice ones).
#
# The curated sets are committed (leaderboards/measured/training-data, with their statistics): they are
# the trained rows' dataset revision (each row records their sha256), and a fresh checkout trains from
# them instead of generating for two hours. `reflectevo gen push --input` publishes them to the Hub.
DATA=leaderboards/measured/training-data
if [ ! -f "$DATA/stats.md" ]; then
    if [ ! -f "$OUT/curated/stats.md" ]; then  # written last by curate
        "$PY/reflectevo" gen run --limit "$QUESTIONS" --output "$OUT/gen" --dtype float32 --batch_size 32 \
            --answer_kinds choice,yes_no,true_false,integer \
            --trial_max_new_tokens $TOKENS --reflection_max_new_tokens $TOKENS \
            --reflections_per_instruction 4 --seed 0
        "$PY/reflectevo" gen curate --input "$OUT/gen" --output "$OUT/curated"
    fi
    rm -rf "$DATA.partial" && cp -r "$OUT/curated" "$DATA.partial" && mv "$DATA.partial" "$DATA"
fi

# the trained rows' data must be curated by the scorer that evaluates them (a retry counts as fixed by
# the same verdict in both): committed sets of another scorer version are curated again from their own
# raw records (nothing is generated again)
if ! "$PY/python" - "$DATA/stats.json" <<'PY'
import json, sys
from reflectevo_tasks.answers import SCORING_VERSION
sys.exit(json.load(open(sys.argv[1])).get("scoring_version") != SCORING_VERSION)
PY
then
    echo "[measured] $DATA: curated by another scorer version; curating its raw records again"
    rm -rf "$DATA.partial"
    "$PY/reflectevo" gen curate --input "$DATA" --output "$DATA.partial"
    rm -rf "$DATA.old" && mv "$DATA" "$DATA.old" && mv "$DATA.partial" "$DATA" && rm -rf "$DATA.old"
fi

# The committed sets are small (D+ 3 rows, D± 12 pairs, Dpref 1, sft_qa 19): with the recipes' 16
# examples per optimizer step and 2 epochs each setting would take 1 or 2 steps, the first in warmup
# at learning rate 0, and its adapter would be the base model (LoRA's B starts at zero). So every
# setting takes 12 optimizer steps of one batch each (1 in warmup: `reflectevo train` asks for at least
# 10 after warmup); the arguments are recorded in each adapter's provenance. TRAIN_ARGS= trains with
# the recipes as they are (for sets large enough to give them their steps).
TRAIN_ARGS=${TRAIN_ARGS---gradient_accumulation_steps 1 --max_steps 12}

# Adapters are served merged into the weights (merge_adapter=true, recorded in each row): vLLM's CPU
# build runs LoRA about 4x slower per doc (benchmarks/RESULTS.md), the merged model is the same function
# up to float rounding, and its replies were compared with the LoRA ones (docs/results.md, "The
# measured leaderboard").
MERGED="merge_adapter=true"
declare -A EVAL_ARGS=(
    [one_stage]="mode=oracle,$SHARED,reflector_peft=$OUT/train/one_stage,one_stage=true,$MERGED"
    [two_stage]="mode=oracle,$SHARED,reflector_peft=$OUT/train/two_stage,$MERGED"
    [dpo_pm]="mode=oracle,$SHARED,reflector_peft=$OUT/train/dpo_pm,$MERGED"
    [dpo_pref]="mode=oracle,$SHARED,reflector_peft=$OUT/train/dpo_pref,$MERGED"
    [sft_qa]="mode=oracle,peft=$OUT/train/sft_qa,$MERGED"   # the answering model itself
)
for setting in one_stage two_stage dpo_pm dpo_pref sft_qa; do
    if [ -f "$RESULTS/$setting.json" ]; then
        echo "[measured] $setting: finished ($RESULTS/$setting.json)"
        continue
    fi
    if [ ! -f "$OUT/train/$setting/provenance.json" ]; then
        rm -rf "$OUT/train/$setting"
        # a setting whose curated set is empty (e.g. no Dpref pairs) fails with one line; the others go on
        # shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
        "$PY/reflectevo" train "$setting" --dataset "$DATA" --output_dir "$OUT/train/$setting" $TRAIN_ARGS \
            || { echo "[measured] $setting: not trained (see the error above)"; continue; }
    fi
    evaluate "$setting" "${EVAL_ARGS[$setting]}"
done
echo "[measured] done ($(date -u +%FT%TZ))"
