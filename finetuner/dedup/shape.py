"""The shape check for graphics: letters, icons, logos, line art: a few strokes on a plain background.

Two designs of one letter or icon (Helvetica's R and DejaVu's R) fill the same box with the same strokes, so once the
verifier has scaled one box onto the other they correlate as well as a re-encoded copy does: on the glyph set, the
verifier alone accepted 23,161 candidate pairs of look-alike letters from different typefaces. What tells them apart
is where the edges lie: a copy keeps every edge where it was, up to one smooth transform of the whole image (a
rescale, a shift, a crop) and a blur; another design moves some edges (a leg's angle, a bowl's height, a serif) and
not others.

So for two graphics the verifier has accepted, `shape_agreement` refits their alignment with OpenCV's ECC (an affine
warp fitted to the whole region, which undoes a rescale and a sub-pixel shift) and correlates their fine detail over
the overlap, with the sharper image blurred to match the other (a downscaled or blurred copy has softer edges, not
moved ones). The verifier accepts at `min_shape_similarity` (0.98), and the refit, measured in the images' true
proportions (`frames`), may not change proportions by more than MAX_ANISOTROPY: for a graphic the proportions are the
design (a wider O is another typeface), and on the real-photo bench no copy's refit changed them by more than 0.037.
On the glyph set, with the candidates this check sees (see docs/dedup.md), it keeps 416 of 598 pairs of clone typefaces
(Liberation Sans / Arimo; most misses are redrawn clones such as TeX Gyre Cursor, whose strokes differ) and 2,849
look-alike pairs (the verifier alone accepted 23,161 among the hash-nearest candidates); many of those left are
designs that really are copies (Noto Sans / Open Sans, Carlito / Lato). On the real-photo bench recall per kind of
edit is unchanged. Photographs are left to the verifier's main rule: their texture rarely leaves half the frame plain,
and where it does (a low-contrast photograph: the moon, a fundus detail, a cell culture) the plain part is texture, not
one tone, so `graphic` asks for a flat one: the shape check had rejected 25 true copies of such photos on that bench
(16 scored 0.91 to 0.98 after crops, blurs and re-encodes, 9 with a caption bar below 0.4), none after; the glyph
set's verdicts are unchanged (its plain parts lie 0.48 grey levels from the background at most).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from finetuner.dedup.correlation import BAND, SMOOTH_SIGMA, bands, blur_each, corr_many
from finetuner.dedup.frames import Plain, plain

GRAPHIC_SHARE = 0.5  # a graphic: at least this share of the thumbnail is plain background
PLAIN_FLATNESS = 1.0  # grey levels: the most the plain part may lie from the background on average (see graphic)
MATCH_SIGMAS = (0.7, 1.0, 1.5)  # blurs tried on either side, so a softer copy is compared at its own sharpness
MIN_OVERLAP = 0.4  # share of the region the refit must keep in common
CAPTION_AGREEMENT = 0.99  # the agreement the rest must reach when a caption band is left out
MAX_ANISOTROPY = 0.06  # |log| of the singular value ratio of the refit, in true proportions (see shape_agreement)
# Two graphics whose agreement falls this little short of min_shape_similarity are look-alikes: a design other groups
# share (guards.guard_designs). On the glyph set every image of an accepted look-alike pair between two typefaces but
# two has such look-alikes in two or more other families; 30 invoices of one layout score 0.86-0.90 (docs/dedup.md)
LOOK_ALIKE_MARGIN = 0.03
# The verifier accepts a photograph's copy resized to another shape (dedup.verify.max_stretch, about 2x); two graphics
# whose alignment stretches one into the other by more than this are another design before any refit (the verifier's
# limit for every image until it was raised; on the glyph set the raise alone let 51 more look-alikes through and cost
# 1.5x the time in refits). The exceptions: a whole file resized to another shape (second_looks._resized_whole), and an
# alignment ending in the refit, whose warp may take the stretch back (verify.REFITTED: the shape check measures it)
GRAPHIC_STRETCH = 0.12
# Two graphics, one clipped to white or black (within CLIP_MARGIN grey levels) over CLIP_SHARE of its region, the other
# over at most UNCLIPPED (a brightened copy of a shot on a light ground, not two drawings on one white): the other is
# compared again through a gain and offset fitted at its TONE_LEVELS percentiles to the clipped one's, clipped alike
CLIP_SHARE = 0.01
UNCLIPPED = 0.002
CLIP_MARGIN = 2
TONE_LEVELS = np.arange(5, 100, 5)
# ECC stops after 30 iterations or a step below 1e-3: tighter gave the same verdicts, 1.5x slower
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3)


def graphic(thumbs: np.ndarray) -> np.ndarray:
    """Per (n, h, w) grey thumbnail: is it a graphic (`is_graphic`)?"""
    return is_graphic(plain(thumbs))


def is_graphic(seen: Plain) -> np.ndarray:
    """Is at least GRAPHIC_SHARE of each thumbnail plain (finetuner/dedup/surround.py), and is that plain part flat,
    within PLAIN_FLATNESS of the frame colour on average? A drawn background is one tone (on the glyph set the plain
    part lies 0.18 grey levels from it at the median, 0.48 at most); a low-contrast photograph (the moon, a fundus
    detail, a cell culture) can have half its frame within the tolerance, but as texture spread over it (1.9 to 4.9
    grey levels on the photo bench, one letterboxed copy aside), whose fine detail the shape check would read as
    edges."""
    return (seen.share >= GRAPHIC_SHARE) & (seen.spread <= PLAIN_FLATNESS)


def _detail(image: np.ndarray) -> np.ndarray:
    return bands(image[None])[1][0]  # the verifier's fine detail, for one image


def _blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    return blur_each(image[None], sigma)[0] if sigma else image


def shape_agreement(
    p: np.ndarray, q: np.ndarray, enough: float = 1.0, frames: tuple = ((1.0, 1.0), (1.0, 1.0))
) -> tuple[float, float, str]:
    """(detail correlation after an affine refit and blur matching, the refit's anisotropy, a description) of two
    coarsely aligned grey regions of one size, compared over the refit's overlap (a crop's missing margin is no
    evidence). Blur matching stops once the correlation reaches `enough`. `frames`: each region's (x, y) scales from
    its image's true geometry, and optionally the 2x2 linear part of a warp q was already placed by
    (finetuner/dedup/align.py), so that the anisotropy is that of the whole map from one image to the other, whatever
    squashing the thumbnails and regions added.

    Where the whole regions disagree, the regions less a caption band (top or bottom) are tried too, and count only
    when they agree to CAPTION_AGREEMENT: a caption bar on a copy leaves the rest identical, while forgiving any band
    at the copy threshold would also forgive a letter its different leg (on the glyph set this way the look-alikes
    accepted grew by 13%, against twice as many at the copy threshold).

    Where one region is clipped to white or black and the other is not (a brightened copy), the other is refitted
    again with its tones clipped alike (`clipped_alike`)."""
    found = _refit(p, q, enough, frames)
    for p_tones, q_tones, tones in clipped_alike(p, q) if found[0] < enough else ():
        score, anisotropy, note = _refit(p_tones, q_tones, enough, frames)
        if score > found[0]:
            found = (score, anisotropy, f"{note}{tones}")
    band = max(1, int(round(len(p) * BAND)))
    for rows, name in ((slice(band, None), "top"), (slice(None, -band), "bottom")):
        if found[0] >= enough:
            break
        score, anisotropy, note = _refit(p[rows], q[rows], max(enough, CAPTION_AGREEMENT), frames)
        if score >= CAPTION_AGREEMENT and score > found[0]:
            found = (score, anisotropy, f"{note}, less the {name} band")
    return found


def _refit(p: np.ndarray, q: np.ndarray, enough: float, frames: tuple) -> tuple[float, float, str]:
    """shape_agreement of two regions as they are; each side's detail is filtered in its own frame, so both see their
    region's edge alike."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(
            _blurred(p, SMOOTH_SIGMA), _blurred(q, SMOOTH_SIGMA), warp, cv2.MOTION_AFFINE, ECC_CRITERIA, None, 5
        )
    except cv2.error:
        return 0.0, float("inf"), "shape: no alignment converged"
    (ax, ay), (bx, by), *placed_by = frames  # q may come warped already (a refit): the map composes both
    linear = (placed_by[0] if placed_by else np.eye(2)) @ warp[:, :2].astype(np.float64)
    true_map = np.diag([1 / bx, 1 / by]) @ linear @ np.diag([ax, ay])
    singular = np.linalg.svd(true_map, compute_uv=False)
    anisotropy = float(abs(np.log(singular[0] / max(singular[1], 1e-9))))
    h, w = p.shape
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP

    def placed(image: np.ndarray) -> np.ndarray:  # b's detail, filtered in b's own frame, then warped onto a
        return cv2.warpAffine(image, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    inside = cv2.warpAffine(np.ones_like(p), warp, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = inside > 0.999
    if mask.mean() < MIN_OVERLAP:
        return 0.0, anisotropy, "shape: the refit leaves too little overlap"
    sharp_p, sharp_q = _detail(p), placed(_detail(q))
    best, how = float(corr_many(sharp_p[mask][None], sharp_q[mask][None])[0]), ""
    for sigma in MATCH_SIGMAS:
        if best >= enough:
            break
        for name, x, y in (
            ("b", sharp_p, placed(_detail(_blurred(q, sigma)))),
            ("a", _detail(_blurred(p, sigma)), sharp_q),
        ):
            score = float(corr_many(x[mask][None], y[mask][None])[0])
            if score > best:
                best, how = score, f", {name} sharper by blur {sigma:.1f}"
    scale = float(np.sqrt(singular[0] * singular[1]))
    return best, anisotropy, f"shape: affine refit x{scale:.3f}, anisotropy {anisotropy:.3f}{how}"


def clipped_alike(p: np.ndarray, q: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    """(p, q, description) with one region's tones mapped onto the other's by `clip_maps`: a brightened copy of a
    graphic loses its light ground and highlights to white, which moves the edges its refit fits to and flattens the
    shading the original keeps there (on the product set 11 of 52 copies brightened 1.3x were refused so, at
    0.93-0.98). The map moves no edge, so another design's strokes still disagree (a map of every quantile matched a
    bold letter's ink to a light one's, thinning its strokes)."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    for side, gain, offset in clip_maps(p, q):
        mapped = np.clip(gain * (p, q)[side] + offset, 0, 255).astype(np.float32)
        tones = f", {'ab'[side]}'s tones clipped as the other's"
        yield (mapped, q, tones) if side == 0 else (p, mapped, tones)


def clip_maps(p: np.ndarray, q: np.ndarray) -> Iterator[tuple[int, float, float]]:
    """(side, gain, offset): region `side` (0 p, 1 q) mapped by `gain * x + offset`, clipped to the grey range, takes
    the other's tones, where the other is clipped to white (or black) over CLIP_SHARE of its pixels and this one over
    at most UNCLIPPED. The gain and offset are fitted to the two regions' tone quantiles where neither is clipped. Two
    drawings on one white ground are both clipped, and are not mapped."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    for side, own, other in ((0, p, q), (1, q, p)):
        white = (np.mean(other >= 255 - CLIP_MARGIN), np.mean(own >= 255 - CLIP_MARGIN))
        black = (np.mean(other <= CLIP_MARGIN), np.mean(own <= CLIP_MARGIN))
        if not any(theirs >= CLIP_SHARE and mine <= UNCLIPPED for theirs, mine in (white, black)):
            continue
        x, y = np.percentile(own, TONE_LEVELS), np.percentile(other, TONE_LEVELS)
        fit = (np.minimum(x, y) > CLIP_MARGIN) & (np.maximum(x, y) < 255 - CLIP_MARGIN)
        if fit.sum() < 3 or np.ptp(x[fit]) < 1:
            continue
        gain, offset = np.polyfit(x[fit], y[fit], 1)
        if gain > 0:
            yield side, float(gain), float(offset)
