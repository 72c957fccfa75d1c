"""The alignments the verifier (finetuner/dedup/verify.py) tries for pairs whose frames, as they are, fall short: where
the two images lie on each other.

Each keeps, per pair, whichever alignment scores better (`verdicts.Best`, stage numbers there):
- `untrimmed` (4, 11, 12): frames trimmed differently, compared over the content both trims keep, or one whole
  frame with the other's content;
- `realign` (1-3, then 5-8): the regions the candidate's views name (`align.regions`), refined by a local template
  search over shifts and a few scales where they come near the threshold (or the pair has a texture), then refitted
  by OpenCV's ECC where still just short (a crop on two sides, a crop resized back, a small turn); then, for pairs
  the views leave short, the whole frames placed (a corner crop, a crop then mirrored) and one picture as a band in
  the other's canvas (a repost on a blurred copy of itself).

Then come the searches for copies edited in their pixels, not their geometry (a watermark, a light field, hues turned,
tones remapped, a heavy blur), in finetuner/dedup/retouched.py. The freer an alignment, the more it must explain:
refits, placed frames and bands are held to `verdicts.refit_rule`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from finetuner.dedup.align import (
    BAND_STAGES,
    area,
    band_boxes,
    coarse_placement,
    coarse_similarity,
    cut,
    cuts,
    pair_ratios,
    placement,
    regions,
    resized,
    shared_content,
    signal_boxes,
)
from finetuner.dedup.correlation import (
    SMOOTH_SIGMA,
    bands,
    blur_each,
    corr_many,
    evidence,
    evidence_inside,
    per_side,
)
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.refit import PHOTO_MAX_TURN, WIDE_TURN, WIDE_TURN_MIN_DETAIL, max_turns, refit, turn_of, warped
from finetuner.dedup.shape import graphic
from finetuner.dedup.signals import mirrored_signals, per_signal, signal_views
from finetuner.dedup.verdicts import Best, VerifyRule, passing, refit_rule
from finetuner.dedup.views import TILT_CENTRE

REFINE_MARGIN = 0.25  # pairs this far below min_similarity are not worth a template search
# Pairs the local search placed more than REFIT_REACH below min_similarity, or with fine detail below
# REFIT_REACH_DETAIL, are not worth a refit: on the photo sets, 1 in 6 refits succeeds, none beyond these
REFIT_REACH = 0.1
REFIT_REACH_DETAIL = 0.3
# Whole frames are placed (`_place_frames`) where they already place to this correlation at 16x16: true copies the
# views missed score 0.85-0.99 there; on 20,000 synthetic photos no rejected pair scored above 0.79
FRAME_REACH = 0.85
MIRRORED = 13  # the stage of whole frames placed mirrored whatever the signal named (`_place_mirrored`); 14 refitted
BAND_REACH = 0.9  # bands compared at full size where they already correlate this well at 16x16
BAND_PLAIN = 0.3  # the canvas around a band counts as bars where its fine detail is below this share of the band's,
BAND_FILL = 0.95  # or where it correlates this well with the band enlarged to the canvas and blurred by one of
BAND_FILL_SIGMAS = (1.0, 2.0, 3.0, 4.0)  # (thumbnail pixels): reposted landscapes on a blurred copy of themselves
FRAMES = {False: "full~full", True: "full~mirror"}  # the signal that names the two trimmed frames (b mirrored)
IMAGE_CHUNK = 512  # images per batch of per-image work (8 MiB of float32 thumbnails)


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
    affine refit (finetuner/dedup/refit.py, turned at most `turns[k]`), measured over the refit's overlap;
    similarity -1 where no refit within a crop's reach was found."""
    sim, det, kept, notes = np.full(len(placed), -1.0), np.full(len(placed), -1.0), np.zeros(len(placed)), []
    for k, (p, q, _) in enumerate(placed):
        fitted = refit(p, q, turns[k])
        if fitted is None:
            notes.append("")
            continue
        warp, inside, note = fitted
        fs, fd = evidence_inside(np.asarray(p, np.float32), warped(np.asarray(q, np.float32), warp), inside)
        if abs(turn_of(warp)) > WIDE_TURN and fd < WIDE_TURN_MIN_DETAIL:  # look-alikes turned onto each other
            notes.append("")
            continue
        sim[k], det[k], kept[k] = fs, fd, inside.mean()
        notes.append(note)
    return sim, det, kept, notes


