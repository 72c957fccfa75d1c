"""A cheap first look at every candidate pair before the verifier aligns it (finetuner/dedup/verify.py).

On a large collection most candidates are chance: two unrelated pictures whose hashes of some view pair land within
`dedup.verify.candidate_distance` bits (about 50,000 of 84,000 candidates on 20,000 photos). The verifier's work
per pair (regions at 64x64, two Gaussian blurs, a template search) is wasted on them. Here each pair is compared once
at 16x16, on exactly the regions the verifier starts from (the trimmed content of both frames, and the two view
regions the candidate's signal names, mirrored when one view is): smoothing by the downscale only raises the
correlation of a true copy, while unrelated pictures stay far apart. Pairs whose better correlation is below
`dedup.verify.prescreen_similarity` are rejected with that correlation as their evidence; the rest are verified.
Pure functions; called by finetuner/dedup/candidates.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from finetuner.dedup.views import trim_boxes, view_box

SIDE = 16  # pixels per side of the compared regions
BAND = 2  # rows: a caption bar at the top or bottom may disagree (the verifier's 15% band, at 16 px)


def _unit_regions(thumbs: np.ndarray, trims: list, images: np.ndarray, view: str) -> np.ndarray:
    """(len(images), 2, SIDE - BAND, SIDE): the view's region of each image resized (a whole frame without its bars),
    less its top band and less its bottom band, each centred and scaled to unit norm (zero where constant), so a
    dot product is a banded correlation."""
    out = np.empty((len(images), SIDE, SIDE), np.float32)
    box_view = "trim" if view in ("full", "mirror") else view
    for k, x in enumerate(images.tolist()):
        (top, bottom, left, right), _ = view_box(box_view, trims[x])
        region = thumbs[x][top:bottom, left:right].astype(np.float32)
        out[k] = cv2.resize(region, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    parts = np.stack([out[:, BAND:], out[:, :-BAND]], axis=1)
    parts -= parts.mean(axis=(2, 3), keepdims=True)
    norm = np.sqrt((parts * parts).sum(axis=(2, 3), keepdims=True))
    return np.divide(parts, norm, out=np.zeros_like(parts), where=norm > 1e-3)


def _gather(images: np.ndarray, views: np.ndarray, thumbs: np.ndarray, trims: list) -> np.ndarray:
    """Unit regions of (images[k], views[k]), each (image, view) resized once however many pairs share it."""
    out = np.empty((len(images), 2, SIDE - BAND, SIDE), np.float32)
    for view in np.unique(views).tolist():
        rows = np.flatnonzero(views == view)
        members, inverse = np.unique(images[rows], return_inverse=True)
        out[rows] = _unit_regions(thumbs, trims, members, view)[inverse]
    return out


def prescreen(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, signals: Sequence[str]) -> np.ndarray:
    """Per candidate (thumbs[i[k]], thumbs[j[k]]) proposed by `signals[k]` ("full~crop90", or a hash method name:
    whole frames), the higher 16x16 correlation of the trimmed frames and of the signal's two view regions (a top
    or bottom caption band left out, as the verifier does)."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if len(i) == 0:
        return np.zeros(0)
    trims = trim_boxes(thumbs).tolist()
    views = np.array([s.split("~") if "~" in s else ("full", "full") for s in signals], dtype=object).reshape(-1, 2)
    boxes = np.where(views == "mirror", "full", views).astype(str)  # a mirror view is the full frame, flipped
    whole = np.full(len(i), "full")
    score = np.einsum("kbhw,kbhw->kb", _gather(i, whole, thumbs, trims), _gather(j, whole, thumbs, trims)).max(axis=1)
    pa, pb = _gather(i, boxes[:, 0], thumbs, trims), _gather(j, boxes[:, 1], thumbs, trims)
    flip = (views[:, 0] == "mirror") != (views[:, 1] == "mirror")
    pb[flip] = pb[flip][..., ::-1]
    return np.maximum(score, np.einsum("kbhw,kbhw->kb", pa, pb).max(axis=1))
