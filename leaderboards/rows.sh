# Sourced by the leaderboard scripts (measured.sh, test_split.sh): one row = one lm_eval run of the
# reflectevo model, resumable chunk by chunk, its results file committed once it finishes.
#
# The caller sets, before sourcing:
#   TAG       log prefix, e.g. measured
#   PY        the project's environment (reflectevo, python)
#   OUT       scratch folder (runs/...): lm_eval's output per row, adapters
#   RESULTS   committed: one results file per finished row (NAME.json)
#   RESUME    committed: each row's finished chunks (resume=), so a row cut off resumes on a fresh checkout
#   BOARD     where `reflectevo leaderboard build` writes the tables and plots of the finished rows
#   ORDER     the rows' names in table order (an array)
#   MODEL     the answering model; MODEL_ARGS_COMMON: model_args every row shares (dtype, caps, chunk size)
#   TASK_ARGS lm_eval's task selection (--tasks ... [--limit N])
#   COMPARE   optional: --compare pairs for the tables (default: the leaderboard's own)
# and then calls choose_engine once; it sets ENGINE, EVAL_PY and ENGINE_ARGS.

# The engine: one per leaderboard, because its rows share trial 1 and are compared item by item. It is
# the engine of a leaderboard already begun (its first finished row, or the ENGINE file its first run
# wrote), else vLLM where its environment exists (`scripts/setup-env.sh --vllm`: the vLLM pipeline makes
# about 5x the hf pipeline's reflections per minute here, benchmarks/RESULTS.md; greedy replies equal
# transformers' in float32, tests/test_vllm.py), else hf. ENGINE=hf|vllm asks for one; a leaderboard
# begun on the other is refused, not mixed.
begun_engine() {
    local first=$RESULTS/${ORDER[0]}.json
    if [ -f "$first" ]; then
        "$PY/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["model_args"].get("base", "hf"))' \
            "$first"
    elif [ -f "$RESUME/ENGINE" ]; then
        cat "$RESUME/ENGINE"
    fi
}

choose_engine() {
    local begun
    begun=$(begun_engine)
    if [ -z "${ENGINE:-}" ]; then
        if [ -n "$begun" ]; then ENGINE=$begun; elif [ -x .venv-vllm/bin/lm_eval ]; then ENGINE=vllm; else ENGINE=hf; fi
    fi
    case "$ENGINE" in hf | vllm) ;; *) echo "[$TAG] ENGINE must be hf or vllm, not '$ENGINE'" >&2; exit 2 ;; esac
    if [ -n "$begun" ] && [ "$begun" != "$ENGINE" ]; then
        echo "[$TAG] ENGINE=$ENGINE, but this leaderboard was begun on $begun: its rows would not be comparable;" \
             "give it another RESULTS, RESUME and OUT" >&2
        exit 2
    fi
    mkdir -p "$RESUME" && echo "$ENGINE" > "$RESUME/ENGINE"
    if [ "$ENGINE" = vllm ]; then
        EVAL_PY=${EVAL_PY:-.venv-vllm/bin}
        ENGINE_ARGS="base=vllm,enforce_eager=True"  # on CPU: no graph compilation at each engine start
    else
        EVAL_PY=${EVAL_PY:-$PY}
        ENGINE_ARGS="base=hf"
    fi
    echo "[$TAG] engine: $ENGINE (lm_eval from $EVAL_PY)"
}

publish_rows() {  # the tables in $BOARD from every row finished so far, in the order of ORDER
    local files=() n
    for n in "${ORDER[@]}"; do [ -f "$RESULTS/$n.json" ] && files+=("$RESULTS/$n.json"); done
    [ "${#files[@]}" -gt 0 ] || return 0
    mkdir -p "$BOARD"
    local findings=()  # written by people from the tables, beside them
    [ -f "$BOARD/findings.md" ] && findings=(--findings "$BOARD/findings.md")
    "$PY/reflectevo" leaderboard build "${files[@]}" --output "$BOARD" ${COMPARE:+--compare "$COMPARE"} "${findings[@]}" \
        || echo "[$TAG] leaderboard not rebuilt (see the error above)"
}

# (none yet is not an error: under pipefail, a failing ls would end the script here)
latest_results() { ls "$OUT/eval/$1"/*/results_*.json 2> /dev/null | tail -n 1 || true; }

retire_stale_resume() {  # a resume folder whose docs were gated by another strict scorer is set aside, not reused
    local folder=$1
    [ -f "$folder/settings.json" ] || return 0
    # the gate is the strict trial-1 verdict: its version (GATE_VERSION) is what the folder records
    # under "scoring_version"; reused replies are scored again by the current scorer at both levels
    "$PY/python" - "$folder/settings.json" <<'PY' && return 0
import json, sys
from reflectevo_tasks.answers import GATE_VERSION
settings = json.load(open(sys.argv[1]))
single = settings.get("protocol", {}).get("mode") == "single"
sys.exit(0 if single or settings.get("scoring_version") == GATE_VERSION else 1)
PY
    echo "[$TAG] $folder: gated by another scorer version; moved to $folder.old-scorer"
    rm -rf "$folder.old-scorer" && mv "$folder" "$folder.old-scorer"
}

run_row() {  # run_row NAME MODEL_ARGS: lm_eval for one row into $OUT/eval/NAME, unless done there
    local name=$1 args=$2 last
    last=$(latest_results "$name")
    # a results file of an older plugin or scorer (no "scoring" block: scorer version 1) is redone;
    # stored chunks are reused where the scorer cannot have changed which docs were retried (mode single,
    # and every row's shared trial 1), and are otherwise refused and regenerated
    if [ -n "$last" ] && grep -q '"scoring"' "$last"; then
        echo "[$TAG] $name: done earlier"
        return
    fi
    rm -rf "$OUT/eval/$name"
    retire_stale_resume "$RESUME/$name"
    echo "[$TAG] $name: lm_eval --model_args $args ($(date -u +%FT%TZ))"
    # shellcheck disable=SC2086  # TASK_ARGS is a list of options
    "$EVAL_PY/lm_eval" --model reflectevo \
        --model_args "$ENGINE_ARGS,pretrained=$MODEL,$MODEL_ARGS_COMMON,resume=$RESUME/$name,$args" \
        $TASK_ARGS --batch_size 32 --device cpu \
        --output_path "$OUT/eval/$name" --log_samples
}

evaluate() {  # evaluate NAME MODEL_ARGS: one row, skipped once its results file is in $RESULTS
    local name=$1 args=$2
    if [ -f "$RESULTS/$name.json" ]; then
        echo "[$TAG] $name: finished ($RESULTS/$name.json)"
        return
    fi
    run_row "$name" "$args"
    mkdir -p "$RESULTS"
    # committed without the absolute paths of this machine (they become relative to the repo)
    "$PY/python" -m reflectevo.portable "$(latest_results "$name")" "$RESULTS/$name.json"
    publish_rows
}
