"""The preprocessing a model was trained with, as a small value stored in every checkpoint.

Mean, std and interpolation come from the pretrained weights' own `transforms()` (ImageNet statistics for torchvision
weights); the crop is `data.image_size` and the resize keeps the weights' resize/crop ratio (256/224 for ImageNet).
`predict` and `evaluate` rebuild exactly this from the checkpoint, so a model is never fed differently than trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Preprocessing:
    resize_size: int
    crop_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            resize_size=int(data["resize_size"]),
            crop_size=int(data["crop_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            interpolation=str(data.get("interpolation", "bilinear")),
        )

    def to_uint8(self, image: Image.Image) -> np.ndarray:
        """Resize the shorter side, centre-crop, and return HxWx3 uint8: the cacheable part of preprocessing."""
        width, height = image.size
        scale = self.resize_size / min(width, height)
        size = (max(self.crop_size, round(width * scale)), max(self.crop_size, round(height * scale)))
        image = image.resize(size, _INTERPOLATIONS[self.interpolation])
        left = (size[0] - self.crop_size) // 2
        top = (size[1] - self.crop_size) // 2
        image = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return np.asarray(image.convert("RGB"), dtype=np.uint8)

    def normalize(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        """NxHxWx3 (or NxCxHxW) uint8 -> NxCxHxW float32, scaled to [0, 1] and normalised."""
        if batch_uint8.shape[-1] == 3:
            batch_uint8 = batch_uint8.permute(0, 3, 1, 2)
        batch = batch_uint8.float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std


def preprocessing_for(weights: Any, image_size: int) -> Preprocessing:
    """Preprocessing matching torchvision weights (an enum member), or ImageNet statistics when there are none."""
    if weights is None or not hasattr(weights, "transforms"):
        return Preprocessing(resize_size=image_size, crop_size=image_size)
    preset = weights.transforms()
    crop = _first(getattr(preset, "crop_size", image_size))
    resize = _first(getattr(preset, "resize_size", crop))
    interpolation = getattr(getattr(preset, "interpolation", None), "value", "bilinear")
    return Preprocessing(
        resize_size=max(image_size, round(image_size * resize / crop)),
        crop_size=image_size,
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=interpolation if interpolation in _INTERPOLATIONS else "bilinear",
    )


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)
