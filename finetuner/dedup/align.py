"""Where a candidate pair's two images are compared: the view regions its signal names, resized onto one 64x64 grid,
and the local placement search that refines them (used by the verifier, finetuner/dedup/verify.py; the affine refit
after it: finetuner/dedup/refit.py).

A whole frame is compared without its letterbox bars (bars alike in two pictures are no evidence); a view such as
"crop90" or "top90" names a box on the thumbnail (finetuner/dedup/views.py). Thumbnails are squashed to a square, so
a region's true proportions come from its box and the image's aspect ratio (width / height, NaN where unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from finetuner.dedup.correlation import corr_many
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.refit import max_turns, refit, warped
from finetuner.dedup.signals import signal_mirrored, signal_views
from finetuner.dedup.views import mirrored_boxes, view_box, whole_frame

# The verifier's stages (searches.py) that compare the two frames inside their bars as they lie: the frames as they
# are (0), less what a watermark covers (9), lit alike (10), with a's hues turned (15), each over its local contrast
# (20), the sharper blurred to match (21), one's tones clipped as the other's (22)
INSIDE_BARS = (0, 9, 10, 15, 20, 21, 22)
REFINE_SCALES = (0.9, 0.95)  # the inner region's size relative to the outer one in the local search
COARSE = 16  # pixels a side of `coarse_placement`
BAND_MIN_STRETCH = 0.1  # |log| of the two contents' proportions below which no band is looked for (`band_boxes`)
# Where one content lies as a band along the other's canvas (`band_boxes`), per verifier stage: (across a narrower
# canvas, at 0 its start (top or left), 1 its middle, 2 its end). Centred (7, 8): a picture shown whole on a repost's
# fill; at either end (16-19): a crop of one side of a larger picture, whose proportions say how much of it it keeps
BAND_STAGES = {7: (True, 1), 8: (False, 1), 16: (True, 0), 17: (False, 0), 18: (True, 2), 19: (False, 2)}


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (grey, or colour with a trailing channel axis) at `size` (width, height), area-averaged."""
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA) if image.shape[1::-1] != size else image


def signal_boxes(signal: str, trim_a, trim_b, aspect_a=np.nan, aspect_b=np.nan) -> tuple[tuple, tuple, bool, str]:
    """(box of a, box of b, whether exactly one is mirrored, a description) of the view pair `signal` names; boxes
    are (top, bottom, left, right) on the thumbnails: a whole frame's as `views.whole_frame` says. The aspect ratios
    place a square view (NaN: unknown)."""
    va, vb = signal_views(signal)
    box_a, _ = view_box(whole_frame(va, vb), trim_a, aspect_a)
    box_b, _ = view_box(whole_frame(vb, va), trim_b, aspect_b)
    mirrored = signal_mirrored(signal)
    return box_a, box_b, mirrored, f"{'mirror: ' if mirrored else ''}{va} of a = {vb} of b"


def pair_ratios(aspect: np.ndarray | None, x: int, y: int) -> tuple[float, float]:
    """The aspect ratios of images x and y (NaN where unknown)."""
    return (np.nan, np.nan) if aspect is None else (float(aspect[x]), float(aspect[y]))


def cut(thumb: np.ndarray, box, side: int = THUMB) -> np.ndarray:
    """The box (top, bottom, left, right) of a thumbnail, as float32 resized to `side` pixels a side."""
    top, bottom, left, right = box
    return resized(thumb[top:bottom, left:right].astype(np.float32), (side, side))


def cuts(thumbs: np.ndarray, images, boxes, side: int = THUMB) -> np.ndarray:
    """`cut` of box boxes[k] of thumbs[images[k]], for each k, stacked."""
    return np.stack(
        [cut(thumbs[x], box, side) for x, box in zip(np.asarray(images).tolist(), np.asarray(boxes).tolist())]
    )


def area(boxes) -> np.ndarray:
    """Pixels in each (top, bottom, left, right) box (one box, or an array of them)."""
    boxes = np.asarray(boxes)
    return (boxes[..., 1] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 2])