def content_stretch(trims: np.ndarray, i: np.ndarray, j: np.ndarray, aspect: np.ndarray | None) -> np.ndarray:
    """|log| of the ratio of the two images' content proportions (inside bars): what matching them as they are
    implies; zero where a size is unknown."""
    return _boxes_stretch(trims[i], trims[j], i, j, aspect)


def untrimmed(best: Best, thumbs, trims: np.ndarray, i: np.ndarray, j: np.ndarray, aspect, rule, signals) -> None:
    """Pairs whose two frames were trimmed differently, compared as they lie over the content both trims keep
    (stage 4): a dark or low-contrast picture's edge rows pass for bars on one copy and not on the other (a contrast
    change, a heavy re-encode), and then the two trimmed contents are misaligned by up to 30% of a side. Bars stay
    out of the comparison: two pictures in alike bars or mats would correlate through them. Where the two frames
    differ in shape too (a border or bars added to one), one image's whole frame is also compared with the other's
    content (stages 11 and 12: a's frame, or b's): a night sky's dark edge that passed for a bar on the original is
    no bar on its copy in a coloured border, whose trim stops at the border. Where a pair's `signals` name a mirrored
    view ("full~mirror"), b is compared mirrored: a low-contrast picture's edge can pass for a bar on its mirrored copy
    alone, as on any other."""
    differ = np.flatnonzero((trims[i] != trims[j]).any(axis=1))
    if len(differ) == 0:
        return
    a, b = i[differ], j[differ]
    flip = mirrored_signals([signals[q] for q in differ.tolist()])
    whole = np.tile(np.array([0, THUMB, 0, THUMB], np.int64), (len(differ), 1))
    inside, inside_b = shared_content(trims[a], trims[b], flip)  # the same content on a's frame and on b's
    tries = (  # (stage, a's box, b's box, what is compared)
        (4, inside, inside_b, "identity, inside both frames' bars"),
        (11, whole, trims[b], "identity, a's whole frame = b inside its bars"),
        (12, trims[a], whole, "identity, a inside its bars = b's whole frame"),
    )
    for stage, boxes_a, boxes_b, note in tries:
        sim, det = np.zeros(len(differ)), np.zeros(len(differ))
        for s in range(0, len(differ), IMAGE_CHUNK):
            part = slice(s, s + IMAGE_CHUNK)
            regions_b = cuts(thumbs, b[part], boxes_b[part])
            regions_b[flip[part]] = regions_b[flip[part]][..., ::-1]
            sim[part], det[part] = evidence(cuts(thumbs, a[part], boxes_a[part]), regions_b)
        if stage == 4:  # one box on both: what each keeps of its own content
            overlap = np.minimum(area(inside) / area(trims[a]), area(inside) / area(trims[b]))
        else:  # a whole frame holds all its content
            overlap = np.ones(len(differ))
        stretch = _boxes_stretch(boxes_a, boxes_b, a, b, aspect)
        better = best.improved_by(differ, sim, det, stretch, rule)
        better &= overlap >= rule.min_overlap  # a sliver both keep would outscore a fuller alignment the search finds
        where = differ[better]
        how = np.where(flip[better], f"mirror: {note}", note).astype(object)
        best.take(where, sim[better], det[better], overlap[better], stretch[better], how, stage)


def _boxes_stretch(boxes_a: np.ndarray, boxes_b: np.ndarray, a, b, aspect: np.ndarray | None) -> np.ndarray:
    """|log| of the ratio of the true proportions of box boxes_a[k] of image a[k] and boxes_b[k] of image b[k]: what
    matching the two boxes implies; zero where a size is unknown."""
    if aspect is None:
        return np.zeros(len(a))
    shape_a = (boxes_a[:, 3] - boxes_a[:, 2]) / (boxes_a[:, 1] - boxes_a[:, 0]) * aspect[a]
    shape_b = (boxes_b[:, 3] - boxes_b[:, 2]) / (boxes_b[:, 1] - boxes_b[:, 0]) * aspect[b]
    stretch = np.abs(np.log(shape_a / shape_b))
    stretch[~np.isfinite(stretch)] = 0.0
    return stretch


