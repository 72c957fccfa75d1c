"""The batched Lanczos resize gives Pillow's pixels bit for bit, so phash and dhash stay imagehash's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from finetuner.dedup import resample
from finetuner.dedup.resample import resize_all, resize_stack


def pillow(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


@pytest.mark.parametrize("seed", range(4))
def test_one_shape_equals_pillow_in_either_pass_order(seed: int) -> None:
    """Random shapes up and down, including heights shrinking more than twice the width (Pillow's vertical pass
    first), random noise and hard black/white edges (where rounding after each pass shows)."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 260, 2))
        size = tuple(int(v) for v in rng.integers(1, 70, 2))
        noise = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
        edges = (rng.random((3, h, w)) < 0.5).astype(np.uint8) * 255
        for stack in (noise, edges):
            expected = np.stack([pillow(image, size) for image in stack])
            assert np.array_equal(resize_stack(stack, size), expected), (h, w, size)


def test_mixed_shapes_batched_or_not_equal_pillow(monkeypatch) -> None:
    rng = np.random.default_rng(7)
    shapes = [(90, 120)] * 12 + [(120, 90)] * 9 + [(33, 47), (300, 17), (1, 1)] + [(64, 64)] * 8
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]
    monkeypatch.setattr(resample, "MAX_PIXELS", 10_000)  # 64x64 in products of two; 120x90 too big: Pillow
    for size in [(32, 32), (9, 8), (8, 8)]:
        assert np.array_equal(resize_all(images, size), np.stack([pillow(i, size) for i in images]))
