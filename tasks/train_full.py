"""The `train_full` stage: trains the blocks named in params.yaml `stages.full` (see tasks/training.py;
`train.nproc` > 1: under torchrun, see tasks/train_launch.py).

Run by DVC as `python -m tasks.train_full` (dvc.yaml); reads data/splits/{train,val}.csv, writes models/train_full/.
"""
from __future__ import annotations

import sys

from finetuner.config import Params
from tasks.common import run_stage
from tasks.train_launch import run_training_entry


def work(params: Params) -> None:
    run_training_entry("train_full", params)


def main() -> int:
    return run_stage("train_full", work)


if __name__ == "__main__":
    sys.exit(main())
