"""Tiny generated datasets for the training tests: coloured 32 px images, a few per class, in the split layout."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from finetuner.config import Params, parse_params

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def make_images(root: Path, per_class: int = 6, size: int = 32, seed: int = 0) -> list[dict[str, str]]:
    """Write noisy single-colour images under root/data/raw/images/<label>/; return split rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, colour in COLOURS.items():
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            relative = f"{label}/img_{i}.png"
            path = root / "data" / "raw" / "images" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            rows.append({"path": relative, "label": label, "group": f"{label}{i}", "unit": f"{label}{i}"})
    return rows


def make_splits(root: Path, per_class: int = 6) -> None:
    rows = make_images(root, per_class)
    write_splits(
        root,
        {
            "train": [r for r in rows if int(r["path"][-5]) % 3 != 0],
            "val": [r for r in rows if int(r["path"][-5]) % 3 == 0],
        },
    )


def write_splits(root: Path, splits: dict[str, list[dict[str, str]]]) -> None:
    """root/data/splits/<name>.csv for each split, in the pipeline's columns."""
    for name, chosen in splits.items():
        path = root / "data" / "splits" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "unit"])
            writer.writeheader()
            writer.writerows(chosen)


def tiny_params(**overrides: Any) -> Params:
    """Params for a few-step CPU run on the tiny data; overrides are dotted keys, e.g. {'stages.head.epochs': 2}."""
    raw: dict[str, Any] = yaml.safe_load(
        """
seed: 0
data: {raw_dir: data/raw, image_size: 32, workers: 1}
model: {arch: resnet18, weights: null}
train: {batch_size: 4, weight_decay: 1.0e-4, clip_grad_norm: 1.0, bn_policy: frozen, device: cpu,
        max_steps_per_epoch: 2}
stages:
  head:    {epochs: 2, train: [head], lr: {head: 1.0e-2}}
  partial: {epochs: 2, train: [layer4, head], lr: {layer4: 1.0e-3, head: 1.0e-2}, warmup_epochs: 1}
  full:    {epochs: 0, train: [all], lr: {head: 3.0e-4, layer4: 3.0e-5}, lr_decay: 0.33, warmup_epochs: 1}
"""
    )
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return parse_params(raw)


def kill_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next training stage die (KeyboardInterrupt) right after it wrote its first resume.pt."""
    from finetuner.train import stage_files as train_io

    save = train_io.save_torch

    def killed(path: Path, obj: object) -> None:
        save(path, obj)
        if path.name == "resume.pt":
            monkeypatch.setattr(train_io, "save_torch", save)
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train_io, "save_torch", killed)
