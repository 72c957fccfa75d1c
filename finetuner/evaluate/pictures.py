"""Figures for the summary page: sample test images with their labels, training curves, separated near duplicates.

Built on `matplotlib.figure.Figure` directly (never pyplot), like `evaluate.plots`; inputs are plain arrays and
lists, the caller (`finetuner/evaluate/summary_pictures.py`) reads the files and saves the figures atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

RIGHT, WRONG = "tab:green", "tab:red"
#: per-stage curve name -> (panel, label); panels: 0 = validation macro F1, 1 = losses
CURVES = {
    "val/macro_f1": (0, "val macro F1"),
    "val/accuracy": (0, "val accuracy"),
    "train/loss": (1, "train loss"),
    "val/loss": (1, "val loss"),
}


def sample_grid(
    images: Sequence[np.ndarray], true: Sequence[str], predicted: Sequence[str], columns: int = 8
) -> Figure:
    """Each image titled `predicted` (and `true` when wrong), green when right and red when wrong."""
    rows = max(1, math.ceil(len(images) / columns))
    figure = Figure(figsize=(1.5 * columns, 1.75 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, label, guess in zip(axes, images, true, predicted, strict=False):
        ax.imshow(image, interpolation="nearest")
        right = label == guess
        ax.set_title(guess if right else f"{guess}\n(true: {label})", fontsize=8, color=RIGHT if right else WRONG)
    figure.suptitle("held-out test images: predicted label (green right, red wrong)", fontsize=10)
    return figure


def training_curves(stages: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Validation macro F1 (left) and losses (right) per epoch, the stages one after another, boundaries marked."""
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    panels = figure.subplots(1, 2)
    offset = 0
    for stage, curves in stages.items():
        length = max((len(values) for values in curves.values()), default=0)
        if not length:
            continue
        for name, (panel, label) in CURVES.items():
            values = curves.get(name)
            if values:
                epochs = np.arange(offset + 1, offset + len(values) + 1)
                panels[panel].plot(epochs, values, marker="o", markersize=3, label=f"{stage}: {label}")
        for ax in panels:
            ax.axvline(offset + 0.5, color="grey", linewidth=0.8, linestyle=":")
        panels[0].text(offset + 0.6, 0.02, stage, fontsize=8, color="grey", transform=panels[0].get_xaxis_transform())
        offset += length
    panels[0].set_ylim(0, 1.02)
    panels[0].set_title("validation per epoch")
    panels[1].set_title("loss per epoch")
    for ax in panels:
        ax.set_xlabel("epoch (all training stages in order)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    return figure


def pairs_figure(pairs: Sequence[tuple[np.ndarray, np.ndarray, str]]) -> Figure:
    """Near-duplicate pairs side by side, one pair per column, each captioned (where each split put them)."""
    columns = max(1, len(pairs))
    figure = Figure(figsize=(2.3 * columns, 3.2), layout="constrained")
    axes = np.asarray(figure.subplots(2, columns)).reshape(2, columns)
    for column, (first, second, caption) in enumerate(pairs):
        for row, image in enumerate((first, second)):
            axes[row, column].imshow(image, interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        axes[0, column].set_title("naive: train", fontsize=8, color=WRONG)
        axes[1, column].set_title("naive: test", fontsize=8, color=WRONG)
        axes[1, column].set_xlabel(caption, fontsize=8)
    figure.suptitle(
        "near duplicates a per-image split put in train and test; the leak-aware split kept each pair together",
        fontsize=9,
    )
    return figure
