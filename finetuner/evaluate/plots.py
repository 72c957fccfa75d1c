"""Figures for the test report: the confusion matrix and the reliability diagram.

Built on `matplotlib.figure.Figure` directly (never pyplot), so no GUI backend or global state is involved; the
caller saves the returned figure (the stage writes it atomically).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from finetuner.evaluate.metrics import ReliabilityBin


def confusion_figure(counts: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Two panels: raw counts, and rows normalised to 1 (recall on the diagonal), classes named on both axes."""
    counts = np.asarray(counts, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    k = len(class_names)
    side = max(4.0, 0.55 * k + 2.5)
    figure = Figure(figsize=(2 * side + 1, side), layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, values, title, fmt in (
        (panels[0], counts, "counts", "{:d}"),
        (panels[1], normalised, "row-normalised (recall)", "{:.2f}"),
    ):
        image = axes.imshow(values, cmap="Blues", vmin=0, vmax=max(values.max(), 1e-9))
        axes.set_title(title)
        axes.set_xticks(range(k), labels=list(class_names), rotation=45, ha="right")
        axes.set_yticks(range(k), labels=list(class_names))
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        if k <= 30:  # past that the numbers are unreadable; the colour still shows the structure
            threshold = values.max() / 2
            for (row, col), value in np.ndenumerate(values):
                axes.text(
                    col,
                    row,
                    fmt.format(value),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value > threshold else "black",
                )
        figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def reliability_figure(bins: Sequence[ReliabilityBin], ece: float) -> Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with the bin counts below."""
    figure = Figure(figsize=(5, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = bins[0].upper - bins[0].lower if bins else 0.1
    centres = [(b.lower + b.upper) / 2 for b in bins]
    filled = [b for b in bins if b.count]
    top.bar(
        [(b.lower + b.upper) / 2 for b in filled],
        [b.accuracy for b in filled],
        width=width * 0.95,
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    top.bar(
        [(b.lower + b.upper) / 2 for b in filled],
        [b.confidence - b.accuracy for b in filled],
        bottom=[b.accuracy for b in filled],
        width=width * 0.95,
        color="tab:red",
        alpha=0.3,
        label="gap",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"reliability (ECE = {ece:.3f})")
    top.legend(loc="upper left")
    bottom.bar(centres, [b.count for b in bins], width=width * 0.95, color="grey")
    bottom.set_xlabel("confidence of the predicted class")
    bottom.set_ylabel("images")
    return figure
