"""The `train_full` stage: trains the blocks named in params.yaml `stages.full` (see finetuner/train/stage.py).

Run by DVC as `python -m tasks.train_full` (dvc.yaml); reads data/splits/{train,val}.csv, writes models/train_full/.
"""
from __future__ import annotations

import sys

from finetuner.config import Params
from finetuner.common.stage import run_stage
from finetuner.train.stage import run_training_stage


def work(params: Params) -> None:
    run_training_stage("train_full", params)


def main() -> int:
    return run_stage("train_full", work)


if __name__ == "__main__":
    sys.exit(main())
