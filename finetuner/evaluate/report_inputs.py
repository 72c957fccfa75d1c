"""Gathering the inputs of `reports/summary.md` and `reports/model_card.md` for the `evaluate` stage.

Part of the evaluate stage (not a stage of its own): reads what the earlier stages wrote (`reports/ingest.json`,
`dedup.json`, `split.json`, the training stages' checkpoints), every file optional, and hands plain dicts to
`finetuner.evaluate.reporting`. A missing or unreadable optional input becomes "not available" in the text, never a
failure: the test figures matter more than a summary line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from finetuner import layout
from finetuner.common.dvc_lock import locked_dep_hash
from finetuner.common.stage import write_text
from finetuner.config import Params
from finetuner.evaluate.reporting import render_model_card, render_summary
from finetuner.evaluate.summary_leakage import leakage_section, pictures_section
from finetuner.train.checkpoint import CheckpointError, load_pipeline_checkpoint

log = logging.getLogger("finetuner.evaluate")

TRAIN_STAGES = ("train_head", "train_partial", "train_full")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gather_training(root: Path) -> list[dict[str, Any]]:
    """Each training stage's own best validation figure and epoch, or why there is none."""
    return [_stage_record(root, stage) for stage in TRAIN_STAGES]


def _same_stage(a: Any, b: str) -> bool:
    # Checkpoints name their stage `train_head` in the pipeline and `head` in older records.
    return str(a).removeprefix("train_") == b.removeprefix("train_")


def _stage_record(root: Path, stage: str) -> dict[str, Any]:
    """From `models/<stage>/stage_best.pt` (this stage's own best), else `best.pt` when this stage produced it.

    `best.pt` alone is not enough: it is the best over all stages so far, so a stage that never beat the previous
    one (or was skipped with `epochs: 0`) holds an earlier stage's checkpoint there.
    """
    folder = root / layout.stage_models(stage)
    recipe = _read_json(folder / "recipe.json") or {}  # the recipe's decision and rates (train/recipe_files.py)
    decision = {"decision": recipe.get("reason"), "rates": recipe.get("lr")}
    for name in ("stage_best.pt", "best.pt"):
        checkpoint = _load(folder / name)
        if checkpoint is not None and (name == "stage_best.pt" or _same_stage(checkpoint.get("stage"), stage)):
            return {
                "stage": stage,
                "metric": checkpoint.get("metric"),
                "value": checkpoint.get("value"),
                "epoch": checkpoint.get("epoch"),
                "source": (folder / name).relative_to(root).as_posix(),
                **decision,
            }
    live = _read_json(root / layout.stage_reports(stage) / "metrics.json") or {}
    if live.get("epochs") == 0:
        through = live.get("passed_through")
        return {
            "stage": stage,
            "skipped": "epochs: 0" if recipe.get("ran") is not False else "gated",
            "source": f"passes through {through}" if through else None,
            **decision,
        }
    return {"stage": stage, "value": None, **decision}


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return load_pipeline_checkpoint(path)
    except CheckpointError as exc:
        log.warning("summary: skipping %s (%s)", path, exc)
        return None


def write_summary(
    params: Params,
    root: Path,
    metrics: dict[str, Any],
    leakage: dict[str, Any] | None = None,
    pictures: dict[str, str | None] | None = None,
) -> None:
    reports = root / layout.REPORTS
    pictures = pictures or {}
    links: dict[str, str | None] = {
        "confusion matrix": "confusion_matrix.png",
        "reliability diagram": "reliability.png",
        "per-image test predictions": "predictions.csv",
        "test metrics": "metrics.json",
        "model card": "model_card.md",
        "near-duplicate review page": "dedup.html" if (reports / "dedup.html").exists() else None,
    }
    extra = leakage_section(leakage, pictures.get("separated near duplicates")) + [""] + pictures_section(pictures)
    text = render_summary(
        _read_json(reports / "ingest.json"),
        _read_json(reports / "dedup.json"),
        _read_json(reports / "split.json"),
        gather_training(root),
        metrics,
        links,
        extra,
    )
    write_text(root / layout.SUMMARY, text)


def data_version(root: Path, raw_dir: str) -> str | None:
    """The DVC hash of the raw data as dvc.lock records it for the ingest stage, if the lock exists."""
    return locked_dep_hash(root, "ingest", raw_dir)


def write_model_card(params: Params, root: Path, checkpoint: dict[str, Any], metrics: dict[str, Any]) -> None:
    weights = checkpoint.get("weights", params.model.weights)
    origin = "random initialisation (model.weights: null)" if weights is None else str(weights)
    # Each section spelled out, so the dvc.yaml deps test sees what the card reads (evaluate's `params`).
    card_params = {
        "seed": params.seed,
        "data": params.data.model_dump(mode="json"),
        "model": params.model.model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
        "stages": params.stages.model_dump(mode="json"),
    }
    text = render_model_card(checkpoint, origin, data_version(root, params.data.raw_dir), card_params, metrics)
    write_text(root / layout.MODEL_CARD, text)
