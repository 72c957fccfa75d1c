"""Batched class probabilities for image files, with the preprocessing a checkpoint was trained with.

Shared by the `evaluate` stage and the `predict` command. Files are decoded one batch at a time (memory stays flat
on large folders); a file that cannot be decoded yields a result carrying the reason instead of stopping the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finetuner.common.imageio import load_rgb
from finetuner.train.preprocessing import Preprocessing


@dataclass(frozen=True)
class ImageResult:
    """Probabilities over the classes for one file, or `error` saying why it could not be read."""

    path: str
    probs: np.ndarray | None
    error: str | None = None


def decode(path: str | Path, preprocessing: Preprocessing) -> tuple[np.ndarray | None, str | None]:
    """HxWx3 uint8 ready for normalisation, or (None, reason)."""
    try:
        return preprocessing.to_uint8(load_rgb(path)), None
    # Untrusted files break decoders in many ways (OSError, SyntaxError, struct.error, DecompressionBombError,
    # ValueError...); any of them means "unreadable", and one bad file must not lose the others' predictions.
    except Exception as exc:  # noqa: BLE001
        reason = str(exc) or "cannot be decoded"
        return None, f"{type(exc).__name__}: {reason}"


def _batches(items: Sequence[str | Path], size: int) -> Iterator[Sequence[str | Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.inference_mode()
def predict_files(
    model: nn.Module,
    preprocessing: Preprocessing,
    paths: Sequence[str | Path],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> list[ImageResult]:
    """Softmax probabilities for every path, in input order; unreadable files get `probs=None` and a reason."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    device = torch.device(device)
    model = model.to(device).eval()
    results: list[ImageResult] = []
    for chunk in _batches(paths, batch_size):
        decoded = [decode(path, preprocessing) for path in chunk]
        good = [array for array, _ in decoded if array is not None]
        probs = iter(_probabilities(model, preprocessing, good, device) if good else [])
        for path, (array, error) in zip(chunk, decoded, strict=True):
            results.append(ImageResult(str(path), next(probs) if array is not None else None, error))
    return results


def _probabilities(
    model: nn.Module, preprocessing: Preprocessing, arrays: list[np.ndarray], device: torch.device
) -> np.ndarray:
    batch = torch.from_numpy(np.stack(arrays)).to(device)
    logits = model(preprocessing.normalize(batch))
    # float64 softmax on the CPU so that probabilities sum to 1 to print precision whatever the device's dtype.
    return torch.softmax(logits.detach().double().cpu(), dim=1).numpy()
