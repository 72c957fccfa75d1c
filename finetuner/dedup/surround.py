"""The surround check: two photographs framed alike are compared inside their frames, not through them.

Many collections frame every picture the same way: a fundus camera's black disc surround, a microscope's circular
field, a white mat on scanned prints, black bars on video frames. Two different pictures framed alike correlate
through the frame: it is the largest and sharpest structure both share, so on their thumbnails the verifier's
similarity and fine detail (finetuner/dedup/verify.py) pass as if they were copies. 52 different photographs, each
given one circular black surround, gave 39 accepted pairs; with a white mat, 13; a real fundus collection would chain
into one cluster. Trimming bars does not help: a disc's corners are not bars.

So for an accepted pair of photographs that may show a frame (a plain, flat rim: `plain`; since 2026-12-06 either
image, its colours looked for in both, since a re-encode can leave a copy's rim too grainy to count), the frame in each
aligned region is found (`frame_mask`: plain pixels connected to the region's border) and, where the two share at
least MIN_SHARED of the region, the evidence is measured again over the rest, less a margin of EDGE pixels where the
frame's edge still dominates the fine detail: the pair (rule "frame") must reach MIN_INSIDE_SIMILARITY there and the
verifier's detail threshold. A copy agrees inside as it does outside; two pictures framed alike do not: on the same
52 photographs, 0 pairs in the disc and 1 in the mat are accepted now, and the real-photo bench, where every picture
is also seen through one disc, went from 87 false pairs (largest cluster 168) to 2 (16), recall unchanged. Graphics
(letters, logos on paper), whose plain background is part of the design, are left to the shape check
(finetuner/dedup/shape.py).

A frame may also be made of several flat tones: an app window's title bar, side panel and canvas around the picture
it shows, a social post's header and white page. Its rim then shows up to MAX_TONES levels, each held by MIN_TONE of
the rim (`rim_tones`), and the frame is the plain pixels of any of them connected to the border. On the composed
photo set (benchmarks/bench_dedup_quality.py --set composed: pictures in an app window with a title bar and a side
panel of folder names, in a social post, and in other templates) 37 of 68 accepted pairs were strangers in one window
or one post; with the tones, and each region's edge left out (`inside_agreement`), none. A region of one of those
tones may also be the picture's own (a silhouette's black, a posterised sky): where the tones leave less than
MIN_INSIDE to compare, the check says nothing (with one tone, such a pair is rejected, as it always was).

A frame may come in two layers: a print's white border on the dark table it lies on, turned, so that only the
table's corners reach the image's edge. The second layer is one flat tone just inside the first (`inner_layer`); 26
pictures each on such a print gave 8 false pairs through the border, none with it. Where the second layer leaves
less than MIN_INSIDE to compare, it is the picture's own (a silhouette on a mat), and the check measures without it.
That layer is found by the one tone that holds the band just inside the first, which a blended line two pixels wide
or a grainy border can deny it; where the other image's rim shows the border (a crop, a caption under one print), its
colour is known, and its plain pieces within LAYER_BAND[1] pixels of the table are the layer too (`nested_tones`,
since 2026-12-06). On the print set that took 4 of 9 false pairs (a dark wallpaper's captioned print against three
prints of a night photograph, two letterboxed prints) and one pair of one picture's copies (a brightened logo and its
captioned copy, both still in their picture's cluster), and changed no pair on the nine other sets.

A print may also be letterboxed: black bars and slivers of the table reach the rim, and the print's border lies
behind a blended line, turned, where no one level holds the band `inner_layer` reads, and no rim shows its colour for
`nested_tones`. Its wide foot was then compared as content: a foggy pier and boats at sunset agreed at 0.85 inside.
Since 2026-12-07 a flat piece alike in both regions, within LAYER_BAND[1] pixels of the shared frame, of one tone no
frame colour is, and walled off from the rest of the region (the pixels two out from it, the frame not counted, at
least TEMPLATE_WALL grey levels off its tone) is a layer of the template too (`template_layers`), and the evidence is
measured again without it; the lower similarity counts. A smooth picture's flat parts, however alike in its copy,
shade into the rest of it and are not walled. On the print set 2 of its 4 false pairs went (largest cluster 42 to
28); the thirteen other quality sets gave the same pairs. Framed apart, where the frame is found only where both
regions are flat and alike (`flat_alike`: a matted print's wide foot), its colours going on from there in both
regions, walled off alike, are frame too (`frame_grown`: the border's thin strips along the picture, flat nowhere,
through whose edges two dim pictures agreed at 0.88); one more false pair went. And where nothing of a frame colour is
alike (a print brightened to a grey border against a white one), a layer both show in tones of their own, next to a
frame either shows, flat in both and grown into each one's tone, walled off in both, is the frame they share
(`toned_layers`): the last false pair went (largest cluster 28 to 14).

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
copy, a blurred page and its 10% crop on a print).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from finetuner.dedup.correlation import block_agreement, evidence_inside
from finetuner.dedup.hashing import THUMB

PLAIN_TOLERANCE = 8.0  # grey levels from an image's border median that count as its frame (or a graphic's paper)
MIN_SHARED = 0.02  # share of the compared region that is frame in both images for the check to apply (a 2-pixel mat
# on three sides of a 64-pixel region is 5%, and still decided the correlation of two unrelated pictures)
THIN_RUN = 5  # ...or a run of this many plain pixels in a row or a column: a strip of frame one or two pixels thin
EDGE = 5  # thumbnail pixels around the shared frame left out too (the detail band's reach, 2 x its outer sigma)
MIN_INSIDE = 0.1  # share of the region that must remain to compare; less: no evidence of a copy, rejected
# Inside the frame a copy's similarity is lower than over its whole frame: the plain areas left out agreed perfectly,
# and what remains is the content where an alignment's residual shows. Measured over the pairs this check saw: true
# copies on the real-photo bench and under 14 further edits, 1st percentile 0.857 and 0.884; different photographs
# given one frame (a white mat, a circular black surround, the same wider), highest 0.81.
MIN_INSIDE_SIMILARITY = 0.85
RIM = 2  # rows and columns of the border whose median is an image's frame colour
MIN_RIM = 0.25  # an image may show a frame when this share of its rim is plain (a mat: all of it; bars: half)...
RIM_FLATNESS = 1.0  # ...and flat: within this many grey levels of the frame colour on average. A mat, bars or a
# camera's black surround are one tone; a low-contrast photograph's grain (a cell culture) is not a frame
CHUNK = 512  # thumbnails judged per batch (8 MiB of float32)
MAX_TONES = 3  # flat tones a frame of several parts may show on the rim (an app window: title bar, side panel, canvas)
MIN_TONE = 0.1  # share of the rim one such tone holds, within one grey level
# A frame in two layers (a print's white border on the table it lies on, turned: the table's corners alone reach the
# border) shows its second layer as one flat tone over most of a band just inside the first: LAYER_BAND pixels in
# (past the line blended between them), at least NESTED_TONE of the band within one grey level
LAYER_BAND = (2, 3)
NESTED_TONE = 0.5
MIN_BAND = 0.02  # of the region: a smaller band (a frame of a few pixels) says nothing of a second layer
FLAT_RANGE = 4.0  # grey levels a 3x3 neighbourhood spans at most to be flat (`flat_alike`)
MIN_PIECE = 24  # pixels of one flat piece alike in both regions (less: specks of texture)
# A layer of the template both pictures lie in that no frame colour found (a print's white border where only black
# bars and slivers of table reach the rim: `template_layers`): a flat piece alike in both, within LAYER_BAND[1] pixels
# of the shared frame, of one tone in each (within PLAIN_TOLERANCE), and walled: the pixels two out from it lie at
# least TEMPLATE_WALL grey levels off that tone (median), where a smooth picture's flat parts shade into the rest of it
TEMPLATE_WALL = 2 * PLAIN_TOLERANCE
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


class Inside(NamedTuple):
    """What `inside_agreement` measured inside a shared frame."""

    similarity: float
    detail: float  # NaN where not measured there (the caller's, over the whole regions, stands)
    left_out: float  # the share of the regions that was frame (0: no frame shared, nothing measured)
    shading: float = 0.0  # `shading_apart` of what was compared (the larger where two insides were)


class Plain(NamedTuple):
    """How plain each thumbnail is, measured against its frame colour (the median of its outer RIM rows and columns),
    and the flat tones of its rim (`rim_tones`)."""

    share: np.ndarray  # of the thumbnail within PLAIN_TOLERANCE of the frame colour
    spread: np.ndarray  # how far those plain pixels lie from it on average (a drawn background: under one grey level)
    rim: np.ndarray  # the share of the rim itself within PLAIN_TOLERANCE
    rim_spread: np.ndarray  # how far those rim pixels lie from the frame colour on average
    colour: np.ndarray  # the frame colour
    tones: np.ndarray  # (n, MAX_TONES) the rim's flat tones, most held first, NaN where fewer
    toned: np.ndarray  # the share of the rim within PLAIN_TOLERANCE of one of them
    toned_spread: np.ndarray  # how far those rim pixels lie from their tone on average


def plain(thumbs: np.ndarray) -> Plain:
    """`Plain` of each (n, h, w) grey thumbnail, in batches of CHUNK: a float copy of 15,000 thumbnails at once took
    6 s on this VM (fresh memory), the batches 0.15 s."""
    thumbs = np.asarray(thumbs)
    out = Plain(*(np.zeros(len(thumbs)) for _ in Plain._fields))
    out = out._replace(tones=np.full((len(thumbs), MAX_TONES), np.nan))
    for s in range(0, len(thumbs), CHUNK):
        stack = thumbs[s : s + CHUNK]
        parts = (stack[:, :RIM], stack[:, -RIM:], stack[:, :, :RIM], stack[:, :, -RIM:])
        rim = np.concatenate([part.reshape(len(stack), -1) for part in parts], axis=1).astype(np.float32)
        middle = np.median(rim, axis=1, keepdims=True)
        away = np.abs(stack.reshape(len(stack), -1).astype(np.float32) - middle)
        near = away <= PLAIN_TOLERANCE
        out.share[s : s + CHUNK] = near.mean(axis=1)
        out.spread[s : s + CHUNK] = (away * near).sum(axis=1) / np.maximum(near.sum(axis=1), 1)
        rim_away = np.abs(rim - middle)
        rim_near = rim_away <= PLAIN_TOLERANCE
        out.rim[s : s + CHUNK] = rim_near.mean(axis=1)
        out.rim_spread[s : s + CHUNK] = (rim_away * rim_near).sum(axis=1) / np.maximum(rim_near.sum(axis=1), 1)
        out.colour[s : s + CHUNK] = middle[:, 0]
        out.tones[s : s + CHUNK], out.toned[s : s + CHUNK], out.toned_spread[s : s + CHUNK] = rim_tones(rim)
    return out


def rim_tones(rims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tones, share, spread) per row of `rims` (n, k) grey levels of images' rim pixels: up to MAX_TONES levels
    (NaN where fewer) that each at least MIN_TONE of the rim shows within one level (the flat colours of a frame: an
    app window's title bar, side panel and canvas), the share of the rim within PLAIN_TOLERANCE of one of them, and
    how far those pixels lie from their tone on average. Counted on each rim's histogram, all rims at once."""
    n, k = rims.shape
    rows, levels = np.arange(n), np.arange(256, dtype=np.float32)
    grey = np.clip(np.round(rims), 0, 255).astype(np.int64)
    counts = np.bincount((rows[:, None] * 256 + grey).ravel(), minlength=n * 256).reshape(n, 256).astype(np.float32)
    tones, near, spread = np.full((n, MAX_TONES), np.nan), np.zeros(n), np.zeros(n)
    for t in range(MAX_TONES):
        around = counts.copy()  # pixels within one level of each level
        around[:, 1:] += counts[:, :-1]
        around[:, :-1] += counts[:, 1:]
        peak = around.argmax(axis=1)
        found = around[rows, peak] >= MIN_TONE * k
        window = np.clip(peak[:, None] + np.arange(-1, 2), 0, 255)
        weights = counts[rows[:, None], window]
        tone = (weights * window).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)
        away = np.abs(levels[None, :] - tone[:, None].astype(np.float32))
        taken = np.where((away <= PLAIN_TOLERANCE) & found[:, None], counts, 0.0)
        tones[found, t] = tone[found]
        near += taken.sum(axis=1)
        spread += (taken * away).sum(axis=1)
        counts -= taken
    return tones, near / k, spread / np.maximum(near, 1)


