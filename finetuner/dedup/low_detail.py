"""The verifier's rule for low-detail pairs (finetuner/dedup/verify.py): frames with little fine structure correlate
with any other smooth frame, so an alignment's score says nothing about them. A pair with a low-detail image is a
copy in one of three ways:

1. **Pixel match.** The same picture pixel for pixel, as it is or mirrored, within `flat_max_difference` grey
   levels on average. Frames that both show visible shading may differ by one brightness gain: the shading pins the
   gain down, while two plain frames of different shades would match through any gain. Where either image shows
   bars (its frame deviates from its mean by SHADING flat_max_difference more than its content inside them), the
   contents inside the bars are compared too: a plain field and its letterboxed copy. Where one image's trim strips
   a caption panel at its head or foot (a band with marks on it) and the other's does not, the two are also compared
   over that trim's box as they lie: a caption bar drawn over a smooth picture.
2. **Shading match.** Both frames show shading, and beyond a plain ramp (a smooth wallpaper of soft shapes, a
   vignetted gradient). One frame's shading is then the other's up to a tone change (a gain and an offset: contrast,
   brightness), a mirror and a centre crop of either (90% or 80% of each side), or as the two views the candidate
   search proposed the pair by (a crop from one side), after both are smoothed of what heavy JPEG compression adds
   (banding, blocks). Each image's frame and its content inside its bars are tried. The residual must be within
   `flat_max_difference`, a small share of the shading, and a small share of the shading's departure from a plane.
   The last is what keeps two pictures of one plain ramp apart (two clear skies, two studio backdrops): any ramp fits
   another ramp through a gain and an offset. Likewise a bowl or a dome (a vignette, a radial glow) nearly fits another
   about a nearby centre, so the residual must also be within the shading's departure from a quadratic surface.
   Shading is smooth, so it is compared at 32x32.
3. **Blurred to match.** A copy blurred by several percent of its width is low-detail where its original is not (a
   retina's or a slide's small dark spots fade into the ground), and its original's detail is a difference the copy
   cannot show: 4-6 grey levels pixel for pixel. So where both matches refuse a pair, the sharper frame (the more fine
   detail) is blurred by each of DEBLUR_SIGMAS and the pixel match tried again, the best kept: one parameter from a
   short list. On the heavier set (benchmarks/bench_dedup_quality.py --set heavier) a 102-pixel retina blurred by 8%
   matched its original blurred by 5 thumbnail pixels at 0.4 grey levels (5.0 as they were); the quality sets gained 8
   true pairs (a smooth wallpaper's CLAHE and JPEG-8 copies too) and no false one.

On the photo benches (benchmarks/bench_dedup_quality.py) the shading match found a smooth wallpaper's copies at
JPEG quality 15, at contrast x0.6, cropped 10% on each side or on one, in a white letterbox and toned sepia, which the
pixel match missed, and it matched none of the 9,423 pairs of two different low-detail images there (synthetic smooth
negatives, wallpapers, their letterboxed copies). Colour decides these pairs (finetuner/dedup/colour_checks.py: the
colour check compares the regions the match compared, inside bars where it took the content, each way, and holds them to
LOW_DETAIL_COLOUR_FIT). Pure numpy and OpenCV on the 64x64 grey thumbnails, about 0.2 ms a shaded pair on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from finetuner.dedup.align import area, cuts, signal_boxes
from finetuner.dedup.correlation import blur_each
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.trims import caption_panels
from finetuner.dedup.verdicts import VerifyRule

SHADING = 4.0  # frames whose mean deviation is this many flat_max_difference show shading (a gain must fit it)
MAX_GAIN = 1.8  # the largest tone gain (either way) the low-detail rules undo: contrast x0.6 is 1.67
SIDE = 32  # the shading match compares views area-averaged to SIDE x SIDE (shading is smooth: half the thumbnail's)
SMOOTH_SIGMA = 2.0  # ...and blurred by this many of their pixels (4 thumbnail pixels: JPEG blocks and banding)
SHADING_SHARE = 0.12  # the shading match's residual at most this share of either frame's mean deviation...
BEYOND_RAMP_SHARE = 0.5  # ...and of either frame's mean departure from its best-fitting plane
BEYOND_BOWL_SHARE = 1.0  # ...and from its best-fitting quadratic surface (a bowl or a dome: a vignette, a glow)
CROPS = (0.9, 0.8)  # centre crops (share of each side) the shading match tries on either frame
CHUNK = 256  # pairs whose views are compared together
DEBLUR_SIGMAS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # thumbnail pixels the sharper of a pair is blurred by
COARSE = 4  # pixels a side of the blocks whose means bound a blurred pair's difference from below
BAR_SLACK = 2  # thumbnail pixels a proposed view may reach past an image's content into its bars (a trim's rounding)
# A blur bends a ramp near the frame's edges (the edge pixels repeated): the departure from a plane is measured inside
# a margin of twice the blur
MARGIN = int(np.ceil(2 * SMOOTH_SIGMA))
_y, _x = np.mgrid[0 : SIDE - 2 * MARGIN, 0 : SIDE - 2 * MARGIN] / (SIDE - 2 * MARGIN - 1.0)
_PLANE = np.stack([np.ones(_x.size), _x.ravel(), _y.ravel()], axis=1).astype(np.float32)  # a + b x + c y
_PLANE_PINV = np.linalg.pinv(_PLANE).astype(np.float32)
_BOWL = np.concatenate([_PLANE, np.stack([_x.ravel() ** 2, _x.ravel() * _y.ravel(), _y.ravel() ** 2], axis=1)], 1)
_BOWL_PINV = np.linalg.pinv(_BOWL).astype(np.float32)  # a + b x + c y + d x^2 + e x y + f y^2


def low_detail_verdicts(
    thumbs: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    rule: VerifyRule,
    trims: np.ndarray | None = None,
    signals: np.ndarray | None = None,
    aspect: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(accepted, similarity, overlap, how, inside) of the low-detail pairs (thumbs[i], thumbs[j]): the pixel match,
    then the shading match for the shaded pairs the pixel match refused, on the frames and, where `trims` (top,
    bottom, left, right per image, finetuner/dedup/views.py) strip bars or a mat from either, on the contents inside
    them, and with `signals` (each pair's proposing view pair, "left90~full") on those views (`aspect`: the images'
    width / height, which places a square view). Similarity is 1 - the mean grey difference / 255 (the shading
    match's: its residual), overlap the share of each frame (or content) the match compares, inside (n, 2) whether
    it compared each image's content inside its bars (the colour check compares the same regions)."""
    accepted, difference = np.zeros(len(i), bool), np.zeros(len(i))
    how, overlap, inside = np.empty(len(i), dtype=object), np.ones(len(i)), np.zeros((len(i), 2), bool)
    trims = None if trims is None else np.asarray(trims)
    bars = _bars(thumbs, np.r_[i, j], trims, rule)
    captioned = np.zeros(len(thumbs), bool) if trims is None else caption_panels(thumbs, trims, np.r_[i, j])
    for s in range(0, len(i), CHUNK):
        part = slice(s, s + CHUNK)
        a, b = thumbs[i[part]].astype(np.float32), thumbs[j[part]].astype(np.float32)
        barred = np.stack([bars[i[part]], bars[j[part]]], axis=1)
        # bars are shading that pins no gain of what they frame: two barred plain fields match through any gain
        accepted[part], difference[part], how[part], spread = _pixel_match(a, b, rule, barred.any(axis=1))
        rows = np.flatnonzero(~accepted[part] & barred.any(axis=1))
        if len(rows):  # a plain field against its letterboxed copy: their contents inside the bars
            x, y, barred = i[part][rows], j[part][rows], barred[rows]
            a = np.where(barred[:, :1, None], cuts(thumbs, x, trims[x]), a[rows])
            b = np.where(barred[:, 1:, None], cuts(thumbs, y, trims[y]), b[rows])
            matched, gap, said, _ = _pixel_match(a, b, rule)
            done = s + rows[matched]
            accepted[done], difference[done], inside[done] = True, gap[matched], barred[matched]
            how[done] = [f"content inside the bars: {text}" for text in said[matched].tolist()]
        over = np.stack([captioned[i[part]], captioned[j[part]]], axis=1)
        rows = np.flatnonzero(~accepted[part] & (over[:, 0] != over[:, 1]))
        if len(rows):  # a caption drawn over one's foot or head: its content against the same box of the other
            x, y = i[part][rows], j[part][rows]
            box = np.where(over[rows, :1], trims[x], trims[y])
            matched, gap, said, _ = _pixel_match(cuts(thumbs, x, box), cuts(thumbs, y, box), rule)
            done = s + rows[matched]
            accepted[done], difference[done], overlap[done] = True, gap[matched], area(box[matched]) / THUMB**2
            how[done] = [f"less the caption, as they lie: {text}" for text in said[matched].tolist()]
        # a crop, or the content inside bars, shows no more shading than about its frame: plain pairs stop here
        shaded = s + np.flatnonzero(~accepted[part] & (spread >= SHADING * rule.flat_max_difference / 2))
        if len(shaded) == 0:
            continue
        proposed = None if signals is None else np.asarray(signals, dtype=object)[shaded]
        found = _shading_match(thumbs, i[shaded], j[shaded], rule, trims, bars, proposed, aspect)
        ok = found.matched
        accepted[shaded[ok]], difference[shaded[ok]], overlap[shaded[ok]] = True, found.residual[ok], found.overlap[ok]
        how[shaded[ok]], inside[shaded[ok]] = found.how[ok], found.inside[ok]
    rows = np.flatnonzero(~accepted)
    if len(rows):  # a heavily blurred copy is low-detail, and its original's detail is no difference
        matched, gap, said = _blurred_match(thumbs, i[rows], j[rows], rule)
        done = rows[matched]
        accepted[done], difference[done], overlap[done], how[done] = True, gap[matched], 1.0, said[matched]
        inside[done] = False
    return accepted, 1.0 - difference / 255.0, overlap, how, inside


