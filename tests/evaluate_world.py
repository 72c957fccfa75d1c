"""A tiny world for the evaluate/predict tests: coloured 32-40 px images in class folders and resnet18 checkpoints.

Not a test module; imported by tests/tasks/test_evaluate.py, tests/cli/test_predict.py and
tests/evaluate/test_ledger.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from finetuner.train.checkpoint import build_classifier
from finetuner.train.preprocessing import Preprocessing

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
        "state_dict": model.state_dict(),
        "arch": "resnet18",
        "class_to_idx": {name: i for i, name in enumerate(classes)},
        "stage": "head",
        "epoch": 2,
        "metric": "macro_f1",
        "value": 0.5,
        "preprocessing": Preprocessing(resize_size=32, crop_size=32).to_dict(),
        **extra,
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
                rows[split].append(
                    {"path": rel, "label": label, "group": f"{label}{split}{i}", "unit": f"u_{label}_{split}_{i}"}
                )
    for split, split_rows in rows.items():
        out = root / "data/splits" / f"{split}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "unit"])
            writer.writeheader()
            writer.writerows(split_rows)
    return rows["test"]


def fit_head(checkpoint_path: Path, train_rows: list[dict[str, str]], images_dir: Path, steps: int = 100) -> None:
    """Fit only the final layer on the frozen random backbone's features, so the model really learns the classes.

    The features go through the checkpoint's own preprocessing, like evaluate and predict do: a mismatch there
    would show up as lost accuracy.
    """
    from finetuner.common.imageio import load_rgb

    checkpoint = torch.load(checkpoint_path, weights_only=True)
    model = build_classifier(checkpoint["arch"], len(checkpoint["class_to_idx"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    prep = Preprocessing.from_dict(checkpoint["preprocessing"])
    batch = torch.from_numpy(np.stack([prep.to_uint8(load_rgb(images_dir / r["path"])) for r in train_rows]))
    head, model.fc = model.fc, torch.nn.Identity()
    with torch.no_grad():
        features = model(prep.normalize(batch))
    targets = torch.tensor([checkpoint["class_to_idx"][r["label"]] for r in train_rows])
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(features), targets).backward()
        optimizer.step()
    model.fc = head
    checkpoint["state_dict"] = model.state_dict()
    torch.save(checkpoint, checkpoint_path)


def write_params(root: Path, **evaluate: object) -> None:
    import yaml

    (root / "params.yaml").write_text(yaml.safe_dump({"evaluate": {"device": "cpu", **evaluate}}))


class RunsCode:
    """Unpickling this runs os.mkdir(marker): the kind of checkpoint that must be refused."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        import os

        return (os.mkdir, (self.marker,))
