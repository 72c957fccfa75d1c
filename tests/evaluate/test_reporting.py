"""Markdown rendering of the summary and model card from plain dicts shaped like the stages' real reports."""

from __future__ import annotations

import copy

from finetuner.evaluate.reporting import NOT_AVAILABLE, render_model_card, render_summary, table
from finetuner.evaluate.summary_sections import dedup_section

TEST = {
    "n_test": 4,
    "accuracy": 0.75,
    "macro_f1": 0.7,
    "balanced_accuracy": 0.72,
    "ece": 0.1,
    "checkpoint": {"stage": "train_partial", "epoch": 3, "metric": "macro_f1", "value": 0.8},
    "per_class": {"a|b": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}},
    "test_ledger": {"warning": "7 distinct models have been scored"},
}

# reports/ingest.json, dedup.json and split.json as the ingest, dedup and split stages write them (trimmed).
INGEST = {
    "n_files": 12,
    "by_status": {"ok": 9, "quarantined": 3},
    "by_class": {"cat": {"ok": 6, "quarantined": 1}, "dog": {"ok": 3, "quarantined": 2}},
    "by_reason": {"empty file": 1, "truncated": 2},
    "by_group_source": {"metadata": 9},
    "n_groups": 5,
    "classes_too_small": [
        {
            "label": "dog",
            "usable": 3,
            "groups": 1,
            "problems": ["only 1 group(s) for 3 splits: whole groups go to one split"],
        }
    ],
    "quarantined": [{"path": "cat/x.jpg", "reason": "empty file", "detail": "0 bytes"}],
    "metadata": {
        "file": "data/raw/metadata.csv",
        "rows": 12,
        "extra_columns": [],
        "problems": [
            {"line": 3, "path": "cat/y.jpg", "problem": "empty group"},
            {"line": 5, "path": "dog/z.jpg", "problem": "no such file"},
        ],
    },
}
DEDUP = {
    "settings": {"methods": ["phash", "dhash"], "max_distance": 8, "max_cluster_size": 50},
    "counts": {
        "images": 9,
        "distinct_contents": 8,
        "newly_hashed": 8,
        "pairs": 6,
        "pairs_by_method": {"exact": 1, "phash+dhash": 5},
        "pairs_cut_by_size_guard": 2,
        "cross_group_pairs": 4,
        "clusters": 3,
        "units": 4,
        "unreadable": 0,
    },
    "clusters_by_size": {"2": 2, "3": 1},
    "units_by_size": {"1": 2, "3": 1, "4": 1},
    "largest_cluster_size": 3,
    "cross_group_pairs": [],
    "cut_pairs": [],
}
SPLIT = {
    "images": {"usable": 9, "placed": 8, "held_out": 1, "sticky": 0, "new": 9},
    "per_split": {
        "train": {"images": 5, "units": 2, "fraction": 0.625, "target": 0.7},
        "val": {"images": 2, "units": 1, "fraction": 0.25, "target": 0.15},
        "test": {"images": 1, "units": 1, "fraction": 0.125, "target": 0.15},
    },
    "per_class": {
        "cat": {"images": 6, "units": 3, "train": {"images": 4}, "val": {"images": 1}, "test": {"images": 1}},
        "dog": {"images": 2, "units": 1, "train": {"images": 1}, "val": {"images": 1}, "test": {"images": 0}},
    },
    "max_class_fraction_error": 0.1,
    "leak_bridges": {"count": 1, "images": [{"path": "cat/b.jpg", "unit": "u-1", "reason": "bridge"}]},
    "warnings": ["class 'dog': its largest unit holds 50% of its images"],
    "leak_check": {"passed": True, "problems": []},
    "leak_audit": {
        "test_images": 8,
        "test_images_with_same_unit_in_train": 6,
        "test_images_with_same_group_in_train": 5,
        "test_images_with_near_duplicate_in_train": 2,
        "share_of_test_leaking": 0.75,
        "split": "naive per-image random split (same fractions and seed)",
    },
}
TRAINING = [
    {
        "stage": "train_head",
        "metric": "macro_f1",
        "value": 0.6,
        "epoch": 4,
        "source": "models/train_head/stage_best.pt",
    },
    {"stage": "train_partial", "value": None},
    {"stage": "train_full", "skipped": "epochs: 0", "source": "passes through models/train_head/best.pt"},
]
LINKS = {
    "confusion matrix": "confusion_matrix.png",
    "reliability diagram": "reliability.png",
    "near-duplicate review page": "dedup.html",
}


def _full() -> str:
    return render_summary(INGEST, DEDUP, SPLIT, TRAINING, TEST, LINKS)


def test_data_section_is_specific() -> None:
    text = _full()
    assert "- Files: 12; usable: 9; quarantined: 3 (truncated: 2, empty file: 1)" in text
    assert "- Declared groups: 5 (usable images by group source: metadata: 9)" in text
    assert "- Metadata problems: 2" in text
    assert "- Classes too small: 1\n  - dog: only 1 group(s) for 3 splits" in text
    assert "| cat | 6 | 1 |" in text and "| dog | 3 | 2 |" in text
    assert "by_class" not in text and "(count)" not in text  # no generic flattening of the report


def test_near_duplicate_section_is_specific() -> None:
    text = _full()
    assert "- Pairs: 6 (phash+dhash: 5, exact: 1) among 9 usable images" in text
    assert "- Clusters: 3; largest: 3 images" in text
    assert "- Leakage units (declared groups joined by near-duplicate pairs): 4; largest: 4 images" in text
    assert (
        "- Pairs joining different declared groups: 4 (their groups become one unit; see [dedup.html](dedup.html))"
        in text
    )
    assert "- Pairs cut by the size guard (dedup.max_cluster_size = 50): 2" in text
    assert "settings" not in text and "units_by_size" not in text


