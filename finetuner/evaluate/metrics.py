"""Classification and calibration metrics from integer labels and class probabilities (pure numpy).

Used by the `evaluate` stage and by champion/challenger scoring. Conventions follow scikit-learn so figures agree
with what practitioners compute by hand: a class with no predictions has precision 0 (not NaN); `macro_f1` averages
over the classes that occur in either the truth or the predictions; `balanced_accuracy` averages recall over the
classes that occur in the truth. Expected calibration error uses equal-width confidence bins `(i/M, (i+1)/M]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def confusion_counts(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length ({true.size} vs {pred.size})")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division default: an undefined ratio counts as 0, never NaN.
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, balanced accuracy and per-class precision/recall/F1/support, keyed by class name."""
    counts = confusion_counts(y_true, y_pred, len(class_names))
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no predictions to score")
    true_positive = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    precision = _safe_divide(true_positive, predicted.astype(np.float64))
    recall = _safe_divide(true_positive, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    seen = (support > 0) | (predicted > 0)
    present = support > 0
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(true_positive.sum() / n),
        "macro_f1": float(f1[seen].mean()),
        "balanced_accuracy": float(recall[present].mean()),
        "per_class": per_class,
        "n_test": n,
    }


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-width confidence bin: its edges, how many predictions fell in it, their accuracy and confidence."""

    lower: float
    upper: float
    count: int
    accuracy: float
    confidence: float


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int) -> list[ReliabilityBin]:
    """Group predictions by top-class confidence into `n_bins` bins `(i/M, (i+1)/M]` (0 goes to the first bin)."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape:
        raise ValueError("confidence and correct differ in length")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidences must lie in [0, 1]")
    # ceil(conf * M) - 1 puts an exact edge i/M into the bin below it, i.e. right-closed bins.
    index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        mask = index == i
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                lower=i / n_bins,
                upper=(i + 1) / n_bins,
                count=count,
                accuracy=float(hit[mask].mean()) if count else 0.0,
                confidence=float(conf[mask].mean()) if count else 0.0,
            )
        )
    return bins


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Sum over bins of (share of predictions) x |accuracy - mean confidence|."""
    total = sum(b.count for b in bins)
    if total == 0:
        raise ValueError("no predictions to calibrate")
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins))


def top_confidence(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class index, its probability) for each row of an N x K probability matrix."""
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs.argmax(axis=1)
    return predicted, probs[np.arange(len(probs)), predicted]
