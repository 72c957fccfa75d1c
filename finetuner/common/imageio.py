"""Decoding image files into RGB arrays the same way everywhere (ingest, dedup, training cache, predict).

Odd but valid files are normalised here: EXIF orientation applied, palette/RGBA/CMYK/16-bit converted to 8-bit
RGB (transparency composited on white), animated images read at their first frame. `check_image` is the ingest
stage's full decode of one file's bytes: it accepts those odd files and classifies broken ones (empty, not an
image, truncated, corrupt, decompression bomb).
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


# --- checking files at ingest -----------------------------------------------------------------------------------

# Quarantine reasons for files that are not usable images; the manifest's `reason` column holds one of these
# (a short, countable category) and its `detail` column holds the decoder's own message.
EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
BOMB = "decompression bomb"
UNREADABLE = "unreadable"


class ImageCheckError(ValueError):
    """A file that cannot be used as an image; `reason` is one of the categories above, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    """What a full decode learned about a valid image; width/height are after EXIF rotation, as it will be used."""

    format: str
    mode: str
    width: int
    height: int
    n_frames: int


@contextlib.contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Apply our bomb threshold to PIL's own checks (a warning above it, an error above twice it) for one decode.

    PIL keeps the threshold in a module global; it is restored afterwards so callers see no lasting change.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def check_image(data: bytes | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Decode an image (bytes or a seekable binary file) completely, as training will, and describe it.

    Raises ImageCheckError for anything unusable. The header alone proves little: every pixel is decoded and
    converted by `to_rgb`, so a file that passes here also loads in later stages. The size is checked before
    decoding, so a bomb is never expanded in memory.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    start = stream.tell()
    if stream.seek(0, io.SEEK_END) == start:
        raise ImageCheckError(EMPTY, "0 bytes")
    stream.seek(start)
    try:
        with _pixel_limit(max_pixels), Image.open(stream) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageCheckError(BOMB, f"{width}x{height} = {width * height} pixels > {max_pixels}")
            image_format, mode = image.format or "unknown", image.mode
            n_frames = int(getattr(image, "n_frames", 1))
            image.load()
            rgb = to_rgb(image)
    except ImageCheckError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageCheckError(BOMB, str(exc)) from None
    except UnidentifiedImageError:
        raise ImageCheckError(NOT_AN_IMAGE, "no image format recognises the content") from None
    except (EOFError, OSError, SyntaxError, ValueError, struct.error) as exc:
        # PIL reports short files as OSError("image file is truncated ..."), "Truncated File Read" or EOFError.
        message = str(exc) or type(exc).__name__
        truncated = isinstance(exc, EOFError) or "truncat" in message.lower()
        raise ImageCheckError(TRUNCATED if truncated else CORRUPT, message) from None
    return ImageInfo(format=image_format, mode=mode, width=rgb.width, height=rgb.height, n_frames=n_frames)
