"""Loading checkpoints safely and rebuilding the fine-tuned classifier from one.

Invariant shared by training, evaluate and predict: a fine-tuned model has exactly the architecture of
`torchvision.models.get_model(arch, weights=None, num_classes=len(class_to_idx))`, so its `state_dict` loads into
that. Loading always uses `weights_only=True`; a file that would need to run code to load is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

REQUIRED_KEYS = ("state_dict", "arch", "class_to_idx", "stage", "epoch", "metric", "value", "preprocessing")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True, turning failures into CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: loading it would run code or build arbitrary Python objects "
            f"(only tensors and plain containers are accepted; re-save it as a state dict). Detail: {exc}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from None


def load_pipeline_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by this pipeline's training stages, with every key the contract names."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a finetuner checkpoint, missing keys {missing}")
    return checkpoint


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """An untrained model of the fine-tuned architecture (head sized to the classes)."""
    from torchvision.models import get_model

    return get_model(arch, weights=None, num_classes=num_classes)


def model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the classifier a pipeline checkpoint describes, weights loaded, in eval mode."""
    model = build_classifier(checkpoint["arch"], len(checkpoint["class_to_idx"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
