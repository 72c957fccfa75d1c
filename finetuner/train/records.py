"""What a training stage writes: its checkpoints' records and `models/<stage>/` (best.pt, last.pt, stage_best.pt).

`pipeline_record` is a checkpoint as design.md names its keys, plus where the weights came from and the params used;
`write_outputs` picks a stage's best.pt: the better of its own best epoch and the best of the stages before it. Used by
finetuner/train/stage.py (every way a stage ends) and finetuner/train/gradient.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from finetuner import layout
from finetuner.config import Params
from finetuner.train import stage_files as train_io
from finetuner.train.models import BuiltModel
from finetuner.train.preprocessing import Preprocessing

log = logging.getLogger("finetuner.train")


@dataclass
class Start:
    """The weights a stage starts from and the best result so far (over earlier stages)."""

    built: BuiltModel
    best_value: float | None
    best_file: Path | None
    origin: dict[str, Any]


def pipeline_record(
    model: nn.Module,
    stage: str,
    epoch: int,
    value: float,
    params: Params,
    class_to_idx: dict[str, int],
    preprocessing: Preprocessing,
    origin: dict[str, Any],
    lr: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A pipeline checkpoint: the contract's keys plus where the weights came from, the params and rates used."""
    return {
        "lr": dict(lr or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": params.model.arch,
        "class_to_idx": class_to_idx,
        "stage": stage,
        "epoch": epoch,
        "metric": params.train.select_metric,
        "value": float(value),
        "preprocessing": preprocessing.to_dict(),
        "origin": origin,
        "params": recorded_params(params),
    }


def recorded_params(params: Params) -> dict[str, Any]:
    """The params every training stage depends on (dvc.yaml), kept in its checkpoints; the stage's own section is in
    its recipe.json. Not the whole file: a checkpoint must not change when an unrelated key (retrain, dedup) does."""
    return {
        "seed": params.seed,
        "data": {"image_size": params.data.image_size},
        "model": params.model.model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
    }


def write_outputs(paths: train_io.StagePaths, start: Start, last: dict[str, Any]) -> dict[str, Any]:
    """stage_best.pt, last.pt, and best.pt = the better of this stage's best and the best of earlier stages."""
    stage_best_file = paths.resume_dir / "stage_best.pt"
    train_io.save_torch(paths.out / "last.pt", last)
    stage_best = train_io.load_input_checkpoint(stage_best_file) if stage_best_file.is_file() else None
    if stage_best is not None:
        train_io.copy_file(stage_best_file, paths.out / "stage_best.pt")
    if stage_best is not None and (start.best_value is None or stage_best["value"] > start.best_value):
        train_io.copy_file(stage_best_file, paths.out / "best.pt")
        best = stage_best
    elif start.best_file is not None:
        train_io.copy_file(start.best_file, paths.out / "best.pt")
        best = train_io.load_input_checkpoint(paths.out / "best.pt")
    else:  # head stage that failed before its first epoch ended: the last weights are all there is
        train_io.save_torch(paths.out / "best.pt", last)
        best = last
    publish(paths)
    log.info(
        "%s: best so far %s=%.4f (stage %s, epoch %d)",
        paths.stage,
        best["metric"],
        best["value"],
        best["stage"],
        best["epoch"],
    )
    return {k: v for k, v in best.items() if k != "state_dict"}


def publish(paths: train_io.StagePaths) -> None:
    """train_full's best.pt is also the pipeline's model, `models/best.pt`."""
    if paths.stage == "train_full":
        train_io.copy_file(paths.out / "best.pt", paths.root / layout.BEST_MODEL)
