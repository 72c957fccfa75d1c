"""In-memory training data: decoded uint8 images, epoch batch indices, light on-device augmentation.

Images are decoded and resized once (`decode_images`, threads) into one NxHxWx3 uint8 array; the stage layer
caches that array on disk so no epoch ever decodes a JPEG again. Batching is plain index slicing with a seeded
per-epoch permutation (what DistributedSampler does, one level finer): the permutation and its batches are global,
and under DDP each rank takes its share of every global batch, so N processes train on exactly the batches one
process would, and a resumed epoch sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from finetuner.common.imageio import load_rgb
from finetuner.train.preprocessing import Preprocessing


def decode_images(paths: Sequence[Path], preprocessing: Preprocessing, workers: int = 0) -> np.ndarray:
    """N x crop x crop x 3 uint8: each file decoded (imageio.load_rgb) and resized/cropped (`to_uint8`)."""
    size = preprocessing.crop_size
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def one(index: int) -> None:
        out[index] = preprocessing.to_uint8(load_rgb(paths[index]))

    with ThreadPoolExecutor(max_workers=workers or None) as pool:  # PIL releases the GIL while decoding/resizing
        list(pool.map(one, range(len(paths))))
    return out


def epoch_indices(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> list[torch.Tensor]:
    """Index batches for one epoch on one rank: the global batches of a permutation seeded by (seed, epoch), each
    strided by rank (rank r of w takes positions r, r + w, ... of it).

    The global batch is `batch_size` whatever `world_size` is, so gradients averaged over the ranks equal the one-
    process gradient; a global batch smaller than `world_size` leaves some ranks an empty share.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    batches = list(order.split(batch_size))
    # A trailing batch of one breaks BatchNorm in train mode; dropping a partial batch costs nothing over epochs.
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return [shard(batch, rank, world_size) for batch in batches]


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s share of a global batch: positions rank, rank + world_size, ..."""
    return batch[rank::world_size] if world_size > 1 else batch


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light augmentation of an NCHW float batch: random horizontal flip and a random shift of up to 1/8 side."""
    n, _, height, width = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.to(batch.device).view(n, 1, 1, 1), batch.flip(-1), batch)
    pad = max(1, height // 8)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(shifts)])
