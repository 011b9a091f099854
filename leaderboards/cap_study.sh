#!/usr/bin/env bash
# Issue #32, item 1: the token-cap study (scripts/cap_study.py) on the first 12 items of each BBH
# subtask of the generation pool, resumable across sessions. The exact command:
#
#   REFLECTEVO_BBH_DIR=$PWD/../shared/data/bbh nohup setsid leaderboards/cap_study.sh > runs/cap-study.log 2>&1 &
#
# Stop it by ending its process group (`kill -- -PGID`), then vLLM's engine, which outlives a killed
# parent (`pkill -f VLLM::EngineCore`). Never edit this file while it runs.
#
# Each finished chunk (27 questions) is mirrored, gzipped, to $STORE/parts, which the session commits,
# and a fresh checkout resumes after the committed chunks (leaderboards/chunk_mirror.sh). The report
# (report.md, report.json) is rebuilt from every finished chunk and copied beside them.
#
# Settings: the study's defaults (greedy; trial 1 and retries with the BBH tasks' stop sequences,
# generated once at 768 tokens and scored cut at 128/256/384/512/768; one oracle reflection at 768
# tokens, no stops, for each reply wrong when cut at 256, then a retry per reflection cut at
# 128/256/384/768), float32 (no native bf16 on the CPUs this ran on), vLLM's CPU build (.venv-vllm)
# where it is installed, else the hf engine.
set -euo pipefail
source "$(dirname "$0")/chunk_mirror.sh"
# nice our whole autogroup, or a setsid job still takes half the CPU (leaderboards/pool_generation.sh says why)
if [ -w /proc/self/autogroup ]; then echo 19 > /proc/self/autogroup 2> /dev/null || true; fi
renice -n 19 -p $$ > /dev/null 2>&1 || true

OUT=${OUT:-runs/cap-study}
STORE=${STORE:-leaderboards/measured/cap-study}
export HF_HUB_OFFLINE=1
# a model step may wait longer than vLLM's 300 s at nice 19 on a busy machine (pool_generation.sh)
export VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=${VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS:-604800}
if [ -z "${ENGINE:-}" ]; then
    if [ -x .venv-vllm/bin/python ]; then ENGINE=vllm; else ENGINE=hf; fi
fi
if [ "$ENGINE" = vllm ]; then
    STUDY=(.venv-vllm/bin/python scripts/cap_study.py --engine vllm --model_args enforce_eager=True --batch_size 128)
else
    STUDY=(.venv/bin/python scripts/cap_study.py --engine hf --batch_size 32)
fi

unpack_chunks "$STORE" "$OUT" settings.json
echo "[cap-study] engine $ENGINE; $(ls "$STORE"/parts | wc -l) chunks committed so far ($(date -u +%FT%TZ))"
"${STUDY[@]}" --output "$OUT" &
study=$!
while kill -0 "$study" 2> /dev/null; do
    pack_chunks "$OUT" "$STORE" settings.json
    sleep 30
done
wait "$study" && rc=0 || rc=$?
pack_chunks "$OUT" "$STORE" settings.json
for f in report.md report.json; do
    if [ -f "$OUT/$f" ]; then cp "$OUT/$f" "$STORE/$f.copying" && mv "$STORE/$f.copying" "$STORE/$f"; fi
done
echo "[cap-study] ended with rc=$rc; $(ls "$STORE"/parts | wc -l) chunks committed ($(date -u +%FT%TZ))"
exit "$rc"
