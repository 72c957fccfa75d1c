"""The verifier's searches for copies edited in their pixels, not their geometry (finetuner/dedup/verify.py tries
them after the alignments of finetuner/dedup/searches.py, each on the pairs still short of the thresholds).

Each compares the two frames as they are (inside their bars) after undoing one kind of edit, and keeps, per pair,
whichever alignment scores better (`verdicts.Best`, stage numbers there):
- `overdrawn` (9): without the tenth of pixels that disagree most (a watermark, a logo);
- `relit` (10): one lit like the other by a smooth light field (a vignette, a lens's falloff, a graduated filter,
  light from one side);
- `hue_turned` (15): one's grey as it would be with its hues turned as its colours show (a filter's hue shift changes
  each colour's grey by its own amount);
- `retoned` (20): each over its local contrast, or one's levels put on the other's by rank (a copy equalised,
  auto-levelled, given a tone curve, posterised, or CLAHE's local equalisation);
- `deblurred` (21): the sharper one blurred to match the other (a copy blurred heavily);
- `clipped` (22): one's tones mapped onto the other's where the other is clipped to white or black (a copy brightened
  or darkened past the grey range).
Undoing an edit helps any pair a little, so each is tried only where the frames as they are already came close
(the *_REACH thresholds), and pixels left out and a fitted light field must reach stricter thresholds
(OVERDRAWN_MIN_*, RELIT_MIN_*).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import cv2
import numpy as np

from finetuner.dedup.align import cut, cuts
from finetuner.dedup.colour import FLOOR as COLOUR_FLOOR
from finetuner.dedup.colour import LUMA, MAX_TURN, colour_planes
from finetuner.dedup.correlation import banded_corr, bands, blur_each, evidence, robust_evidence
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.searches import IMAGE_CHUNK, content_stretch
from finetuner.dedup.shape import clipped_alike
from finetuner.dedup.verdicts import Best, VerifyRule, passing

OVERDRAWN = 9  # the stage of `overdrawn`
OVERDRAWN_DROP = 0.1  # the share of pixels that disagree most, left out by `overdrawn`
# ...and the thresholds it must reach: different pictures on the photo benches reach 0.94 / 0.91 at most, or 0.96 /
# 0.97 in white mats alike; those framed alike that pass (app windows, circular fields) face the surround check
OVERDRAWN_MIN_SIMILARITY = 0.97
OVERDRAWN_MIN_DETAIL = 0.95
# Pairs whose fine detail agrees this well as the frames are (a vignette barely moves it: true copies 0.92-0.995 on a
# set of 52 photos) are compared with one's light fitted to the other's; they must then agree this well (the fit has 7
# coefficients, which help any pair a little: different pictures on the photo benches reached 0.988 at most, colour
# twins, whose grey is alike, the colour check rejects)
RELIT_MIN_DETAIL = 0.9
RELIT_MIN_SIMILARITY = 0.99
LIGHT_CHUNK = 32  # pairs whose light fields are fitted together
# Pairs whose fine detail agrees this well as the frames are, and whose chroma one turn of every hue of at most
# colour.MAX_TURN relates, are compared with a's grey as its hues turned by that turn would make it (HSV, as photo
# editors turn hues): hue-turned copies 0.68-0.94 as they are
HUE_REACH_DETAIL = 0.5
HUE_SLACK = np.radians(5.0)  # ...or a few degrees more: copies turned 30 degrees measure 30.4-31.2
HUE_TURNED = 15  # the stage
# Pairs whose fine detail agrees this well as the frames are (their structure is one picture's) are compared with each
# image less its local mean over its local spread (`retoned`, a Gaussian window of TONE_WINDOW thumbnail pixels, the
# spread floored at TONE_FLOOR grey levels so that a flat area's noise is not stretched into structure): a copy whose
# tones were remapped keeps the order of its pixels' brightness, not their levels. Copies so found on made-up edits of
# the bench's pictures agreed 0.72 and up in fine detail as the frames are; 49 of the 5,616 pairs the 20,000-photo
# bench leaves short reach 0.65
TONE_REACH_DETAIL = 0.65
TONE_WINDOW = 4.0
TONE_FLOOR = 3.0
RETONED = 20  # the stage
# A tone edit that varies over the picture (CLAHE with large tiles, a local dodge and burn) moves the smoothed content
# a little even over local contrast, but keeps the fine detail: such a pair may fall TONE_FINE_SLACK short of
# min_similarity where its fine detail agrees to TONE_FINE_DETAIL. Over the refused candidates of ten photo sets
# (9,694 pairs), that took 94 copies and one colour twin (a logo in other colours), which the colour check refuses
TONE_FINE_SLACK = 0.08
TONE_FINE_DETAIL = 0.93
# Pairs whose smoothed content agrees this well as the frames are are compared with the sharper image (more fine
# detail) blurred by each of BLUR_SIGMAS thumbnail pixels, the best kept (`deblurred`): a copy blurred by 8-12 pixels of
# 640 has lost the fine detail its original keeps, and a texture's copy its texture. Copies so found agreed 0.71 and up
# as the frames are; 279 of the 5,616 pairs the 20,000-photo bench leaves short reach 0.65. Since VERIFIER 67 the ladder
# goes on to 4.8: of photographs blurred by 6-10% of their width, 12 of 36 copies were found with it ending at 2.4, 31
# with it, and none of 72 pairs of other photographs blurred alike or not
BLUR_REACH = 0.65
BLUR_SIGMAS = (0.5, 0.8, 1.2, 1.7, 2.4, 3.4, 4.8)
DEBLURRED = 21  # the stage
# Pairs whose fine detail agrees this well as the frames are are compared with one's tones clipped as the other's, where
# the other has lost its highlights or shadows to the grey range's ends and this one has not (`clipped`): a photo
# brightened 2x keeps a fifth to a half of its pixels at white, which neither the frames as they are nor each over its
# local contrast see as the picture (copies so found on the heavier photo set agreed 0.72 and up in fine detail as the
# frames are). Tried before `retoned`, whose rank map takes such a copy's grey too, but not its colours
# (colour_checks._clipped)
CLIP_REACH = 0.65
CLIPPED = 22  # the stage


def overdrawn(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), with the tenth of pixels that disagree most left
    out (stage 9): a semi-transparent watermark across the middle or a logo over the picture (a caption band at the top
    or the bottom is the plain evidence's). Leaving pixels out helps any pair, so this must reach thresholds stricter
    than the refit's (OVERDRAWN_MIN_*); pictures framed alike (an app window, a circular field), which reach them too,
    still face the surround check."""
    if len(part) == 0:
        return
    sim, det = np.zeros(len(part)), np.zeros(len(part))
    for cut_, p, q in _contents(thumbs, trims, i, j, part):
        sim[cut_], det[cut_] = robust_evidence(p, q, OVERDRAWN_DROP)
    how = f"identity, the {OVERDRAWN_DROP:.0%} of pixels that disagree most left out"
    thresholds = (OVERDRAWN_MIN_SIMILARITY, OVERDRAWN_MIN_DETAIL)
    _take_as_they_are(best, trims, i, j, aspect, rule, part, sim, det, thresholds, 1.0 - OVERDRAWN_DROP, how, OVERDRAWN)


