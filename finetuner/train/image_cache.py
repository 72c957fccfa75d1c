"""The decoded-image input of the training stages, backed by the on-disk image store (finetuner/train/image_store.py).

`stored_images(paths, preprocessing, cache_root, ...)` returns a lazy `StoreView`: the engine indexes it like a
uint8 NHWC tensor and only the requested batch is ever in memory. Images are kept under
`data/cache/images/<preprocessing hash>-<stored size>/`, decoded once per content hash. With `augment=True` the store
keeps a larger square (`augment_size`, by default 1.25 x the crop: room for the random crops) and every read is a
fresh random-resized-crop plus flip to the training size; without it the stored image is exactly the centre crop
`Preprocessing.to_uint8` gives, as before. Where CUDA is present, batches come back in pinned memory.
`cached_images` is the older whole-array interface, kept for callers that want an ndarray in RAM.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from finetuner.train.data import decode_images
from finetuner.train.image_store import CropSpec, ImageStore, StoreView
from finetuner.train.preprocessing import Preprocessing

AUGMENT_MARGIN = 1.25  # stored side / training side when augmenting: crops can move and zoom within the margin


def preprocessing_key(preprocessing: Preprocessing) -> str:
    text = json.dumps(preprocessing.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def open_store(
    preprocessing: Preprocessing, cache_root: Path, stored_size: int | None = None
) -> tuple[ImageStore, Preprocessing]:
    """The store of `preprocessing` at `stored_size` (default: its crop), and the preprocessing that fills it."""
    size = stored_size or preprocessing.crop_size
    # A larger stored square is the same resize-and-centre-crop, scaled: the shorter side to `size`, then `size`.
    filling = (
        preprocessing if size == preprocessing.crop_size else replace(preprocessing, resize_size=size, crop_size=size)
    )
    return ImageStore(cache_root / f"{preprocessing_key(preprocessing)}-{size}", size), filling


def stored_images(
    paths: Sequence[Path],
    preprocessing: Preprocessing,
    cache_root: Path,
    workers: int = 0,
    augment: bool = False,
    augment_size: int | None = None,
    hashes: Sequence[str] | None = None,
) -> StoreView:
    """The images of `paths` in order as a lazy view, decoding only content the store does not hold yet.

    `hashes`: the files' sha256 (the manifest's column) when the caller has them; otherwise the store hashes each
    file once and remembers it by path, size and modification time.
    """
    stored_size = (augment_size or math.ceil(preprocessing.crop_size * AUGMENT_MARGIN)) if augment else None
    store, filling = open_store(preprocessing, cache_root, stored_size)
    keys = list(hashes) if hashes is not None else store.content_keys(paths)
    store.add(paths, keys, filling, workers)
    return store.view(
        keys, CropSpec(preprocessing.crop_size) if augment else None, pin_memory=torch.cuda.is_available()
    )


def cached_images(
    paths: Sequence[Path], preprocessing: Preprocessing, cache_root: Path | None, workers: int = 0
) -> np.ndarray:
    """The uint8 images of `paths` in order as one array in RAM (no cache root: decoded directly)."""
    if cache_root is None or not paths:
        return decode_images(paths, preprocessing, workers)
    return stored_images(paths, preprocessing, cache_root, workers)[:].numpy()
