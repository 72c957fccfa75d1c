"""The verifier: decides every candidate pair by aligning the two images and measuring what the alignment explains.

Hash distance is a poor judge on real photographs: smooth wallpapers and near-blank frames sit within a few bits of
each other without being copies, while a 10% crop or a mirror is far away. So candidates (finetuner/dedup/views.py) are
only proposals; a pair joins units when, on the 64x64 grey thumbnails,
1. the two frames align: as they are (inside their bars; where the two were trimmed differently, also over the
   content both trims keep), or as the candidate's views say (the region of one view of image a shows the
   region of another view of image b, mirrored for a mirror view), refined by a local template search
   (OpenCV's normalised cross-correlation) over shifts and a few scales, for pairs close to the threshold or with
   a texture (`thorough`), and for those still short by an affine refit (OpenCV's ECC: a crop on two sides, a crop
   resized back), which bends more freely and so must explain more (REFIT_MIN_*); pairs the views leave short are
   also placed as whole frames where those place well at 16x16 (a corner crop, a crop then mirrored), pairs of
   two shapes compared as one picture shown in the other's canvas (a repost on a blurred copy of itself), and the
   frames as they are compared without the tenth of pixels that disagree most (a watermark across the middle, a
   logo), at stricter thresholds still; and
2. over the aligned overlap the images correlate (`similarity`, Pearson over pixels, tolerant of one caption band
   at the top or bottom), so do their fine structures (`detail_similarity`, the same on a difference of Gaussians:
   two different smooth gradients correlate almost perfectly, their textures do not), and the overlap covers at
   least `min_overlap` of each image's content (inside letterbox bars).
Low-detail images (little fine structure) get their own rule: no search, the frames must agree pixel for pixel
within `flat_max_difference` grey levels on average (or mirrored; frames with visible shading may differ by one
brightness gain), since any two near-blank images correlate. Accepted pairs of graphics then pass the shape check
(finetuner/dedup/shape.py), and accepted pairs of photographs framed alike the surround check
(finetuner/dedup/surround.py), which measure the evidence again where those kinds of image mislead it. Last, every
accepted pair must agree in colour up to one global colour edit (finetuner/dedup/colour.py: the grey thumbnails cannot
tell a product from the same shot in another colour), on the 16x16 colour thumbnails aligned as the grey ones were.
`verify_pairs` does the cheap steps for all pairs at once (numpy) and the search only where it can matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from finetuner.dedup.align import (
    aligned_colours,
    aligned_pair,
    area,
    band_boxes,
    coarse_placement,
    coarse_similarity,
    common_boxes,
    cut,
    cuts,
    max_turns,
    pair_ratios,
    placement,
    refit,
    regions,
    resized,
    signal_boxes,
    warped,
)
from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.colour import colour_fit, colour_planes
from finetuner.dedup.correlation import (
    BAND,
    SMOOTH_SIGMA,
    bands,
    blur_each,
    corr_many,
    evidence,
    evidence_inside,
    robust_evidence,
    unit_rows,
)
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.shape import GRAPHIC_STRETCH, MAX_ANISOTROPY, is_graphic, shape_agreement
from finetuner.dedup.surround import (
    MIN_INSIDE_SIMILARITY,
    MIN_RIM,
    MIN_SHARED,
    RIM_FLATNESS,
    inside_agreement,
    plain,
)
from finetuner.dedup.views import VIEWS, allowed_combos, trim_boxes, unturned, view_hashes

# Bump VERIFIER when verdicts change for the same thresholds (cached verdicts are then recomputed): 2 shape check,
# 3 flat graphics, 4 surround check, 5 refit, 6 textures placed, trims compared where both agree, 7 frames placed,
# 8 thin frame strips, 9 one picture as a band in the other's canvas, 10 bands gated at 16x16, 11 frames and bands held
# to the refit's thresholds, 12 the colour check, 13 watermarks and logos left out, 14 photographs refitted turned up
# to 5 degrees, 15 the square view; a band taken wherever the best alignment so far fails
VERIFIER = 15
REFINE_MARGIN = 0.25  # pairs this far below min_similarity are not worth a template search
# A refit (finetuner/dedup/align.py `refit`) bends one image onto the other more freely than a scale and a shift, so
# it must explain more: at the verifier's own thresholds it let through light/dark twin wallpapers (0.93 / 0.79) and
# a stereo pair; a crop refitted scores 0.99 and more. So must whole frames placed and bands (searches beyond the
# candidate's views): at the plain thresholds they linked 3 pairs of look-alike specimens in the demo data.
REFIT_MIN_SIMILARITY = 0.95
REFIT_MIN_DETAIL = 0.9
# Pairs the local search placed more than REFIT_REACH below min_similarity, or with fine detail below
# REFIT_REACH_DETAIL, are not worth a refit: on the photo sets, 1 in 6 refits succeeds, none beyond these
REFIT_REACH = 0.1
REFIT_REACH_DETAIL = 0.3
# Whole frames are placed (`_place_frames`) where they already place to this correlation at 16x16: true copies the
# views missed score 0.85-0.99 there; on 20,000 synthetic photos no rejected pair scored above 0.79
FRAME_REACH = 0.85
OVERDRAWN_REACH = 0.6  # pairs whose frames correlate this well as they are are compared without what is drawn over
OVERDRAWN_REACH_DETAIL = 0.7  # ...in fine detail too (watermarked copies: 0.79 and up)
OVERDRAWN_DROP = 0.1  # ...the share of pixels that disagree most (`_overdrawn`)
# ...and the thresholds it must reach: different pictures on the photo benches reach 0.94 / 0.91 at most, or 0.96 /
# 0.97 in white mats alike; those framed alike that pass (app windows, circular fields) face the surround check
OVERDRAWN_MIN_SIMILARITY = 0.97
OVERDRAWN_MIN_DETAIL = 0.95
BAND_REACH = 0.9  # bands compared at full size where they already correlate this well at 16x16
BAND_PLAIN = 0.3  # the canvas around a band counts as bars where its fine detail is below this share of the band's,
BAND_FILL = 0.95  # or where it correlates this well with the band enlarged to the canvas and blurred by one of
BAND_FILL_SIGMAS = (1.0, 2.0, 3.0, 4.0)  # (thumbnail pixels): reposted landscapes on a blurred copy of themselves
FRAMES = {False: "full~full", True: "full~mirror"}  # the signal that names the two trimmed frames (b mirrored)
SHADING = 4.0  # low-detail frames whose mean deviation is this many flat_max_difference show shading a gain must fit
MAX_GAIN = 1.6  # the largest brightness change (either way) the low-detail rule undoes
IMAGE_CHUNK = 512  # images per batch of per-image work (8 MiB of float32 thumbnails)
PAIR_CHUNK = 1024  # pairs whose images' identity rows are built together (at most 2,048 images, 110 MiB)
COLOUR_CHUNK = 2048  # pairs whose colours are compared together (a few MiB, reused: fresh memory is slow to touch)


@dataclass(frozen=True)
class VerifyRule:
    """Acceptance thresholds (params.yaml `dedup.verify`)."""

    min_similarity: float = 0.93
    min_detail_similarity: float = 0.6
    min_overlap: float = 0.6
    max_stretch: float = 0.7  # |log| of the aspect change the alignment implies (a copy resized to another shape)
    low_detail: float = 1.0  # detail std (grey levels) below which an image is low-detail
    flat_max_difference: float = 1.5
    min_shape_similarity: float = 0.98  # graphics: fine detail after an affine refit (finetuner/dedup/shape.py)
    min_colour_fit: float = 0.5  # share of chroma one global colour edit must explain (finetuner/dedup/colour.py)


@dataclass(frozen=True)
class Verdict:
    """One pair's decision and its evidence; `transform` reads e.g. "mirror, b in a at 0.90x1.00 +(3,0)"."""

    accepted: bool
    rule: str  # "aligned", "shape" (two graphics), "frame" (photographs framed alike), "low-detail" or "colour"
    similarity: float
    detail_similarity: float
    overlap: float
    transform: str
    colour: float | None = None  # the colour check's share explained (None where it did not look)


