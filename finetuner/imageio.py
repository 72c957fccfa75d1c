"""Decoding image files into RGB arrays the same way everywhere (ingest, dedup, training cache, predict).

Odd but valid files are normalised here: EXIF orientation applied, palette/RGBA/CMYK/16-bit converted to 8-bit
RGB (transparency composited on white), animated images read at their first frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default bomb threshold


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded PIL image to 8-bit RGB, applying EXIF rotation and compositing transparency on white."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min(initial=0)), float(array.max(initial=1))
        scaled = (array - low) / (high - low or 1.0) * 255.0
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def load_rgb(path: str | Path, size: int | None = None) -> Image.Image:
    """Open a file and return it as RGB; with `size`, resized to size x size (JPEG decoded at reduced scale first)."""
    with Image.open(path) as image:
        if size is not None and image.format == "JPEG":
            image.draft("RGB", (size, size))  # decode at 1/2, 1/4 or 1/8 scale when that is still >= size
        rgb = to_rgb(image)
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return rgb
