"""The training stages `train_head`, `train_partial` and `train_full`: one entry, the stage name as its argument.

Run by DVC as `python -m tasks.train <stage>` (dvc.yaml); reads data/splits/{train,val}.csv, trains the blocks named
in params.yaml `stages.<head|partial|full>` and writes models/<stage>/ (see finetuner/train/stage.py); with
`train.nproc` > 1 under torchrun (finetuner/train/launch.py).
"""

from __future__ import annotations

import sys

from finetuner.common.stage import run_stage
from finetuner.train.launch import run_training_entry
from finetuner.train.stage import STAGES


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in STAGES:
        # A CLI message, not a traceback: the stage name is the only input this entry takes.
        print(
            f"usage: python -m tasks.train {{{','.join(STAGES)}}} (got {' '.join(args) or 'nothing'})", file=sys.stderr
        )
        return 2
    stage = args[0]
    return run_stage(stage, lambda params: run_training_entry(stage, params))


if __name__ == "__main__":
    sys.exit(main())
