"""finetuner.evaluate.metrics against scikit-learn on known predictions, and ECE against a hand computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support

from finetuner.evaluate.metrics import (
    classification_metrics,
    confusion_counts,
    expected_calibration_error,
    reliability_bins,
    top_confidence,
)

NAMES = ["a", "b", "c", "d"]


def _sklearn(y_true: list[int], y_pred: list[int]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision/recall warnings; both sides count them as 0
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=range(len(NAMES)), zero_division=0
        )
        return {
            "accuracy": accuracy_score(y_true, y_pred),
            "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "per_class": {
                n: {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
                for i, n in enumerate(NAMES)
            },
        }


def _assert_same(ours: dict, theirs: dict) -> None:
    for key in ("accuracy", "macro_f1", "balanced_accuracy"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
    for name in NAMES:
        for key, value in theirs["per_class"][name].items():
            assert ours["per_class"][name][key] == pytest.approx(value, abs=1e-12), (name, key)


def test_known_predictions_match_sklearn_and_hand_values() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0, 0]
    ours = classification_metrics(y_true, y_pred, NAMES)
    _assert_same(ours, _sklearn(y_true, y_pred))
    assert ours["accuracy"] == pytest.approx(0.6)
    assert ours["n_test"] == 10
    # class d is never predicted correctly and has one sample: precision 0 (no predictions), recall 0
    assert ours["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # balanced accuracy = mean recall = (2/3 + 1/2 + 3/4 + 0) / 4
    assert ours["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 0.75 + 0) / 4)


def test_class_absent_from_truth_and_predictions_does_not_drag_macro_f1() -> None:
    y_true, y_pred = [0, 1, 1, 2], [0, 1, 2, 2]  # class d (3) appears nowhere
    ours = classification_metrics(y_true, y_pred, NAMES)
    _assert_same(ours, _sklearn(y_true, y_pred))
    assert ours["per_class"]["d"]["support"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_random_predictions_match_sklearn(pairs: list[tuple[int, int]]) -> None:
    y_true = [t for t, _ in pairs]
    y_pred = [p for _, p in pairs]
    _assert_same(classification_metrics(y_true, y_pred, NAMES), _sklearn(y_true, y_pred))


def test_confusion_counts_rows_are_truth() -> None:
    counts = confusion_counts([0, 0, 1], [1, 1, 1], 2)
    assert counts.tolist() == [[0, 2], [0, 1]]
    with pytest.raises(ValueError, match="outside"):
        confusion_counts([0, 5], [0, 0], 2)


def test_ece_hand_computed() -> None:
    # 4 bins of width 0.25. Confidences and correctness:
    #   0.30 wrong, 0.45 right          -> bin 2 (0.25, 0.5]: acc 0.5,  conf 0.375, gap 0.125, weight 2/6
    #   0.75 right (edge: right-closed)  -> bin 3 (0.5, 0.75]: acc 1.0,  conf 0.75,  gap 0.25,  weight 1/6
    #   0.90 right, 0.95 wrong, 1.0 right -> bin 4 (0.75, 1]: acc 2/3, conf 0.95,  gap 0.2833, weight 3/6
    confidence = [0.30, 0.45, 0.75, 0.90, 0.95, 1.00]
    correct = [False, True, True, True, False, True]
    bins = reliability_bins(confidence, correct, 4)
    assert [b.count for b in bins] == [0, 2, 1, 3]
    expected = 2 / 6 * 0.125 + 1 / 6 * 0.25 + 3 / 6 * abs(2 / 3 - 0.95)
    assert expected_calibration_error(bins) == pytest.approx(expected)


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    bins = reliability_bins([1.0, 1.0, 0.5, 0.5], [True, True, True, False], 2)
    assert expected_calibration_error(bins) == pytest.approx(0.0)


def test_top_confidence() -> None:
    predicted, confidence = top_confidence(np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert predicted.tolist() == [1, 0]
    assert confidence.tolist() == pytest.approx([0.8, 0.6])
