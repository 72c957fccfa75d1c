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
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finetuner import layout
from finetuner.common.stage import InputError, atomic_path, read_csv, write_json, write_text
from finetuner.train.checkpoint import CheckpointError

SPLIT_COLUMNS = layout.SPLIT_COLUMNS

log = logging.getLogger("finetuner.train")


@dataclass(frozen=True)
class StagePaths:
    """Where one training stage reads and writes, under `root` (the repository root, or tmp_path in tests)."""

    root: Path
    stage: str
    previous: str | None

    @property
    def splits(self) -> Path:
        return self.root / layout.SPLITS

    @property
    def out(self) -> Path:
        return self.root / layout.stage_models(self.stage)

    @property
    def input_best(self) -> Path | None:
        return self.root / layout.stage_models(self.previous) / "best.pt" if self.previous else None

    @property
    def resume_dir(self) -> Path:
        return self.root / layout.RESUME / self.stage

    @property
    def reports(self) -> Path:
        return self.root / layout.stage_reports(self.stage)

    @property
    def image_cache(self) -> Path:
        return self.root / layout.IMAGE_CACHE


def read_split(paths: StagePaths, name: str) -> list[dict[str, str]]:
    """train or val rows; the test split is never read by training."""
    assert name in ("train", "val"), "training never reads the test split"
    return read_csv(paths.splits / f"{name}.csv", required=SPLIT_COLUMNS)


def torch_bytes(obj: Any) -> bytes:
    """torch.save's bytes, the same for equal objects: saving to a path records that file's name inside the zip
    (a temp name differs every run), saving to a buffer records a fixed one."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_torch(path: Path, obj: Any) -> None:
    data = torch_bytes(obj)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def load_input_checkpoint(path: Path) -> dict[str, Any]:
    from finetuner.train.checkpoint import load_pipeline_checkpoint

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


def save_state(paths: StagePaths, name: str, state: dict[str, Any]) -> None:
    """`state` as `name` in the stage's resume folder, checksummed (finetuner/common/integrity.py)."""
    from finetuner.common.integrity import wrap_checked

    save_torch(paths.resume_dir / name, wrap_checked(state))


def load_state(
    paths: StagePaths, expected: str, name: str, redo: str = "starts again from its first epoch"
) -> dict[str, Any] | None:
    """The state saved as `name` when it is intact and its fingerprint matches; else None.

    A damaged file (truncated, garbled) is reported, never used: the stage `redo`es that work (the log says so),
    reaching the same result, only later.
    """
    from finetuner.common.integrity import CorruptFile, load_torch_checked

    path = paths.resume_dir / name
    if not path.is_file():
        return None
    try:
        state = load_torch_checked(path)
    except CorruptFile as exc:
        log.warning("%s; ignored: %s %s", exc, paths.stage, redo)
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == expected else None


def save_resume(paths: StagePaths, state: dict[str, Any]) -> None:
    """The state after a finished epoch, with the sha256 of the stage_best.pt it goes with (written just before
    it), so a resume never pairs this state with a damaged or stale best checkpoint."""
    save_state(paths, "resume.pt", {**state, "stage_best_sha256": file_digest(paths.resume_dir / "stage_best.pt")})


def load_resume(paths: StagePaths, expected: str) -> dict[str, Any] | None:
    """The unfinished stage's state when it is intact, its fingerprint matches and it goes with stage_best.pt."""
    state = load_state(paths, expected, "resume.pt")
    if state is None:
        return None
    if state.get("stage_best_sha256") != file_digest(paths.resume_dir / "stage_best.pt"):
        log.warning(
            "%s: does not match the resume state beside it (damaged, or killed between the two writes); "
            "ignored: %s starts again from its first epoch",
            paths.resume_dir / "stage_best.pt",
            paths.stage,
        )
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