def common_boxes(trims_a: np.ndarray, trims_b: np.ndarray) -> np.ndarray:
    """Per pair of (top, bottom, left, right) boxes on two thumbnails, the box inside both."""
    top, left = np.maximum(trims_a[:, 0], trims_b[:, 0]), np.maximum(trims_a[:, 2], trims_b[:, 2])
    bottom = np.maximum(np.minimum(trims_a[:, 1], trims_b[:, 1]), top + 1)
    right = np.maximum(np.minimum(trims_a[:, 3], trims_b[:, 3]), left + 1)
    return np.stack([top, bottom, left, right], axis=1)


def shared_content(trims_a: np.ndarray, trims_b: np.ndarray, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the box of the content both trims keep, on a's frame and on b's: where b is a's mirror image (`flip`),
    b's trim is mirrored onto a's frame before the two are met, and the box mirrored back onto b's."""
    flip = np.asarray(flip, bool)[:, None]
    inside = common_boxes(trims_a, np.where(flip, mirrored_boxes(trims_b), trims_b))
    return inside, np.where(flip, mirrored_boxes(inside), inside)


def band_boxes(
    trims_a, trims_b, aspect_a, aspect_b, on_narrower: bool, at: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes of a, boxes of b, found) per pair, where one picture is shown whole inside the other's canvas of another
    shape, with bars of any kind (a blurred copy of itself, a pattern), or is a crop of one side of it: the wider
    content lies across the narrower canvas as a horizontal band (`on_narrower`), or the narrower content stands in
    the wider canvas as a vertical band, `at` 0 the canvas's start (top or left), 1 its middle, 2 its end; the
    picture's box is its trimmed frame. `found` is False where the two contents' true proportions are within
    BAND_MIN_STRETCH or unknown (the boxes are then the trims)."""
    trims_a, trims_b = np.atleast_2d(trims_a).astype(np.int64), np.atleast_2d(trims_b).astype(np.int64)
    heights_a, heights_b = trims_a[:, 1] - trims_a[:, 0], trims_b[:, 1] - trims_b[:, 0]
    wide_a = (trims_a[:, 3] - trims_a[:, 2]) / heights_a * np.asarray(aspect_a, np.float64)
    wide_b = (trims_b[:, 3] - trims_b[:, 2]) / heights_b * np.asarray(aspect_b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        found = np.isfinite(wide_a) & np.isfinite(wide_b) & (np.abs(np.log(wide_a / wide_b)) >= BAND_MIN_STRETCH)
    share = np.where(found, np.minimum(wide_a, wide_b) / np.where(found, np.maximum(wide_a, wide_b), 1.0), 1.0)
    canvas_is_b = (wide_a > wide_b) == on_narrower  # the band lies on b: across it (a wider), or standing in it
    canvas = np.where(canvas_is_b[:, None], trims_b, trims_a)
    band = canvas.copy()
    axis = (0, 1) if on_narrower else (2, 3)  # rows across a narrower canvas, columns in a wider one
    length = canvas[:, axis[1]] - canvas[:, axis[0]]
    side = np.maximum(1, np.round(length * share)).astype(np.int64)
    band[:, axis[0]] = canvas[:, axis[0]] + (length - side) * at // 2
    band[:, axis[1]] = band[:, axis[0]] + side
    boxes_a = np.where((found & ~canvas_is_b)[:, None], band, trims_a)
    boxes_b = np.where((found & canvas_is_b)[:, None], band, trims_b)
    return boxes_a, boxes_b, found


def coarse_similarity(thumbs: np.ndarray, i, j, boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Per pair, the Pearson correlation of box boxes_a[k] of thumbs[i[k]] and box boxes_b[k] of thumbs[j[k]], both
    shrunk to COARSE pixels a side: whether the boxes are worth comparing at full size."""
    return corr_many(cuts(thumbs, i, boxes_a, COARSE), cuts(thumbs, j, boxes_b, COARSE))


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
    content = area(trims)
    for k, (x, y, signal) in enumerate(zip(i.tolist(), j.tolist(), signals)):
        box_a, box_b, mirrored, name = signal_boxes(signal, trims[x], trims[y], *pair_ratios(aspect, x, y))
        ra[k] = cut(thumbs[x], box_a)
        region_b = cut(thumbs[y], box_b)
        rb[k] = region_b[:, ::-1] if mirrored else region_b
        overlap[k] = min(area(box_a) / content[x], area(box_b) / content[y])
        if aspect is not None:
            stretch[k] = abs(np.log(_proportions(box_a, aspect[x]) / _proportions(box_b, aspect[y])))
        names.append(name)
    stretch[~np.isfinite(stretch)] = 0.0  # an image of unknown size: proportions not checked
    return ra, rb, np.minimum(overlap, 1.0), stretch, names


def placement(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(a's part, b's part, description): where one region best sits inside the other at a few sizes; the inner
    region is shrunk to fit, the outer one cut to the place found."""
    where = best_place(a, b)
    return (*placed(a, b, where), f", {where[0]} +({where[1]},{where[2]}) x{where[3]:.2f}")


def best_place(a: np.ndarray, b: np.ndarray) -> tuple[str, int, int, float]:
    """(which sits in which, x, y, scale) of `placement`'s best normalised correlation."""
    best = (-2.0, ("b in a", 0, 0, 1.0))
    for scale in REFINE_SCALES:
        side = round(THUMB * scale)
        for name, outer, inner in (("b in a", a, b), ("a in b", b, a)):
            _, score, _, (x, y) = cv2.minMaxLoc(
                cv2.matchTemplate(outer, resized(inner, (side, side)), cv2.TM_CCOEFF_NORMED)
            )
            if score > best[0]:
                best = (score, (name, x, y, scale))
    return best[1]


def placed(a: np.ndarray, b: np.ndarray, where: tuple[str, int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two regions (grey, or colour with a trailing channel axis) as `best_place` found them to lie."""
    name, x, y, scale = where
    side = round(THUMB * scale)
    outer, inner = (a, b) if name == "b in a" else (b, a)
    patch, template = outer[y : y + side, x : x + side], resized(inner, (side, side))
    return (patch, template) if name == "b in a" else (template, patch)


def coarse_placement(thumbs: np.ndarray, trims: np.ndarray, i, j, mirrored: np.ndarray) -> np.ndarray:
    """Per pair, `placement`'s best normalised correlation at COARSE pixels a side: the trimmed frames of
    thumbs[i[k]] and thumbs[j[k]] (b mirrored where `mirrored`), one inside the other at REFINE_SCALES. All pairs at
    once, each image shrunk once: what decides whether two frames are worth placing at full size."""
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    frames = cuts(thumbs, images, trims[images], COARSE)
    a, b = inverse[: len(i)], inverse[len(i) :]
    flip = np.asarray(mirrored, bool)[:, None, None]
    best = np.full(len(i), -1.0)
    for scale in REFINE_SCALES:
        side = round(COARSE * scale)
        shrunk = np.stack([resized(f, (side, side)) for f in frames])
        for outer, inner in (
            (frames[a], np.where(flip, shrunk[b][:, :, ::-1], shrunk[b])),
            (np.where(flip, frames[b][:, :, ::-1], frames[b]), shrunk[a]),
        ):
            for dy in range(COARSE - side + 1):
                for dx in range(COARSE - side + 1):
                    best = np.maximum(best, corr_many(outer[:, dy : dy + side, dx : dx + side], inner))
    return best


def aligned_pair(
    thumbs: np.ndarray, trims: np.ndarray, x: int, y: int, signal: str, stage: int, aspect: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, float], tuple[float, float]]]:
    """(region of x, region of y, frames) as the verifier's kept alignment placed them: `stage` 0 the frames inside
    their bars, 1 the regions `signal` names, 2 those refined by `placement`, 3 those then refitted by `refit`, 4 the
    frames as they lie over the content both trims keep (`shared_content`), 5 and 6 as 2 and 3 for the two whole
    frames (mirrored as the signal's views are), 7 and 8 one content as a band across or in the other's canvas
    (`band_boxes`), 9 and 10 as 0 (the verifier left out what a watermark covers, or fitted the light), 11 and 12
    x's whole frame with y inside its bars, and the other way round (4, 11 and 12 mirrored as the signal's views are),
    13 and 14 as 5 and 6 with y mirrored whatever the signal named, 16-19 as 7 and 8 with the band at one end of the
    canvas (BAND_STAGES).
    `frames` are each region's scales (x, y) from the image's true geometry to the region's pixels, and the linear part
    of the refit's warp q was placed by (stage 3; else the identity), so that a warp fitted between the regions can be
    judged in true proportions as the whole map from one image to the other (the placement's uniform scale does not
    change proportions and is left out)."""
    p, q, frames, _ = _aligned(thumbs, trims, x, y, signal, stage, aspect)
    return p, q, frames


def aligned_colours(
    thumbs: np.ndarray,
    colours: np.ndarray,
    trims: np.ndarray,
    x: int,
    y: int,
    signal: str,
    stage: int,
    aspect: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The regions of `aligned_pair` cut from `colours` instead (per image a 64x64 float32 array with a trailing
    channel axis: the verifier's colour planes of the colour thumbnails, enlarged): the grey thumbnails place them, the
    colour ones follow."""
    return _aligned(thumbs, trims, x, y, signal, stage, aspect, colours)[3]


def _aligned(thumbs, trims, x: int, y: int, signal: str, stage: int, aspect, colours=None):
    """(p, q, frames, (colour p, colour q) or None) of `aligned_pair`."""
    ratio = (1.0, 1.0) if aspect is None else (aspect[x], aspect[y])
    if stage in (5, 6):  # the whole frames, placed (mirrored as the signal's views are)
        signal = "full~mirror" if signal_mirrored(signal) else "full~full"
        stage -= 3
    elif stage in (13, 14):  # the whole frames, placed mirrored whatever the signal named
        signal, stage = "full~mirror", stage - 11
    if stage in INSIDE_BARS:
        box_a, box_b, mirrored = tuple(trims[x]), tuple(trims[y]), False
    elif stage == 4:  # a mirrored copy's content box lies mirrored on its own frame
        mirrored = signal_mirrored(signal)
        inside_a, inside_b = shared_content(trims[x][None], trims[y][None], [mirrored])
        box_a, box_b = tuple(inside_a[0].tolist()), tuple(inside_b[0].tolist())
    elif stage in (11, 12):  # one whole frame, the other inside its bars
        whole = (0, THUMB, 0, THUMB)
        box_a, box_b = (whole, tuple(trims[y])) if stage == 11 else (tuple(trims[x]), whole)
        mirrored = signal_mirrored(signal)
    elif stage in BAND_STAGES:
        boxes_a, boxes_b, _ = band_boxes(trims[x], trims[y], ratio[0], ratio[1], *BAND_STAGES[stage])
        box_a, box_b, mirrored = tuple(boxes_a[0].tolist()), tuple(boxes_b[0].tolist()), False
    else:
        box_a, box_b, mirrored, _ = signal_boxes(signal, trims[x], trims[y], *ratio)
    stacks = [thumbs] if colours is None else [thumbs, colours]  # grey places the regions; colour follows
    regions = [[cut(stack[x], box_a), cut(stack[y], box_b)] for stack in stacks]
    if mirrored:
        regions = [[p, q[:, ::-1]] for p, q in regions]
    if stage in (2, 3):
        where = best_place(*regions[0])
        regions = [list(placed(p, q, where)) for p, q in regions]
    refitted = np.eye(2)  # the linear part of the refit's warp q was placed by (identity: none)
    if stage == 3 and (fitted := refit(*regions[0], max_turns(thumbs, [x], [y])[0])) is not None:
        regions = [[p, warped(q, fitted[0])] for p, q in regions]
        refitted = fitted[0][:, :2].astype(np.float64)
    frames = (
        *(
            (THUMB / ((right - left) * (r if np.isfinite(r) else 1.0)), THUMB / (bottom - top))
            for (top, bottom, left, right), r in ((box_a, ratio[0]), (box_b, ratio[1]))
        ),
        refitted,
    )
    (p, q), *in_colour = regions
    return p, q, frames, (tuple(in_colour[0]) if in_colour else None)