def _identity_rows(thumbs: np.ndarray, trims: np.ndarray) -> tuple[list, np.ndarray]:
    """([(top, bottom) unit rows of the smoothed content, the same of its detail], detail std) per image. The identity
    test compares content: letterbox bars removed, or two unrelated pictures letterboxed alike would correlate
    through their bars."""
    band = max(1, int(round(THUMB * BAND)))
    rows = [tuple(np.empty((len(thumbs), (THUMB - band) * THUMB), np.float32) for _ in range(2)) for _ in range(2)]
    level = np.empty(len(thumbs), np.float32)
    for s in range(0, len(thumbs), IMAGE_CHUNK):
        part = slice(s, s + IMAGE_CHUNK)
        content = np.stack(
            [resized(t[a:b, c:d], (THUMB, THUMB)) for t, (a, b, c, d) in zip(thumbs[part], trims[part].tolist())]
        )
        smooth, detail = bands(content)
        level[part] = detail.reshape(len(content), -1).std(axis=1)
        for stack, (top, bottom) in zip((smooth, detail), rows):
            top[part], bottom[part] = unit_rows(stack)
    return rows, level


def _identity(thumbs: np.ndarray, trims: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, ...]:
    """(similarity, detail similarity) of every pair as the frames are, and each image's detail std. Rows are built
    for the images of PAIR_CHUNK pairs at a time: the rows of a whole collection (55 KiB per image) would be GiBs,
    and on a VM the first touch of that much fresh memory costs more than computing an image's rows twice."""
    sim, det, level = np.zeros(len(i)), np.zeros(len(i)), np.zeros(len(thumbs), np.float32)
    order = _local_order(len(thumbs), i, j) if len(i) > PAIR_CHUNK else np.arange(len(i))
    for s in range(0, len(i), PAIR_CHUNK):
        part = order[s : s + PAIR_CHUNK]
        used, inverse = np.unique(np.r_[i[part], j[part]], return_inverse=True)
        a, b = np.split(inverse.ravel(), 2)
        rows, level[used] = _identity_rows(thumbs[used], trims[used])
        for (top, bottom), out in zip(rows, (sim, det)):
            out[part] = np.maximum(np.einsum("kd,kd->k", top[a], top[b]), np.einsum("kd,kd->k", bottom[a], bottom[b]))
    return sim, det, level


