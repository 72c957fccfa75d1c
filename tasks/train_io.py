"""Files of the training stages: inputs (splits, images), pipeline checkpoints, resume state, DVCLive logs.

Layout (all relative to the repository root):
- `models/<stage>/best.pt` (best over all stages so far), `stage_best.pt`, `last.pt`; `models/best.pt` (train_full);
- `checkpoints/<stage>/resume.pt` and `stage_best.pt`: the state of an unfinished stage, outside every DVC output so
  `dvc repro` does not delete it; used only when its fingerprint (params + inputs) matches;
- `reports/train/<stage>/`: DVCLive metrics and plots.
Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finetuner.checkpoint import CheckpointError, load_checkpoint
from tasks.common import InputError, atomic_path, read_csv, write_json, write_text

SPLIT_COLUMNS = ("path", "label", "group", "unit")


@dataclass(frozen=True)
class StagePaths:
    """Where one training stage reads and writes, under `root` (the repository root, or tmp_path in tests)."""

    root: Path
    stage: str
    previous: str | None

    @property
    def splits(self) -> Path:
        return self.root / "data" / "splits"

    @property
    def out(self) -> Path:
        return self.root / "models" / self.stage

    @property
    def input_best(self) -> Path | None:
        return self.root / "models" / self.previous / "best.pt" if self.previous else None

    @property
    def resume_dir(self) -> Path:
        return self.root / "checkpoints" / self.stage

    @property
    def reports(self) -> Path:
        return self.root / "reports" / "train" / self.stage

    @property
    def image_cache(self) -> Path:
        return self.root / "data" / "cache" / "images"


def read_split(paths: StagePaths, name: str) -> list[dict[str, str]]:
    """train or val rows; the test split is never read by training."""
    assert name in ("train", "val"), "training never reads the test split"
    return read_csv(paths.splits / f"{name}.csv", required=SPLIT_COLUMNS)


def save_torch(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def load_input_checkpoint(path: Path) -> dict[str, Any]:
    from finetuner.checkpoint import load_pipeline_checkpoint

    try:
        return load_pipeline_checkpoint(path)
    except CheckpointError as exc:
        raise InputError(f"{exc} (run the earlier training stage first, e.g. `dvc repro`)") from None


def file_digest(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "-"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(config: dict[str, Any], files: list[Path | None]) -> str:
    """What a resume checkpoint must match: the stage's params and the bytes of every input file."""
    text = json.dumps(config, sort_keys=True, default=str) + "".join(file_digest(path) for path in files)
    return hashlib.sha256(text.encode()).hexdigest()


def load_resume(paths: StagePaths, expected: str) -> dict[str, Any] | None:
    """The unfinished stage's state when its fingerprint matches; anything else means starting afresh."""
    path = paths.resume_dir / "resume.pt"
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected:
        return None
    return state


def clear_resume(paths: StagePaths) -> None:
    shutil.rmtree(paths.resume_dir, ignore_errors=True)


class LiveLog:
    """DVCLive for one stage (main process only). A resumed stage replays the finished epochs into a fresh log."""

    def __init__(self, directory: Path, history: list[dict[str, Any]], enabled: bool = True) -> None:
        self.live = None
        if not enabled:
            return
        from dvclive import Live

        shutil.rmtree(directory, ignore_errors=True)
        self.live = Live(dir=str(directory), save_dvc_exp=False, dvcyaml=None)
        for record in history:
            self.log(record)

    def log(self, record: dict[str, Any]) -> None:
        if self.live is None:
            return
        self.live.log_metric("train/loss", record["train_loss"])
        for key in ("loss", "accuracy", "macro_f1"):
            self.live.log_metric(f"val/{key}", record[f"val_{key}"])
        for block, lr in record["lr"].items():
            self.live.log_metric(f"lr/{block}", lr)
        self.live.next_step()

    def end(self) -> None:
        if self.live is not None:
            self.live.end()


def write_skipped_report(directory: Path, source: Path | None) -> None:
    write_json(directory / "metrics.json", {"epochs": 0, "passed_through": str(source) if source else None})
    # dvc.yaml plots these curves for every stage: empty ones (header only) instead of "failed to load some plots".
    for name in ("macro_f1", "loss"):
        write_text(directory / "plots" / "metrics" / "val" / f"{name}.tsv", f"step\t{name}\n")