def framed(seen: Plain) -> tuple[np.ndarray, np.ndarray]:
    """(one tone, several tones) per thumbnail of `seen`: whether it may show a frame of one colour (a plain, flat rim:
    a mat, bars, a camera's disc; where the frame holds little more than half the rim, the rim's median lies off its
    colour, so its one flat tone counts too: `frame_colours`), and whether one of several flat tones (at least two
    hold MIN_TONE of the rim each, and together MIN_RIM of it, as flat as one colour's)."""
    median, toned, several = _rims(seen)
    return median | (toned & ~several), several


def frame_colours(seen: Plain) -> np.ndarray:
    """(n, MAX_TONES) per thumbnail of `seen` its frame's colours as `framed` finds them (NaN where unused, all NaN
    where `framed` finds no frame): its rim's flat tones where they are a frame, else its rim's median."""
    median, toned, several = _rims(seen)
    out = np.full(seen.tones.shape, np.nan)
    out[median, 0] = seen.colour[median]
    by_tones = (toned & ~median) | several
    out[by_tones] = seen.tones[by_tones]
    return out


def _rims(seen: Plain) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per thumbnail: is its rim a frame of its median's colour, a frame of its flat tones, and of several?"""
    median = (seen.rim >= MIN_RIM) & (seen.rim_spread <= RIM_FLATNESS) & (seen.share >= MIN_SHARED)
    toned = (seen.toned >= MIN_RIM) & (seen.toned_spread <= RIM_FLATNESS)
    return median, toned, toned & (np.isfinite(seen.tones).sum(axis=1) > 1)