def _local_order(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """An order of the pairs (i, j) over n images in which pairs that share images come close together, so that a
    chunk of consecutive pairs touches few images: the pairs sorted by their images' places in a reverse
    Cuthill-McKee order of the pair graph (a breadth-first order that keeps linked images near each other). Copies
    of one picture rarely sit next to each other in a collection's file order: with 20k photos' images shuffled,
    chunks of 1,024 pairs in (i, j) order built 3.2x as many images' rows as there were images; in this order, 1.01x
    (3 ms)."""
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n)).tocsr()
    place = np.empty(n, np.int64)
    place[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(n)
    first, second = np.minimum(place[i], place[j]), np.maximum(place[i], place[j])
    return np.lexsort((second, first))


@dataclass(frozen=True)
class Verdicts:
    """Column-wise verdicts of many pairs; `transform` reads e.g. "mirror: full of a = crop90 of b, +(2,0) x0.95"."""

    accepted: np.ndarray
    rule: np.ndarray  # "aligned", "shape", "frame", "low-detail" or "colour" (rejected by the colour check)
    similarity: np.ndarray
    detail_similarity: np.ndarray
    overlap: np.ndarray
    transform: np.ndarray
    colour: np.ndarray | None = None  # the colour check's share explained, NaN where it did not look

    def __post_init__(self):
        if self.colour is None:
            object.__setattr__(self, "colour", np.full(len(self.accepted), np.nan))

    def __len__(self) -> int:
        return len(self.accepted)

    def row(self, k: int) -> Verdict:
        return Verdict(
            bool(self.accepted[k]),
            str(self.rule[k]),
            float(self.similarity[k]),
            float(self.detail_similarity[k]),
            float(self.overlap[k]),
            str(self.transform[k]),
            None if np.isnan(self.colour[k]) else float(self.colour[k]),
        )


def _refine(ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], list]:
    """(similarity, detail similarity, description, placed regions) of each region pair at its best placement,
    evidence batched per template size."""
    placed = [placement(a, b) for a, b in zip(ra, rb)]
    sim, det = np.zeros(len(placed)), np.zeros(len(placed))
    for size in {p[1].shape for p in placed}:
        members = [k for k, p in enumerate(placed) if p[1].shape == size]
        sim[members], det[members] = evidence(
            np.stack([placed[k][0] for k in members]), np.stack([placed[k][1] for k in members])
        )
    return sim, det, [p[2] for p in placed], placed


