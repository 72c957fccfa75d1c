"""Decoding an image file for hashing: once, in colour, at the reduced size the hashes and thumbnails need.

JPEGs are decoded at the smallest 1/2^k scale (libjpeg's draft mode) that keeps both sides >= `DECODE_SIZE`, so the
decoder skips the work for pixels no hash or thumbnail sees. `decode_for_hash` does it through Pillow for any format
(EXIF rotation applied, other formats through `to_rgb`); `decode_colour` gives the same pixels faster for a plain JPEG,
through OpenCV, and falls back to Pillow for anything else. Grey is the luma of the RGB pixels (`grey_of`). Used by
finetuner/dedup/hashing.py (every file) and full_size.py (the pairs it looks at again).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from finetuner.common.imageio import to_rgb

# JPEG draft target: the smallest 1/2^k scale (k <= 3) keeping both sides >= the 64 px verifier thumbnail. At 32, a
# 640x480 file decoded to 80x60 and its 60% copy to 48x36; both were upsampled to 64 rows, so fine texture (brick,
# grass, gravel) no longer correlated between a photo and its rescaled copy.
DECODE_SIZE = 64


def decode_for_hash(path: str | Path, size: int = DECODE_SIZE, color: bool = False) -> Image.Image:
    """Open a file as an 8-bit grey (or RGB with `color`) image, at reduced scale where the format allows it.

    JPEGs are decoded to RGB at the smallest 1/2^k scale that keeps both sides >= `size`; EXIF rotation is applied
    so a rotated copy hashes like the original it shows. Other formats go through `to_rgb`. Grey is `grey_of` the
    RGB pixels."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        if image.mode in ("RGB", "L") and getattr(image, "n_frames", 1) == 1:
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
        else:
            rgb = to_rgb(image)
    return rgb if color else Image.fromarray(grey_of(np.asarray(rgb)))


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """The grey (luma, BT.601 weights as OpenCV rounds them) of an (h, w, 3) uint8 RGB image."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


# JPEG segments that leave the pixels Pillow decodes as a plain decoder gives them: JFIF header, tables, restart
# interval, comment, Photoshop's resource block. EXIF and XMP pass when they leave the picture upright, an ICC
# profile passes (a grey decode ignores it); any other (an Adobe colour transform, a multi-picture index, ...) sends
# the file through Pillow.
_PLAIN_SEGMENTS = frozenset({0xE0, 0xDB, 0xC4, 0xDD, 0xFE, 0xED})
_EXIF, _XMP, _ICC = b"Exif\0\0", b"http://ns.adobe.com/xap/1.0/\0", b"ICC_PROFILE\0"
# an EXIF orientation entry (tag 0x0112, SHORT or LONG), and the entry "orientation 1" (SHORT, count 1, value 1), in
# each byte order
_ORIENTATION = {
    b"MM": ((b"\x01\x12\x00\x03", b"\x01\x12\x00\x04"), b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x01"),
    b"II": ((b"\x12\x01\x03\x00", b"\x12\x01\x04\x00"), b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00"),
}
_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended and progressive Huffman frames
_REDUCED_COLOUR = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decode_grey(path: str | Path, size: int = DECODE_SIZE) -> np.ndarray:
    """`decode_for_hash(path, size)` as a 2-D uint8 array: the same pixels."""
    return grey_of(decode_colour(path, size))


def decode_colour(path: str | Path, size: int = DECODE_SIZE) -> np.ndarray:
    """`decode_for_hash(path, size, color=True)` as an (h, w, 3) uint8 RGB array: the same pixels. A plain JPEG
    (8-bit, 1 or 3 components, complete, stored upright, no segment that changes Pillow's pixels) is decoded by
    OpenCV, which scales and converts in the same libjpeg steps Pillow's draft mode asks for, without Pillow's
    per-file header parsing and image object: the bulk of hashing. Everything else goes through Pillow."""
    data = Path(path).read_bytes()
    shape = _plain_jpeg_size(data)
    if shape is not None:
        width, height = shape
        scale = min(width // size, height // size)  # Pillow's draft: the largest of 8, 4, 2, 1 not above it
        flag = _REDUCED_COLOUR[next((s for s in (8, 4, 2) if scale >= s), 1)]
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is not None and bgr.ndim == 3:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.asarray(decode_for_hash(path, size, color=True))


def _plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG `decode_grey` may hand to OpenCV, else None."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):  # not a JPEG, or truncated
        return None
    k, shape = 2, None
    while k + 4 <= len(data):
        if data[k] != 0xFF:
            return None
        marker = data[k + 1]
        if marker == 0xFF:  # fill byte
            k += 1
            continue
        if marker == 0xDA:  # start of scan: the header is complete
            return shape
        end = k + 2 + int.from_bytes(data[k + 2 : k + 4], "big")
        if marker in _FRAMES and shape is None and k + 10 <= len(data):
            height, width = int.from_bytes(data[k + 5 : k + 7], "big"), int.from_bytes(data[k + 7 : k + 9], "big")
            if data[k + 4] != 8 or data[k + 9] not in (1, 3) or not height or not width:
                return None
            shape = (width, height)
        elif marker not in _PLAIN_SEGMENTS and not _harmless(marker, data[k + 4 : end]):
            return None
        k = end
    return None


def _harmless(marker: int, payload: bytes) -> bool:
    """Whether an APP1 or APP2 segment leaves Pillow's grey pixels as they are stored: EXIF with no orientation or
    orientation 1, XMP that names no orientation, an ICC profile. Conservative: an ambiguous one is not."""
    if marker == 0xE1 and payload.startswith(_EXIF):
        order = payload[len(_EXIF) : len(_EXIF) + 2]
        if order not in _ORIENTATION:
            return False
        entries, upright = _ORIENTATION[order]
        found = sum(payload.count(entry) for entry in entries)
        return found == 0 or (found == 1 and payload.count(upright) == 1)
    if marker == 0xE1 and payload.startswith(_XMP):
        return b"Orientation" not in payload
    return marker == 0xE2 and payload.startswith(_ICC)
