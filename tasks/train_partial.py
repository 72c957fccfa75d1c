"""The `train_partial` stage: trains the blocks named in params.yaml `stages.partial` (see finetuner/train/stage.py).

Run by DVC as `python -m tasks.train_partial` (dvc.yaml); reads data/splits/{train,val}.csv, writes models/train_partial/.
"""
from __future__ import annotations

import sys

from finetuner.config import Params
from finetuner.common.stage import run_stage
from finetuner.train.stage import run_training_stage


def work(params: Params) -> None:
    run_training_stage("train_partial", params)


def main() -> int:
    return run_stage("train_partial", work)


if __name__ == "__main__":
    sys.exit(main())
