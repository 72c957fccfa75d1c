"""Tiny generated image files, odd-but-valid and broken, shared by test_imageio.py and test_ingest.py.

Each maker returns the file's bytes; VALID and BROKEN map a file name (its extension deliberately odd at times)
to the bytes and what the ingest check must find.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

W, H = 24, 12  # not square, so a missed EXIF rotation or a swapped width/height shows


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noise_rgb(seed: int = 0, size: tuple[int, int] = (W, H)) -> Image.Image:
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(array)


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (W, H), (0, 200, 200, 0)), "JPEG")


def png16() -> bytes:
    ramp = (np.arange(W * H, dtype=np.uint32).reshape(H, W) * 200).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")  # saved as a 16-bit greyscale PNG (mode I;16)


def palette_transparent_png() -> bytes:
    image = Image.new("P", (W, H), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    return encode(image, "PNG", transparency=1)  # every pixel is fully transparent red


def rgba_png() -> bytes:
    return encode(Image.new("RGBA", (W, H), (0, 0, 255, 128)), "PNG")


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return encode(noise_rgb(1), "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (W, H), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def bmp() -> bytes:
    return encode(noise_rgb(2), "BMP")


def webp() -> bytes:
    return encode(noise_rgb(3), "WEBP")


def grey_png() -> bytes:
    return encode(Image.new("L", (W, H), 128), "PNG")


def truncated_jpeg() -> bytes:
    data = encode(noise_rgb(4), "JPEG")
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encode(noise_rgb(5), "PNG")
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    """A PNG whose pixel data is overwritten: complete in length, but the zlib stream / CRC is wrong."""
    data = bytearray(encode(noise_rgb(6), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\x00" * 40
    return bytes(data)


# name -> (bytes, (width, height) after EXIF rotation, PIL format)
VALID: dict[str, tuple[bytes, tuple[int, int], str]] = {
    "cmyk.jpg": (cmyk_jpeg(), (W, H), "JPEG"),
    "sixteen_bit.png": (png16(), (W, H), "PNG"),
    "palette_transparent.png": (palette_transparent_png(), (W, H), "PNG"),
    "rgba.png": (rgba_png(), (W, H), "PNG"),
    "rotated.jpg": (exif_rotated_jpeg(), (H, W), "JPEG"),
    "animated.gif": (animated_gif(), (W, H), "GIF"),
    "bitmap.bmp": (bmp(), (W, H), "BMP"),
    "modern.webp": (webp(), (W, H), "WEBP"),
    "UPPER.JPG": (encode(noise_rgb(7), "JPEG"), (W, H), "JPEG"),
    "png_named.jpg": (grey_png(), (W, H), "PNG"),  # wrong extension: decoded by content
}

# name -> (bytes, quarantine reason)
BROKEN: dict[str, tuple[bytes, str]] = {
    "empty.jpg": (b"", "empty file"),
    "notes.jpg": (b"this is a text file, not a picture\n", "not an image"),
    "readme.txt": (b"hello\n", "not an image"),
    "truncated.jpg": (truncated_jpeg(), "truncated"),
    "truncated.png": (truncated_png(), "truncated"),
    "corrupt.png": (corrupt_png(), "corrupt"),
}
