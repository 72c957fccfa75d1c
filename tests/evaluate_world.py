"""A tiny world for the evaluate/predict tests: coloured 32-40 px images in class folders and resnet18 checkpoints.

Not a test module; imported by tests/test_evaluate.py, tests/test_predict.py and tests/test_ledger.py.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from finetuner.checkpoint import build_classifier
from finetuner.preprocessing import Preprocessing

CLASSES = ("cat", "dog", "fox")
COLOURS = {"cat": (220, 30, 30), "dog": (30, 200, 40), "fox": (40, 40, 220)}


def make_image(path: Path, label: str, seed: int, size: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[label], dtype=np.int16)
    pixels = np.clip(base + rng.integers(-25, 26, size=(size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_checkpoint(path: Path, seed: int = 0, classes: tuple[str, ...] = CLASSES, **extra: object) -> Path:
    """A pipeline checkpoint with a randomly initialised resnet18 (the seed decides the weights)."""
    torch.manual_seed(seed)
    model = build_classifier("resnet18", len(classes))
    checkpoint = {
        "state_dict": model.state_dict(), "arch": "resnet18",
        "class_to_idx": {name: i for i, name in enumerate(classes)},
        "stage": "head", "epoch": 2, "metric": "macro_f1", "value": 0.5,
        "preprocessing": Preprocessing(resize_size=32, crop_size=32).to_dict(), **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def make_split(root: Path, per_class: int = 3, raw_dir: str = "data/raw") -> list[dict[str, str]]:
    """Images under <root>/<raw_dir>/images/<label>/ and data/splits/{train,val,test}.csv over them."""
    rows: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "test": []}
    for c, label in enumerate(CLASSES):
        for split_index, split in enumerate(rows):
            for i in range(per_class):
                rel = f"{label}/{split}_{i}.png"
                make_image(root / raw_dir / "images" / rel, label, seed=100 * c + 10 * split_index + i)
                rows[split].append({"path": rel, "label": label, "group": f"{label}{split}{i}",
                                    "unit": f"u_{label}_{split}_{i}"})
    for split, split_rows in rows.items():
        out = root / "data/splits" / f"{split}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "unit"])
            writer.writeheader()
            writer.writerows(split_rows)
    return rows["test"]
