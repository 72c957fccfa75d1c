"""The verifier's rule for low-detail pairs (finetuner/dedup/verify.py): frames with little fine structure correlate
with any other smooth frame, so an alignment's score says nothing about them. A pair with a low-detail image is a
copy in one of two ways:

1. **Pixel match.** The same picture pixel for pixel, as it is or mirrored, within `flat_max_difference` grey
   levels on average. Frames that both show visible shading may differ by one brightness gain: the shading pins the
   gain down, while two plain frames of different shades would match through any gain.
2. **Shading match.** Both frames show shading, and beyond a plain ramp (a smooth wallpaper of soft shapes, a
   vignetted gradient). One frame's shading is then the other's up to a tone change (a gain and an offset: contrast,
   brightness), a mirror and a centre crop of either (90% or 80% of each side), after both are smoothed of what
   heavy JPEG compression adds (banding, blocks). The residual must be within `flat_max_difference`, a small share
   of the shading, and a small share of the shading's departure from a plane. The last is what keeps two pictures
   of one plain ramp apart (two clear skies, two studio backdrops): any ramp fits another ramp through a gain and an
   offset.

On the photo benches (benchmarks/bench_dedup_quality.py) the shading match found a smooth wallpaper's copies at
JPEG quality 15, at contrast x0.6, cropped 10% on each side and toned sepia, which the pixel match missed, and it
matched none of the 9,348 pairs of two different low-detail images there (synthetic smooth negatives, wallpapers,
their letterboxed copies). Pure numpy and OpenCV on the 64x64 grey thumbnails.
"""

from __future__ import annotations

import cv2
import numpy as np

from finetuner.dedup.hashing import THUMB
from finetuner.dedup.verdicts import VerifyRule

SHADING = 4.0  # frames whose mean deviation is this many flat_max_difference show shading (a gain must fit it)
MAX_GAIN = 1.8  # the largest tone gain (either way) the low-detail rules undo: contrast x0.6 is 1.67
SMOOTH_SIGMA = 3.0  # thumbnail pixels: the shading match compares frames blurred by this (JPEG blocks and banding)
SHADING_SHARE = 0.12  # the shading match's residual at most this share of either frame's mean deviation...
BEYOND_RAMP_SHARE = 0.35  # ...and of either frame's mean departure from its best-fitting plane
CROPS = (0.9, 0.8)  # centre crops (share of each side) the shading match tries on either frame
CHUNK = 256  # pairs whose views are compared together
_y, _x = np.mgrid[0:THUMB, 0:THUMB] / (THUMB - 1.0)
_PLANE = np.stack([np.ones(THUMB * THUMB), _x.ravel(), _y.ravel()], axis=1).astype(np.float32)  # a + b x + c y
_PLANE_PINV = np.linalg.pinv(_PLANE).astype(np.float32)


