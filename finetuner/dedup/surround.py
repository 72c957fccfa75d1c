"""The surround check: two photographs framed alike are compared inside their frames, not through them.

Many collections frame every picture the same way: a fundus camera's black disc surround, a microscope's circular
field, a white mat on scanned prints, black bars on video frames. Two different pictures framed alike correlate
through the frame: it is the largest and sharpest structure both share, so on their thumbnails the verifier's
similarity and fine detail (finetuner/dedup/verify.py) pass as if they were copies. 52 different photographs, each
given one circular black surround, gave 39 accepted pairs; with a white mat, 13; a real fundus collection would chain
into one cluster. Trimming bars does not help: a disc's corners are not bars.

So for an accepted pair of photographs that may show a frame (a plain, flat rim: `frames.plain`; since 2026-12-06 either
image, its colours looked for in both, since a re-encode can leave a copy's rim too grainy to count), the frame in each
aligned region is found (`frames.frame_mask`: plain pixels connected to the region's border) and, where the two share at
least MIN_SHARED of the region, the evidence is measured again over the rest, less a margin of EDGE pixels where the
frame's edge still dominates the fine detail: the pair (rule "frame") must reach MIN_INSIDE_SIMILARITY there and the
verifier's detail threshold. A copy agrees inside as it does outside; two pictures framed alike do not: on the same
52 photographs, 0 pairs in the disc and 1 in the mat are accepted now, and the real-photo bench, where every picture
is also seen through one disc, went from 87 false pairs (largest cluster 168) to 2 (16), recall unchanged. Graphics
(letters, logos on paper), whose plain background is part of the design, are left to the shape check
(finetuner/dedup/shape.py).

Frames of several flat tones (an app window) and frames in two layers (a print's border on a table) are found by
finetuner/dedup/frames.py, and the layers of a template both regions show that no frame colour found by
finetuner/dedup/layers.py: the evidence inside is measured again without them, and the lower similarity counts.

Where a frame is missed in part (a rim too grainy to count, a mat around the print, a caption under it), the edges
of the template left inside still dominate a correlation over the whole inside: two grey textures (brick and gravel)
on one kind of print agreed at 0.85-0.98 inside. So the inside is also compared block by block
(finetuner/dedup/correlation.py `block_agreement`): a copy's textured blocks agree as its whole does (where a crop's
view aligned it a few percent off, once refitted: finetuner/dedup/second_looks.py `_inside`), two pictures' blocks do
not. Below MIN_BLOCK_AGREEMENT the blocks' median is the similarity inside. Where one image shows a frame but the
aligned regions share none (a letterbox's bars trimmed away, leaving a print on a grainy table), the blocks of the whole
regions must agree (`blocks_apart`). On the print set (bench_dedup_quality.py --set prints) false pairs went from 141
to 9 (precision 0.968 to 0.998, largest cluster 98 to 42), and no true pair was lost there or on the eight other
quality sets: of the 6,600 true pairs the frame rule accepts on them, 28 agree below MIN_BLOCK_AGREEMENT as first
aligned, all crops of a print placed a few percent off, and 0.83 or more once refitted; true pairs sharing no frame
agree at 0.77 or more.

Inside the frame, smooth content (a wallpaper's ramp and soft blobs, a glow, a retina's shading) correlates with any
other smooth content, as a low-detail frame does (finetuner/dedup/low_detail.py): 50 different smooth pictures (10
wallpapers, 10 fields of soft shapes, 10 soft textures, 20 linear and radial gradients) gave 43 false pairs of 1,225
in one circular field of view and 37 on one kind of turned print, at 0.85-0.98 inside (none in a white mat or
letterboxed, which the trim strips, leaving low-detail frames). Since 2026-12-07 one inside's shading must also be the
other's up to a tone change (`shading_apart`, as the low-detail rule's shading match asks): 10 and 5 remain. The
twelve photo sets of benchmarks/bench_dedup_quality.py give the same recall; two of their 28,847 pairs went, each
image still joined to the other through their picture's other copies (a smooth wallpaper's border and its vignetted
copy, a blurred page and its 10% crop on a print). A ramp or a glow is a tone change of any other, so where both
insides are one (their shading, smoothed over the inside alone, within SMOOTH_DEPARTURE of a quadratic surface) they
must also be the same pixels up to one brightness gain, as two low-detail frames must (`pixels_apart`, since VERIFIER
65): on the smooth framed set (benchmarks/bench_dedup_quality.py --set smooth-framed) 177 false pairs of two
gradients in one disc went, no true pair, and no other set changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from finetuner.dedup.correlation import block_agreement, evidence_inside
from finetuner.dedup.frames import MIN_SHARED, frame_of
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.layers import flat_alike, frame_grown, template_layers, toned_layers
from finetuner.dedup.low_detail import MAX_GAIN

EDGE = 5  # thumbnail pixels around the shared frame left out too (the detail band's reach, 2 x its outer sigma)
MIN_INSIDE = 0.1  # share of the region that must remain to compare; less: no evidence of a copy, rejected
# Inside the frame a copy's similarity is lower than over its whole frame: the plain areas left out agreed perfectly,
# and what remains is the content where an alignment's residual shows. Measured over the pairs this check saw: true
# copies on the real-photo bench and under 14 further edits, 1st percentile 0.857 and 0.884; different photographs
# given one frame (a white mat, a circular black surround, the same wider), highest 0.81.
MIN_INSIDE_SIMILARITY = 0.85
# Block by block (`block_agreement`), inside the frame, a copy's textured parts correlate as its whole does; two
# pictures in one template agree only along its edges. Below this median the blocks' agreement is the similarity.
MIN_BLOCK_AGREEMENT = 0.5
# Inside the frame, smooth content correlates with any other smooth content (any two ramps, any two glows), as a
# low-detail frame does (finetuner/dedup/low_detail.py). So one inside's shading must also be the other's up to a tone
# change: smoothed by SHADING_SIGMA thumbnail pixels (JPEG blocks, grain), fitted by a gain and an offset, the residual
# at most BEYOND_SHADING times the insides' departure from their best-fitting quadratic surfaces (their geometric
# mean). A picture's detail departs far from a quadratic, so this holds for its copies wherever the correlation does;
# 1.0 lost a smooth wallpaper's JPEG-10 copy in a disc, whose blocks bend its shading (residual 1.6 its original's
# departure, 0.9 the copy's)
SHADING_SIGMA = 2.0
BEYOND_SHADING = 1.5
# Where both insides' shading departs less than this (grey levels, smoothed over the inside alone) from its
# best-fitting quadratic surface, it is a ramp or a glow, which a tone change maps onto any other: two linear
# gradients in one disc, turned onto each other, fit at 0.12 grey levels. Such insides must match pixel for pixel, up to
# one brightness gain, as two low-detail frames must (`pixels_apart`). The copies' insides on the quality sets depart
# 0.06 or more, the framed and print sets' photographs 0.55 or more, and none of theirs under 1.0 differs by more than
# flat_max_difference.
SMOOTH_DEPARTURE = 1.0


class Inside(NamedTuple):
    """What `inside_agreement` measured inside a shared frame."""

    similarity: float
    detail: float  # NaN where not measured there (the caller's, over the whole regions, stands)
    left_out: float  # the share of the regions that was frame (0: no frame shared, nothing measured)
    shading: float = 0.0  # `shading_apart` of what was compared (the larger where two insides were)
    pixels: float = float("nan")  # `pixels_apart` of what was compared (the larger), NaN where either shows detail


def inside_agreement(
    p: np.ndarray,
    q: np.ndarray,
    frame_p: float | np.ndarray,
    frame_q: float | np.ndarray,
    move: Callable[[np.ndarray], np.ndarray] | None = None,
    flat_max_difference: float = np.inf,
) -> Inside:
    """`Inside` (similarity, detail similarity, share left out, how far apart the shading and the pixels lie) of two
    aligned grey regions of one size over the pixels that are not frame in both (`frame_mask`, with frame colours
    `frame_p`, `frame_q`: one each, or several tones, NaN where unused), less EDGE pixels around it and inside the
    regions' edge (where a trim cut the bars away, the line the picture's edge blends into them stays, and two pictures
    framed alike would correlate through it). The share left out is 0 (and the similarities NaN) where the regions share
    less than MIN_SHARED of frame: there is no frame to see through; or, with several tones, where less than MIN_INSIDE
    would remain: the tones are the picture's own. `move`: what moves q onto p (a refit's warp), applied after q's frame
    is found (it would warp the frame's rim off the border).

    Where the two frames' colours differ, each region's frame is also looked for in both regions' colours: a crop of
    a print turned on a table shows the print's white border on its rim where the other's rim shows only the table,
    and a print and a social post (a dark table, a white page) share no frame colour, yet the print's border and the
    post's page agreed. The lower of the two similarities is kept, and the detail of the frames' own colours (where
    they share no frame, NaN: the caller's, over the whole regions, stands): more frame leaves less inside, where a
    smooth picture's copy has no fine detail left to agree in.

    Each similarity is also measured block by block (`_evidence`): where the textured blocks inside disagree, their
    median agreement is the similarity; and where one's shading inside is no tone change of the other's, or where
    both insides are a ramp or a glow whose pixels lie more than `flat_max_difference` apart (`pixels_apart`), it
    falls short of MIN_INSIDE_SIMILARITY."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    tones_p, tones_q = (np.atleast_1d(np.asarray(f, np.float64)) for f in (frame_p, frame_q))
    tones_p, tones_q = np.unique(tones_p[np.isfinite(tones_p)]), np.unique(tones_q[np.isfinite(tones_q)])
    moved = q if move is None else move(q)

    def moved_mask(mask_q: np.ndarray) -> np.ndarray:
        return mask_q if move is None else move(mask_q.astype(np.float32)) >= 0.5

    def shared(colours_p: np.ndarray, colours_q: np.ndarray, layers: bool = True) -> np.ndarray:
        return frame_of(p, colours_p, layers) & moved_mask(frame_of(q, colours_q, layers))

    both = np.union1d(tones_p, tones_q)
    crossed = shared(both, both) if len(both) > min(len(tones_p), len(tones_q)) else None
    own_p, own_q = frame_of(p, tones_p), frame_of(q, tones_q)  # each region's frame in its own colours, as it lies
    frame = own_p & moved_mask(own_q)
    if frame.mean() < MIN_SHARED:  # framed apart (a post's white page, a print's dark table): their borders may meet
        if crossed is None or crossed.mean() < MIN_SHARED:
            crossed = flat_alike(p, moved, both)  # layers too thin to connect to the border
            if crossed.mean() < MIN_SHARED:  # a layer of one template in other tones (a brightened print's border)
                crossed = toned_layers(p, q, own_p | own_q)
            if crossed.mean() < MIN_SHARED:
                return Inside(float("nan"), float("nan"), 0.0)
        inside = _inside(crossed)
        if inside.mean() < MIN_INSIDE:
            return Inside(float("nan"), float("nan"), 0.0)
        found = _evidence(p, moved, inside, flat_max_difference)
        grown = (frame_grown(p, q, crossed, both) | template_layers(p, q, crossed, both)) & inside
        sim, _, apart, pixels = _less_layers(p, moved, crossed, grown, found, flat_max_difference)
        return Inside(sim, float("nan"), float(1.0 - inside.mean()), apart, pixels)
    inside = _inside(frame)
    if inside.mean() < MIN_INSIDE:  # a second layer may be the picture's own (a silhouette)
        inside = _inside(shared(tones_p, tones_q, layers=False))
    if inside.mean() < MIN_INSIDE:
        several = len(tones_p) > 1 or len(tones_q) > 1
        return Inside(float("nan"), float("nan"), 0.0) if several else Inside(0.0, 0.0, float(1.0 - inside.mean()))
    found = _evidence(p, moved, inside, flat_max_difference)  # a caption band may disagree, as in the verifier's
    # found where the frames first lay (a refit's warp moves q's pixels off the template's, not the template)
    layers = template_layers(p, q, frame, both) & inside
    sim, det, apart, pixels = _less_layers(p, moved, frame, layers, found, flat_max_difference)
    if crossed is not None and _inside(crossed).mean() >= MIN_INSIDE:
        crossed_found = _evidence(p, moved, _inside(crossed), flat_max_difference)
        sim, _, apart, pixels = _worse((sim, det, apart, pixels), crossed_found)
    return Inside(sim, det, float(1.0 - inside.mean()), apart, pixels)


def blocks_apart(p: np.ndarray, q: np.ndarray) -> float:
    """`block_agreement` of two aligned grey regions that share no frame, over all of them but EDGE pixels at their
    edge: where one image shows a frame the aligned regions left out (a letterbox's bars trimmed away, leaving a
    print on its grainy table), two pictures in one template still agree only along its edges."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    return block_agreement(p, q, whole_inside(len(p)))


def whole_inside(side: int) -> np.ndarray:
    """The mask `blocks_apart` compares a region of `side` pixels over: all of it but EDGE pixels at its edge."""
    return _inside(np.zeros((side, side), bool))


_Evidence = tuple[float, float, float, float]  # similarity, detail, `shading_apart`, `pixels_apart`


def _evidence(p: np.ndarray, q: np.ndarray, inside: np.ndarray, flat_max_difference: float) -> _Evidence:
    """(similarity, detail, `shading_apart`, `pixels_apart`): `evidence_inside`, its similarity lowered to the blocks'
    agreement where that falls below MIN_BLOCK_AGREEMENT (so under MIN_INSIDE_SIMILARITY too), and below
    MIN_INSIDE_SIMILARITY, by the share it lies past its allowance, where one inside's shading is no tone change of
    the other's (`shading_apart`) or where two ramps or glows differ by more than `flat_max_difference` pixel for
    pixel (`pixels_apart`)."""
    sim, det = evidence_inside(p, q, inside)
    blocks = block_agreement(p, q, inside)
    sim = min(sim, blocks) if blocks < MIN_BLOCK_AGREEMENT else sim
    apart = shading_apart(p, q, inside)
    sim = min(sim, MIN_INSIDE_SIMILARITY * BEYOND_SHADING / apart) if apart > BEYOND_SHADING else sim
    pixels = pixels_apart(p, q, inside)
    sim = min(sim, MIN_INSIDE_SIMILARITY * flat_max_difference / pixels) if pixels > flat_max_difference else sim
    return sim, det, apart, pixels


def _worse(first: _Evidence, second: _Evidence) -> _Evidence:
    """Two measurements of one pair's evidence taken together: the lower similarity, the first's detail, the farther
    shading and pixels (NaN where neither measured them)."""
    return (min(first[0], second[0]), first[1], max(first[2], second[2]), float(np.fmax(first[3], second[3])))


def shading_apart(p: np.ndarray, q: np.ndarray, inside: np.ndarray) -> float:
    """How far apart two aligned grey regions' shading lies over the pixels `inside`: both smoothed by SHADING_SIGMA,
    q fitted from p by a gain and an offset, the mean residual as a multiple of the geometric mean of each one's mean
    departure from its best-fitting quadratic surface (0 where too little is inside to fit one)."""
    rows, cols = np.nonzero(inside)
    if len(rows) < 24:  # four pixels for each of the surface's six terms
        return 0.0
    smooth = [cv2.GaussianBlur(np.asarray(x, np.float32), (0, 0), SHADING_SIGMA)[rows, cols] for x in (p, q)]
    departure = _departure(np.stack(smooth, axis=1), rows, cols)
    first, second = smooth[0] - smooth[0].mean(), smooth[1] - smooth[1].mean()
    gain = float((first * second).sum() / max((first * first).sum(), 1e-6))  # least squares, with the offset
    residual = np.abs(second - gain * first).mean()
    return float(residual / max(np.sqrt(departure[0] * departure[1]), 1e-6))


def pixels_apart(p: np.ndarray, q: np.ndarray, inside: np.ndarray) -> float:
    """Where two aligned grey regions are a ramp or a glow over the pixels `inside` (each one's mean departure from its
    best-fitting quadratic surface under SMOOTH_DEPARTURE, both smoothed by SHADING_SIGMA over the inside alone, so
    the frame's edge does not bend them), their mean grey difference there, q against p times one brightness gain
    (their means' ratio, within low_detail.MAX_GAIN); NaN where either shows more (or too little is inside)."""
    rows, cols = np.nonzero(inside)
    if len(rows) < 24:
        return float("nan")
    weight = inside.astype(np.float32)
    share = np.maximum(cv2.GaussianBlur(weight, (0, 0), SHADING_SIGMA)[rows, cols], 1e-6)
    blurred = [cv2.GaussianBlur(np.asarray(x, np.float32) * weight, (0, 0), SHADING_SIGMA) for x in (p, q)]
    smooth = np.stack([x[rows, cols] / share for x in blurred], axis=1)
    if _departure(smooth, rows, cols).max() >= SMOOTH_DEPARTURE:
        return float("nan")
    gain = np.clip(smooth[:, 1].mean() / max(smooth[:, 0].mean(), 1.0), 1 / MAX_GAIN, MAX_GAIN)
    return float(np.abs(smooth[:, 1] - gain * smooth[:, 0]).mean())


def _departure(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per column of `values` (pixels at rows, cols of a thumbnail), its mean absolute departure from its best-fitting
    quadratic surface over (x, y)."""
    y, x = rows / float(THUMB - 1), cols / float(THUMB - 1)
    surface = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    return np.abs(values - surface @ np.linalg.solve(surface.T @ surface, surface.T @ values)).mean(axis=0)


def _inside(shared: np.ndarray) -> np.ndarray:
    """What is compared: the pixels farther than EDGE from the `shared` frame and from the region's own edge (where
    a trim cut the bars away, the line the picture's edge blends into them remains)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE + 1, 2 * EDGE + 1))
    edged = shared.copy()
    edged[[0, -1]] = edged[:, [0, -1]] = True
    return cv2.dilate(edged.astype(np.uint8), kernel) == 0


def _less_layers(p, moved, found, layers, evidence: _Evidence, flat_max_difference: float) -> _Evidence:
    """`evidence` (`_evidence`) measured again over what `found` and `layers` leave (`_inside`), taken together
    (`_worse`); as it is where there is no layer or too little would remain."""
    if not layers.any():
        return evidence
    inside = _inside(found | layers)
    if inside.mean() < MIN_INSIDE:
        return evidence
    return _worse(evidence, _evidence(p, moved, inside, flat_max_difference))
