"""A cheap first look at every candidate pair before the verifier aligns it (finetuner/dedup/verify.py).

On a large collection most candidates are chance: two unrelated pictures whose hashes of some view pair land within
`dedup.verify.candidate_distance` bits (about 50,000 of 84,000 candidates on 20,000 photos). The verifier's work
per pair (regions at 64x64, two Gaussian blurs, a template search) is wasted on them. Here each pair is compared once
at 16x16, on exactly the regions the verifier starts from (the trimmed content of both frames, the whole frames where
the two trims differ, that trim's box on both frames where one trim stripped a caption panel, and the two view
regions the candidate's signal names; b's mirrored when one view is): smoothing by the downscale only raises the
correlation of a true copy, while unrelated pictures stay far apart. Pairs whose best correlation is below
`dedup.verify.prescreen_similarity` are rejected with that correlation as their evidence; the rest are verified.
A texture (grass, gravel, a brick wall, a star field, a cell culture) keeps little at 16x16 but noise: its copy shifted
by a crop correlates there no better than a stranger does. Pairs with a `textured` image are therefore never rejected
by their look; the verifier decides them, and places them (`thorough`) however their first alignments scored.
Pure functions; called by finetuner/dedup/candidates.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from finetuner.dedup.hashing import THUMB
from finetuner.dedup.signals import dense_unique, signal_codes, signal_mirrored, signal_views, unturned
from finetuner.dedup.trims import caption_panels
from finetuner.dedup.views import TURNED, VIEWS, square_boxes, trim_boxes, view_box, whole_frame

SIDE = 16  # pixels per side of the compared regions
BAND = 2  # rows: a caption bar at the top or bottom may disagree (the verifier's 15% band, at 16 px)


# a whole frame is compared trimmed; a turned one is undone first (signals.unturned turns the image)
BOXES = ("trim", "full", *(v for v in VIEWS if v not in ("full", "mirror", "trim") and v not in TURNED))
WHOLE = BOXES.index("full")  # the untrimmed frame, looked at where the two trims differ
_FIXED_BOXES = np.array([view_box(name, (0, THUMB, 0, THUMB))[0] for name in BOXES], np.int64)  # per image: replaced
_SQUARE = BOXES.index("square")
# An image is a texture when what survives at 16x16 varies less than what the downscale removes (std ratio below 1):
# on the photo bench 0.28 to 0.81 for textures and their copies, 1.0 and up for everything else (pictures with a
# caption bar or a frame lose the texture's look: the bar is coarse structure)
TEXTURE_RATIO = 1.0
TEXTURE_CHUNK = 512  # thumbnails per batch of `textured` (8 MiB of float32)
CHUNK = 4096  # pairs per dot-product batch: bounds the gathered copies (a few MiB) however many candidates there are


def _unit_regions(
    thumbs: np.ndarray, trims: np.ndarray, squares: np.ndarray, images: np.ndarray, boxes: np.ndarray
) -> np.ndarray:
    """(len(images), 2, SIDE - BAND, SIDE): region `BOXES[boxes[k]]` of image images[k] resized, less its top band and
    less its bottom band, each centred and scaled to unit norm (zero where constant), so a dot product is a banded
    correlation."""
    out = np.empty((len(images), SIDE, SIDE), np.float32)
    where = _FIXED_BOXES[boxes]
    where[boxes == 0] = trims[images[boxes == 0]]  # the trimmed frame: each image's own box
    where[boxes == _SQUARE] = squares[images[boxes == _SQUARE]]  # ...and its centre square
    # Regions cut by one box (every fixed view, and the whole frame of most images) are resized all at once, stacked
    # into one tall image: each box's height maps onto SIDE output rows exactly (a multiple of 1/16 pixel, exact in
    # binary), so no output pixel mixes two regions and the pixels equal one call per region (tested), 1.6x faster.
    code = ((where[:, 0] * (THUMB + 1) + where[:, 1]) * (THUMB + 1) + where[:, 2]) * (THUMB + 1) + where[:, 3]
    order = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.r_[True, code[order][1:] != code[order][:-1]])
    for lo, hi in zip(starts.tolist(), np.r_[starts[1:], len(code)].tolist()):
        members = order[lo:hi]
        top, bottom, left, right = where[members[0]].tolist()
        tall = thumbs[images[members], top:bottom, left:right].reshape(-1, right - left).astype(np.float32)
        small = cv2.resize(tall, (SIDE, SIDE * len(members)), interpolation=cv2.INTER_AREA)
        out[members] = small.reshape(len(members), SIDE, SIDE)
    return _banded(out)


def _banded(out: np.ndarray) -> np.ndarray:
    """(k, 2, SIDE - BAND, SIDE): each (SIDE, SIDE) region less its top band and less its bottom band, centred and
    scaled to unit norm (zero where constant)."""
    parts = np.stack([out[:, BAND:], out[:, :-BAND]], axis=1)
    parts -= parts.mean(axis=(2, 3), keepdims=True)
    norm = np.sqrt((parts * parts).sum(axis=(2, 3), keepdims=True))
    return np.divide(parts, norm, out=np.zeros_like(parts), where=norm > 1e-3)


def _under_captions(thumbs: np.ndarray, trims: np.ndarray, i, j, flip: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The 16x16 correlation of `pairs` (of candidates whose trims differ) where exactly one image's trim stripped a
    caption panel (trims.caption_panels), over that trim's box on both frames as they lie: a caption drawn over a
    quarter of a picture leaves content of other proportions than the original's, so the trimmed frames disagree.
    Zero for the other pairs."""
    score = np.zeros(len(pairs))
    captioned = caption_panels(thumbs, trims, np.r_[i[pairs], j[pairs]])
    one = np.flatnonzero(captioned[i[pairs]] != captioned[j[pairs]])
    for k in one.tolist():
        a, b = int(i[pairs[k]]), int(j[pairs[k]])
        top, bottom, left, right = trims[a if captioned[a] else b].tolist()
        side = (SIDE, SIDE)
        p = cv2.resize(thumbs[a, top:bottom, left:right].astype(np.float32), side, interpolation=cv2.INTER_AREA)
        q = cv2.resize(thumbs[b, top:bottom, left:right].astype(np.float32), side, interpolation=cv2.INTER_AREA)
        units = _banded(np.stack([p, q[:, ::-1] if flip[pairs[k]] else q]))
        score[k] = np.einsum("bhw,bhw->b", units[0], units[1]).max()
    return score