def realign(best: Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, part: np.ndarray, thorough) -> None:
    """Try the signal's regions for the pairs `part`, then the local search for those still near the threshold (or
    `thorough`), keeping whichever alignment scores better; then, for pairs still short, the whole frames placed."""
    passes = passing(rule)
    ra, rb, cover, bend, names = regions(thumbs, i[part], j[part], [signals[p] for p in part], trims, aspect)
    gs, gd = evidence(ra, rb)
    better = best.improved_by(part, gs, gd, bend, rule)
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
    _place_mirrored(best, thumbs, trims, i, j, signals, aspect, rule, part, thorough)
    _bands(best, thumbs, trims, i, j, aspect, rule, part)


def _bands(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, part: np.ndarray) -> None:
    """Pairs still short whose contents differ in shape, compared as one picture shown whole inside the other's
    canvas (stages 7 and 8, `band_boxes`): a landscape photo reposted in a square over a blurred copy of itself, or a
    portrait one in a wide video frame, where the bars are not plain enough to trim; then as a band at either end of
    the other's canvas (stages 16-19): a crop of one side, whose proportions say how much of the picture it keeps.
    Only bands that already agree at 16x16 (BAND_REACH) are compared at full size. The canvas outside the band counts
    as bars (the overlap is the picture's) where it is plain or the picture's own blurred enlargement
    (`_band_overlap`); otherwise the band is a crop of a larger picture and the overlap is its share."""
    if aspect is None:
        return
    passes = passing(rule)
    left = part[~passes(best.sim[part], best.det[part], best.overlap[part], best.stretch[part])]
    drawn = None  # which of the pairs `left` hold a graphic, measured when first needed
    for stage, (on_narrower, at) in BAND_STAGES.items():  # centred first, then at either end (a crop of one side)
        boxes_a, boxes_b, found = band_boxes(
            trims[i[left]], trims[j[left]], aspect[i[left]], aspect[j[left]], on_narrower, at
        )
        if at != 1:  # a graphic's proportions are its design: one cut at a side is another (an O is a Q less its tail)
            if drawn is None:
                drawn = np.logical_or(*per_side(graphic, thumbs, i[left], j[left]))
            found &= ~drawn
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
        better = short | best.improved_by(where, sim, det, stretch, rule)
        better &= passing(refit_rule(rule))(
            sim, det, np.ones(len(where)), stretch
        )  # the surround: only where it decides
        overlap = np.zeros(len(where))
        for k in np.flatnonzero(better).tolist():
            overlap[k] = _band_overlap(thumbs, trims, i[where[k]], j[where[k]], (boxes_a[k], boxes_b[k]))
        better &= overlap >= rule.min_overlap
        shown = "one shown in the other's canvas (a band)" if at == 1 else "one a band at an end of the other's canvas"
        how = np.full(int(better.sum()), shown, dtype=object)
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
    best: Best, ra, rb, cover, bend, names, where, rule: VerifyRule, thorough, stage: int, turns, strict: bool = False
) -> None:
    """The local search for region pairs (ra, rb) of the pairs `where` (stage `stage`), then the refit for those it
    leaves just short (stage + 1, turned at most `turns[k]`: `max_turns`), each kept where it scores better; with
    `strict`, a placement is kept only where it passes the refit's stricter thresholds (a search beyond the
    candidate's own views must explain more)."""
    passes = passing(rule)
    rs, rd, shifts, placed = _refine(ra, rb)
    better = best.improved_by(where, rs, rd, bend, rule)
    if strict:
        better &= passing(refit_rule(rule))(rs, rd, cover, bend)
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
    better = passing(refit_rule(rule))(fs, fd, overlap, stretch)  # taken only where it decides the pair
    refitted = np.array([n + note for n, note in zip(named[again].tolist(), notes)], dtype=object)
    where = where[again]
    best.take(where[better], fs[better], fd[better], overlap[better], stretch[better], refitted[better], stage + 1)


def tilted_rule(rule: VerifyRule) -> VerifyRule:
    """The thresholds a pair proposed through a tilted view (views.TILTS) must reach: its alignment turned one frame
    10 degrees, so its fine detail must agree as a refit's turned past WIDE_TURN must (WIDE_TURN_MIN_DETAIL)."""
    return replace(rule, min_detail_similarity=max(rule.min_detail_similarity, WIDE_TURN_MIN_DETAIL))