def low_detail_verdicts(
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule, trims: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(accepted, similarity, overlap, how) of the low-detail pairs (thumbs[i], thumbs[j]): the pixel match, then
    the shading match for the shaded pairs the pixel match refused, on the frames and, where `trims` (top, bottom,
    left, right per image, finetuner/dedup/views.py) strip bars or a mat from either, on the contents inside them.
    Similarity is 1 - the mean grey difference / 255 (the shading match's: its residual), overlap the share of each
    frame (or content) the match compares."""
    accepted, difference, how = _pixel_match(thumbs[i].astype(np.float32), thumbs[j].astype(np.float32), rule)
    overlap = np.ones(len(i))
    for s in range(0, len(i), CHUNK):
        part = s + np.flatnonzero(~accepted[s : s + CHUNK])
        if len(part) == 0:
            continue
        ok, residual, share, what = _shading_match(thumbs, i[part], j[part], rule, trims)
        accepted[part[ok]], difference[part[ok]], overlap[part[ok]] = True, residual[ok], share[ok]
        how[part[ok]] = what[ok]
    return accepted, 1.0 - difference / 255.0, overlap, how


def _pixel_match(a: np.ndarray, b: np.ndarray, rule: VerifyRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spread = np.minimum(_mean_deviation(a), _mean_deviation(b))
    ratio = b.reshape(len(a), -1).mean(axis=1) / np.maximum(a.reshape(len(a), -1).mean(axis=1), 1.0)
    gain = np.where(spread >= SHADING * rule.flat_max_difference, np.clip(ratio, 1 / MAX_GAIN, MAX_GAIN), 1.0)
    scaled = a * gain[:, None, None].astype(np.float32)
    straight = np.abs(scaled - b).reshape(len(a), -1).mean(axis=1)
    mirrored = np.abs(scaled - b[:, :, ::-1]).reshape(len(a), -1).mean(axis=1)
    difference = np.minimum(straight, mirrored)
    how = np.array(
        [
            f"{'mirror' if m < s else 'identity'}{f', gain {g:.2f}' if abs(g - 1) >= 0.005 else ''}, "
            f"mean difference {d:.1f} grey levels"
            for s, m, d, g in zip(straight.tolist(), mirrored.tolist(), difference.tolist(), gain.tolist())
        ],
        dtype=object,
    )
    return difference <= rule.flat_max_difference, difference, how


def _shading_match(
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule, trims: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(matched, residual, overlap, how) per pair: the best of the tries that passes, else the best try. A try takes
    each image's frame or its content inside its bars (where `trims` strip any: a smooth picture's edge can pass for a
    bar, so its frame is tried too), one of them whole and the other whole or centre-cropped, mirrored or not."""
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    a, b = np.split(inverse.ravel(), 2)
    whole = np.tile([0, THUMB, 0, THUMB], (len(images), 1))
    boxes = whole if trims is None else np.asarray(trims)[images]
    barred = (boxes != whole).any(axis=1)
    crops = [c for c in range(1, len(CROPS) + 1) if CROPS[c - 1] ** 2 >= rule.min_overlap]
    tries = [(0, 0)] + [(c, 0) for c in crops] + [(0, c) for c in crops]  # one frame whole, the other maybe cropped
    best = np.full(len(i), np.inf)
    matched = np.zeros(len(i), bool)
    how = np.full(len(i), "", dtype=object)
    overlap = np.ones(len(i))
    framed = {False: _smoothed_views(thumbs[images], whole)}  # (images, 1 + len(CROPS), pixels)
    if barred.any():
        framed[True] = _smoothed_views(thumbs[images], boxes)
    for inside_a, inside_b in ((False, False), (True, True), (True, False), (False, True)):
        # a content is tried only where it differs from the frame
        rows = np.flatnonzero((barred[a] | (not inside_a)) & (barred[b] | (not inside_b)))
        if len(rows) == 0:
            continue
        for (va, vb), mirror in ((t, m) for t in tries for m in (False, True)):
            p, q = framed[inside_a][a[rows], va], framed[inside_b][b[rows], vb]
            if mirror:
                q = q.reshape(len(q), THUMB, THUMB)[:, :, ::-1].reshape(len(q), -1)
            ok, residual, gain = _tone_fit(p, q, rule)
            better = (ok & ~matched[rows]) | ((ok == matched[rows]) & (residual < best[rows]))
            at = rows[better]
            best[at], matched[at] = residual[better], ok[better]
            overlap[at] = CROPS[max(va, vb) - 1] ** 2 if va or vb else 1.0
            how[at] = [
                f"shading matches: {_view_name(va, inside_a)} of a = {_view_name(vb, inside_b)} of b"
                f"{', mirrored' if mirror else ''}, tone gain {g:.2f}, residual {r:.1f} grey levels (smoothed)"
                for g, r in zip(gain[better].tolist(), residual[better].tolist())
            ]
    return matched, best, overlap, how


def _smoothed_views(stack: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, 1 + len(CROPS), side * side) float32: each image's box (top, bottom, left, right), then its centre crops,
    resized to the thumbnail's side and blurred by SMOOTH_SIGMA."""
    out = np.empty((len(stack), 1 + len(CROPS), THUMB * THUMB), np.float32)
    size = (THUMB, THUMB)
    for k, (image, (top, bottom, left, right)) in enumerate(zip(stack, boxes.tolist())):
        h, w = bottom - top, right - left
        for v, keep in enumerate((1.0, *CROPS)):
            dy, dx = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
            view = image[top + dy : bottom - dy, left + dx : right - dx].astype(np.float32)
            if view.shape != size:
                view = cv2.resize(view, size, interpolation=cv2.INTER_LINEAR)
            blurred = cv2.GaussianBlur(view, (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REPLICATE)
            out[k, v] = blurred.ravel()
    return out


def _tone_fit(p: np.ndarray, q: np.ndarray, rule: VerifyRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(passes, mean absolute residual, gain) of q fitted from p by a gain and an offset, row by row (k, pixels)."""
    dp, dq = p - p.mean(axis=1, keepdims=True), q - q.mean(axis=1, keepdims=True)
    spread = np.minimum(np.abs(dp).mean(axis=1), np.abs(dq).mean(axis=1))
    gain = (dp * dq).sum(axis=1) / np.maximum((dp * dp).sum(axis=1), 1e-6)
    residual = np.abs(dq - gain[:, None] * dp).mean(axis=1)
    beyond_ramp = np.minimum(_off_plane(p), _off_plane(q))
    passes = (
        (spread >= SHADING * rule.flat_max_difference)
        & (gain >= 1 / MAX_GAIN)
        & (gain <= MAX_GAIN)
        & (residual <= rule.flat_max_difference)
        & (residual <= SHADING_SHARE * spread)
        & (residual <= BEYOND_RAMP_SHARE * beyond_ramp)
    )
    return passes, residual, gain


def _off_plane(rows: np.ndarray) -> np.ndarray:
    """Mean absolute departure of each (side * side) row from its least-squares plane a + b x + c y."""
    return np.abs(rows - (rows @ _PLANE_PINV.T) @ _PLANE.T).mean(axis=1)


def _view_name(view: int, inside: bool) -> str:
    where = "content inside the bars" if inside else "frame"
    return where if view == 0 else f"centre {round(CROPS[view - 1] * 100)}% of the {where}"


def _mean_deviation(stack: np.ndarray) -> np.ndarray:
    flat = stack.reshape(len(stack), -1)
    return np.abs(flat - flat.mean(axis=1, keepdims=True)).mean(axis=1)
