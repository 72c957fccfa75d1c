"""A second look at full size for pairs of large graphics the 64x64 shape check refused (a page of text and its copy),
and for pairs with a texture the verifier refused (a brick wall and its crop).

At 64x64 a page of text is lines of grey: a copy cropped by 5% or turned 1 degree scores 0.88-0.98 in the shape check,
and so do other pages of one layout (an invoice template with other words), so no threshold there tells them apart. At
512 pixels the words are there. So a pair the shape check refused, whose thumbnails still agreed as they were aligned
(similarity MIN_SIMILARITY or more), is looked at again from the files, where both are MIN_SIDE pixels or more on their
long side (a smaller image shows little more than its thumbnail): ORB keypoints matched both ways, a similarity
transform fitted by RANSAC (OpenCV; the matching: finetuner/dedup/descriptors.py), then the fine detail of the two
aligned over their overlap. On the document set of `benchmarks/bench_dedup_quality.py` (90 pages of text, 60 with a
copy; 30 invoices of one layout) the pairs looked at were 23 copies (cropped 5%, cut 10% at the top, turned 1 degree),
which kept 143-366 keypoints in the fit and correlated 0.74-0.91 in detail, and 21 pairs of different pages, which kept
14-53 and correlated 0.46 at most. In an archive of 1,000 invoices of one layout with 50 copies (cropped 5% or turned 1
degree), the 1,703 pairs of different invoices looked at kept 64 keypoints at most and correlated 0.50 at most, the 49
copies 87 and 0.68 at least; the thresholds lie between. There the look found 49 of the 50 copies (none before) and took
about 11 s of the stage's 36 s on 2 cores. Only images drawn in thin lines are looked at (`thin_ink`): a solid shape (a
product, a logo) is on the thumbnail already, and on the product set the look cost 4 s for 866 pairs while finding one
copy more. A pair accepted here (rule `full size`) must also pass the colour check on the aligned images. Verdicts are
made once per pair and cached with the others (finetuner/dedup/candidates.py).

Textures (brick, gravel, a star field: `prescreen.textured`) keep little at 64x64 but noise, so a texture's copy
cropped 5-10% and scaled back aligns there only roughly (similarity 0.64-0.89 on the photo bench's brick, gravel and
Hubble deep field, refused), while at 512 pixels its keypoints fit as any photograph's do. So a pair the verifier
refused as aligned (not the shape check's, the colour check's or the near-blank rule's) with a textured image and a
similarity of TEXTURE_MIN_SIMILARITY or more is looked at the same way. On the photo bench that took 65 pairs (found
directly: crops 0.974 -> 1.000, letterbox 51 -> 52 of 52), none false on any set; among 918 tiles of 256 pixels cut
from the wallpapers and scikit-image's photos, 2 pairs were looked at, neither accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.colour import colour_fit, colour_planes
from finetuner.dedup.correlation import corr_many, per_side
from finetuner.dedup.decoding import decode_for_hash
from finetuner.dedup.frames import PLAIN_TOLERANCE, plain
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.prescreen import textured
from finetuner.dedup.shape import graphic
from finetuner.dedup.signals import mirrored_signals
from finetuner.dedup.trims import trim_boxes
from finetuner.dedup.verdicts import Verdicts, VerifyRule

log = logging.getLogger("finetuner.dedup")

RULE = "full size"
SIDE = 512  # pixels on the long side at which a pair is compared
MIN_SIDE = 256  # both images at least this on their long side, or the look is not taken
MIN_SIMILARITY = 0.9  # the thumbnails' similarity, as aligned, of a refused pair worth the look
TEXTURE_MIN_SIMILARITY = 0.6  # ...of a refused pair with a texture (its copies cropped 5-10%: 0.64-0.89 at 64x64)
KEYPOINTS = 2000  # ORB keypoints per image
MIN_INLIERS = 75  # keypoint matches the fitted transform must explain (copies: 87 and up; other pages: 64 at most)
MIN_DETAIL = 0.6  # fine-detail correlation over the overlap (copies: 0.68 and up; other pages: 0.50 at most)
# The matched keypoints' convex hull, as a share of the overlap, must reach this: a copy's matches spread over the
# picture (pages of text 0.22 and up, invoices of one layout 0.25, photographs and textures 0.38), while two
# different pictures under one large caption or watermark match on it alone (0.08, detail 0.61: accepted before)
MIN_SPREAD = 0.15
MAX_TURN = 5.0  # degrees: a scan or a photographed print straightened by hand, as the verifier's refit allows
MAX_SCALE = 2.0  # the most either image is scaled onto the other
# the fine detail: the image blurred by DETAIL_SIGMAS[0] less its blur by DETAIL_SIGMAS[1] (pixels at SIDE). Without the
# first blur, a copy resized by 10% (a crop, scaled back to SIDE) correlated down to 0.51, as its one-pixel strokes
# were resampled differently; with it, 0.81 and up, while other pages of one layout reached 0.50
DETAIL_SIGMAS = (1.0, 2.0)
EDGE = 3  # pixels inside the overlap's edge left out (the warp's interpolated border)
THIN_INK = 0.08  # the share of a thumbnail its ink keeps after ERODE erosions, below which it is drawn in thin lines
ERODE = 3
CHUNK = 256  # pairs compared together; the images they need are held until their last pair is compared


@dataclass(frozen=True)
class _Seen:
    """One image at SIDE: its file, grey pixels, and its ORB keypoints' positions and descriptors (about 0.3 MB);
    `mirrored`: seen mirrored left to right (ORB's descriptors are not the same for a mirror image's keypoints)."""

    file: Path
    grey: np.ndarray
    points: np.ndarray
    descriptors: np.ndarray | None
    mirrored: bool = False
    content: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) inside its bars; None: the frame

    def content_mask(self) -> np.ndarray:
        """Which of its pixels are content (inside the bars, the ground a picture is shown on: its thumbnail's trim)."""
        mask = np.zeros(self.grey.shape, np.uint8)
        top, bottom, left, right = self.content or (0, self.grey.shape[0], 0, self.grey.shape[1])
        mask[top:bottom, left:right] = 1
        return mask


def full_size_looks(
    files: Sequence[Path],
    thumbs: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    verdicts: Verdicts,
    rule: VerifyRule,
    workers: int = 1,
    signals: Sequence[str] | None = None,
) -> Verdicts:
    """`verdicts` of the pairs (files[a[k]], files[b[k]]), with those worth it (`worth_a_look`) looked at again at
    full size (`compare`); unreadable or small files keep their verdict. `signals` (each pair's view pair, e.g.
    "mirror~full"): a pair whose signal mirrors one image is looked at with a's image mirrored."""
    look = worth_a_look(thumbs, a, b, verdicts).tolist()
    if not look:
        return verdicts
    start = time.perf_counter()
    flip = mirrored_signals(signals) if signals is not None else np.zeros(len(a), bool)
    look.sort(key=lambda q: (int(a[q]), int(b[q])))  # an image's pairs together, so it is held briefly
    sides = {q: ((int(a[q]), bool(flip[q])), (int(b[q]), False)) for q in look}  # (image, seen mirrored) of each side
    images = sorted({image for q in look for image, _ in sides[q]})
    trims = dict(zip(images, trim_boxes(thumbs[images]).tolist()))  # the content the overlap is a share of
    last = {side: n for n, q in enumerate(look) for side in sides[q]}  # the last pair each side is in
    seen: dict[tuple[int, bool], _Seen | None] = {}
    found = []
    with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV and the decoders release the GIL
        for s in range(0, len(look), CHUNK):
            part = look[s : s + CHUNK]
            fresh = sorted({side for q in part for side in sides[q]} - seen.keys())
            seen.update(zip(fresh, pool.map(lambda side: _seen(files[side[0]], side[1], trims[side[0]]), fresh)))
            found += pool.map(lambda q: compare(seen[sides[q][0]], seen[sides[q][1]], rule), part)
            for side in [side for side in seen if last[side] < s + CHUNK]:
                del seen[side]
    columns = {f: np.array(getattr(verdicts, f), copy=True) for f in Verdicts.__dataclass_fields__}
    for q, result in zip(look, found):
        if result is None:
            continue
        accepted, detail, overlap, colour, how = result
        columns["transform"][q] = f"{columns['transform'][q]}; {how}"
        if accepted:
            columns["accepted"][q], columns["rule"][q] = True, RULE
            columns["detail_similarity"][q], columns["overlap"][q] = round(detail, 4), round(overlap, 4)
            columns["colour"][q] = round(colour, 4)
    accepted = int(sum(columns["accepted"][q] for q in look))
    log.info(
        "looked at %d pairs of graphics or textures again at full size in %.1f s: %d accepted",
        len(look),
        time.perf_counter() - start,
        accepted,
    )
    return replace(verdicts, **columns)


def worth_a_look(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, verdicts: Verdicts) -> np.ndarray:
    """The refused pairs (of thumbs[a[k]], thumbs[b[k]]) the thumbnails cannot settle: those the shape check refused
    while they agreed as aligned (MIN_SIMILARITY), both drawn in thin lines (`thin_ink`); and those refused as aligned
    with a textured photograph (`prescreen.textured`, not `shape.graphic`: a page of text passes for a texture there,
    and every other page of its layout would be looked at) that still agreed to TEXTURE_MIN_SIMILARITY. Each image is
    measured once, however many pairs it is in."""
    refused, similarity = ~np.asarray(verdicts.accepted, bool), np.asarray(verdicts.similarity, np.float64)
    drawn = np.flatnonzero((verdicts.rule == "shape") & refused & (similarity >= MIN_SIMILARITY))
    rough = np.flatnonzero((verdicts.rule == "aligned") & refused & (similarity >= TEXTURE_MIN_SIMILARITY))
    thin_a, thin_b = per_side(thin_ink, thumbs, a[drawn], b[drawn])
    # a texture, not a page of text (which is a graphic)
    texture_a, texture_b = per_side(lambda t: textured(t) & ~graphic(t), thumbs, a[rough], b[rough])
    return np.union1d(drawn[thin_a & thin_b], rough[texture_a | texture_b]).astype(np.int64)


def thin_ink(thumbs: np.ndarray) -> np.ndarray:
    """Per (n, 64, 64) grey thumbnail: is what differs from its frame colour drawn in thin lines (text, line art),
    less than THIN_INK of it left after ERODE erosions by a 3x3 square? A product shot or a logo has solid parts, which
    the thumbnail already shows: 14 of the product set's 483 graphics (shots and their copies) are under it, and none
    of the real-photo bench's; pages of text keep 0.01 at most, invoices with a large heading 0.04-0.06."""
    seen = plain(thumbs)
    ink = np.abs(np.asarray(thumbs, np.float32) - seen.colour[:, None, None]) > PLAIN_TOLERANCE
    kernel = np.ones((3, 3), np.uint8)
    inside = [cv2.erode(mark.astype(np.uint8), kernel, iterations=ERODE).mean() for mark in ink]
    return np.array(inside) < THIN_INK


def _seen(file: Path, mirrored: bool = False, trim: Sequence[int] | None = None) -> _Seen | None:
    """The image at SIDE on its long side (mirrored left to right with `mirrored`) with its keypoints, and its content
    box from `trim` (top, bottom, left, right in its squashed thumbnail's pixels); None when it is smaller than
    MIN_SIDE or unreadable."""
    pixels = _pixels(file, mirrored)
    if pixels is None:
        return None
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    keypoints, descriptors = cv2.ORB_create(KEYPOINTS).detectAndCompute(grey, None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    content = None
    if trim is not None:
        (h, w), (top, bottom, left, right) = grey.shape, trim
        left, right = (THUMB - right, THUMB - left) if mirrored else (left, right)
        content = (top * h // THUMB, -(-bottom * h // THUMB), left * w // THUMB, -(-right * w // THUMB))
    return _Seen(file, grey, points, descriptors, mirrored, content)


def _pixels(file: Path, mirrored: bool = False) -> np.ndarray | None:
    """The file's RGB pixels at SIDE on the long side (smaller images as they are), mirrored left to right with
    `mirrored`; None when it is smaller than MIN_SIDE or unreadable."""
    try:  # as the hashing decodes: 16-bit, alpha, EXIF turns; a JPEG's draft keeps both sides >= SIDE
        rgb = decode_for_hash(file, SIDE, color=True)
    except (OSError, ValueError):
        return None
    if max(rgb.size) < MIN_SIDE:
        return None
    scale = SIDE / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(rgb)[:, ::-1]) if mirrored else np.asarray(rgb)


def compare(p: _Seen | None, q: _Seen | None, rule: VerifyRule) -> tuple[bool, float, float, float, str] | None:
    """(accepted, detail correlation, overlap, colour share, description) of two images seen at SIDE: p mapped onto q
    by a similarity transform fitted to their matched keypoints; None where either was not seen."""
    if p is None or q is None:
        return None
    seen = "full size, a mirrored" if p.mirrored else "full size"
    fit = _fitted(p, q)
    if fit is None:
        return False, 0.0, 0.0, np.nan, f"{seen}: no transform fits the keypoints"
    warp, inliers, matched = fit
    scale, turn = _scale_turn(warp)
    h, w = q.grey.shape
    edge = np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)

    def placed_on_q(image: np.ndarray) -> np.ndarray:  # a mask of p's pixels, where it lands in q (less the edge)
        return cv2.erode(cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_NEAREST), edge).astype(bool)

    mask = placed_on_q(np.ones(p.grey.shape, np.uint8))
    # the share of each image's content the other's content covers, as the thumbnails' verifier measures it: a
    # picture shown in an app's window is compared with what the window shows of it, not with the whole window
    p_content, q_content = p.content_mask(), q.content_mask().astype(bool)
    landed = placed_on_q(p_content)
    overlap = float(min((landed & q_content).sum() / q_content.sum(), landed.sum() / (p_content.sum() * scale * scale)))
    placed = cv2.warpAffine(p.grey.astype(np.float32), warp, (w, h), flags=cv2.INTER_LINEAR)
    detail = float(corr_many(_detail(placed)[mask][None], _detail(q.grey.astype(np.float32))[mask][None])[0])
    how = f"{seen}: {inliers} keypoints fit x{scale:.3f} turned {turn:.1f} degrees, detail {detail:.2f}"
    if inliers < MIN_INLIERS or detail < MIN_DETAIL or overlap < rule.min_overlap:
        return False, detail, overlap, np.nan, how
    spread = cv2.contourArea(cv2.convexHull(matched.astype(np.float32))) / max(float(mask.sum()), 1.0)
    if spread < MIN_SPREAD:  # an overlay both share (a caption, a watermark), not the picture
        return False, detail, overlap, np.nan, f"{how}; the matches cover {spread:.0%} of the overlap"
    colour = _colour(p, q, warp, mask)
    if not colour >= rule.min_colour_fit:  # NaN too: a file changed under the run
        return False, detail, overlap, colour, f"{how}; colours differ ({colour:.2f} of chroma explained)"
    return True, detail, overlap, colour, how