def refit_tilted(best: Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, where: np.ndarray) -> None:
    """The pairs `where`, proposed through a tilted view and aligned on one frame turned 10 degrees, placed and refitted
    as whole frames (stages 5 and 6) where they fall short of `tilted_rule`: a copy turned 5-15 degrees lies up to 5
    degrees and a crop's scale off the turned frame. A pair whose signal names the other's centre (views.TILT_CENTRE:
    a copy turned with the canvas's corners showing, its centre 77-86% of the frame) is placed from that centre, which
    the whole frames' local search (sizes 0.9-0.95) cannot reach."""
    strict = tilted_rule(rule)
    left = where[~passing(strict)(best.sim[where], best.det[where], best.overlap[where], best.stretch[where])]
    if len(left) == 0:
        return
    centred = per_signal([signals[q] for q in left.tolist()], lambda s: TILT_CENTRE in signal_views(s))  # unturned
    turns = np.full(len(left), PHOTO_MAX_TURN)
    whole = left[~centred]
    if len(whole):
        mirrored = mirrored_signals([signals[q] for q in whole.tolist()])
        ra, rb = cuts(thumbs, i[whole], trims[i[whole]]), cuts(thumbs, j[whole], trims[j[whole]])
        rb[mirrored] = rb[mirrored][:, :, ::-1]
        names = np.array([FRAMES[m] for m in mirrored.tolist()], dtype=object)
        _place(best, ra, rb, best.overlap[whole], best.stretch[whole], names, whole, strict, None, 5, turns[~centred])
    centre = left[centred]
    if len(centre):
        ra, rb, cover, bend, names = regions(thumbs, i[centre], j[centre], [signals[q] for q in centre], trims, aspect)
        names = np.asarray(names, dtype=object)
        _place(best, ra, rb, cover, bend, names, centre, strict, None, 5, turns[centred])


def _place_frames(best: Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, part, thorough) -> None:
    """Pairs still short whose signal named views, placed as whole (trimmed) frames, mirrored as the signal says
    (stages 5 and 6): a crop at a corner, or a crop then mirrored, matches no view pair well enough for the local
    search to start from, while one frame sits inside the other. Only pairs whose frames already place well at
    16x16 (`coarse_placement` >= FRAME_REACH) are placed at full size."""
    passes = passing(rule)
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
    _place_as(best, thumbs, trims, i, j, aspect, rule, thorough, left, frames, 5)


def _place_mirrored(best: Best, thumbs, trims, i, j, signals, aspect, rule: VerifyRule, part, thorough) -> None:
    """Pairs still short whose signal mirrors neither view, placed as whole frames with b mirrored (stages 13 and 14):
    a mirrored copy of a nearly symmetric picture (a dark scene lit in its middle) can hash closest unmirrored, and
    then no search looked at it mirrored. Only where the mirrored frames place at 16x16 (FRAME_REACH)."""
    passes = passing(rule)
    left = part[~passes(best.sim[part], best.det[part], best.overlap[part], best.stretch[part])]
    left = left[~mirrored_signals([signals[q] for q in left.tolist()])] if len(left) else left
    if len(left) == 0:
        return
    left = left[coarse_placement(thumbs, trims, i[left], j[left], np.ones(len(left), bool)) >= FRAME_REACH]
    if len(left):
        _place_as(best, thumbs, trims, i, j, aspect, rule, thorough, left, [FRAMES[True]] * len(left), MIRRORED)


def _place_as(best: Best, thumbs, trims, i, j, aspect, rule: VerifyRule, thorough, left, frames, stage: int) -> None:
    """The pairs `left` placed and refitted from the regions the signals `frames` name (stages `stage`, `stage` + 1),
    kept only where they pass the refit's stricter thresholds."""
    ra, rb, cover, bend, names = regions(thumbs, i[left], j[left], frames, trims, aspect)
    keep = bend <= rule.max_stretch
    if not keep.any():
        return
    names = np.asarray(names, dtype=object)
    turns = max_turns(thumbs, i[left[keep]], j[left[keep]])
    _place(
        best, ra[keep], rb[keep], cover[keep], bend[keep], names[keep], left[keep], rule, thorough, stage, turns, True
    )
