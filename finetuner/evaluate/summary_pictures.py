"""Part of the `evaluate` stage: the pictures of `reports/summary.md`, drawn from what the stages wrote.

`reports/test_samples.png` (test images with predicted and true labels, the mistakes first),
`reports/training_curves.png` (each training stage's per-epoch DVCLive logs, one after another) and
`reports/separated_pairs.png` (near duplicates a naive split put in train and test, from reports/leakage.json).
A picture whose inputs are absent is skipped (the summary says "not available"), never a failure.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from finetuner import layout
from finetuner.common.imageio import load_rgb
from finetuner.common.stage import atomic_path
from finetuner.evaluate.pictures import CURVES, pairs_figure, sample_grid, training_curves

log = logging.getLogger("finetuner.evaluate")

TRAIN_STAGES = ("train_head", "train_partial", "train_full")
PICTURES = {
    "test samples": layout.TEST_SAMPLES.name,
    "training curves": layout.TRAINING_CURVES.name,
    "separated near duplicates": layout.SEPARATED_PAIRS.name,
}


def pick_samples(
    true: Sequence[str], predicted: Sequence[str], count: int, units: Sequence[str] | None = None
) -> list[int]:
    """Up to `count` indices: mistakes first (at most half the grid; one per leakage unit before a second, since
    photos of one specimen tend to fail together), then right ones taking classes in turn."""
    units = units if units is not None else [str(i) for i in range(len(true))]
    mistakes = [i for i, (t, p) in enumerate(zip(true, predicted, strict=True)) if t != p]
    rank, seen = {}, Counter[str]()
    for i in mistakes:  # the k-th mistake within its unit
        rank[i] = seen[units[i]]
        seen[units[i]] += 1
    wrong = sorted(mistakes, key=lambda i: (rank[i], i))[: count // 2]
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(true):
        if i not in wrong:
            by_class.setdefault(label, []).append(i)
    right: list[int] = []
    queues = [by_class[label] for label in sorted(by_class)]
    while len(wrong) + len(right) < count and any(queues):
        for queue in queues:
            if queue and len(wrong) + len(right) < count:
                right.append(queue.pop(0))
    return wrong + right


def read_curves(train_reports: Path) -> dict[str, dict[str, list[float]]]:
    """Per stage, the per-epoch values of every curve in CURVES from `reports/train/<stage>/plots/metrics/`."""
    stages: dict[str, dict[str, list[float]]] = {}
    for stage in TRAIN_STAGES:
        curves = {}
        for name in CURVES:
            tsv = train_reports / stage / "plots" / "metrics" / f"{name}.tsv"
            if tsv.is_file():
                with tsv.open(newline="", encoding="utf-8") as handle:
                    rows = list(csv.DictReader(handle, delimiter="\t"))
                column = name.rsplit("/", 1)[-1]
                curves[name] = [float(row[column]) for row in rows if row.get(column)]
        stages[stage] = curves
    return stages


def write_pictures(
    reports: Path,
    images_dir: Path,
    rows: Sequence[Mapping[str, str]],
    predicted: Sequence[str],
    leakage: Mapping[str, Any],
    samples: int = 16,
) -> dict[str, str | None]:
    """Draw every picture that has its inputs; returns caption -> file name relative to `reports` (None: absent)."""
    written: dict[str, str | None] = dict.fromkeys(PICTURES)
    true = [row["label"] for row in rows]
    chosen = pick_samples(true, predicted, samples, [row.get("unit", row["path"]) for row in rows])
    thumbs = [np.asarray(load_rgb(images_dir / rows[i]["path"])) for i in chosen]
    _save(
        sample_grid(thumbs, [true[i] for i in chosen], [predicted[i] for i in chosen]) if chosen else None,
        reports,
        written,
        "test samples",
    )
    curves = read_curves(reports / layout.TRAIN_REPORTS.name)
    _save(training_curves(curves) if any(curves.values()) else None, reports, written, "training curves")
    pairs = leakage.get("separated_pairs") or []
    drawn = [
        (
            np.asarray(load_rgb(images_dir / p["naive_train"])),
            np.asarray(load_rgb(images_dir / p["naive_test"])),
            f"leak-aware: {p['leak_free']}",
        )
        for p in pairs
    ]
    _save(pairs_figure(drawn) if drawn else None, reports, written, "separated near duplicates")
    return written


def _save(figure: Figure | None, reports: Path, written: dict[str, str | None], caption: str) -> None:
    """Save the figure; without one, a small placeholder saying so (every picture is a declared DVC output)."""
    if figure is not None:
        written[caption] = PICTURES[caption]
    else:
        figure = Figure(figsize=(4, 0.6))
        figure.text(0.5, 0.5, f"{caption}: not available in this run", ha="center", va="center", fontsize=9)
    with atomic_path(reports / PICTURES[caption]) as tmp:
        figure.savefig(tmp, format="png", dpi=72)
