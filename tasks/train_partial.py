"""The `train_partial` stage: trains the blocks named in params.yaml `stages.partial` (see tasks/training.py;
`train.nproc` > 1: under torchrun, see tasks/train_launch.py).

Run by DVC as `python -m tasks.train_partial` (dvc.yaml); reads data/splits/{train,val}.csv, writes models/train_partial/.
"""
from __future__ import annotations

import sys

from finetuner.config import Params
from tasks.common import run_stage
from tasks.train_launch import run_training_entry


def work(params: Params) -> None:
    run_training_entry("train_partial", params)


def main() -> int:
    return run_stage("train_partial", work)


if __name__ == "__main__":
    sys.exit(main())
