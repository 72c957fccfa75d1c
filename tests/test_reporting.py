"""Markdown rendering of the summary and model card from plain dicts."""
from __future__ import annotations

from finetuner.reporting import NOT_AVAILABLE, render_model_card, render_summary, table

TEST = {"n_test": 4, "accuracy": 0.75, "macro_f1": 0.7, "balanced_accuracy": 0.72, "ece": 0.1,
        "checkpoint": {"stage": "partial", "epoch": 3},
        "per_class": {"a|b": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}},
        "test_ledger": {"warning": "7 distinct models have been scored"}}


def test_missing_inputs_are_said_not_available() -> None:
    text = render_summary(None, None, None, [], TEST, {"near-duplicate review page": None})
    assert text.count(NOT_AVAILABLE) == 5  # manifest, dedup, split, training, dedup.html link
    assert "0.7500" in text and "partial" in text
    assert "> **Warning:** 7 distinct models" in text


def test_sections_come_in_reviewer_order_and_link() -> None:
    text = render_summary(
        {"files": 10, "usable": 9, "quarantined": 1, "quarantine_reasons": {"truncated": 1}},
        {"near-duplicate pairs": 3},
        {"leak_check": True, "leak_bridges": 0, "class_counts": {"train": {"a": 5}, "test": {"a": 2}}},
        [{"stage": "train_head", "metric": "macro_f1", "value": 0.6, "epoch": 4, "source": "x"}],
        TEST, {"confusion matrix": "confusion_matrix.png", "near-duplicate review page": "dedup.html"},
    )
    order = [text.index(h) for h in ("## Data", "## Split", "## Training", "## Held-out test", "## Links")]
    assert order == sorted(order)
    assert "![confusion matrix](confusion_matrix.png)" in text
    assert "[dedup.html](dedup.html)" in text
    assert "| truncated | 1 |" in text
    assert "| **total** | 5 | 2 |" in text


def test_pipes_in_cells_cannot_break_a_table() -> None:
    lines = table(["class", "n"], [["a|b", 1]]).splitlines()
    assert lines[2] == "| a\\|b | 1 |"


def test_model_card_lists_classes_in_index_order() -> None:
    checkpoint = {"arch": "resnet18", "class_to_idx": {"zebra": 0, "ant": 1}, "stage": "head", "epoch": 1,
                  "metric": "macro_f1", "value": 0.5, "preprocessing": {}}
    card = render_model_card(checkpoint, "IMAGENET1K_V1", "abc123.dir", {"seed": 0}, TEST)
    assert card.index("| 0 | zebra |") < card.index("| 1 | ant |")
    assert "IMAGENET1K_V1" in card and "`abc123.dir`" in card and "| accuracy | 0.7500 |" in card