def _refits(placed: list, turns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(similarity, detail similarity, share of the region kept, description) of placed region pairs after an
    affine refit (finetuner/dedup/align.py `refit`, turned at most `turns[k]`), measured over the refit's overlap;
    similarity -1 where no refit within a crop's reach was found."""
    sim, det, kept, notes = np.full(len(placed), -1.0), np.full(len(placed), -1.0), np.zeros(len(placed)), []
    for k, (p, q, _) in enumerate(placed):
        fitted = refit(p, q, turns[k])
        if fitted is None:
            notes.append("")
            continue
        warp, inside, note = fitted
        sim[k], det[k] = evidence_inside(np.asarray(p, np.float32), warped(np.asarray(q, np.float32), warp), inside)
        kept[k] = inside.mean()
        notes.append(note)
    return sim, det, kept, notes


def verify_pairs(
    thumbs: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    signals: Sequence[str],
    rule: VerifyRule = VerifyRule(),
    aspect: np.ndarray | None = None,
    chunk: int = 512,
    thorough: np.ndarray | None = None,
    colours: np.ndarray | None = None,
) -> Verdicts:
    """Decide every pair (thumbs[i[k]], thumbs[j[k]]) proposed by `signals[k]` (a view pair such as "full~crop90").

    Identity alignment for all pairs at once (re-encodes, rescales, blur, brightness pass there), then the signal's
    alignment, then the local search for the pairs still near the threshold; low-detail pairs by the pixel rule.
    `aspect` (width / height of each original image, NaN where unknown; the thumbnails are squashed) lets the verifier
    refuse an alignment that would stretch one image into the other by more than `max_stretch` (a copy resized to a
    square or another screen shape needs up to 2x; graphics, whose proportions are their design, are held to 6% by
    the shape check). Unknown (None): not checked. `thorough` marks pairs with a texture (finetuner/dedup/prescreen.py),
    whose first, coarse alignments say little: the local search places them whatever those scored. `colours` (the
    (n, 16, 16, 3) uint8 colour thumbnails, finetuner/dedup/colour.py): accepted pairs must also agree in colour up to
    one global colour edit; None: grey alone decides."""
    k = len(i)
    turned = unturned(thumbs, i, j, signals, colours, aspect)  # "rot90~full": a's turned copy against b's frame
    thumbs, i, j, signals, colours, aspect = (
        turned.thumbs,
        turned.i,
        turned.j,
        turned.signals,
        turned.colours,
        turned.aspect,
    )
    if k == 0:
        none = np.zeros(0)
        return Verdicts(none.astype(bool), none.astype(object), none, none, none, none.astype(object))
    trims = trim_boxes(thumbs)
    sim, det, level = _identity(thumbs, trims, i, j)
    sim0, det0 = sim.copy(), det.copy()  # the evidence as the frames are, kept: `best` takes over the arrays
    aspect = None if aspect is None else np.asarray(aspect, dtype=np.float64)
    best = _Best(sim, det, np.ones(k), _content_stretch(trims, i, j, aspect), _identity_names(trims, i, j))
    _untrimmed(best, thumbs, trims, i, j, aspect, rule)
    flat = (level[i] < rule.low_detail) | (level[j] < rule.low_detail)
    passes = _rule(rule)
    todo = np.flatnonzero(~flat & ~passes(sim, det, best.overlap, best.stretch))
    for s in range(0, len(todo), chunk):
        _realign(best, thumbs, trims, i, j, signals, aspect, rule, todo[s : s + chunk], thorough)
    short = todo[~passes(best.sim[todo], best.det[todo], best.overlap[todo], best.stretch[todo])]
    reach = (sim0[short] >= OVERDRAWN_REACH) & (det0[short] >= OVERDRAWN_REACH_DETAIL)
    _overdrawn(best, thumbs, trims, i, j, aspect, rule, short[reach])
    sim, det, overlap, stretch, how = best.sim, best.det, best.overlap, best.stretch, best.how
    accepted = passes(sim, det, overlap, stretch)
    how = np.array(
        [f"{h}, stretch {b:.0%}" if b >= 0.005 else h for h, b in zip(how.tolist(), stretch.tolist())], dtype=object
    )
    rules = np.where(flat, "low-detail", "aligned").astype(object)
    judged = np.flatnonzero(accepted & ~flat)
    _second_looks(thumbs, trims, i, j, signals, aspect, rule, best, judged, accepted, rules, how)
    if flat.any():
        accepted[flat], sim[flat], how[flat] = _flat(thumbs, i[flat], j[flat], rule)
        det[flat], overlap[flat] = 0.0, 1.0
    colour = np.full(k, np.nan)
    if colours is not None and rule.min_colour_fit > -1:
        looked = np.flatnonzero(accepted)
        colour[looked] = _colour_look(thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, looked)
        for q in looked[colour[looked] < rule.min_colour_fit].tolist():
            accepted[q], rules[q] = False, "colour"
            how[q] = f"{how[q]}; colours differ ({colour[q]:.2f} of chroma explained by one colour edit)"
    how = turned.noted(how)
    return Verdicts(accepted, rules, np.round(sim, 4), np.round(det, 4), np.round(overlap, 4), how, np.round(colour, 4))


def _colour_look(thumbs, colours, trims, i, j, signals, aspect, stage, flat, looked) -> np.ndarray:
    """The colour check's share explained for the pairs `looked`, aligned as the grey verdict placed them (low-detail
    pairs: the whole frames, as they are or mirrored, whichever agrees better), COLOUR_CHUNK pairs at a time. Pairs
    compared as their frames are (most: re-encodes, rescales, tone changes) take each image's trimmed content."""
    fit = np.zeros(len(looked))
    for s in range(0, len(looked), COLOUR_CHUNK):
        part = looked[s : s + COLOUR_CHUNK]
        images, inverse = np.unique(np.r_[i[part], j[part]], return_inverse=True)
        x_at, y_at = np.split(inverse, 2)
        planes = colour_planes(np.asarray(colours[images]))  # cut and resized as planes: both are linear
        enlarged = _Enlarged(dict(zip(images.tolist(), planes)))
        content = planes.copy()
        side = (COLOUR_SIDE, COLOUR_SIDE)
        for k, x in enumerate(images.tolist()):
            if tuple(trims[x]) != (0, THUMB, 0, THUMB):  # bars trimmed
                content[k] = resized(cut(enlarged[x], tuple(trims[x])), side)
        as_they_are = (stage[part] == 0) & ~flat[part]
        a = np.where(as_they_are[:, None, None, None], content[x_at], planes[x_at])
        b = np.where(as_they_are[:, None, None, None], content[y_at], planes[y_at])
        for n in np.flatnonzero(~as_they_are & ~flat[part]).tolist():
            x, y, q = int(i[part[n]]), int(j[part[n]]), part[n]
            p, r = aligned_colours(thumbs, enlarged, trims, x, y, signals[q], int(stage[q]), aspect)
            a[n], b[n] = resized(p, side), resized(r, side)
        fit[s : s + len(part)] = colour_fit(a, b)
        mirrored = np.flatnonzero(flat[part])  # low-detail pairs: as they are or mirrored
        if len(mirrored):
            turned = colour_fit(a[mirrored], b[mirrored][:, :, ::-1])
            fit[s + mirrored] = np.maximum(fit[s + mirrored], turned)
    return fit


class _Enlarged:
    """Images' colour planes enlarged to the grey thumbnails' size where read, so the grey alignment's boxes apply."""

    def __init__(self, small: dict[int, np.ndarray]):
        self.small = small

    def __getitem__(self, x: int) -> np.ndarray:
        return cv2.resize(self.small[x], (THUMB, THUMB), interpolation=cv2.INTER_LINEAR)


def _second_looks(thumbs, trims, i, j, signals, aspect, rule: VerifyRule, best: _Best, judged, accepted, rules, how):
    """The accepted pairs `judged` measured again where their kind of image misleads the verifier: two graphics by the
    shape check, two photographs framed alike inside their frame (`accepted`, `rules`, `how` and the evidence in
    `best` are updated in place). Only the images of accepted pairs are looked at."""
    sim, det, stage = best.sim, best.det, best.stage
    drawn, edged, frame = np.zeros(len(thumbs), bool), np.zeros(len(thumbs), bool), np.zeros(len(thumbs))
    touched = np.unique(np.r_[i[judged], j[judged]])
    seen = plain(thumbs[touched])
    drawn[touched], frame[touched] = is_graphic(seen), seen.colour
    edged[touched] = (seen.rim >= MIN_RIM) & (seen.rim_spread <= RIM_FLATNESS) & (seen.share >= MIN_SHARED)
    graphics = drawn[i[judged]] & drawn[j[judged]]
    for q in judged[graphics].tolist() if rule.min_shape_similarity > -1 else []:
        if best.stretch[q] > GRAPHIC_STRETCH:  # no refit can bring its proportions back within MAX_ANISOTROPY
            accepted[q], note = False, f"shape: proportions changed by {best.stretch[q]:.0%}"
        else:
            accepted[q], det[q], note = _shape(thumbs, trims, i[q], j[q], signals[q], stage[q], aspect, rule)
        how[q], rules[q] = f"{how[q]}; {note}", "shape"
    for q in judged[~graphics & edged[i[judged]] & edged[j[judged]]].tolist():
        p_region, q_region, _ = aligned_pair(thumbs, trims, i[q], j[q], signals[q], stage[q], aspect)
        inner_sim, inner_det, left_out = inside_agreement(p_region, q_region, frame[i[q]], frame[j[q]])
        if left_out > 0:
            sim[q], det[q], rules[q] = inner_sim, inner_det, "frame"
            accepted[q] = inner_sim >= MIN_INSIDE_SIMILARITY and inner_det >= rule.min_detail_similarity
            how[q] = f"{how[q]}; inside the shared frame ({left_out:.0%} left out)"


@dataclass
class _Best:
    """Per pair, the best alignment found so far and its evidence; `stage` 0 the frames as they are (inside their
    bars), 1 the regions the signal names, 2 those refined by the local search, 3 those then refitted, 4 the frames
    as they are over the content both trims keep (`_untrimmed`), 5 and 6 the whole frames placed and refitted
    (`_place_frames`), 7 and 8 one picture as a band in the other's canvas (`_bands`), 9 the frames as they are with
    what is drawn over one left out (`_overdrawn`); finetuner/dedup/align.py
    `aligned_pair` rebuilds the regions of each."""

    sim: np.ndarray
    det: np.ndarray
    overlap: np.ndarray
    stretch: np.ndarray
    how: np.ndarray
    stage: np.ndarray = field(init=False)

    def __post_init__(self):
        self.stage = np.zeros(len(self.sim), np.int8)

    def take(self, where: np.ndarray, sim, det, overlap, stretch, how, stage: int) -> None:
        self.sim[where], self.det[where], self.overlap[where], self.stretch[where] = sim, det, overlap, stretch
        self.how[where], self.stage[where] = how, stage


def _content_stretch(trims: np.ndarray, i: np.ndarray, j: np.ndarray, aspect: np.ndarray | None) -> np.ndarray:
    """|log| of the ratio of the two images' content proportions (inside bars): what matching them as they are
    implies; zero where a size is unknown."""
    if aspect is None:
        return np.zeros(len(i))
    shape = (trims[:, 3] - trims[:, 2]) / (trims[:, 1] - trims[:, 0]) * aspect  # the content's true aspect
    stretch = np.abs(np.log(shape[i] / shape[j]))
    stretch[~np.isfinite(stretch)] = 0.0
    return stretch


def _untrimmed(best: _Best, thumbs: np.ndarray, trims: np.ndarray, i: np.ndarray, j: np.ndarray, aspect, rule) -> None:
    """Pairs whose two frames were trimmed differently, compared as they lie over the content both trims keep
    (stage 4): a dark or low-contrast picture's edge rows pass for bars on one copy and not on the other (a contrast
    change, a heavy re-encode), and then the two trimmed contents are misaligned by up to 30% of a side. Bars stay
    out of the comparison: two pictures in alike bars or mats would correlate through them."""
    differ = np.flatnonzero((trims[i] != trims[j]).any(axis=1))
    if len(differ) == 0:
        return
    boxes = common_boxes(trims[i[differ]], trims[j[differ]])
    sim, det = np.zeros(len(differ)), np.zeros(len(differ))
    for s in range(0, len(differ), IMAGE_CHUNK):
        part = slice(s, s + IMAGE_CHUNK)
        sim[part], det[part] = evidence(*(cuts(thumbs, side[differ[part]], boxes[part]) for side in (i, j)))
    whole = np.tile(np.array([0, THUMB, 0, THUMB], np.int64), (len(thumbs), 1))
    stretch = _content_stretch(whole, i[differ], j[differ], aspect)  # one box on both: their own shapes differ
    overlap = np.minimum(*(area(boxes) / area(trims[side[differ]]) for side in (i, j)))
    better = _score(sim, det, stretch, rule) > _score(best.sim[differ], best.det[differ], best.stretch[differ], rule)
    better &= overlap >= rule.min_overlap  # a sliver both keep would outscore a fuller alignment the search finds
    where = differ[better]
    how = np.full(len(where), "identity, inside both frames' bars", dtype=object)
    best.take(where, sim[better], det[better], overlap[better], stretch[better], how, 4)


def _overdrawn(best: _Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs `part` compared as their frames are (inside their bars), with the tenth of pixels that disagree most left
    out (stage 9): a semi-transparent watermark across the middle or a logo over the picture (a caption band at the top
    or the bottom is the plain evidence's). Leaving pixels out helps any pair, so this must reach thresholds stricter
    than the refit's (OVERDRAWN_MIN_*); pictures framed alike (an app window, a circular field), which reach them too,
    still face the surround check."""
    if len(part) == 0:
        return
    sim, det = np.zeros(len(part)), np.zeros(len(part))
    for s in range(0, len(part), IMAGE_CHUNK):
        cut_ = slice(s, s + IMAGE_CHUNK)
        sim[cut_], det[cut_] = robust_evidence(
            *(cuts(thumbs, side[part[cut_]], trims[side[part[cut_]]]) for side in (i, j)), OVERDRAWN_DROP
        )
    stretch = _content_stretch(trims, i[part], j[part], aspect)
    stricter = replace(
        rule,
        min_similarity=max(rule.min_similarity, OVERDRAWN_MIN_SIMILARITY),
        min_detail_similarity=max(rule.min_detail_similarity, OVERDRAWN_MIN_DETAIL),
    )
    good = _rule(stricter)(sim, det, np.ones(len(part)), stretch)
    how = np.full(good.sum(), f"identity, the {OVERDRAWN_DROP:.0%} of pixels that disagree most left out", object)
    best.take(part[good], sim[good], det[good], 1.0 - OVERDRAWN_DROP, stretch[good], how, 9)


def _identity_names(trims: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    whole = (trims == (0, THUMB, 0, THUMB)).all(axis=1)
    return np.where(whole[i] & whole[j], "identity", "identity, bars trimmed").astype(object)


def _realign(best: _Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, part: np.ndarray, thorough) -> None:
    """Try the signal's regions for the pairs `part`, then the local search for those still near the threshold (or
    `thorough`), keeping whichever alignment scores better; then, for pairs still short, the whole frames placed."""
    passes = _rule(rule)
    ra, rb, cover, bend, names = regions(thumbs, i[part], j[part], [signals[p] for p in part], trims, aspect)
    gs, gd = evidence(ra, rb)
    better = _score(gs, gd, bend, rule) > _score(best.sim[part], best.det[part], best.stretch[part], rule)
    names = np.asarray(names, dtype=object)
    best.take(part[better], gs[better], gd[better], cover[better], bend[better], names[better], 1)
    reach = gs >= rule.min_similarity - REFINE_MARGIN
    if thorough is not None:
        reach |= thorough[part]
    near = np.flatnonzero(~passes(gs, gd, cover, bend) & reach & (bend <= rule.max_stretch))
    if len(near):
        turns = max_turns(thumbs, i[part[near]], j[part[near]])
        _place(best, ra[near], rb[near], cover[near], bend[near], names[near], part[near], rule, thorough, 2, turns)
    _place_frames(best, thumbs, trims, i, j, signals, aspect, rule, part, thorough)
    _bands(best, thumbs, trims, i, j, aspect, rule, part)


def _bands(best: _Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs still short whose contents differ in shape, compared as one picture shown whole inside the other's
    canvas (stages 7 and 8, `band_boxes`): a landscape photo reposted in a square over a blurred copy of itself, or a
    portrait one in a wide video frame, where the bars are not plain enough to trim. Only bands that already agree
    at 16x16 (BAND_REACH) are compared at full size. The canvas outside the band counts as bars (the overlap is the
    picture's) where it is plain or the picture's own blurred enlargement (`_band_overlap`); otherwise the band is a
    crop of a larger picture and the overlap is its share."""
    if aspect is None:
        return
    passes = _rule(rule)
    left = part[~passes(best.sim[part], best.det[part], best.overlap[part], best.stretch[part])]
    for on_narrower, stage in ((True, 7), (False, 8)):
        boxes_a, boxes_b, found = band_boxes(
            trims[i[left]], trims[j[left]], aspect[i[left]], aspect[j[left]], on_narrower
        )
        where = np.flatnonzero(found)
        if len(where):
            where = where[
                coarse_similarity(thumbs, i[left[where]], j[left[where]], boxes_a[where], boxes_b[where]) >= BAND_REACH
            ]
        if len(where) == 0:
            continue
        boxes_a, boxes_b, where = boxes_a[where], boxes_b[where], left[where]
        sim, det = evidence(cuts(thumbs, i[where], boxes_a), cuts(thumbs, j[where], boxes_b))
        stretch = np.zeros(len(where))
        short = ~passes(best.sim[where], best.det[where], best.overlap[where], best.stretch[where])
        # taken where it scores better, or wherever the best so far fails (e.g. a square crop of a wide picture:
        # as a view it aligns perfectly but shares too little of it, while the canvas around it is bars)
        better = short | (
            _score(sim, det, stretch, rule) > _score(best.sim[where], best.det[where], best.stretch[where], rule)
        )
        better &= _rule(_strict(rule))(sim, det, np.ones(len(where)), stretch)  # the surround: only where it decides
        overlap = np.zeros(len(where))
        for k in np.flatnonzero(better).tolist():
            overlap[k] = _band_overlap(thumbs, trims, i[where[k]], j[where[k]], (boxes_a[k], boxes_b[k]))
        better &= overlap >= rule.min_overlap
        how = np.full(int(better.sum()), "one shown in the other's canvas (a band)", dtype=object)
        best.take(where[better], sim[better], det[better], overlap[better], stretch[better], how, stage)


def _band_overlap(thumbs, trims, x: int, y: int, boxes: tuple) -> float:
    """1 where the canvas around the band is bars: little fine detail (BAND_PLAIN of the band's), or the band's own
    picture enlarged to the canvas and blurred (a social-media repost's fill, BAND_FILL); else the share of the
    canvas the band covers (the band is then a crop of a larger picture)."""
    canvas, band = (y, tuple(boxes[1].tolist())) if (boxes[0] == trims[x]).all() else (x, tuple(boxes[0].tolist()))
    top, bottom, left, right = trims[canvas].tolist()
    image = thumbs[canvas].astype(np.float32)
    inside = np.zeros(image.shape, bool)
    inside[band[0] : band[1], band[2] : band[3]] = True
    rest = np.zeros(image.shape, bool)
    rest[top:bottom, left:right] = True
    rest &= ~inside
    if not rest.any():
        return 1.0
    detail = bands(image[None])[1][0]
    if detail[rest].std() <= BAND_PLAIN * detail[inside].std():
        return 1.0
    enlarged = np.zeros_like(image)
    enlarged[top:bottom, left:right] = resized(cut(thumbs[canvas], band), (right - left, bottom - top))
    seen = blur_each(image[None], SMOOTH_SIGMA)[0][rest]
    for sigma in BAND_FILL_SIGMAS:
        if corr_many(blur_each(enlarged[None], sigma)[0][rest][None], seen[None])[0] >= BAND_FILL:
            return 1.0
    return float(inside.sum() / ((bottom - top) * (right - left)))


def _place(
    best: _Best, ra, rb, cover, bend, names, where, rule: VerifyRule, thorough, stage: int, turns, strict: bool = False
) -> None:
    """The local search for region pairs (ra, rb) of the pairs `where` (stage `stage`), then the refit for those it
    leaves just short (stage + 1, turned at most `turns[k]`: `max_turns`), each kept where it scores better; with
    `strict`, a placement is kept only where it passes the refit's stricter thresholds (a search beyond the
    candidate's own views must explain more)."""
    passes = _rule(rule)
    rs, rd, shifts, placed = _refine(ra, rb)
    better = _score(rs, rd, bend, rule) > _score(best.sim[where], best.det[where], best.stretch[where], rule)
    if strict:
        better &= _rule(_strict(rule))(rs, rd, cover, bend)
    named = np.array([name + shift for name, shift in zip(names.tolist(), shifts)], dtype=object)
    best.take(where[better], rs[better], rd[better], cover[better], bend[better], named[better], stage)
    # still short: a crop on two sides, a crop resized back or a small turn is more than a scale and a shift
    reach = (best.sim[where] >= rule.min_similarity - REFIT_REACH) & (best.det[where] >= REFIT_REACH_DETAIL)
    if thorough is not None:  # a texture placed off by a crop's stretch correlates little until refitted
        reach |= thorough[where] & (best.sim[where] >= rule.min_similarity - REFINE_MARGIN)
    again = np.flatnonzero(~passes(best.sim[where], best.det[where], best.overlap[where], best.stretch[where]) & reach)
    if len(again) == 0:
        return
    fs, fd, kept, notes = _refits([placed[k] for k in again], turns[again])
    overlap, stretch = cover[again] * kept, bend[again]
    better = _rule(_strict(rule))(fs, fd, overlap, stretch)  # taken only where it decides the pair
    refitted = np.array([n + note for n, note in zip(named[again].tolist(), notes)], dtype=object)
    where = where[again]
    best.take(where[better], fs[better], fd[better], overlap[better], stretch[better], refitted[better], stage + 1)


def _strict(rule: VerifyRule) -> VerifyRule:
    """The thresholds a freer alignment must reach (a refit, a placement of whole frames or of a band)."""
    return replace(
        rule,
        min_similarity=max(rule.min_similarity, REFIT_MIN_SIMILARITY),
        min_detail_similarity=max(rule.min_detail_similarity, REFIT_MIN_DETAIL),
    )


def _place_frames(best: _Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, part, thorough) -> None:
    """Pairs still short whose signal named views, placed as whole (trimmed) frames, mirrored as the signal says
    (stages 5 and 6): a crop at a corner, or a crop then mirrored, matches no view pair well enough for the local
    search to start from, while one frame sits inside the other. Only pairs whose frames already place well at
    16x16 (`coarse_placement` >= FRAME_REACH) are placed at full size."""
    passes = _rule(rule)
    left = part[~passes(best.sim[part], best.det[part], best.overlap[part], best.stretch[part])]
    boxes = [
        signal_boxes(signals[q], trims[i[q]], trims[j[q]], *pair_ratios(aspect, i[q], j[q])) for q in left.tolist()
    ]
    views = np.array([(a, b) != (tuple(trims[i[q]]), tuple(trims[j[q]])) for q, (a, b, _, _) in zip(left, boxes)], bool)
    mirrored = np.array([m for _, _, m, _ in boxes], bool)
    left, mirrored = left[views], mirrored[views]
    if len(left) == 0:
        return
    go = coarse_placement(thumbs, trims, i[left], j[left], mirrored) >= FRAME_REACH
    left, mirrored = left[go], mirrored[go]
    if len(left) == 0:
        return
    frames = [FRAMES[m] for m in mirrored.tolist()]
    ra, rb, cover, bend, names = regions(thumbs, i[left], j[left], frames, trims, aspect)
    keep = bend <= rule.max_stretch
    if not keep.any():
        return
    names = np.asarray(names, dtype=object)
    turns = max_turns(thumbs, i[left[keep]], j[left[keep]])
    _place(best, ra[keep], rb[keep], cover[keep], bend[keep], names[keep], left[keep], rule, thorough, 5, turns, True)


def _shape(thumbs, trims, x: int, y: int, signal: str, stage: int, aspect, rule: VerifyRule) -> tuple[bool, float, str]:
    """(accepted, fine-detail agreement, description) of two graphics by the shape check (finetuner/dedup/shape.py)."""
    p, q, frames = aligned_pair(thumbs, trims, x, y, signal, stage, aspect)
    score, anisotropy, note = shape_agreement(p, q, rule.min_shape_similarity, frames)
    return score >= rule.min_shape_similarity and anisotropy <= MAX_ANISOTROPY, score, note


def _score(sim: np.ndarray, det: np.ndarray, stretch: np.ndarray, rule: VerifyRule) -> np.ndarray:
    """Which of two alignments to keep: the more similar one, and never one that stretches beyond the limit."""
    return sim + det - 10.0 * (stretch > rule.max_stretch)


def _rule(rule: VerifyRule):
    def passes(sim: np.ndarray, det: np.ndarray, overlap: np.ndarray, stretch: np.ndarray) -> np.ndarray:
        return (
            (sim >= rule.min_similarity)
            & (det >= rule.min_detail_similarity)
            & (overlap >= rule.min_overlap)
            & (stretch <= rule.max_stretch)
        )

    return passes


def _flat(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, rule: VerifyRule) -> tuple[np.ndarray, ...]:
    """Low-detail pairs: the same picture pixel for pixel (mirrored or not), or not a copy. A pair whose frames both
    show visible shading (a smooth wallpaper) may also differ by one brightness gain: the shading then pins the gain
    down, while two plain frames of different shades would match through any gain."""
    a, b = thumbs[i].astype(np.float32), thumbs[j].astype(np.float32)
    spread = np.minimum(_mean_deviation(a), _mean_deviation(b))
    ratio = b.reshape(len(i), -1).mean(axis=1) / np.maximum(a.reshape(len(i), -1).mean(axis=1), 1.0)
    gain = np.where(spread >= SHADING * rule.flat_max_difference, np.clip(ratio, 1 / MAX_GAIN, MAX_GAIN), 1.0)
    scaled = a * gain[:, None, None].astype(np.float32)
    straight = np.abs(scaled - b).reshape(len(i), -1).mean(axis=1)
    mirrored = np.abs(scaled - b[:, :, ::-1]).reshape(len(i), -1).mean(axis=1)
    difference = np.minimum(straight, mirrored)
    how = np.array(
        [
            f"{'mirror' if m < s else 'identity'}{f', gain {g:.2f}' if abs(g - 1) >= 0.005 else ''}, "
            f"mean difference {d:.1f} grey levels"
            for s, m, d, g in zip(straight.tolist(), mirrored.tolist(), difference.tolist(), gain.tolist())
        ],
        dtype=object,
    )
    return difference <= rule.flat_max_difference, 1.0 - difference / 255.0, how


def _mean_deviation(stack: np.ndarray) -> np.ndarray:
    flat = stack.reshape(len(stack), -1)
    return np.abs(flat - flat.mean(axis=1, keepdims=True)).mean(axis=1)


def best_signal(a: np.ndarray, b: np.ndarray, aspect: tuple[float, float] | None = None) -> str:
    """The view pair ("full~crop90") whose hashes of two thumbnails (of images of `aspect`, width / height) are
    closest, as a candidate search names it."""
    hashes = view_hashes(np.stack([a, b]), None if aspect is None else np.array(aspect, np.float64))
    allowed = allowed_combos(VIEWS).tolist()
    pairs = [
        (int(np.bitwise_count(hashes[x][0] ^ hashes[y][1])), f"{x}~{y}")
        for (x, y), ok in zip(((x, y) for x in VIEWS for y in VIEWS), allowed)
        if ok
    ]
    return min(pairs, key=lambda p: p[0])[1]


def verify(
    a: np.ndarray,
    b: np.ndarray,
    rule: VerifyRule = VerifyRule(),
    aspect: tuple[float, float] | None = None,
    colours: tuple[np.ndarray, np.ndarray] | None = None,
) -> Verdict:
    """Decide one pair of 64x64 grey uint8 thumbnails, proposed by their closest view pair; with `colours` (their
    16x16 colour thumbnails), the colour check too."""
    pair = np.stack([a, b])
    return verify_pairs(
        pair,
        np.array([0]),
        np.array([1]),
        [best_signal(a, b, aspect)],
        rule,
        None if aspect is None else np.array(aspect),
        colours=None if colours is None else np.stack(colours),
    ).row(0)
