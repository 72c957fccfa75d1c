"""Gathering the inputs of `reports/summary.md` and `reports/model_card.md` for the `evaluate` stage.

Part of the evaluate stage (not a stage of its own): reads what the earlier stages wrote, every file optional, and
hands plain dicts to `finetuner.reporting`. A missing or unreadable optional input becomes "not available" in the
text, never a failure: the test figures matter more than a summary line.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from finetuner.checkpoint import CheckpointError, load_pipeline_checkpoint
from finetuner.config import Params
from finetuner.reporting import render_model_card, render_summary
from tasks.common import InputError, read_csv, write_text

log = logging.getLogger("finetuner.evaluate")

TRAIN_STAGES = ("train_head", "train_partial", "train_full")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_rows(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, str]] | None:
    try:
        return read_csv(path, required)
    except (InputError, OSError, ValueError):
        return None


def flat_scalars(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Top-level and one-level-nested numbers, strings and booleans; lists and deeper dicts as their length."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
        elif isinstance(value, dict) and not prefix:
            out.update(flat_scalars(value, prefix=f"{name}."))
        elif isinstance(value, (list, dict)):
            out[f"{name} (count)"] = len(value)
    return out


def gather_data(root: Path) -> dict[str, Any] | None:
    rows = _read_rows(root / "data/interim/manifest.csv", ("path", "status"))
    if rows is None:
        return None
    quarantined = [row for row in rows if row["status"] == "quarantined"]
    reasons = Counter((row.get("reason") or "unspecified") for row in quarantined)
    data: dict[str, Any] = {"files": len(rows), "usable": len(rows) - len(quarantined),
                            "quarantined": len(quarantined), "quarantine_reasons": dict(reasons.most_common(10))}
    ingest = _read_json(root / "reports/ingest.json")
    if ingest is not None:
        data["ingest_report"] = flat_scalars(ingest)
    return data


def gather_dedup(root: Path) -> dict[str, Any] | None:
    """Counts from units.csv and near_duplicates.csv, plus whatever dedup.json reports."""
    measures: dict[str, Any] = {}
    units = _read_rows(root / "data/interim/units.csv", ("path", "unit"))
    if units is not None:
        sizes = Counter(row["unit"] for row in units)
        measures["leakage units"] = len(sizes)
        measures["units with more than one image"] = sum(1 for size in sizes.values() if size > 1)
        measures["largest unit (images)"] = max(sizes.values(), default=0)
    pairs = _read_rows(root / "data/interim/near_duplicates.csv", ("path_a", "path_b"))
    if pairs is not None:
        measures["near-duplicate pairs"] = len(pairs)
    report = _read_json(root / "reports/dedup.json")
    if report is not None:
        measures.update({f"dedup.json: {k}": v for k, v in flat_scalars(report).items()})
    return measures or None


def _first_key(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in data:
            value = data[name]
            return len(value) if isinstance(value, (list, dict)) else value
    return None


def gather_split(root: Path) -> dict[str, Any] | None:
    """Images per class per split from the split CSVs; leak check and bridges from split.json."""
    counts: dict[str, dict[str, int]] = {}
    for name in ("train", "val", "test"):
        rows = _read_rows(root / f"data/splits/{name}.csv", ("label",))
        if rows is not None:
            counts[name] = dict(sorted(Counter(row["label"] for row in rows).items()))
    report = _read_json(root / "reports/split.json")
    if not counts and report is None:
        return None
    report = report or {}
    return {"leak_check": _first_key(report, "leak_check", "leak_free", "leak_check_passed"),
            "leak_bridges": _first_key(report, "leak_bridges", "bridges", "n_leak_bridges"),
            "class_counts": counts}


def gather_training(root: Path) -> list[dict[str, Any]]:
    """Each training stage's best validation figure: from its best checkpoint, else DVCLive's last values."""
    found = []
    for stage in TRAIN_STAGES:
        record = _from_checkpoints(root, stage) or _from_dvclive(root, stage)
        found.append(record or {"stage": stage, "source": "not available"})
    return found


def _from_checkpoints(root: Path, stage: str) -> dict[str, Any] | None:
    folder = root / "models" / stage
    candidates = sorted(folder.glob("*best*.pt")) if folder.is_dir() else []
    for path in candidates:
        try:
            checkpoint = load_pipeline_checkpoint(path)
        except CheckpointError as exc:
            log.warning("summary: skipping %s (%s)", path, exc)
            continue
        return {"stage": stage, "metric": checkpoint["metric"], "value": checkpoint["value"],
                "epoch": checkpoint["epoch"], "source": path.relative_to(root).as_posix()}
    return None


def _from_dvclive(root: Path, stage: str) -> dict[str, Any] | None:
    path = root / "reports/train" / stage / "metrics.json"
    metrics = _read_json(path)
    if metrics is None:
        return None
    flat = flat_scalars(metrics)
    val = {key: value for key, value in flat.items() if "val" in key and isinstance(value, (int, float))}
    if not val:
        return None
    key = next((k for k in val if "macro_f1" in k), next(iter(val)))
    return {"stage": stage, "metric": key, "value": val[key], "epoch": flat.get("step"),
            "source": f"{path.relative_to(root).as_posix()} (last logged epoch)"}


def write_summary(params: Params, root: Path, metrics: dict[str, Any]) -> None:
    reports = root / "reports"
    links: dict[str, str | None] = {
        "confusion matrix": "confusion_matrix.png",
        "reliability diagram": "reliability.png",
        "per-image test predictions": "predictions.csv",
        "test metrics": "metrics.json",
        "model card": "model_card.md",
        "near-duplicate review page": "dedup.html" if (reports / "dedup.html").exists() else None,
        "training curves (DVCLive)": "train/" if (reports / "train").is_dir() else None,
    }
    text = render_summary(gather_data(root), gather_dedup(root), gather_split(root), gather_training(root),
                          metrics, links)
    write_text(reports / "summary.md", text)


def data_version(root: Path, raw_dir: str) -> str | None:
    """The DVC hash of the raw data as dvc.lock records it for the ingest stage, if the lock exists."""
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    for dep in ((lock.get("stages") or {}).get("ingest") or {}).get("deps") or []:
        if isinstance(dep, dict) and dep.get("path", "").rstrip("/") == raw_dir.rstrip("/"):
            return dep.get("md5") or dep.get("hash")
    return None


def write_model_card(params: Params, root: Path, checkpoint: dict[str, Any], metrics: dict[str, Any]) -> None:
    weights = checkpoint.get("weights", params.model.weights)
    origin = "random initialisation (model.weights: null)" if weights is None else str(weights)
    dumped = params.model_dump(mode="json")
    card_params = {key: dumped[key] for key in ("seed", "data", "model", "train", "stages")}
    text = render_model_card(checkpoint, origin, data_version(root, params.data.raw_dir), card_params, metrics)
    write_text(root / "reports" / "model_card.md", text)
