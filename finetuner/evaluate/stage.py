"""The `evaluate` stage: the one held-out test of `models/best.pt`, and the reports a person reads.

Run by DVC as `python -m tasks.evaluate` (see dvc.yaml). This is the only code that reads `data/splits/test.csv`.
Writes `reports/metrics.json`, `reports/test_scores.json`, `reports/predictions.csv`, `reports/confusion_matrix.png`,
`reports/reliability.png`, `reports/summary.md` with its pictures (`finetuner/evaluate/summary_pictures.py`),
`reports/model_card.md`, and `reports/leakage.json` (the naive-split and from-scratch comparisons of
`finetuner/evaluate/leakage_runs.py`, taken after best.pt is scored and never used to select), and records every
look in the test-reuse ledger `reports/test_ledger.json` (deliberately not a DVC output: checking out an older
experiment must not erase looks).

Champion/challenger mode, used by the retrain flow: `python -m tasks.evaluate --checkpoint PATH --out PATH.json`
scores any pipeline checkpoint on the current test split, writes only that JSON and counts it in the ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from finetuner import layout
from finetuner.common.device import resolve_device
from finetuner.common.stage import InputError, atomic_path, read_csv, run_stage, write_csv, write_json
from finetuner.common.workspace_lock import file_lock
from finetuner.config import ConfigError, Params
from finetuner.evaluate import leakage_runs as leakage
from finetuner.evaluate.inference import predict_files
from finetuner.evaluate.leakage import SCHEMA, format_table
from finetuner.evaluate.ledger import empty_ledger, ledger_summary, model_fingerprint, record_look, sha256_bytes
from finetuner.evaluate.metrics import (
    ReliabilityBin,
    classification_metrics,
    confusion_counts,
    expected_calibration_error,
    reliability_bins,
    top_confidence,
)
from finetuner.evaluate.plots import confusion_figure, reliability_figure
from finetuner.evaluate.report_inputs import write_model_card, write_summary
from finetuner.evaluate.summary_pictures import write_pictures
from finetuner.train.checkpoint import CheckpointError, load_pipeline_checkpoint, model_from_checkpoint
from finetuner.train.preprocessing import Preprocessing

log = logging.getLogger("finetuner.evaluate")

TEST_CSV = layout.split_csv("test")
BEST_MODEL = layout.BEST_MODEL
REPORTS = layout.REPORTS
LEDGER = layout.TEST_LEDGER
SPLIT_COLUMNS = layout.SPLIT_COLUMNS
# The DVC metric (`dvc exp show`, `dvc metrics diff`): the scalar test figures only, so the table fits a terminal;
# per-class figures and the ledger stay in reports/metrics.json.
TEST_SCORES = ("accuracy", "macro_f1", "balanced_accuracy", "ece", "n_test")


@dataclass(frozen=True)
class Scored:
    """One checkpoint scored on the test rows: everything the reports are drawn from."""

    checkpoint: dict[str, Any]
    class_names: list[str]
    probs: np.ndarray
    y_true: np.ndarray
    bins: list[ReliabilityBin]
    metrics: dict[str, Any]


def score(
    checkpoint_path: str | Path,
    test_rows: list[dict[str, str]],
    images_dir: str | Path,
    batch_size: int,
    calibration_bins: int = 15,
    device: str = "cpu",
) -> Scored:
    """Predict every test image with the checkpoint's own preprocessing and compute all test figures."""
    try:
        checkpoint = load_pipeline_checkpoint(checkpoint_path)
        model = model_from_checkpoint(checkpoint)
    except (CheckpointError, RuntimeError, KeyError, ValueError) as exc:
        raise InputError(f"{checkpoint_path}: cannot rebuild the model ({exc})") from None
    class_to_idx: dict[str, int] = checkpoint["class_to_idx"]
    class_names = sorted(class_to_idx, key=class_to_idx.__getitem__)
    unknown = sorted({row["label"] for row in test_rows} - set(class_to_idx))
    if unknown:
        raise InputError(f"test labels {unknown} are not classes of {checkpoint_path} ({class_names})")
    if not test_rows:
        raise InputError("the test split is empty; nothing to score")
    preprocessing = Preprocessing.from_dict(checkpoint["preprocessing"])
    paths = [Path(images_dir) / row["path"] for row in test_rows]
    results = predict_files(model, preprocessing, paths, batch_size, device)
    failed = [f"{r.path} ({r.error})" for r in results if r.error]
    if failed:
        # The test set is fixed by the split; silently scoring fewer images would change the figure.
        raise InputError(f"{len(failed)} test image(s) unreadable: {'; '.join(failed[:5])}")
    probs = np.stack([r.probs for r in results])
    y_true = np.array([class_to_idx[row["label"]] for row in test_rows])
    y_pred, confidence = top_confidence(probs)
    bins = reliability_bins(confidence, y_pred == y_true, calibration_bins)
    metrics = classification_metrics(y_true, y_pred, class_names)
    metrics["ece"] = expected_calibration_error(bins)
    metrics["checkpoint"] = {key: checkpoint[key] for key in ("stage", "epoch", "metric", "value")}
    metrics["checkpoint"]["arch"] = checkpoint["arch"]
    metrics["model_sha256"] = model_fingerprint(checkpoint["state_dict"], checkpoint["arch"], class_to_idx)
    return Scored(checkpoint, class_names, probs, y_true, bins, metrics)


