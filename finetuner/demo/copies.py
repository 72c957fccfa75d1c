"""Planted traps of the demo world, as pure byte transforms: copies of a photo and files that cannot be decoded.

A copy is identical bytes, a re-encode at another JPEG quality, a rescale, or a light crop; each stays within the
dedup stage's default Hamming radius of its original. A broken file is a JPEG cut in half, an empty file, or text.
Used by `finetuner.demo.world`; nothing here touches the disk.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

PLANTED_KINDS = ("exact", "requality", "rescaled", "cropped")
BROKEN_KINDS = ("truncated", "empty", "text")


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def copy_bytes(data: bytes, kind: str, rng: np.random.Generator, quality: int) -> bytes:
    """A copy of an encoded photo: identical bytes, or re-encoded, rescaled or lightly cropped pixels."""
    if kind == "exact":
        return data
    image = decode(data)
    width, height = image.size
    if kind == "requality":
        return encode_jpeg(image, int(rng.integers(45, 66)))
    if kind == "rescaled":
        factor = float(rng.choice([0.75, 1.25, 1.5]))
        return encode_jpeg(
            image.resize((round(width * factor), round(height * factor)), Image.Resampling.BICUBIC), quality
        )
    if kind == "cropped":  # about 3% off each side length (6% of the area), split near-evenly between the sides
        cut_x, cut_y = max(1, round(width * 0.03)), max(1, round(height * 0.03))
        left, top = (cut_x + int(rng.integers(0, 2))) // 2, (cut_y + int(rng.integers(0, 2))) // 2
        box = (left, top, width - (cut_x - left), height - (cut_y - top))
        return encode_jpeg(image.crop(box).resize((width, height), Image.Resampling.BICUBIC), quality)
    raise ValueError(f"unknown copy kind {kind!r}; known: {', '.join(PLANTED_KINDS)}")


def broken_bytes(kind: str, photo: bytes) -> bytes:
    """A file that ingest must quarantine: a JPEG cut in half, an empty file, or text behind a .jpg name."""
    if kind == "truncated":
        return photo[: len(photo) // 2]
    if kind == "empty":
        return b""
    if kind == "text":
        return b"This is not an image. It is a note someone saved with the wrong extension.\n"
    raise ValueError(f"unknown broken kind {kind!r}; known: {', '.join(BROKEN_KINDS)}")
