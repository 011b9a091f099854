"""lm-evaluation-harness task files for reflect-then-retry evaluation on BIG-Bench Hard, MATH and MBPP.

The YAML files below this folder are indexed by lm-eval (through our `.pth` hook, or with
`--include_path` pointing here); `utils.py` holds the data loaders, the prompt text for plain
models and the metrics. `_generate_configs.py` writes the per-subtask and group YAML files.
"""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