def test_near_duplicate_section_names_the_other_guards_when_they_cut() -> None:
    assert "unit share guard" not in _full() and "design guard" not in _full()  # nothing cut, no line
    dedup = copy.deepcopy(DEDUP)
    dedup["settings"]["max_unit_share"] = 0.3
    dedup["counts"] |= {"pairs_cut_by_unit_guard": 3, "pairs_cut_by_design_guard": 7}
    text = "\n".join(dedup_section(dedup, "dedup.html"))
    assert "- Pairs cut by the unit share guard (dedup.max_unit_share = 0.30): 3" in text
    assert "cut by the design guard" in text and "): 7; see [dedup.html](dedup.html)" in text


def test_near_duplicate_section_repeats_the_runs_warnings() -> None:
    assert not [line for line in dedup_section(DEDUP, None) if "Warning" in line]  # none in the report, none here
    dedup = copy.deepcopy(DEDUP) | {"warnings": ["30 of 30 images are under 64 px on their short side"]}
    assert "- Warning: 30 of 30 images are under 64 px on their short side" in dedup_section(dedup, None)


def test_split_section_table_leaks_and_audit() -> None:
    text = _full()
    assert "| split | images | units | fraction (target) | cat | dog |" in text
    assert "| train | 5 | 2 | 0.625 (0.70) | 4 | 1 |" in text
    assert "| test | 1 | 1 | 0.125 (0.15) | 1 | 0 |" in text
    assert "| **all** | 8 | 4 |  | 6 | 2 |" in text
    assert "- Largest gap between a class's fraction and its target: 0.100" in text
    assert "(no group or near-duplicate cluster in two splits): passed" in text
    assert "- Leak bridges (images held out of every split to keep units apart): 1" in text
    assert "would have leaked 6 of the 8 test images it draws (75%)" in text
    assert "(same declared group: 5; a near duplicate: 2)" in text
    assert "- Warning: class 'dog': its largest unit holds 50% of its images" in text


def test_a_failed_leak_check_is_loud_and_lists_its_problems() -> None:
    split = copy.deepcopy(SPLIT)
    split["leak_check"] = {"passed": False, "problems": ["2 unit(s) in several splits, e.g. ['u-1', 'u-2']"]}
    text = render_summary(INGEST, DEDUP, split, TRAINING, TEST, LINKS)
    assert "two splits): **FAILED**\n  - 2 unit(s) in several splits" in text


def test_training_and_test_sections() -> None:
    text = _full()
    assert "| train_head | macro_f1 | 0.6000 | 4 | models/train_head/stage_best.pt |" in text
    assert "| train_partial |  | not available |  |  |" in text
    assert "| train_full |  | skipped (epochs: 0) |  | passes through models/train_head/best.pt |" in text
    assert "Model: best checkpoint from stage `train_partial`, epoch 3 (validation macro_f1 0.8000)." in text
    assert "| accuracy | 0.7500 |" in text and "| a\\|b | 1.0000 | 0.5000 | 0.6670 | 2 |" in text
    assert "![confusion matrix](confusion_matrix.png)" in text and "![reliability diagram](reliability.png)" in text
    assert "expected calibration error (ECE) 0.1000" in text
    assert "> **Warning:** 7 distinct models" in text
    assert "`dvc plots show`" in text and "[dedup.html](dedup.html)" in text


def test_sections_come_in_reviewer_order() -> None:
    text = _full()
    headings = ("## Data", "## Near duplicates", "## Split", "## Training", "## Held-out test", "## Links")
    order = [text.index(h) for h in headings]
    assert order == sorted(order)


def test_missing_inputs_are_said_not_available() -> None:
    text = render_summary(None, None, None, [], TEST, {"near-duplicate review page": None})
    for line in (
        "Ingest report (reports/ingest.json): not available.",
        "Near-duplicate report (reports/dedup.json): not available.",
        "Split report (reports/split.json): not available.",
        "Training records: not available.",
        "- near-duplicate review page: not available",
    ):
        assert line in text
    assert "0.7500" in text and "train_partial" in text
    assert "![" not in text  # no picture links without their files


def test_empty_or_partial_reports_do_not_crash() -> None:
    text = render_summary({}, {}, {}, TRAINING, TEST, LINKS)
    assert "- Files: not available; usable: not available" in text
    assert "- Pairs: not available" in text
    assert "Images per split: not available." in text
    assert "two splits): not available" in text and "Leak audit (naive per-image random split): not available" in text
    partial = {"per_split": {"train": {"images": 3}}, "leak_check": {"passed": True}}
    text = render_summary({"n_files": 3, "by_class": {"cat": {}}}, {"counts": {"pairs": 0}}, partial, [], None, {})
    assert "| train | 3 | not available | not available (not available) |" in text
    assert "| cat | not available | not available |" in text and "Test metrics: not available." in text


def test_pipes_in_cells_cannot_break_a_table() -> None:
    lines = table(["class", "n"], [["a|b", 1]]).splitlines()
    assert lines[2] == "| a\\|b | 1 |"


def test_model_card_lists_classes_in_index_order() -> None:
    checkpoint = {
        "arch": "resnet18",
        "class_to_idx": {"zebra": 0, "ant": 1},
        "stage": "head",
        "epoch": 1,
        "metric": "macro_f1",
        "value": 0.5,
        "preprocessing": {},
    }
    card = render_model_card(checkpoint, "IMAGENET1K_V1", "abc123.dir", {"seed": 0}, TEST)
    assert card.index("| 0 | zebra |") < card.index("| 1 | ant |")
    assert "IMAGENET1K_V1" in card and "`abc123.dir`" in card and "| accuracy | 0.7500 |" in card
    assert NOT_AVAILABLE not in card
