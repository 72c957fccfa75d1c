"""Random-resized-crop and horizontal flip of uint8 image batches: the torchvision references' training recipe.

The box is drawn as `torchvision.transforms.RandomResizedCrop.get_params` draws it (area fraction uniform in
`scale`, log aspect ratio uniform in `ratio`, ten tries, then a centre crop with the ratio clamped); the crop is
resized to `size` with bilinear interpolation and flipped with probability 1/2. Draws come from torch's
global generator (or `generator`), so a caller that seeds per epoch gets the same crops on a resumed run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """(top, left, box height, box width) of one random-resized-crop."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = math.exp(torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item(), generator=generator).item())
        box_w, box_h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = int(torch.randint(0, height - box_h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - box_w + 1, (1,), generator=generator))
            return top, left, box_h, box_w
    # Fallback, as torchvision: the whole image, cut to the nearest allowed aspect ratio.
    in_ratio = width / height
    if in_ratio < min(ratio):
        box_w, box_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        box_w, box_h = round(height * max(ratio)), height
    else:
        box_w, box_h = width, height
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def random_resized_crop(
    batch: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x size x size x 3 uint8: one random box per image, resized, randomly flipped.

    All boxes are resampled in one batched bilinear `grid_sample` (the flip folded into each affine map): a
    per-image resize cost ~5 ms an image on the CPU, as much as a small model's training step. The stored image is
    at most 1.25x the output, so resampling without an antialias filter loses nothing visible.
    """
    n, height, width, _ = batch.shape
    flips = torch.rand(n, generator=generator) < 0.5
    theta = torch.zeros(n, 2, 3)
    for i in range(n):
        top, left, box_h, box_w = crop_box(height, width, scale, ratio, generator)
        # align_corners=False: output edges (-1, 1) land on the box edges, in input coordinates scaled to (-1, 1).
        theta[i, 0, 0] = box_w / width * (-1.0 if flips[i] else 1.0)
        theta[i, 0, 2] = (2 * left + box_w) / width - 1
        theta[i, 1, 1] = box_h / height
        theta[i, 1, 2] = (2 * top + box_h) / height - 1
    images = batch.permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    resized = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
