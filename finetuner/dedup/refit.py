"""The refit after the local placement search (finetuner/dedup/align.py): OpenCV's ECC fits an affine warp of one
placed region onto the other, for what a crop on two sides, a crop of one side resized back, or a slight turn leaves
after a uniform scale and shift, within the limits a crop or a straightened print needs (REFIT_MAX_*).
"""

from __future__ import annotations

import cv2
import numpy as np

from finetuner.dedup.correlation import SMOOTH_SIGMA, blur_each
from finetuner.dedup.shape import graphic

# The refit after the local search (`refit`): OpenCV's ECC fits an affine warp of one placed region onto the other. It
# may not move further than a crop of up to 10% per side or a modest change of proportions needs: a looser warp bends
# two photographs of one scene onto each other (a stereo pair, turned 2.1 degrees, scored 0.968 / 0.891).
REFIT_MAX_SCALE = 0.15  # |log| of the warp's overall scale
REFIT_MAX_ANISOTROPY = 0.15  # |log| of the ratio of its singular values
REFIT_MAX_TURN = 0.025  # radians (about 1.5 degrees): where either image is a graphic
# ...and where both are photographs: a scan or a print photographed again, straightened by hand, is off by a few
# degrees. A letter turned a little matches a slanted one of another typeface, so graphics keep the tighter limit: at
# 3.4 degrees for all, 22 more look-alike letters of other typefaces were accepted on the glyph set, with this split
# none. On the held-out photos' 52 pictures turned (corners cut) 2 / 3 / 4 / 5 degrees, 0.87 / 0.71 / 0.60 / 0.42 were
# found at 1.5 degrees, 0.96 / 0.87 / 0.79 / 0.46 at 5, with no false pair there or on the photo bench. The turn is
# measured on the squashed thumbnails, where a 4:3 photograph turned 5 degrees and cropped to fit (an augmentation
# saved to disk, a photo straightened in an editor) reads 5.0-6.2 degrees: at 5 its refit was refused, though it
# agreed at 0.99-1.00 and 0.98-1.00 in detail. At 10 (and WIDE_TURN_MIN_DETAIL), of 26 such copies 23 were found, not
# 12 (turned 5 degrees with black corners: 19, not 13), with no false pair on the quality sets; a stereo pair of one
# street (scikit-image's motorcycle), turned 0-9 degrees, is still refused. Turned 10 degrees, a copy's refit also
# needs more scale and anisotropy than a crop's, so few are found (3 of 26) and most are not candidates: a known limit.
PHOTO_MAX_TURN = 0.1745  # radians (10 degrees)
# Past the old 5 degrees a refit must agree in fine detail as a copy does: the demo world's specimens of one class (one
# star on one patterned ground, a dot placed elsewhere) refitted turned 6-10 degrees at 0.95-0.98 in detail, where the
# turned copies did at 0.98-1.00
WIDE_TURN = 0.0873  # radians (5 degrees)
WIDE_TURN_MIN_DETAIL = 0.98
REFIT_MIN_INSIDE = 0.7  # share of the region the warped one must still cover
# ECC stops after 15 iterations or a step below 1e-3 (30 gave one more copy of 403 on the photo sets, 8 lost 12)
REFIT_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 15, 1e-3)


def refit(p: np.ndarray, q: np.ndarray, max_turn: float = REFIT_MAX_TURN) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(warp, inside, description) of an affine warp fitted onto p of q's smoothed content, both grey regions of
    one size already placed by `placement`: what a crop on two sides, a crop of one side resized back, or a slight
    turn leaves after a uniform scale and shift. `warp` maps p's pixels to q's (for cv2.warpAffine with
    WARP_INVERSE_MAP), `inside` marks p's pixels whose warped q pixel lies inside q. None where ECC does not
    converge or the warp goes beyond a crop's (REFIT_MAX_*, turned at most `max_turn` radians) or leaves too little
    overlap."""
    smooth_p, smooth_q = blur_each(np.stack([p, q]).astype(np.float32), SMOOTH_SIGMA)
    try:
        _, warp = cv2.findTransformECC(
            smooth_p, smooth_q, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, REFIT_CRITERIA, None, 5
        )
    except cv2.error:
        return None
    linear = warp[:, :2].astype(np.float64)
    singular = np.linalg.svd(linear, compute_uv=False)
    scale = float(np.sqrt(singular[0] * singular[1]))
    anisotropy = float(np.log(singular[0] / max(singular[1], 1e-9)))
    turn = float(np.arctan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))
    if scale <= 0 or abs(np.log(scale)) > REFIT_MAX_SCALE or anisotropy > REFIT_MAX_ANISOTROPY:
        return None
    if abs(turn) > max_turn:
        return None
    inside = warped(np.ones_like(smooth_q), warp, border=0.0) > 0.999
    if inside.mean() < REFIT_MIN_INSIDE:
        return None
    return warp, inside, f", refit x{scale:.3f} turned {round(np.degrees(turn), 1) + 0.0:.1f} deg"


def turn_of(warp: np.ndarray) -> float:
    """The turn (radians, counter-clockwise) of a `refit` warp's linear part."""
    linear = np.asarray(warp, np.float64)[:, :2]
    return float(np.arctan2(linear[1, 0] - linear[0, 1], linear[0, 0] + linear[1, 1]))


def max_turns(thumbs: np.ndarray, i, j) -> np.ndarray:
    """Per pair (thumbs[i[k]], thumbs[j[k]]), the largest turn `refit` may find: PHOTO_MAX_TURN for two
    photographs, REFIT_MAX_TURN where either is a graphic (finetuner/dedup/shape.py)."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    if len(i) == 0:
        return np.zeros(0)
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    drawn = graphic(np.asarray(thumbs[images]))[inverse.ravel()].reshape(2, len(i)).any(axis=0)
    return np.where(drawn, REFIT_MAX_TURN, PHOTO_MAX_TURN)


def warped(image: np.ndarray, warp: np.ndarray, border: float | None = None) -> np.ndarray:
    """`image` (one grey or colour region) moved onto the other region's pixels by a `refit` warp; outside:
    `border`, or the nearest pixel (None)."""
    h, w = image.shape[:2]
    mode = cv2.BORDER_REPLICATE if border is None else cv2.BORDER_CONSTANT
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, warp, (w, h), flags=flags, borderMode=mode, borderValue=border or 0.0)
