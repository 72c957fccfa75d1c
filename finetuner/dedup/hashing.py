"""Perceptual hashes of image files, vectorised over batches, bit-for-bit equal to imagehash's.

`hash_files(paths, methods)` decodes each file once, in colour, at reduced size (finetuner/dedup/decoding.py: JPEG
draft mode, plain JPEGs through OpenCV); grey is the luma of those pixels (`grey_of`), and a 16x16 colour thumbnail
is kept for the verifier's colour check. It then computes every requested hash for the whole batch at once: phash
(2-D DCT over a stack of 32x32 thumbnails), dhash and ahash in numpy, on Pillow's Lanczos thumbnails made for all
images of one shape at once (finetuner/dedup/resample.py: the same pixels); whash and colorhash through imagehash
itself on the reduced image. Hashes are 64-bit integers (`int(str(imagehash.phash(img)), 16)`), so Hamming distance
is `popcount(a ^ b)`. Files are spread over processes with `workers` (0 = all cores). Used by
finetuner/dedup/stage.py.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
import scipy.fftpack
from PIL import Image

from finetuner.common.memory import with_array_memory
from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.decoding import decode_colour, decode_for_hash, grey_of
from finetuner.dedup.forking import fork_context
from finetuner.dedup.resample import resize_all

HASH_SIZE = 8  # 8x8 = 64 bits: the size `dedup.max_distance` is defined on
PHASH_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor
NUMPY_METHODS = ("phash", "dhash", "ahash")
THUMB = 64  # side of the squashed grey thumbnail kept per image for candidate views and the verifier
STACKED_PIXELS = 1 << 22  # input pixels per stacked thumbnail resize (`thumbnails`): 4 MiB of grey, 12 of colour
# What a decode gives, in the caches' keys: 1 a JPEG's luma, 2 the grey of its RGB pixels (and colour thumbnails)
PIXELS = 2


@dataclass(frozen=True)
class HashBatch:
    """Hashes of a batch of files: `hashes[method]` is uint64 per file, `detail` the 32x32 thumbnail's grey std,
    `thumbs` the (n, 64, 64) uint8 squashed grey thumbnails (finetuner/dedup/views.py and verify.py use them), `colours`
    the (n, 16, 16, 3) colour ones (the verifier's colour check).

    `ok[i]` is False where file i could not be decoded (its hashes are 0 and must not be used).
    """

    hashes: dict[str, np.ndarray]
    detail: np.ndarray
    ok: np.ndarray
    thumbs: np.ndarray
    colours: np.ndarray  # (n, 16, 16, 3) uint8 squashed RGB thumbnails (finetuner/dedup/colour.py)


def bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """Pack (n, k<=64) booleans row-major into uint64, first bit most significant (imagehash's hex order)."""
    n, k = bits.shape
    padded = np.zeros((n, 64), dtype=bool)
    padded[:, 64 - k :] = bits
    return np.packbits(padded, axis=1).view(">u8").ravel().astype(np.uint64)


def phash_bits(thumbs32: np.ndarray) -> np.ndarray:
    """imagehash.phash on a stack of 32x32 grey thumbnails: DCT rows then columns, low 8x8 > its median."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumbs32, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(len(thumbs32), -1)
    return low > np.median(low, axis=1, keepdims=True)


def dhash_bits(thumbs9x8: np.ndarray) -> np.ndarray:
    """imagehash.dhash on a stack of 8-row, 9-column grey thumbnails: is each pixel brighter than its left one."""
    return (thumbs9x8[:, :, 1:] > thumbs9x8[:, :, :-1]).reshape(len(thumbs9x8), -1)


def ahash_bits(thumbs8: np.ndarray) -> np.ndarray:
    """imagehash.average_hash on a stack of 8x8 grey thumbnails: brighter than the thumbnail's mean."""
    flat = thumbs8.reshape(len(thumbs8), -1)
    return flat > flat.mean(axis=1, keepdims=True)


def thumbnails(images: Sequence[np.ndarray], side: int = THUMB, colour: bool = False) -> np.ndarray:
    """(n, side, side) uint8 squashed thumbnails of 2-D uint8 grey images, or with `colour` (n, side, side, 3) of
    (h, w, 3) ones (area averaging when shrinking, so no aliasing).

    Images of one shape that shrink are resized together, stacked one above the other: area averaging maps each
    image's h rows onto its own `side` rows (row k * side begins at input row k * h, a position floating point holds
    exactly), so the pixels are the ones a call per image gives, at about half the cost (a 120x90 decode: 21 us, not
    42). Enlarging (linear interpolation) would blend neighbours across the seams: one call per image."""
    out = np.zeros((len(images), side, side, *((3,) if colour else ())), dtype=np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for k, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(k)
    for shape, members in by_shape.items():
        if min(shape[:2]) < side or len(members) == 1:
            interp = cv2.INTER_AREA if min(shape[:2]) >= side else cv2.INTER_LINEAR
            for k in members:
                out[k] = cv2.resize(np.ascontiguousarray(images[k]), (side, side), interpolation=interp)
            continue
        step = max(1, STACKED_PIXELS // (shape[0] * shape[1]))
        for s in range(0, len(members), step):
            part = members[s : s + step]
            stacked = np.concatenate([images[k] for k in part])
            resized = cv2.resize(stacked, (side, side * len(part)), interpolation=cv2.INTER_AREA)
            out[part] = resized.reshape(len(part), side, side, *shape[2:])
    return out


def hash_images(images: Sequence[Image.Image], methods: Sequence[str]) -> HashBatch:
    """Hash already-decoded images (any mode) with every method."""
    return hash_arrays([np.asarray(image.convert("RGB")) for image in images], methods, images)


def hash_arrays(
    rgb: Sequence[np.ndarray], methods: Sequence[str], images: Sequence[Image.Image] | None = None
) -> HashBatch:
    """Hash (h, w, 3) uint8 RGB images with every method, on their grey (`grey_of`): the vectorised core of
    `hash_files`; the colour thumbnails are made from the RGB pixels. colorhash needs the colour `images` they came
    from."""
    arrays = [grey_of(c) for c in rgb]
    n = len(arrays)
    # Pillow's Lanczos thumbnails, batched by shape (finetuner/dedup/resample.py: the same pixels, 2x faster)
    thumbs32 = resize_all(arrays, (PHASH_SIZE, PHASH_SIZE)) if n else None
    hashes: dict[str, np.ndarray] = {}
    for method in methods:
        if n == 0:
            hashes[method] = np.zeros(0, dtype=np.uint64)
        elif method == "phash":
            hashes[method] = bits_to_uint64(phash_bits(thumbs32))
        elif method == "dhash":
            hashes[method] = bits_to_uint64(dhash_bits(resize_all(arrays, (HASH_SIZE + 1, HASH_SIZE))))
        elif method == "ahash":
            hashes[method] = bits_to_uint64(ahash_bits(resize_all(arrays, (HASH_SIZE, HASH_SIZE))))
        elif method == "whash":
            hashes[method] = _via_imagehash(imagehash.whash, [Image.fromarray(a) for a in arrays])
        elif method == "colorhash":
            if images is None:
                raise ValueError("colorhash needs the colour images")
            hashes[method] = _via_imagehash(imagehash.colorhash, [i.convert("RGB") for i in images])
        else:
            raise ValueError(f"unknown hash method {method!r}")
    detail = thumbs32.reshape(n, -1).std(axis=1) if n else np.zeros(0)
    return HashBatch(
        hashes=hashes,
        detail=detail.astype(np.float32),
        ok=np.ones(n, dtype=bool),
        thumbs=thumbnails(arrays),
        colours=thumbnails(rgb, COLOUR_SIDE, colour=True),
    )


def _via_imagehash(function, images: Sequence[Image.Image]) -> np.ndarray:
    return np.array([int(str(function(image)), 16) for image in images], dtype=np.uint64)


def _hash_chunk(args: tuple[list[str], tuple[str, ...], bool]) -> HashBatch:
    paths, methods, with_views = args
    color = "colorhash" in methods
    decoded, ok = [], np.ones(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        try:
            decoded.append(decode_for_hash(path, color=True) if color else decode_colour(path))
        except Exception:  # noqa: BLE001 - ingest vetted these files; one broken since is reported, not fatal
            ok[i] = False
    batch = hash_images(decoded, methods) if color else hash_arrays(decoded, methods)
    if with_views:  # in the worker, so the views' resizes and DCTs run in parallel too
        from finetuner.dedup.views import view_hashes  # views builds on this module's hash primitives

        aspect = np.array(
            [d.size[0] / d.size[1] if isinstance(d, Image.Image) else d.shape[1] / d.shape[0] for d in decoded]
        )
        batch.hashes.update({view_key(name): h for name, h in view_hashes(batch.thumbs, aspect).items()})
    return _scatter(batch, ok)


def view_key(view: str) -> str:
    """The name a candidate view's hash goes by next to the methods (finetuner/dedup/views.py)."""
    return f"view-{view}"


def _scatter(batch: HashBatch, ok: np.ndarray) -> HashBatch:
    """Spread a batch hashed over the decodable files back to all positions (zeros where ok is False)."""
    hashes = {}
    for method, values in batch.hashes.items():
        full = np.zeros(len(ok), dtype=np.uint64)
        full[ok] = values
        hashes[method] = full
    detail = np.zeros(len(ok), dtype=np.float32)
    detail[ok] = batch.detail
    thumbs = np.zeros((len(ok), THUMB, THUMB), dtype=np.uint8)
    thumbs[ok] = batch.thumbs
    colours = np.zeros((len(ok), COLOUR_SIDE, COLOUR_SIDE, 3), dtype=np.uint8)
    colours[ok] = batch.colours
    return HashBatch(hashes=hashes, detail=detail, ok=ok, thumbs=thumbs, colours=colours)


def resolve_workers(workers: int) -> int:
    """`0` means every core this process may use."""
    if workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@with_array_memory  # large arrays in small pages, freed memory reused (finetuner/common/memory.py)
def hash_files(
    paths: Sequence[str | Path],
    methods: Sequence[str],
    workers: int = 0,
    chunk: int = 256,
    views: Sequence[str] = (),
    meanwhile: Callable[[], None] | None = None,
) -> HashBatch:
    """Hash every file with every method, in parallel over `workers` processes (0 = all cores).

    With `views` (names from finetuner/dedup/views.py VIEWS; all of them are computed), their hashes are added to
    `hashes` under `view_key(name)`. `meanwhile` runs in this process while the workers decode (before hashing
    when there are none)."""
    methods = tuple(methods)
    names = methods + tuple(view_key(v) for v in views)
    chunks = [([str(p) for p in paths[i : i + chunk]], methods, bool(views)) for i in range(0, len(paths), chunk)]
    n_workers = min(resolve_workers(workers), len(chunks))
    if n_workers <= 1:
        if meanwhile is not None:
            meanwhile()
        return _fill(empty_batch(len(paths), names), map(_hash_chunk, chunks), chunk)
    # fork: the stage never imports torch, so forking is cheap and safe, and avoids re-importing scipy per worker
    with ProcessPoolExecutor(n_workers, mp_context=fork_context() or multiprocessing.get_context()) as pool:
        parts = pool.map(_hash_chunk, chunks)  # every worker is forked here, before `meanwhile` starts any thread
        if meanwhile is not None:
            meanwhile()
        # allocated while the workers decode: on this VM a fresh array's first touch costs ~5 ms per MiB (0.4 s for
        # 20k thumbnails), which concatenating the parts afterwards paid with both cores idle
        return _fill(empty_batch(len(paths), names), parts, chunk)


def empty_batch(n: int, names: Sequence[str]) -> HashBatch:
    """A batch of n files, zeroed (every page written now, not on first use)."""
    thumbs = np.empty((n, THUMB, THUMB), dtype=np.uint8)
    thumbs.fill(0)
    colours = np.empty((n, COLOUR_SIDE, COLOUR_SIDE, 3), dtype=np.uint8)
    colours.fill(0)
    return HashBatch(
        {m: np.zeros(n, dtype=np.uint64) for m in names},
        np.zeros(n, dtype=np.float32),
        np.zeros(n, dtype=bool),
        thumbs,
        colours,
    )


def _fill(out: HashBatch, parts: Iterable[HashBatch], chunk: int) -> HashBatch:
    """Copy each chunk's batch into its rows of `out`, in order, as it arrives."""
    for start, part in zip(range(0, len(out.ok), chunk), parts):
        rows = slice(start, start + len(part.ok))
        for name, values in out.hashes.items():
            values[rows] = part.hashes[name]
        out.detail[rows], out.ok[rows], out.thumbs[rows] = part.detail, part.ok, part.thumbs
        out.colours[rows] = part.colours
    return out
