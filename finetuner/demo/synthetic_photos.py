"""Photo-like synthetic images and their near-duplicate variants, for dedup tests and benchmarks (no downloads).

`photo(seed, size)` draws a smooth random colour field, a few shapes with soft edges and fine sensor-like noise,
so hashes see the mix of low and high frequencies real photographs have; different seeds are different pictures.
`variant(image, kind)` applies one of the edits that must be detected: re-encode, rescale, blur, brightness, crop.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

VARIANTS = ("reencode", "rescale", "blur", "brightness", "crop4")


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    field = np.zeros((height, width, 3))
    for _ in range(6):  # low-frequency illumination and colour
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 2 * np.pi)]
        field += np.sin(2 * np.pi * (fx * x + fy * y) + phase)[..., None] * rng.uniform(10, 40, 3)
    field += rng.uniform(60, 190, 3)
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):  # objects
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.08, 0.45) * width, rng.uniform(0.08, 0.45) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [x0 - w / 2, y0 - h / 2, x0 + w / 2, y0 + h / 2]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noise = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def variant(image: Image.Image, kind: str) -> Image.Image:
    """One near-duplicate edit of `image`."""
    width, height = image.size
    if kind == "reencode":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=40)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")
    if kind == "rescale":
        return image.resize((width // 2, height // 2), Image.Resampling.BILINEAR)
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(2.0))
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(1.25)
    if kind == "crop4":  # 4% of each side's length removed (2% per edge), then back to the original size
        dx, dy = round(width * 0.02), round(height * 0.02)
        return image.crop((dx, dy, width - dx, height - dy)).resize((width, height), Image.Resampling.BILINEAR)
    raise ValueError(f"unknown variant {kind!r}; known: {', '.join(VARIANTS)}")


def to_jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
