"""Where a candidate pair's two images are compared: the view regions its signal names, resized onto one 64x64 grid,
and the local placement search that refines them (used by the verifier, finetuner/dedup/verify.py).

A whole frame is compared without its letterbox bars (bars alike in two pictures are no evidence); a view such as
"crop90" or "top90" names a box on the thumbnail (finetuner/dedup/views.py). Thumbnails are squashed to a square, so
a region's true proportions come from its box and the image's aspect ratio (width / height, NaN where unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from finetuner.dedup.hashing import THUMB
from finetuner.dedup.views import view_box

REFINE_SCALES = (0.9, 0.95)  # the inner region's size relative to the outer one in the local search


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA) if image.shape[::-1] != size else image


def signal_boxes(signal: str, trim_a, trim_b) -> tuple[tuple, tuple, bool, str]:
    """(box of a, box of b, whether exactly one is mirrored, a description) of the view pair `signal` names; boxes
    are (top, bottom, left, right) on the thumbnails."""
    va, vb = signal.split("~") if "~" in signal else ("full", "full")
    box_a, _ = view_box("trim" if va in ("full", "mirror") else va, trim_a)
    box_b, _ = view_box("trim" if vb in ("full", "mirror") else vb, trim_b)
    mirrored = (va == "mirror") != (vb == "mirror")
    return box_a, box_b, mirrored, f"{'mirror: ' if mirrored else ''}{va} of a = {vb} of b"


def _cut(thumb: np.ndarray, box) -> np.ndarray:
    top, bottom, left, right = box
    return resized(thumb[top:bottom, left:right].astype(np.float32), (THUMB, THUMB))


def _proportions(box, aspect: float) -> float:
    """A box's true width / height on an image of aspect `aspect` (the thumbnail squashed it to a square)."""
    top, bottom, left, right = box
    return (right - left) / (bottom - top) * aspect


def regions(
    thumbs: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    signals: Sequence[str],
    trims: np.ndarray,
    aspect: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Per pair, the two view regions the signal names, resized to 64x64 (b mirrored when exactly one view is),
    the overlap (each region's share of its image's content inside bars, the smaller), the stretch (|log| of the
    ratio of the two regions' true aspect ratios) and a description."""
    ra = np.zeros((len(i), THUMB, THUMB), np.float32)
    rb = np.zeros_like(ra)
    overlap, stretch = np.ones(len(i)), np.zeros(len(i))
    names = []
    area = (trims[:, 1] - trims[:, 0]) * (trims[:, 3] - trims[:, 2])
    for k, (x, y, signal) in enumerate(zip(i.tolist(), j.tolist(), signals)):
        box_a, box_b, mirrored, name = signal_boxes(signal, trims[x], trims[y])
        ra[k] = _cut(thumbs[x], box_a)
        region_b = _cut(thumbs[y], box_b)
        rb[k] = region_b[:, ::-1] if mirrored else region_b
        overlap[k] = min(_area(box_a) / area[x], _area(box_b) / area[y])
        if aspect is not None:
            stretch[k] = abs(np.log(_proportions(box_a, aspect[x]) / _proportions(box_b, aspect[y])))
        names.append(name)
    stretch[~np.isfinite(stretch)] = 0.0  # an image of unknown size: proportions not checked
    return ra, rb, np.minimum(overlap, 1.0), stretch, names


def _area(box) -> int:
    top, bottom, left, right = box
    return (bottom - top) * (right - left)


def placement(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(a's part, b's part, description): where one region best sits inside the other at a few sizes; the inner
    region is shrunk to fit, the outer one cut to the place found."""
    best = (-2.0, None)
    for scale in REFINE_SCALES:
        size = (round(THUMB * scale), round(THUMB * scale))
        for name, outer, inner in (("b in a", a, b), ("a in b", b, a)):
            template = resized(inner, size)
            _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(outer, template, cv2.TM_CCOEFF_NORMED))
            if score > best[0]:
                patch = outer[y : y + size[1], x : x + size[0]]
                parts = (patch, template) if name == "b in a" else (template, patch)
                best = (score, (*parts, f", {name} +({x},{y}) x{scale:.2f}"))
    return best[1]


def aligned_pair(
    thumbs: np.ndarray, trims: np.ndarray, x: int, y: int, signal: str, stage: int, aspect: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, float], tuple[float, float]]]:
    """(region of x, region of y, frames) as the verifier's kept alignment placed them: `stage` 0 the frames inside
    their bars, 1 the regions `signal` names, 2 those refined by `placement`. `frames` are each region's scales
    (x, y) from the image's true geometry to the region's pixels, so that a warp fitted between the regions can be
    judged in true proportions (the placement's uniform scale does not change proportions and is left out)."""
    if stage == 0:
        box_a, box_b, mirrored = tuple(trims[x]), tuple(trims[y]), False
    else:
        box_a, box_b, mirrored, _ = signal_boxes(signal, trims[x], trims[y])
    p, q = _cut(thumbs[x], box_a), _cut(thumbs[y], box_b)
    q = q[:, ::-1] if mirrored else q
    if stage == 2:
        p, q, _ = placement(p, q)
    ratio = (1.0, 1.0) if aspect is None else (aspect[x], aspect[y])
    frames = tuple(
        (THUMB / ((right - left) * (r if np.isfinite(r) else 1.0)), THUMB / (bottom - top))
        for (top, bottom, left, right), r in ((box_a, ratio[0]), (box_b, ratio[1]))
    )
    return p, q, frames
