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
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(accepted, similarity, overlap, how) of the low-detail pairs (thumbs[i], thumbs[j]): the pixel match, then
    the shading match for the shaded pairs the pixel match refused. Similarity is 1 - the mean grey difference / 255
    (the shading match's: its residual), overlap the share of each frame the match compares."""
    accepted, difference, how = _pixel_match(thumbs[i].astype(np.float32), thumbs[j].astype(np.float32), rule)
    overlap = np.ones(len(i))
    for s in range(0, len(i), CHUNK):
        part = s + np.flatnonzero(~accepted[s : s + CHUNK])
        if len(part) == 0:
            continue
        ok, residual, share, what = _shading_match(thumbs, i[part], j[part], rule)
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
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(matched, residual, overlap, how) per pair: the best of the tries (a's view, b's view, mirrored) that passes,
    else the best try."""
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    views = _smoothed_views(thumbs[images])  # (images, 1 + len(CROPS), side * side): whole frame, then crops
    a, b = np.split(inverse.ravel(), 2)
    crops = [c for c in range(1, len(CROPS) + 1) if CROPS[c - 1] ** 2 >= rule.min_overlap]
    tries = [(0, 0)] + [(c, 0) for c in crops] + [(0, c) for c in crops]  # one frame whole, the other maybe cropped
    best = np.full(len(i), np.inf)
    matched = np.zeros(len(i), bool)
    how = np.full(len(i), "", dtype=object)
    overlap = np.ones(len(i))
    for va, vb in tries:
        for mirror in (False, True):
            p, q = views[a, va], views[b, vb]
            if mirror:
                q = q.reshape(len(q), THUMB, THUMB)[:, :, ::-1].reshape(len(q), -1)
            ok, residual, gain = _tone_fit(p, q, rule)
            better = (ok & ~matched) | ((ok == matched) & (residual < best))
            best[better], matched[better] = residual[better], ok[better]
            overlap[better] = CROPS[max(va, vb) - 1] ** 2 if va or vb else 1.0
            how[better] = [
                f"shading matches: {_view_name(va)} of a = {_view_name(vb)} of b{', mirrored' if mirror else ''}, "
                f"tone gain {g:.2f}, residual {r:.1f} grey levels (smoothed)"
                for g, r in zip(gain[better].tolist(), residual[better].tolist())
            ]
    return matched, best, overlap, how


def _smoothed_views(stack: np.ndarray) -> np.ndarray:
    """(n, 1 + len(CROPS), side * side) float32: each frame, then its centre crops resized back, each blurred by
    SMOOTH_SIGMA."""
    out = np.empty((len(stack), 1 + len(CROPS), THUMB * THUMB), np.float32)
    size = (THUMB, THUMB)
    for k, image in enumerate(stack):
        h, w = image.shape
        for v, keep in enumerate((1.0, *CROPS)):
            dy, dx = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
            view = image[dy : h - dy, dx : w - dx].astype(np.float32)
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


def _view_name(view: int) -> str:
    return "frame" if view == 0 else f"centre {round(CROPS[view - 1] * 100)}%"


def _mean_deviation(stack: np.ndarray) -> np.ndarray:
    flat = stack.reshape(len(stack), -1)
    return np.abs(flat - flat.mean(axis=1, keepdims=True)).mean(axis=1)