def _signal_views(signals: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate: the BOXES index of each side's region and whether exactly one side is mirrored, parsing each
    distinct signal once (a few dozen) rather than each candidate's."""
    labels, code = signal_codes(signals)
    views = [signal_views(s) for s in labels.tolist()]
    box_a = np.array([BOXES.index(whole_frame(a, b)) for a, b in views], np.int64)  # as the verifier's (views.py)
    box_b = np.array([BOXES.index(whole_frame(b, a)) for a, b in views], np.int64)
    flip = np.array([signal_mirrored(s) for s in labels.tolist()], bool)
    return box_a[code.ravel()], box_b[code.ravel()], flip[code.ravel()]


def prescreen(
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, signals: Sequence[str], aspect: np.ndarray | None = None
) -> np.ndarray:
    """Per candidate (thumbs[i[k]], thumbs[j[k]]) proposed by `signals[k]` ("full~crop90", or a hash method name:
    whole frames), the highest 16x16 correlation of the trimmed frames, of the whole frames where the two trims differ
    (a dim edge can pass for a bar on one copy only) and of the signal's two view regions (a top or bottom caption band
    left out, as the verifier does). `aspect` (width / height per image) places the square
    view (views.square_boxes); None: it is the whole frame."""
    if len(i) == 0:
        return np.zeros(0)
    turned = unturned(thumbs, i, j, signals, aspect=aspect)  # "rot90~full": a's turned copy against b's frame
    thumbs, i, j, signals = turned.thumbs, turned.i, turned.j, turned.signals
    box_a, box_b, flip = _signal_views(signals)
    whole = np.zeros(len(i), np.int64)  # BOXES[0]: the trimmed frame
    # each (image, region) is resized once, however many candidates share it
    trims, squares = trim_boxes(thumbs), square_boxes(turned.aspect, len(thumbs))
    untrimmed = np.flatnonzero((trims[i] != trims[j]).any(axis=1))  # also as whole frames (one trim may be wrong)
    full = np.full(len(untrimmed), WHOLE)
    keys, inverse = dense_unique(
        np.r_[i, j, i, j, i[untrimmed], j[untrimmed]] * len(BOXES) + np.r_[whole, whole, box_a, box_b, full, full],
        len(thumbs) * len(BOXES),
    )
    images, boxes = np.divmod(keys, len(BOXES))
    table = np.empty((len(keys), 2, SIDE - BAND, SIDE), np.float32)
    for s in range(0, len(keys), CHUNK):
        table[s : s + CHUNK] = _unit_regions(thumbs, trims, squares, images[s : s + CHUNK], boxes[s : s + CHUNK])
    wa, wb, ra, rb = inverse[: 4 * len(i)].reshape(4, len(i))
    ua, ub = inverse[4 * len(i) :].reshape(2, len(untrimmed))
    framed = (box_a == 0) & (box_b == 0) & ~flip  # the signal's regions are the trimmed frames: one product is enough
    score = np.empty(len(i))
    for s in range(0, len(i), CHUNK):
        part = slice(s, s + CHUNK)
        both = np.einsum("kbhw,kbhw->kb", table[wa[part]], table[wb[part]])
        views = np.flatnonzero(~framed[part])
        pb = table[rb[part][views]]
        pb[flip[part][views]] = pb[flip[part][views]][..., ::-1]
        both[views] = np.maximum(both[views], np.einsum("kbhw,kbhw->kb", table[ra[part][views]], pb))
        score[part] = both.max(axis=1)
    for s in range(0, len(untrimmed), CHUNK):  # in chunks too: on 7,319 letters, 2.6M pairs' regions were 9 GiB
        part = slice(s, s + CHUNK)
        whole_b = table[ub[part]]
        mirrored = flip[untrimmed[part]]  # a mirrored copy's whole frame, mirrored back
        whole_b[mirrored] = whole_b[mirrored][..., ::-1]
        frames = np.einsum("kbhw,kbhw->kb", table[ua[part]], whole_b).max(axis=1)
        score[untrimmed[part]] = np.maximum(score[untrimmed[part]], frames)
    score[untrimmed] = np.maximum(score[untrimmed], _under_captions(thumbs, trims, i, j, flip, untrimmed))
    return score


def textured(thumbs: np.ndarray) -> np.ndarray:
    """Per (n, 64, 64) grey thumbnail: does its fine structure outweigh what survives at 16x16 (TEXTURE_RATIO)? In
    batches of TEXTURE_CHUNK: a float copy of a whole collection's thumbnails would cost more in fresh memory than
    the arithmetic."""
    out = np.zeros(len(thumbs), bool)
    scale = THUMB // SIDE
    for s in range(0, len(thumbs), TEXTURE_CHUNK):
        stack = np.asarray(thumbs[s : s + TEXTURE_CHUNK], np.float32)
        n = len(stack)
        # 4x4 block means, the images stacked into one tall image (each maps onto its own SIDE rows exactly)
        small = cv2.resize(stack.reshape(n * THUMB, THUMB), (SIDE, SIDE * n), interpolation=cv2.INTER_AREA)
        small = small.reshape(n, SIDE * SIDE)
        coarse = small.var(axis=1)
        # the pixels' spread about their block means: the total square less the blocks' (no upsampled copy)
        flat = stack.reshape(n, THUMB * THUMB)
        fine = (np.einsum("nk,nk->n", flat, flat) - scale * scale * np.einsum("nk,nk->n", small, small)) / THUMB**2
        out[s : s + n] = coarse < TEXTURE_RATIO**2 * fine
    return out
