"""The one choice of device, for training, dedup embeddings, evaluate and predict (params `*.device`: auto|cpu|cuda)."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is refused rather than silently run on the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device `cuda` was asked for but no CUDA device is available")
    return torch.device(device)