def _pixel_match(a: np.ndarray, b: np.ndarray, rule: VerifyRule, no_gain=None) -> tuple[np.ndarray, ...]:
    """(matched, mean difference, how, the lesser frame's mean deviation) per pair of (k, h, w) float32 frames; pairs
    `no_gain` (a mask) are matched as they are, whatever shading they show."""
    spread = np.minimum(mean_deviation(a), mean_deviation(b))
    gain = _gain(a.reshape(len(a), -1).mean(axis=1), b.reshape(len(b), -1).mean(axis=1), spread, rule, no_gain)
    straight, mirrored = _differences(a, b, gain)
    difference = np.minimum(straight, mirrored)
    return difference <= rule.flat_max_difference, difference, _said(straight, mirrored, gain), spread


def _gain(mean_a: np.ndarray, mean_b: np.ndarray, spread: np.ndarray, rule: VerifyRule, no_gain=None) -> np.ndarray:
    """Per pair the brightness gain the pixel match takes: the means' ratio where both frames show shading (the lesser
    mean deviation, `spread`, SHADING flat_max_difference or more) and the pair is not `no_gain`, else 1."""
    pinned = spread >= SHADING * rule.flat_max_difference
    pinned = pinned if no_gain is None else pinned & ~no_gain
    return np.where(pinned, np.clip(mean_b / np.maximum(mean_a, 1.0), 1 / MAX_GAIN, MAX_GAIN), 1.0)