def _fitted(p: _Seen, q: _Seen) -> tuple[np.ndarray, int, np.ndarray] | None:
    """The similarity transform (2x3) from p's pixels to q's that most matched keypoints agree with, how many do, and
    where they lie in q; None where too few match, or it scales or turns more than a copy's edit would."""
    if p.descriptors is None or q.descriptors is None or len(p.points) < 10 or len(q.points) < 10:
        return None
    from finetuner.dedup.descriptors import mutual_nearest  # numba: loaded by the first look, not by every run

    mine, theirs = mutual_nearest(p.descriptors, q.descriptors)
    if len(mine) < 10:
        return None
    source, target = p.points[mine], q.points[theirs]
    warp, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if warp is None:
        return None
    scale, turn = _scale_turn(warp)
    if not (1 / MAX_SCALE <= scale <= MAX_SCALE) or abs(turn) > MAX_TURN:
        return None
    return warp, int(inliers.sum()), target[inliers.ravel().astype(bool)]


def _scale_turn(warp: np.ndarray) -> tuple[float, float]:
    """The scale and the turn in degrees of a 2x3 similarity transform."""
    return float(np.hypot(*warp[:, 0])), float(np.degrees(np.arctan2(warp[1, 0], warp[0, 0])))


def _detail(image: np.ndarray) -> np.ndarray:
    fine, coarse = (cv2.GaussianBlur(image, (0, 0), sigma) for sigma in DETAIL_SIGMAS)
    return fine - coarse


def _colour(p: _Seen, q: _Seen, warp: np.ndarray, mask: np.ndarray) -> float:
    """The colour check's share (finetuner/dedup/colour.py) of the two images aligned, over the overlap's box (their
    colours read again: only accepted pairs need them); NaN where a file can no longer be read."""
    p_rgb, q_rgb = _pixels(p.file, p.mirrored), _pixels(q.file, q.mirrored)
    if p_rgb is None or q_rgb is None or p_rgb.shape[:2] != p.grey.shape or q_rgb.shape[:2] != q.grey.shape:
        return float("nan")
    h, w = q.grey.shape
    placed = cv2.warpAffine(p_rgb, warp, (w, h), flags=cv2.INTER_AREA)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    side = (COLOUR_SIDE, COLOUR_SIDE)
    small = [cv2.resize(np.ascontiguousarray(x[box]), side, interpolation=cv2.INTER_AREA) for x in (placed, q_rgb)]
    planes = colour_planes(np.stack(small))
    return float(colour_fit(planes[:1], planes[1:])[0])