def score_checkpoint(
    checkpoint_path: str | Path,
    test_rows: list[dict[str, str]],
    images_dir: str | Path,
    batch_size: int,
    calibration_bins: int = 15,
    device: str = "cpu",
) -> dict[str, Any]:
    """The test metrics of any pipeline checkpoint (accuracy, macro_f1, ..., ece, checkpoint, model_sha256)."""
    return score(checkpoint_path, test_rows, images_dir, batch_size, calibration_bins, device).metrics


def record_in_ledger(
    ledger_path: Path, split_hash: str, metrics: dict[str, Any], warn_after: int, source: str
) -> dict[str, Any]:
    """Count this model's look at this test split and return the summary that goes into the metrics JSON."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    details = {"source": source, **{k: metrics["checkpoint"][k] for k in ("arch", "stage", "epoch")}}
    with _exclusive(ledger_path):
        try:
            ledger = json.loads(ledger_path.read_text(encoding="utf-8")) if ledger_path.exists() else empty_ledger()
        except ValueError as exc:
            raise InputError(f"{ledger_path}: unreadable test ledger ({exc}); fix or move it aside") from None
        ledger = record_look(ledger, split_hash, metrics["model_sha256"], when, details)
        write_json(ledger_path, ledger)
    summary = ledger_summary(ledger, split_hash, warn_after)
    if summary["warning"]:
        log.warning("test-reuse ledger: %s", summary["warning"])
    return summary


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path`: champion and challenger may be scored at once, and a
    read-modify-write of the ledger without it could lose one of the looks."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        yield


def _load_test(params: Params, root: Path) -> tuple[list[dict[str, str]], str, Path]:
    test_csv = root / TEST_CSV
    rows = read_csv(test_csv, required=SPLIT_COLUMNS)
    return rows, sha256_bytes(test_csv.read_bytes()), root / params.data.raw_dir / layout.RAW_IMAGES


def _device(params: Params) -> str:
    try:
        return str(resolve_device(params.evaluate.device))
    except ValueError as exc:
        raise ConfigError(f"evaluate.device: {exc}") from None


def evaluate(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """The stage: score models/best.pt on the test split and write every report. Returns the metrics."""
    cfg = params.evaluate
    rows, split_hash, images_dir = _load_test(params, root)
    scored = score(root / BEST_MODEL, rows, images_dir, cfg.batch_size, cfg.calibration_bins, _device(params))
    metrics = scored.metrics
    # models/best.pt is fixed above; the comparisons only score other models beside it (never used to select).
    comparison = _compare(params, root, rows, split_hash, images_dir, metrics)
    metrics["test_ledger"] = record_in_ledger(
        root / LEDGER, split_hash, metrics, cfg.ledger_warn_after, source="evaluate"
    )
    reports = root / REPORTS
    write_json(reports / layout.LEAKAGE.name, comparison)
    write_json(reports / layout.METRICS.name, metrics)
    write_json(reports / layout.TEST_SCORES.name, {key: metrics[key] for key in TEST_SCORES if key in metrics})
    _write_predictions(reports / layout.PREDICTIONS.name, rows, scored)
    counts = confusion_counts(scored.y_true, scored.probs.argmax(axis=1), len(scored.class_names))
    _save_figure(confusion_figure(counts, scored.class_names), reports / layout.CONFUSION_MATRIX.name)
    _save_figure(reliability_figure(scored.bins, metrics["ece"]), reports / layout.RELIABILITY.name)
    predicted = [scored.class_names[i] for i in scored.probs.argmax(axis=1)]
    pictures = write_pictures(reports, images_dir, rows, predicted, comparison)
    write_summary(params, root, metrics, comparison, pictures)
    write_model_card(params, root, scored.checkpoint, metrics)
    log.info(
        "test: n=%d accuracy=%.4f macro_f1=%.4f balanced_accuracy=%.4f ece=%.4f",
        metrics["n_test"],
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["balanced_accuracy"],
        metrics["ece"],
    )
    return metrics


def _compare(
    params: Params, root: Path, rows: list[dict[str, str]], split_hash: str, images_dir: Path, metrics: dict[str, Any]
) -> dict[str, Any]:
    """reports/leakage.json: the naive-split and from-scratch comparisons, or a note that they are off."""
    cfg = params.evaluate
    if not (cfg.leakage.naive or cfg.leakage.scratch):
        return {
            "schema": SCHEMA,
            "enabled": False,
            "used_for_selection": False,
            "note": "evaluate.leakage.naive and evaluate.leakage.scratch are off",
        }

    def scorer(checkpoint: Path, some_rows: leakage.Rows, ledger_source: str | None) -> dict[str, Any]:
        figures = score_checkpoint(
            checkpoint, list(some_rows), images_dir, cfg.batch_size, cfg.calibration_bins, _device(params)
        )
        if ledger_source is not None:  # a look at the test split: it counts, whoever looks
            record_in_ledger(root / LEDGER, split_hash, figures, cfg.ledger_warn_after, source=ledger_source)
        return figures

    report = leakage.compare(params, root, rows, metrics, scorer)
    for line in format_table(report).splitlines():
        log.info("leakage: %s", line)
    return report


def score_to_file(params: Params, checkpoint: Path, out: Path, root: Path = Path(".")) -> dict[str, Any]:
    """Champion/challenger mode: score `checkpoint`, write only `out`; the look still counts in the ledger."""
    cfg = params.evaluate
    rows, split_hash, images_dir = _load_test(params, root)
    metrics = score_checkpoint(checkpoint, rows, images_dir, cfg.batch_size, cfg.calibration_bins, _device(params))
    metrics["test_ledger"] = record_in_ledger(
        root / LEDGER, split_hash, metrics, cfg.ledger_warn_after, source=f"--checkpoint {checkpoint}"
    )
    write_json(out, metrics)
    return metrics


def _write_predictions(path: Path, rows: list[dict[str, str]], scored: Scored) -> None:
    columns = ["path", "label", "predicted", "confidence", *[f"prob_{name}" for name in scored.class_names]]
    out = []
    for row, probs in zip(rows, scored.probs, strict=True):
        best = int(probs.argmax())
        record = {
            "path": row["path"],
            "label": row["label"],
            "predicted": scored.class_names[best],
            "confidence": f"{probs[best]:.6f}",
        }
        record.update({f"prob_{name}": f"{p:.6f}" for name, p in zip(scored.class_names, probs, strict=True)})
        out.append(record)
    write_csv(path, out, columns)


def _save_figure(figure: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="score this checkpoint instead (needs --out)")
    parser.add_argument("--out", type=Path, help="where the champion/challenger metrics JSON goes")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) != (args.out is None):
        parser.error("--checkpoint and --out go together")

    def work(params: Params) -> None:
        if args.checkpoint is not None:
            score_to_file(params, args.checkpoint, args.out)
        else:
            evaluate(params)

    return run_stage("evaluate", work)


if __name__ == "__main__":
    sys.exit(main())