def frame_mask(region: np.ndarray, colour: float) -> np.ndarray:
    """Where a grey region shows its image's frame: plain pixels (within PLAIN_TOLERANCE of `colour`, with all 8
    neighbours plain too, so texture of a similar grey does not count, or inside a run of THIN_RUN plain pixels in a
    row or a column: an app window's canvas between its title bar and the picture) connected to the region's
    border."""
    border = np.ones(np.shape(region), bool)
    border[1:-1, 1:-1] = False
    return _pieces(_solid(region, colour), border)


def _pieces(solid: np.ndarray, reaching: np.ndarray) -> np.ndarray:
    """The 4-connected pieces of `solid` (uint8, `_solid`) with a pixel where `reaching` holds."""
    count, labels = cv2.connectedComponents(solid, connectivity=4)
    touching = np.zeros(count, bool)  # a table over the labels: 3x faster than np.unique and np.isin on 64x64
    touching[labels[reaching]] = True
    touching[0] = False  # the background
    return touching[labels]


def _solid(region: np.ndarray, colour: float) -> np.ndarray:
    """The plain pixels of `frame_mask` (uint8): within PLAIN_TOLERANCE of `colour`, in a plain 3x3 block or a thin
    run."""
    near = (np.abs(np.asarray(region, np.float32) - colour) <= PLAIN_TOLERANCE).astype(np.uint8)
    solid = cv2.erode(near, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    for run in (np.ones((1, THIN_RUN), np.uint8), np.ones((THIN_RUN, 1), np.uint8)):
        solid |= cv2.erode(near, run, borderType=cv2.BORDER_REPLICATE)
    return solid


def inner_layer(region: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Where a grey region shows a second layer of its frame, inside the first (`frame`): a print's white border on the
    dark table it lies on, turned, so that only the table reaches the region's border. The layer is one flat tone that
    holds NESTED_TONE of the band LAYER_BAND pixels inside the frame (past the blended line between them), and is its
    plain pixels (`_solid`) connected to that band; none where no tone holds that much (the band crosses the picture
    itself)."""
    grey = np.asarray(region, np.float32)
    blended = cv2.dilate(frame.astype(np.uint8), np.ones((2 * LAYER_BAND[0] - 1,) * 2, np.uint8))  # the blended line
    band = _near(frame) & (blended == 0)
    none = np.zeros(frame.shape, bool)
    if band.sum() < MIN_BAND * frame.size:
        return none
    counts = np.bincount(np.clip(np.round(grey[band]), 0, 255).astype(np.int64), minlength=256).astype(np.float64)
    around = counts.copy()  # within one level of each level, as `rim_tones`
    around[1:] += counts[:-1]
    around[:-1] += counts[1:]
    peak = int(around.argmax())
    if around[peak] < NESTED_TONE * band.sum():
        return none
    window = np.arange(max(peak - 1, 0), min(peak + 2, 256))
    tone = float((counts[window] * window).sum() / counts[window].sum())
    return _pieces(_solid(grey, tone), band)


def inside_agreement(
    p: np.ndarray,
    q: np.ndarray,
    frame_p: float | np.ndarray,
    frame_q: float | np.ndarray,
    move: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Inside:
    """`Inside` (similarity, detail similarity, share left out, how far apart the shading lies) of two aligned grey
    regions of one size over the pixels that are not frame in both (`frame_mask`, with frame colours `frame_p`,
    `frame_q`: one each, or several tones, NaN where unused), less EDGE pixels around it and inside the regions' edge
    (where a trim cut the bars away, the line the picture's edge blends into them stays, and two pictures framed alike
    would correlate through it). The share left out is 0 (and the similarities NaN) where the regions share less than
    MIN_SHARED of frame: there is no frame to see through; or, with several tones, where less than MIN_INSIDE would
    remain: the tones are the picture's own. `move`: what moves q onto p (a refit's warp), applied after q's frame is
    found (it would warp the frame's rim off the border).

    Where the two frames' colours differ, each region's frame is also looked for in both regions' colours: a crop of
    a print turned on a table shows the print's white border on its rim where the other's rim shows only the table,
    and a print and a social post (a dark table, a white page) share no frame colour, yet the print's border and the
    post's page agreed. The lower of the two similarities is kept, and the detail of the frames' own colours (where
    they share no frame, NaN: the caller's, over the whole regions, stands): more frame leaves less inside, where a
    smooth picture's copy has no fine detail left to agree in.

    Each similarity is also measured block by block (`_evidence`): where the textured blocks inside disagree, their
    median agreement is the similarity; and where one's shading inside is no tone change of the other's, it falls
    short of MIN_INSIDE_SIMILARITY."""
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
        sim, _, apart = _evidence(p, moved, inside)
        sim, apart = _less_layers(p, moved, crossed, frame_grown(p, q, crossed, both) & inside, sim, apart)
        return Inside(sim, float("nan"), float(1.0 - inside.mean()), apart)
    inside = _inside(frame)
    if inside.mean() < MIN_INSIDE:  # a second layer may be the picture's own (a silhouette)
        inside = _inside(shared(tones_p, tones_q, layers=False))
    if inside.mean() < MIN_INSIDE:
        several = len(tones_p) > 1 or len(tones_q) > 1
        return Inside(float("nan"), float("nan"), 0.0) if several else Inside(0.0, 0.0, float(1.0 - inside.mean()))
    sim, det, apart = _evidence(p, moved, inside)  # a caption band may disagree, as in the verifier's correlation
    # found where the frames first lay (a refit's warp moves q's pixels off the template's, not the template)
    sim, apart = _less_layers(p, moved, frame, template_layers(p, q, frame, both) & inside, sim, apart)
    if crossed is not None and _inside(crossed).mean() >= MIN_INSIDE:
        crossed_sim, _, crossed_apart = _evidence(p, moved, _inside(crossed))
        sim, apart = min(sim, crossed_sim), max(apart, crossed_apart)
    return Inside(sim, det, float(1.0 - inside.mean()), apart)


def flat_alike(p: np.ndarray, q: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Where two aligned grey regions are both flat (their 3x3 neighbourhoods within FLAT_RANGE grey levels), alike
    and of one of the frames' `colours` (within PLAIN_TOLERANCE), in pieces of at least MIN_PIECE pixels: a frame
    the two share wherever it lies, connected to the border or not (a print's border inside a table whose corners a
    crop cut to slivers)."""
    coloured = np.abs(p[..., None] - np.asarray(colours, np.float32)).min(axis=-1) <= PLAIN_TOLERANCE
    alike = (_flat_and_alike(p, q) & coloured).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(alike, connectivity=4)
    big = stats[:, cv2.CC_STAT_AREA] >= MIN_PIECE
    big[0] = False  # the background
    return big[labels]


def blocks_apart(p: np.ndarray, q: np.ndarray) -> float:
    """`block_agreement` of two aligned grey regions that share no frame, over all of them but EDGE pixels at their
    edge: where one image shows a frame the aligned regions left out (a letterbox's bars trimmed away, leaving a
    print on its grainy table), two pictures in one template still agree only along its edges."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    return block_agreement(p, q, whole_inside(len(p)))


def whole_inside(side: int) -> np.ndarray:
    """The mask `blocks_apart` compares a region of `side` pixels over: all of it but EDGE pixels at its edge."""
    return _inside(np.zeros((side, side), bool))


def _evidence(p: np.ndarray, q: np.ndarray, inside: np.ndarray) -> tuple[float, float, float]:
    """(similarity, detail, `shading_apart`): `evidence_inside`, its similarity lowered to the blocks' agreement where
    that falls below MIN_BLOCK_AGREEMENT (so under MIN_INSIDE_SIMILARITY too), and below MIN_INSIDE_SIMILARITY, by the
    share the shading's residual lies past its allowance, where one inside's shading is no tone change of the other's
    (`shading_apart`)."""
    sim, det = evidence_inside(p, q, inside)
    blocks = block_agreement(p, q, inside)
    sim = min(sim, blocks) if blocks < MIN_BLOCK_AGREEMENT else sim
    apart = shading_apart(p, q, inside)
    return (min(sim, MIN_INSIDE_SIMILARITY * BEYOND_SHADING / apart) if apart > BEYOND_SHADING else sim), det, apart


def shading_apart(p: np.ndarray, q: np.ndarray, inside: np.ndarray) -> float:
    """How far apart two aligned grey regions' shading lies over the pixels `inside`: both smoothed by SHADING_SIGMA,
    q fitted from p by a gain and an offset, the mean residual as a multiple of the geometric mean of each one's mean
    departure from its best-fitting quadratic surface (0 where too little is inside to fit one)."""
    rows, cols = np.nonzero(inside)
    if len(rows) < 24:  # four pixels for each of the surface's six terms
        return 0.0
    smooth = [cv2.GaussianBlur(np.asarray(x, np.float32), (0, 0), SHADING_SIGMA)[rows, cols] for x in (p, q)]
    y, x = rows / float(THUMB - 1), cols / float(THUMB - 1)
    surface = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)  # a quadratic surface over (x, y)
    both = np.stack(smooth, axis=1)
    departure = np.abs(both - surface @ np.linalg.solve(surface.T @ surface, surface.T @ both)).mean(axis=0)
    first, second = smooth[0] - smooth[0].mean(), smooth[1] - smooth[1].mean()
    gain = float((first * second).sum() / max((first * first).sum(), 1e-6))  # least squares, with the offset
    residual = np.abs(second - gain * first).mean()
    return float(residual / max(np.sqrt(departure[0] * departure[1]), 1e-6))


def _inside(shared: np.ndarray) -> np.ndarray:
    """What is compared: the pixels farther than EDGE from the `shared` frame and from the region's own edge (where
    a trim cut the bars away, the line the picture's edge blends into them remains)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE + 1, 2 * EDGE + 1))
    edged = shared.copy()
    edged[[0, -1]] = edged[:, [0, -1]] = True
    return cv2.dilate(edged.astype(np.uint8), kernel) == 0


def frame_of(region: np.ndarray, tones: np.ndarray, layers: bool = True) -> np.ndarray:
    """`frame_mask` of a region for each of its frame's tones, together, and (with `layers`) its `inner_layer` and
    the `nested_tones` of the tones that do not reach its border."""
    masks = [frame_mask(region, float(t)) for t in tones]
    mask = np.logical_or.reduce(masks or [np.zeros(np.shape(region), bool)])
    if not (layers and mask.any()):
        return mask
    unseen = [float(t) for t, found in zip(tones, masks) if not found.any()]
    return mask | nested_tones(region, mask, unseen) | inner_layer(region, mask)


def nested_tones(region: np.ndarray, frame: np.ndarray, tones: list[float]) -> np.ndarray:
    """Where a grey region shows a layer of a known frame colour (`tones`: the other image's, which its rim showed)
    inside the frame found (`frame`), not reaching the border: its plain pixels (`_solid`) in pieces that come within
    LAYER_BAND[1] pixels of the frame, past the blended line between them: a print's white border inside the table
    its corners show, where that line is wide or the border grainy, so that no one level holds half the band
    `inner_layer` reads."""
    grey, near = np.asarray(region, np.float32), _near(frame)
    return np.logical_or.reduce([_pieces(_solid(grey, tone), near) for tone in tones] + [np.zeros(frame.shape, bool)])


def template_layers(p: np.ndarray, q: np.ndarray, frame: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Where two aligned grey regions show a layer of the template they share that the frame's `colours` did not
    find: flat pieces (`flat_alike`'s, of any other grey) within LAYER_BAND[1] pixels of the shared `frame`, each of
    one tone in both regions and walled off from what lies around it (`_walled`). A print turned on a table,
    letterboxed: black bars and slivers of table reach the rim, the print's white border lies behind a blended line no
    one level holds (`inner_layer` finds nothing), and two pictures of like layout agreed through its wide foot."""
    out = np.zeros(frame.shape, bool)
    for piece in _flat_pieces_near(_flat_and_alike(p, q), frame):
        tone = float(np.median(p[piece]))
        known = np.abs(np.asarray(colours, np.float64) - tone).min(initial=np.inf) <= PLAIN_TOLERANCE
        if not known and _walled(p, piece, frame) and _walled(q, piece, frame):
            out |= piece
    return out


def frame_grown(p: np.ndarray, q: np.ndarray, found: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Where two aligned grey regions framed apart go on showing their frames' `colours` (both within PLAIN_TOLERANCE of
    one) from the frame `found` (`flat_alike`'s flat pieces), in pieces walled off from the rest (`_walled`): a
    matted print's border is flat only at its wide foot, and its thin strips along the picture's other sides, found
    by no flatness, kept its edge with two dim pictures in what was compared."""
    same = np.logical_or.reduce(
        [(np.abs(p - c) <= PLAIN_TOLERANCE) & (np.abs(q - c) <= PLAIN_TOLERANCE) for c in np.asarray(colours).tolist()]
        + [np.zeros(found.shape, bool)]
    )
    _, labels = cv2.connectedComponents(same.astype(np.uint8), connectivity=4)
    out = np.zeros(found.shape, bool)
    for label in np.unique(labels[found]).tolist():
        piece = (labels == label) & ~found
        if label and piece.any() and _walled(p, piece, found) and _walled(q, piece, found):
            out |= piece
    return out


def toned_layers(p: np.ndarray, q: np.ndarray, framed: np.ndarray) -> np.ndarray:
    """Where two aligned grey regions framed apart, sharing no frame colour, both show one layer of a template in tones
    of their own, next to a frame either shows (`framed`, within LAYER_BAND[1] pixels): pieces flat in both (MIN_PIECE
    pixels or more), each grown into the pixels around it of its tone in each region (within PLAIN_TOLERANCE), and
    walled off from the rest in both (`_walled`). A print brightened to a grey border on a table, against another on a
    white border in a mat: no pixel of their border is alike, and two dim pictures agreed through its edges."""
    out, nothing = np.zeros(p.shape, bool), np.zeros(p.shape, bool)
    for piece in _flat_pieces_near(_flat(p) & _flat(q), framed):
        tone_p, tone_q = float(np.median(p[piece])), float(np.median(q[piece]))
        same = (np.abs(p - tone_p) <= PLAIN_TOLERANCE) & (np.abs(q - tone_q) <= PLAIN_TOLERANCE)
        _, pieces = cv2.connectedComponents(same.astype(np.uint8), connectivity=4)
        grown = np.isin(pieces, np.unique(pieces[piece & same]))
        if grown.any() and _walled(p, grown, nothing) and _walled(q, grown, nothing):
            out |= grown
    return out


def _flat(region: np.ndarray) -> np.ndarray:
    """Where a grey region is flat: its 3x3 neighbourhood spans at most FLAT_RANGE grey levels."""
    kernel = np.ones((3, 3), np.uint8)
    return cv2.dilate(region, kernel) - cv2.erode(region, kernel) <= FLAT_RANGE


def _flat_and_alike(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Where two aligned grey regions are both flat (`_flat`) and within PLAIN_TOLERANCE of each other."""
    return _flat(p) & _flat(q) & (np.abs(p - q) <= PLAIN_TOLERANCE)


def _near(mask: np.ndarray) -> np.ndarray:
    """`mask` and the pixels within LAYER_BAND[1] of it: where a layer nested against a frame lies."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * LAYER_BAND[1] + 1,) * 2, np.uint8)).astype(bool)


def _flat_pieces_near(flat: np.ndarray, frame: np.ndarray) -> list[np.ndarray]:
    """The 4-connected pieces of `flat` of MIN_PIECE pixels or more that come within LAYER_BAND[1] of `frame`."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat.astype(np.uint8), connectivity=4)
    reaching = np.zeros(count, bool)
    reaching[labels[_near(frame)]] = True
    return [labels == label for label in np.flatnonzero(reaching[1:] & (stats[1:, cv2.CC_STAT_AREA] >= MIN_PIECE)) + 1]


def _less_layers(p, moved, found, layers, sim: float, apart: float) -> tuple[float, float]:
    """(similarity, `shading_apart`) measured again over what `found` and `layers` leave (`_inside`), the lower
    similarity and the larger apart kept; as they are where there is no layer or too little would remain."""
    if not layers.any():
        return sim, apart
    inside = _inside(found | layers)
    if inside.mean() < MIN_INSIDE:
        return sim, apart
    again, _, apart_again = _evidence(p, moved, inside)
    return min(sim, again), max(apart, apart_again)


def _walled(region: np.ndarray, piece: np.ndarray, frame: np.ndarray) -> bool:
    """Whether a piece of a grey region is one tone (within PLAIN_TOLERANCE of its median) walled off from the rest of
    the region: its pixels two out from the piece, the `frame` not counted, lie TEMPLATE_WALL grey levels or more off
    that tone (their median)."""
    tone = float(np.median(region[piece]))
    grown = [cv2.dilate(piece.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool) for k in (3, 5)]
    ring = grown[1] & ~grown[0] & ~frame
    if not ring.any() or np.abs(region[piece] - tone).max() > PLAIN_TOLERANCE:
        return False
    return bool(np.median(np.abs(region[ring] - tone)) >= TEMPLATE_WALL)