def _differences(a: np.ndarray, b: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of (k, h, w) frames, the mean absolute difference of b from a times `gain`, as they are and mirrored."""
    scaled = a * gain[:, None, None].astype(np.float32)
    straight = np.abs(scaled - b).reshape(len(a), -1).mean(axis=1)
    mirrored = np.abs(scaled - b[:, :, ::-1]).reshape(len(a), -1).mean(axis=1)
    return straight, mirrored


def _said(straight: np.ndarray, mirrored: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Per pair, how the pixel match matched it: mirrored or not, the gain, the mean difference."""
    return np.array(
        [
            f"{'mirror' if m < s else 'identity'}{f', gain {g:.2f}' if abs(g - 1) >= 0.005 else ''}, "
            f"mean difference {min(s, m):.1f} grey levels"
            for s, m, g in zip(straight.tolist(), mirrored.tolist(), gain.tolist())
        ],
        dtype=object,
    )


def _blurred_match(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule) -> tuple[np.ndarray, ...]:
    """(matched, mean difference, how) of the pixel match of frames thumbs[i] and thumbs[j] with the sharper of each
    pair (the more fine detail) blurred by each of DEBLUR_SIGMAS, the best kept. Each image is blurred once per sigma,
    and a pair is compared pixel for pixel only where its frames' means over blocks of COARSE pixels lie within
    `flat_max_difference`: the mean difference of block means is never more than the pixels' (a near-blank
    collection has tens of thousands of such pairs)."""
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    a, b = np.split(inverse.ravel(), 2)
    frames = thumbs[images].astype(np.float32)
    fine = _fine(frames)
    first = fine[a] >= fine[b]
    sharp, soft = np.where(first, a, b), np.where(first, b, a)
    means, deviations, coarse = frames.mean(axis=(1, 2)), mean_deviation(frames), _block_means(frames)
    best = np.full((4, len(i)), np.inf)  # per pair its best try: mean difference, as they are, mirrored, gain
    sigmas = np.zeros(len(i))
    used = np.unique(sharp)
    for sigma in DEBLUR_SIGMAS:
        blurred = frames.copy()  # each sharper image blurred once, not once per pair
        blurred[used] = blur_each(frames[used], sigma)
        spread = np.minimum(mean_deviation(blurred)[sharp], deviations[soft])
        gain = _gain(blurred.mean(axis=(1, 2))[sharp], means[soft], spread, rule)
        bound = np.minimum(*_differences(_block_means(blurred)[sharp], coarse[soft], gain))
        near = np.flatnonzero(bound <= np.minimum(best[0], rule.flat_max_difference))
        if len(near) == 0:
            continue
        straight, mirrored = _differences(blurred[sharp[near]], frames[soft[near]], gain[near])
        tried = np.stack([np.minimum(straight, mirrored), straight, mirrored, gain[near]])
        better = tried[0] < best[0, near]
        best[:, near[better]], sigmas[near[better]] = tried[:, better], sigma
    matched = best[0] <= rule.flat_max_difference
    how = np.full(len(i), "", dtype=object)
    said = _said(best[1, matched], best[2, matched], best[3, matched])
    how[matched] = [f"the sharper blurred by {s:.1f} to match: {t}" for s, t in zip(sigmas[matched].tolist(), said)]
    return matched, best[0], how


def _block_means(stack: np.ndarray) -> np.ndarray:
    """Each (h, w) image's means over blocks of COARSE x COARSE pixels."""
    n, h, w = stack.shape
    return stack.reshape(n, h // COARSE, COARSE, w // COARSE, COARSE).mean(axis=(2, 4))


def _fine(stack: np.ndarray) -> np.ndarray:
    """Each (h, w) image's fine detail: its mean absolute difference from itself blurred by one pixel."""
    return np.abs(stack - blur_each(stack, 1.0)).reshape(len(stack), -1).mean(axis=1)


def _bars(thumbs: np.ndarray, images: np.ndarray, trims: np.ndarray | None, rule: VerifyRule) -> np.ndarray:
    """Per thumbnail, whether it shows bars (`trims` strip some, and its frame deviates from its mean by SHADING
    flat_max_difference more than its content inside them does: a plain field's trim, a box on its own ground, is no
    bar); only `images` are looked at, the rest False."""
    bars = np.zeros(len(thumbs), bool)
    if trims is None:
        return bars
    images = np.unique(images)
    images = images[(trims[images] != (0, THUMB, 0, THUMB)).any(axis=1)]
    if len(images):
        frames, contents = thumbs[images].astype(np.float32), cuts(thumbs, images, trims[images])
        bars[images] = mean_deviation(frames) - mean_deviation(contents) >= SHADING * rule.flat_max_difference
    return bars


def _shading_match(
    thumbs: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    rule: VerifyRule,
    trims: np.ndarray | None,
    bars: np.ndarray,
    signals: np.ndarray | None = None,
    aspect: np.ndarray | None = None,
) -> _Found:
    """Per pair (`_Found`: matched, residual, overlap, how, inside), the best of the tries that passes, else the best
    try. A try takes each image's frame or its content inside its bars (where `trims` strip any: a smooth picture's
    edge can pass for a bar, so its frame is tried too), one of them whole and the other whole or centre-cropped,
    mirrored or not; and, with `signals`, the two views the candidate search proposed the pair by (a crop on one side:
    `align.signal_boxes`, placed with the images' `aspect` ratios). An image that shows `bars` (per thumbnail,
    `_bars`) takes part with its content alone: its frame's shading is its bars'."""
    images, inverse = np.unique(np.r_[i, j], return_inverse=True)
    a, b = np.split(inverse.ravel(), 2)
    whole = np.tile([0, THUMB, 0, THUMB], (len(images), 1))
    boxes = whole if trims is None else np.asarray(trims)[images]
    barred = (boxes != whole).any(axis=1)
    crops = [c for c in range(1, len(CROPS) + 1) if CROPS[c - 1] ** 2 >= rule.min_overlap]
    tries = [(0, 0)] + [(c, 0) for c in crops] + [(0, c) for c in crops]  # one frame whole, the other maybe cropped
    found = _Found(len(i))
    framed = {False: _Views.of(thumbs[images], whole)}
    if barred.any():
        framed[True] = _Views.of(thumbs[images], boxes)
    for inside_a, inside_b in ((False, False), (True, True), (True, False), (False, True)):
        # a content is tried only where it differs from the frame, a frame only where it shows no bars
        rows = np.flatnonzero((barred[a] | (not inside_a)) & (barred[b] | (not inside_b)))
        framed_by_bars = (bars[images[a[rows]]] & (not inside_a)) | (bars[images[b[rows]]] & (not inside_b))
        rows = rows[~framed_by_bars]
        if len(rows) == 0:
            continue
        for (va, vb), mirror in ((t, m) for t in tries for m in (False, True)):
            near, ok, residual, gain = _tone_fit(framed[inside_a], framed[inside_b], a, b, rows, va, vb, mirror, rule)
            seen = f"{_view_name(va, inside_a)} of a = {_view_name(vb, inside_b)} of b{', mirrored' if mirror else ''}"
            share = CROPS[max(va, vb) - 1] ** 2 if va or vb else 1.0
            found.offer(near, ok, residual, gain, share, seen, (inside_a, inside_b))
    if signals is not None:
        _offer_proposed(found, thumbs, i, j, signals, aspect, rule, bars, trims)
    return found


def _offer_proposed(found: _Found, thumbs, i, j, signals, aspect, rule: VerifyRule, bars, trims) -> None:
    """The try of the two views each pair was proposed by (`align.signal_boxes`), on whole frames: a smooth picture's
    trim is no evidence of where its content lies. But a view that reaches into the bars of an image that shows them
    (`bars`, `trims`: `_bars`) is not tried: the bars' shading would decide (two letterboxed plain fields of other
    shades match through a tone gain)."""
    ratio = np.full((len(i), 2), np.nan) if aspect is None else np.stack([aspect[i], aspect[j]], axis=1)
    frame = (0, THUMB, 0, THUMB)
    placed = [signal_boxes(signal, frame, frame, *r) for signal, r in zip(signals, ratio.tolist())]
    box_a, box_b = (np.array([p[side] for p in placed], np.int64) for side in (0, 1))
    pairs = np.arange(len(i))
    if bars[np.r_[i, j]].any():  # bars are found only where trims are given
        pairs = np.flatnonzero(~_into_bars(box_a, i, bars, trims) & ~_into_bars(box_b, j, bars, trims))
        i, j, box_a, box_b = i[pairs], j[pairs], box_a[pairs], box_b[pairs]
        placed = [placed[k] for k in pairs.tolist()]
    if len(pairs) == 0:
        return
    first, second = _Views.of(thumbs[i], box_a, ()), _Views.of(thumbs[j], box_b, ())
    rows = np.arange(len(i))
    kept = np.minimum(area(box_a), area(box_b)) / THUMB**2
    mirrored = np.array([p[2] for p in placed], bool)
    for mirror in (False, True):
        near, ok, residual, gain = _tone_fit(first, second, rows, rows, rows[mirrored == mirror], 0, 0, mirror, rule)
        ok &= kept[near] >= rule.min_overlap
        found.offer(pairs[near], ok, residual, gain, kept[near], [placed[k][3] for k in near.tolist()])


def _into_bars(boxes: np.ndarray, images: np.ndarray, bars: np.ndarray, trims: np.ndarray) -> np.ndarray:
    """Per view box (top, bottom, left, right) of images[k], whether it reaches more than BAR_SLACK pixels past the
    content of an image that shows bars."""
    content = np.asarray(trims)[images]
    past = (boxes[:, [0, 2]] < content[:, [0, 2]] - BAR_SLACK).any(axis=1) | (
        boxes[:, [1, 3]] > content[:, [1, 3]] + BAR_SLACK
    ).any(axis=1)
    return bars[images] & past


def _tone_fit(first, second, a, b, rows, va: int, vb: int, mirror: bool, rule: VerifyRule) -> tuple[np.ndarray, ...]:
    """(pairs tried, passes, mean absolute residual, gain) of view vb of b[rows] (`second`) fitted from view va of
    a[rows] (`first`) by a gain and an offset; pairs whose views show too little shading are not tried."""
    spread = np.minimum(first.spread[a[rows], va], second.spread[b[rows], vb])
    shaded = spread >= SHADING * rule.flat_max_difference  # plain frames show no shading to match
    near, spread = rows[shaded], spread[shaded]
    if len(near) == 0:
        return near, np.zeros(0, bool), np.zeros(0), np.zeros(0)
    beyond_ramp = np.minimum(first.off_plane[a[near], va], second.off_plane[b[near], vb])
    beyond_bowl = np.minimum(first.off_bowl[a[near], va], second.off_bowl[b[near], vb])
    p, q = first.centred[a[near], va], second.centred[b[near], vb]
    if mirror:
        q = q.reshape(len(q), SIDE, SIDE)[:, :, ::-1].reshape(len(q), -1)
    gain = (p * q).sum(axis=1) / np.maximum((p * p).sum(axis=1), 1e-6)
    residual = np.abs(q - gain[:, None] * p).mean(axis=1)
    ok = (
        (gain >= 1 / MAX_GAIN)
        & (gain <= MAX_GAIN)
        & (residual <= rule.flat_max_difference)
        & (residual <= SHADING_SHARE * spread)
        & (residual <= BEYOND_RAMP_SHARE * beyond_ramp)
        & (residual <= BEYOND_BOWL_SHARE * beyond_bowl)
    )
    return near, ok, residual, gain


class _Found:
    """Per pair, the best try so far: the lowest residual among those that pass, else among all; `inside`: whether it
    took each image's content inside its bars (else its frame)."""

    def __init__(self, n: int):
        self.residual, self.matched = np.full(n, np.inf), np.zeros(n, bool)
        self.overlap, self.how = np.ones(n), np.full(n, "", dtype=object)
        self.inside = np.zeros((n, 2), bool)

    def offer(self, near, ok, residual, gain, overlap, seen, inside=(False, False)) -> None:
        better = (ok & ~self.matched[near]) | ((ok == self.matched[near]) & (residual < self.residual[near]))
        at = near[better]
        self.residual[at], self.matched[at], self.inside[at] = residual[better], ok[better], inside
        self.overlap[at] = np.broadcast_to(overlap, near.shape)[better]
        seen = np.broadcast_to(np.asarray(seen, dtype=object), near.shape)[better]
        self.how[at] = [
            f"shading matches: {what}, tone gain {g:.2f}, residual {r:.1f} grey levels (smoothed)"
            for what, g, r in zip(seen.tolist(), gain[better].tolist(), residual[better].tolist())
        ]


@dataclass(frozen=True)
class _Views:
    """Per image and view (its box, then its centre crops; `_smoothed_views`): the view less its mean, its mean
    absolute deviation (how much shading it shows), and its mean departures from its best-fitting plane and quadratic
    surface inside MARGIN (how much of that is more than a ramp, or a bowl). A mirrored view has the same numbers."""

    centred: np.ndarray  # (images, views, side * side) float32
    spread: np.ndarray  # (images, views)
    off_plane: np.ndarray  # (images, views)
    off_bowl: np.ndarray  # (images, views)

    @classmethod
    def of(cls, stack: np.ndarray, boxes: np.ndarray, crops: tuple[float, ...] = CROPS) -> _Views:
        views = _smoothed_views(stack, boxes, crops)
        centred = views - views.mean(axis=2, keepdims=True)
        inner = views.reshape(-1, SIDE, SIDE)[:, MARGIN:-MARGIN, MARGIN:-MARGIN].reshape(-1, _x.size)
        off_plane = np.abs(inner - (inner @ _PLANE_PINV.T) @ _PLANE.T).mean(axis=1).reshape(views.shape[:2])
        off_bowl = np.abs(inner - (inner @ _BOWL_PINV.T) @ _BOWL.T.astype(np.float32)).mean(axis=1)
        return cls(centred, np.abs(centred).mean(axis=2), off_plane, off_bowl.reshape(views.shape[:2]))


def _smoothed_views(stack: np.ndarray, boxes: np.ndarray, crops: tuple[float, ...] = CROPS) -> np.ndarray:
    """(n, 1 + len(crops), SIDE * SIDE) float32: each image's box (top, bottom, left, right), then its centre `crops`
    (share of each side), resized to SIDE x SIDE and blurred by SMOOTH_SIGMA."""
    out = np.empty((len(stack), 1 + len(crops), SIDE * SIDE), np.float32)
    size = (SIDE, SIDE)
    for k, (image, (top, bottom, left, right)) in enumerate(zip(stack, boxes.tolist())):
        h, w = bottom - top, right - left
        for v, keep in enumerate((1.0, *crops)):
            dy, dx = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
            view = image[top + dy : bottom - dy, left + dx : right - dx].astype(np.float32)
            if view.shape != size:  # area-averaged where it shrinks, interpolated where it grows
                shrinks = min(view.shape) >= SIDE
                view = cv2.resize(view, size, interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)
            blurred = cv2.GaussianBlur(view, (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REPLICATE)
            out[k, v] = blurred.ravel()
    return out


def _view_name(view: int, inside: bool) -> str:
    where = "content inside the bars" if inside else "frame"
    return where if view == 0 else f"centre {round(CROPS[view - 1] * 100)}% of the {where}"


def mean_deviation(stack: np.ndarray) -> np.ndarray:
    """Each (h, w) image's mean absolute deviation from its mean: how much shading it shows."""
    flat = stack.reshape(len(stack), -1)
    return np.abs(flat - flat.mean(axis=1, keepdims=True)).mean(axis=1)