def relit(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), with b's smoothed content fitted from a's times a
    smooth light field (a quadratic in x and y, positive over the frame) plus an offset (stage 10): a vignette, a
    lens's light falloff, a graduated filter or light from one side darkens some of the picture and not the rest, which
    the correlation of the frames as they are reads as another picture. The fine detail is the frames' own."""
    if len(part) == 0:
        return
    sim, det = np.zeros(len(part)), np.zeros(len(part))
    for cut_, p, q in _contents(thumbs, trims, i, j, part):
        (smooth_p, detail_p), (smooth_q, detail_q) = bands(p), bands(q)
        sim[cut_] = banded_corr(_lit_like(smooth_p, smooth_q), smooth_q)
        det[cut_] = banded_corr(detail_p, detail_q)
    how = "identity, lit alike by a smooth light field"
    thresholds = (RELIT_MIN_SIMILARITY, RELIT_MIN_DETAIL)
    _take_as_they_are(best, trims, i, j, aspect, rule, part, sim, det, thresholds, 1.0, how, 10)


def retoned(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars) after undoing a tone remap two ways, the better
    kept (stage 20): each image less its local mean over its local spread (`_local_contrast`), and each image's levels
    put on the other's by rank (`tones_matched`, both ways). A copy whose tones were remapped (equalised, auto contrast
    or levels, a gamma or curves adjustment, posterised, CLAHE's local equalisation, as medical and microscope images
    often are) keeps its structure and the order of its pixels' brightness, not their levels, which the correlation of
    the frames as they are reads as another picture. Local contrast undoes a remap that varies over the picture
    (CLAHE's tiles), the rank map one over the whole picture exactly, including where it clips or crushes tones
    together. The same evidence thresholds hold; the rank map fits one image to the other, which helps two pictures
    framed alike (a frame's tones match too), and those face the surround check as every framed pair does. A toned
    colour allowance is no evidence for such a pair (`colour_checks._toned_in_frame`): a sepia copy of one picture and
    a twin in other colours agree in grey up to its levels."""
    if len(part) == 0:
        return
    sim, det = np.zeros(len(part)), np.zeros(len(part))
    ranked = np.zeros(len(part), bool)
    for cut_, p, q in _contents(thumbs, trims, i, j, part):
        sim[cut_], det[cut_] = evidence(_local_contrast(p), _local_contrast(q))
        for x, y in ((tones_matched(p, q), q), (p, tones_matched(q, p))):
            s_, d_ = evidence(x, y)
            better = s_ + d_ > sim[cut_] + det[cut_]
            sim[cut_], det[cut_] = np.where(better, s_, sim[cut_]), np.where(better, d_, det[cut_])
            ranked[cut_] |= better
    stretch = content_stretch(trims, i[part], j[part], aspect)
    whole = np.ones(len(part))
    good = passing(rule)(sim, det, whole, stretch) | passing(retoned_rule(rule))(sim, det, whole, stretch)
    how = np.where(ranked, "identity, tones matched by rank", "identity, each over its local contrast")[good]
    best.take(part[good], sim[good], det[good], 1.0, stretch[good], how.astype(object), RETONED)


def tones_matched(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each p[k] of a (k, h, w) stack with its grey levels put on q[k]'s by rank (histogram matching): the pixels of
    one level (rounded) take the mean of q[k]'s values at their ranks, so an area flat in p stays flat."""
    n = len(p)
    levels = np.clip(np.rint(p), 0, 255).astype(np.int64).reshape(n, -1)
    ranked = np.sort(np.asarray(q, np.float64).reshape(n, -1), axis=1)
    below = np.zeros((n, ranked.shape[1] + 1))  # below[k, r]: the sum of q[k]'s r lowest values
    np.cumsum(ranked, axis=1, out=below[:, 1:])
    counts = np.bincount((levels + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256)
    last = np.cumsum(counts, axis=1)
    rows = np.arange(n)[:, None]
    means = (below[rows, last] - below[rows, last - counts]) / np.maximum(counts, 1)
    return np.take_along_axis(means, levels, axis=1).reshape(np.shape(p)).astype(np.float32)


def retoned_rule(rule: VerifyRule) -> VerifyRule:
    """The thresholds a pair compared over local contrast (`retoned`) may meet instead of `rule`'s: a similarity
    TONE_FINE_SLACK lower, where its fine detail agrees to TONE_FINE_DETAIL."""
    return replace(
        rule,
        min_similarity=rule.min_similarity - TONE_FINE_SLACK,
        min_detail_similarity=max(rule.min_detail_similarity, TONE_FINE_DETAIL),
    )


def _local_contrast(stack: np.ndarray) -> np.ndarray:
    """Each image of an (n, h, w) stack less its local mean, over its local spread (TONE_WINDOW, TONE_FLOOR)."""
    x = np.asarray(stack, np.float32)
    mean = blur_each(x, TONE_WINDOW)
    spread = blur_each((x - mean) ** 2, TONE_WINDOW)
    return (x - mean) / np.sqrt(spread + TONE_FLOOR**2)


def deblurred(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), the sharper image (the more fine detail) blurred
    by each of BLUR_SIGMAS, the best kept (stage 21): a heavily blurred copy has lost the fine detail the correlation
    of fine detail asks its original for. One parameter from a short list fits little: different pictures do not come
    to agree by blurring one of them."""
    if len(part) == 0:
        return
    sim, det, sigma = np.zeros(len(part)), np.zeros(len(part)), np.zeros(len(part))
    for cut_, p, q in _contents(thumbs, trims, i, j, part):
        p, q = p.astype(np.float32), q.astype(np.float32)
        (smooth_p, detail_p), (smooth_q, detail_q) = bands(p), bands(q)
        first = (detail_p.std(axis=(1, 2)) >= detail_q.std(axis=(1, 2)))[:, None, None]
        sharp = np.where(first, p, q)
        soft = np.where(first, smooth_q, smooth_p), np.where(first, detail_q, detail_p)  # its bands, made once
        for blur in BLUR_SIGMAS:
            smooth, detail = bands(blur_each(sharp, blur))
            s_, d_ = banded_corr(smooth, soft[0]), banded_corr(detail, soft[1])
            better = s_ + d_ > sim[cut_] + det[cut_]
            sim[cut_], det[cut_] = np.where(better, s_, sim[cut_]), np.where(better, d_, det[cut_])
            sigma[cut_] = np.where(better, blur, sigma[cut_])
    how = np.array([f"identity, the sharper blurred by {b:.1f} to match" for b in sigma.tolist()], object)
    _take_as_they_are(best, trims, i, j, aspect, rule, part, sim, det, (0.0, 0.0), 1.0, how, DEBLURRED)


def clipped(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), with one's tones mapped onto the other's where
    the other is clipped to white or black and this one is not (stage 22): one gain and offset fitted to the two
    contents' tone quantiles where neither is clipped, clipped to the grey range (shape.clipped_alike, as the shape
    check compares brightened graphics). Two parameters and the clip move no pixel and sharpen no edge: the thresholds
    are the verifier's own."""
    if len(part) == 0:
        return
    sim, det = np.zeros(len(part)), np.zeros(len(part))
    for cut_, p, q in _contents(thumbs, trims, i, j, part):
        for k, (one, other) in enumerate(zip(p, q), start=cut_.start):
            for mapped_p, mapped_q, _ in clipped_alike(one, other):
                s_, d_ = (float(x[0]) for x in evidence(mapped_p[None], mapped_q[None]))
                if s_ + d_ > sim[k] + det[k]:
                    sim[k], det[k] = s_, d_
    how = "identity, tones clipped alike"
    _take_as_they_are(best, trims, i, j, aspect, rule, part, sim, det, (0.0, 0.0), 1.0, how, CLIPPED)


def hue_turned(best: Best, thumbs, colours, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), with a's grey changed as turning its hues by
    the turn that best relates its chroma to b's would change it (stage 15). A hue-turned copy keeps its grey
    structure but not its grey levels: a shifted hue is brighter or darker by an amount of its own. Only turns of at
    most colour.MAX_TURN (and HUE_SLACK) are tried, those a copy's colour edit may make; the colour check then holds
    the pair to them as to any other, and two pictures whose colours differ by more (a product in another colour)
    are left as they were. The colours are the 16x16 thumbnails, enlarged: the grey change follows the colours, which
    vary slowly."""
    for s in range(0, len(part), IMAGE_CHUNK):  # 48 KiB of colour per image and pair
        _hue_turned(best, thumbs, colours, trims, i, j, aspect, rule, part[s : s + IMAGE_CHUNK])


def _hue_turned(best: Best, thumbs, colours, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    rgb_a, rgb_b = (_colour_contents(colours, side[part], trims[side[part]]) for side in (i, j))
    turn = _hue_turn(rgb_a, rgb_b)
    within = np.abs(np.nan_to_num(turn, nan=np.inf)) <= MAX_TURN + HUE_SLACK
    part, turn, rgb_a = part[within], np.degrees(turn[within]), rgb_a[within]
    if len(part) == 0:
        return
    grey_a, grey_b = (cuts(thumbs, side[part], trims[side[part]]) for side in (i, j))
    for k, degrees in enumerate(turn.tolist()):
        grey_a[k] += _luma(_turned(rgb_a[k], degrees)) - _luma(rgb_a[k])
    sim, det = evidence(grey_a, grey_b)
    how = np.array([f"identity, a's hues turned {d:+.0f} degrees" for d in turn.tolist()], object)
    _take_as_they_are(best, trims, i, j, aspect, rule, part, sim, det, (0.0, 0.0), 1.0, how, HUE_TURNED)


def _colour_contents(colours: np.ndarray, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(k, 64, 64, 3) float32 RGB of each image's content box (thumbnail pixels), from its 16x16 colour thumbnail
    enlarged to the grey thumbnail's size."""
    out = np.empty((len(images), THUMB, THUMB, 3), np.float32)
    for k, (x, box) in enumerate(zip(images.tolist(), np.asarray(boxes).tolist())):
        enlarged = cv2.resize(colours[x].astype(np.float32), (THUMB, THUMB), interpolation=cv2.INTER_LINEAR)
        out[k] = cut(enlarged, tuple(box))
    return out


def _hue_turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of (k, h, w, 3) RGB regions, the turn (radians) of every hue that best relates a's chroma to b's (the
    angle of the least-squares complex gain between their centred Cb + i Cr); NaN where either has no colour
    structure to turn (colour.FLOOR)."""
    u, v = (c[..., 1] + 1j * c[..., 2] for c in (colour_planes(a), colour_planes(b)))
    u, v = (c.reshape(len(c), -1) for c in (u, v))
    u, v = u - u.mean(axis=1, keepdims=True), v - v.mean(axis=1, keepdims=True)
    spread = np.minimum((np.abs(u) ** 2).mean(axis=1), (np.abs(v) ** 2).mean(axis=1))
    return np.where(spread >= COLOUR_FLOOR**2, np.angle((v * u.conj()).sum(axis=1)), np.nan)


def _turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """(h, w, 3) float RGB (0-255) with every hue turned by `degrees`, saturation and value kept (HSV)."""
    hsv = cv2.cvtColor(np.clip(rgb, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA


def _contents(thumbs, trims, i, j, part: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(slice of `part`, a's contents, b's contents) for pairs `part`, IMAGE_CHUNK pairs at a time: each image's
    content inside its bars (`trims`), as the searches that compare pairs as their frames are take it."""
    for s in range(0, len(part), IMAGE_CHUNK):
        cut_ = slice(s, s + IMAGE_CHUNK)
        a, b = i[part[cut_]], j[part[cut_]]
        yield cut_, cuts(thumbs, a, trims[a]), cuts(thumbs, b, trims[b])


def _take_as_they_are(best: Best, trims, i, j, aspect, rule, part, sim, det, thresholds, overlap, how, stage) -> None:
    """Keep, for pairs `part` compared as their frames are (inside their bars), the evidence (sim, det) that
    reaches `thresholds` (similarity, detail similarity) where stricter than `rule`'s; `how` is one description, or
    one per pair."""
    stretch = content_stretch(trims, i[part], j[part], aspect)
    stricter = replace(
        rule,
        min_similarity=max(rule.min_similarity, thresholds[0]),
        min_detail_similarity=max(rule.min_detail_similarity, thresholds[1]),
    )
    good = passing(stricter)(sim, det, np.ones(len(part)), stretch)
    how = np.broadcast_to(np.asarray(how, object), len(part))[good]
    best.take(part[good], sim[good], det[good], overlap, stretch[good], how, stage)


def _lit_like(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each q[k] (k, h, w) least-squares fitted as p[k] times a quadratic light field in x and y, plus an offset; the
    fit where its field is not positive over the whole frame is p[k] itself (no light turns a picture negative)."""
    k, h, w = p.shape
    basis = _light_basis(h, w)  # (pixels, 6)
    out = np.empty((k, h * w))
    for s in range(0, k, LIGHT_CHUNK):  # the design matrices are (pairs, pixels, 7) float64: 1.8 MiB a pair
        flat_p, flat_q = (x[s : s + LIGHT_CHUNK].reshape(-1, h * w).astype(np.float64) for x in (p, q))
        design = np.concatenate([flat_p[:, :, None] * basis[None], np.ones((*flat_p.shape, 1))], axis=2)
        gram = np.einsum("kpa,kpb->kab", design, design) + 1e-6 * np.eye(7)
        coef = np.linalg.solve(gram, np.einsum("kpa,kp->ka", design, flat_q)[..., None])[..., 0]
        lit = (coef[:, :6] @ basis.T).min(axis=1) > 0  # the field is positive over the whole frame
        out[s : s + LIGHT_CHUNK] = np.where(lit[:, None], np.einsum("kpa,ka->kp", design, coef), flat_p)
    return out.reshape(k, h, w)


def _light_basis(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    x, y = (x.ravel() / max(w - 1, 1) - 0.5), (y.ravel() / max(h - 1, 1) - 0.5)
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
