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


def _region_rows(thumbs: np.ndarray, trims: np.ndarray, images: np.ndarray, view: str) -> np.ndarray:
    """(len(images), SIDE, SIDE) float32: the view's region of each image, resized (a whole frame without its bars)."""
    out = np.empty((len(images), SIDE, SIDE), np.float32)
    box_view = "trim" if view in ("full", "mirror") else view
    for k, x in enumerate(images.tolist()):
        (top, bottom, left, right), _ = view_box(box_view, trims[x])
        region = thumbs[x][top:bottom, left:right].astype(np.float32)
        out[k] = cv2.resize(region, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return out


def _banded(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per pair, Pearson correlation less the top band or less the bottom band, whichever is higher."""
    best = np.full(len(p), -1.0)
    for rows in (slice(BAND, None), slice(None, -BAND)):
        a = p[:, rows].reshape(len(p), -1)
        b = q[:, rows].reshape(len(q), -1)
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        corr = np.where(denom > 1e-6, (a * b).sum(axis=1) / np.maximum(denom, 1e-6), 0.0)
        best = np.maximum(best, corr)
    return best


def prescreen(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, signals: Sequence[str]) -> np.ndarray:
    """Per candidate (thumbs[i[k]], thumbs[j[k]]) proposed by `signals[k]` ("full~crop90", or a hash method name:
    whole frames), the higher 16x16 correlation of the trimmed frames and of the signal's two view regions."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    score = np.zeros(len(i))
    if len(i) == 0:
        return score
    trims = trim_boxes(thumbs).tolist()
    views = np.array([s.split("~") if "~" in s else ("full", "full") for s in signals], dtype=object)
    # each (image, region) is resized once, however many candidates share it
    regions: dict[str, dict[int, np.ndarray]] = {}
    needed: dict[str, set[int]] = {"full": set(i.tolist()) | set(j.tolist())}
    for side, images in ((0, i), (1, j)):
        for view, x in zip(views[:, side].tolist(), images.tolist()):
            needed.setdefault("full" if view == "mirror" else view, set()).add(x)
    for view, members in needed.items():
        members = np.array(sorted(members), dtype=np.int64)
        regions[view] = dict(zip(members.tolist(), _region_rows(thumbs, trims, members, view)))

    def stack(view_of: Sequence[str], images: np.ndarray) -> np.ndarray:
        return np.stack([regions["full" if v == "mirror" else v][x] for v, x in zip(view_of, images.tolist())])

    whole = _banded(stack(["full"] * len(i), i), stack(["full"] * len(j), j))
    pa, pb = stack(views[:, 0].tolist(), i), stack(views[:, 1].tolist(), j)
    flip = (views[:, 0] == "mirror") != (views[:, 1] == "mirror")
    pb[flip] = pb[flip][:, :, ::-1]
    return np.maximum(whole, _banded(pa, pb))
