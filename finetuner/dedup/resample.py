"""Pillow's Lanczos resize of 8-bit grey images, batched: the same pixels as `Image.resize(size, LANCZOS)`, bit for bit.

phash and dhash are defined on Pillow's Lanczos thumbnails (32x32 and 9x8; finetuner/dedup/hashing.py keeps them
equal to imagehash's), and resizing one image at a time cost ~0.11 ms per image, a fifth of hashing. Pillow
resamples in two separable passes with integer coefficients (22 fractional bits) and rounds to 8 bits after each
pass, in an order that depends on the shapes (and on Pillow's version: this follows 13.0, the locked one; the tests
compare with Pillow itself); here each pass is one matrix product over every image of one shape. The coefficients
are computed as Pillow's precompute_coeffs computes them (the C library's sin, the same order of operations, the
same rounding to integers), and the products are exact: integer pixels times integer coefficients sum to below
2^35, which float64 holds exactly in any order. Used by finetuner/dedup/hashing.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit resampling
SUPPORT = 3.0  # Lanczos-3


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


@functools.lru_cache(maxsize=512)
def coefficients(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of Pillow's integer coefficients for one pass (zeros outside each
    output's support)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    matrix = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for w in weights:  # summed in order, as Pillow does
            total += w
        if total != 0.0:
            weights = [w / total for w in weights]
        matrix[xx, xmin : xmin + xmax] = [
            int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS)) for w in weights
        ]
    return matrix


MIN_BATCH = 8  # images of one shape below this go through Pillow one by one (new coefficients cost more than it)
MAX_PIXELS = 1 << 22  # input pixels per product (float64: 32 MiB), so full-size PNGs stay bounded in memory


def _round(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8: add half, shift right by PRECISION_BITS (floor), clip to 0..255 (in place)."""
    sums += 1 << (PRECISION_BITS - 1)
    sums *= 1.0 / (1 << PRECISION_BITS)  # a power of two: exact
    np.floor(sums, out=sums)
    return np.clip(sums, 0, 255, out=sums)


def resize_stack(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) uint8 images of one shape resized to `size` (width, height) as Pillow's LANCZOS resize does."""
    n, h, w = stack.shape
    width, height = size
    out = stack.astype(np.float64)
    # Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the width does
    # (ImagingResampleInner); each pass rounds to 8 bits, so the order shows in the pixels
    vertical_first = h - height > 0 and h - height > (w - width) * 2
    for axis in ("vertical", "horizontal") if vertical_first else ("horizontal", "vertical"):
        if axis == "horizontal" and width != w:
            out = _round(out @ coefficients(w, width).T)
        elif axis == "vertical" and height != h:
            out = _round(np.matmul(coefficients(h, height), out))
    return out.astype(np.uint8)


def resize_all(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(n, height, width) uint8: each 2-D uint8 image resized as Pillow's LANCZOS resize does, images of one shape
    batched (at least MIN_BATCH of them, of at most MAX_PIXELS each; others are resized by Pillow itself)."""
    out = np.zeros((len(images), size[1], size[0]), np.uint8)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(k)
    for (h, w), members in by_shape.items():
        if len(members) < MIN_BATCH or h * w > MAX_PIXELS:  # few, or each too big for a float64 copy
            for k in members:
                out[k] = np.asarray(Image.fromarray(images[k]).resize(size, Image.Resampling.LANCZOS))
            continue
        step = max(1, MAX_PIXELS // (h * w))
        for s in range(0, len(members), step):
            part = members[s : s + step]
            out[part] = resize_stack(np.stack([images[k] for k in part]), size)
    return out
