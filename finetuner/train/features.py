"""How the training stages feed the engine: full images through the model, or cached backbone features to the head.

Head-only training on a frozen, eval-mode backbone without augmentation is exactly training the head on fixed
features, so `feature_trainee` runs the backbone once over both splits (capturing the head's input with a forward
hook) and lets the engine train the head alone on those features: same result, a fraction of the time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from finetuner.train.data import epoch_indices
from finetuner.train.engine import Runtime, Split, Trainee
from finetuner.train.models import head_module
from finetuner.train.preprocessing import Preprocessing


def image_trainee(
    model: nn.Module, preprocessing: Preprocessing, runtime: Runtime, set_mode: Callable[[], Any]
) -> Trainee:
    """The whole model on uint8 image batches, normalised on the device."""
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format

    def prepare(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(runtime.device, non_blocking=True)
        return preprocessing.normalize(batch).contiguous(memory_format=memory_format)

    return Trainee(model, set_mode, prepare)


@torch.no_grad()
def extract_features(
    model: nn.Module, arch: str, images: torch.Tensor, preprocessing: Preprocessing, runtime: Runtime, batch_size: int
) -> torch.Tensor:
    """The input of the head for every image, computed in eval mode (the frozen backbone as it is trained)."""
    trainee = image_trainee(model, preprocessing, runtime, model.eval)
    captured: list[torch.Tensor] = []
    hook = head_module(model, arch).register_forward_hook(lambda m, args, out: captured.append(args[0].float()))
    try:
        model.eval()
        for index in epoch_indices(len(images), batch_size, 0, 0, False):
            with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype, enabled=runtime.amp_dtype is not None):
                model(trainee.prepare(images[index]))
    finally:
        hook.remove()
    return torch.cat(captured).cpu() if captured else torch.empty(0)


def feature_trainee(
    model: nn.Module, arch: str, data: dict[str, Split], preprocessing: Preprocessing, runtime: Runtime, batch_size: int
) -> tuple[Trainee, dict[str, Split]]:
    """The head alone, trained on features computed once; the head stays a submodule of `model`."""
    head = head_module(model, arch)
    features = {
        name: Split(extract_features(model, arch, split.inputs, preprocessing, runtime, batch_size), split.labels)
        for name, split in data.items()
    }
    trainee = Trainee(head, head.train, lambda batch: batch.to(runtime.device, non_blocking=True), augmentable=False)
    return trainee, features
