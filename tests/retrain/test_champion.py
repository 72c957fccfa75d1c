"""The promotion rule of scheduled retraining, and the champion's card."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finetuner.retrain.champion import KEPT, PROMOTED, decide, metric_value, render_card

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
gains = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)


def test_first_run_promotes():
    decision = decide(None, 0.3, 0.01, "macro_f1")
    assert decision.promote and decision.decision == PROMOTED
    assert "no champion" in decision.reason


def test_gain_exactly_min_gain_promotes_despite_float_rounding():
    assert decide(0.70, 0.71, 0.01, "macro_f1").promote  # 0.71 - 0.70 < 0.01 in binary floats


def test_gain_below_min_gain_keeps():
    decision = decide(0.70, 0.705, 0.01, "macro_f1")
    assert decision.decision == KEPT
    assert "0.7050" in decision.reason and "0.7000" in decision.reason


def test_tie_never_promotes_even_with_zero_min_gain():
    assert not decide(0.5, 0.5, 0.0, "accuracy").promote


def test_worse_challenger_keeps():
    assert not decide(0.9, 0.8, 0.0, "accuracy").promote


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_scores_refused(bad):
    with pytest.raises(ValueError, match="challenger"):
        decide(0.5, bad, 0.0, "macro_f1")
    with pytest.raises(ValueError, match="champion"):
        decide(bad, 0.5, 0.0, "macro_f1")


def test_negative_min_gain_refused():
    with pytest.raises(ValueError, match="min_gain"):
        decide(0.5, 0.9, -0.1, "macro_f1")


@given(champion=scores, challenger=scores, min_gain=gains)
def test_promotes_exactly_when_gain_is_positive_and_large_enough(champion, challenger, min_gain):
    promoted = decide(champion, challenger, min_gain, "macro_f1").promote
    gain = challenger - champion
    if gain > 1e-9 and gain >= min_gain + 1e-9:
        assert promoted
    if gain <= 0 or gain < min_gain - 1e-9:
        assert not promoted


@given(champion=scores, challenger=scores, low=gains, extra=gains)
def test_raising_min_gain_never_turns_keep_into_promote(champion, challenger, low, extra):
    if decide(champion, challenger, low, "m").decision == KEPT:
        assert decide(champion, challenger, low + extra, "m").decision == KEPT


def test_metric_value_reads_number_and_names_missing_key():
    assert metric_value({"macro_f1": 0.5, "accuracy": 1}, "accuracy", "x.json") == 1.0
    with pytest.raises(ValueError, match=r"x\.json.*'macro_f1'.*accuracy"):
        metric_value({"accuracy": 0.5}, "macro_f1", "x.json")
    with pytest.raises(ValueError, match="not a number"):
        metric_value({"macro_f1": "high"}, "macro_f1", "x.json")


def test_card_names_origin_scores_and_classes():
    record = {
        "time": "2026-01-01T03:00:00+00:00",
        "data_version": "abc123.dir",
        "metric": "macro_f1",
        "challenger_score": 0.8123,
        "champion_score": 0.75,
        "reason": "better",
        "params": {"stages": {"head": {"epochs": 3}}},
    }
    card = render_card(record, {"arch": "resnet18", "stage": "train_partial", "class_to_idx": {"dog": 1, "cat": 0}})
    assert "abc123.dir" in card and "0.8123" in card and "0.7500" in card
    assert "resnet18" in card and "train_partial" in card
    assert "cat, dog" in card
    assert '"epochs": 3' in card
    first = render_card({**record, "champion_score": None}, None)
    assert "first champion" in first and "## Checkpoint" not in first
