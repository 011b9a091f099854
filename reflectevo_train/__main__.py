"""`python -m reflectevo_train SETTING [options]`, the entry point for `accelerate launch`:

    accelerate launch --config_file reflectevo_train/accelerate/deepspeed_zero3.yaml \
        -m reflectevo_train one_stage --dataset NAME/ID@run-1
"""

import sys

import reflectevo.hub.client  # noqa: F401  (sets the Hub environment before any Hub library loads)
from reflectevo.errors import UserError
from reflectevo_train.run import main

if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:], prog="python -m reflectevo_train"))
    except UserError as exc:
        print(f"reflectevo train: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
