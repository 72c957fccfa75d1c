"""Second looks at the verifier's accepted pairs (finetuner/dedup/verify.py) where their kind of image misleads its
correlation over the aligned overlap.

`second_looks` measures each accepted pair again, by the kind of its two images:
- two graphics (letters, icons, logos: finetuner/dedup/shape.py `is_graphic`) by the shape check, which compares
  their outlines and their proportions; a graphic stretched out of shape is another design, unless its whole file was
  resized to another shape or a caption panel's trim made the stretch;
- two photographs of which either may show a frame (a circular field of view, a mat, a print's border, a template)
  inside that frame (finetuner/dedup/surround.py): two pictures framed alike correlate through their frame, so the
  insides must agree as a copy's do; where the aligned regions share no frame, block by block over all of them;
- every other pair of photographs block by block (`_block_look`): the median correlation of its textured 16-pixel
  blocks must reach surround.MIN_BLOCK_AGREEMENT (rule "blocks"). Two pictures can correlate as a whole through what
  they share around them (a grainy mount, a pixelated mat) while no part agrees; a copy agrees in every part, a crop
  once refitted, a mirrored copy once compared mirrored.
"""

from __future__ import annotations

import numpy as np

from finetuner.dedup import retouched
from finetuner.dedup.align import INSIDE_BARS, aligned_pair, cut, signal_boxes
from finetuner.dedup.correlation import (
    PAIR_CHUNK,
    SMOOTH_SIGMA,
    block_agreements,
    block_parts,
    blur_each,
    evidence,
    local_order,
)
from finetuner.dedup.frames import frame_colours, framed, plain
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.refit import refit, warped
from finetuner.dedup.shape import GRAPHIC_STRETCH, MAX_ANISOTROPY, is_graphic, shape_agreement
from finetuner.dedup.signals import signal_mirrored
from finetuner.dedup.surround import (
    BEYOND_SHADING,
    MIN_BLOCK_AGREEMENT,
    MIN_INSIDE_SIMILARITY,
    Inside,
    blocks_apart,
    inside_agreement,
    whole_inside,
)
from finetuner.dedup.trims import caption_panels
from finetuner.dedup.verdicts import Best, VerifyRule, passing
from finetuner.dedup.views import mirrored_boxes

# A graphic stretched past GRAPHIC_STRETCH is another design unless its whole file was resized to another shape: the
# alignment maps frame onto frame as they are (these stages: the frames inside their bars, or over the content both
# trims keep, 4) and the two trims lie within RESIZED_SLACK thumbnail pixels of each other (a trim can move a pixel or
# two with the resampling)
AS_THEY_ARE = (*INSIDE_BARS, 4)
RESIZED_SLACK = 2
# Stages that end in the affine refit (searches.py): its warp can undo the stretch the placed boxes imply (a crop of
# one side, placed as a uniform scale of the squashed thumbnails), so the shape check, which measures the whole map,
# judges their proportions
REFITTED = (3, 6, 14)
# Stages whose copies disagree in part by design (the verifier left out what a watermark or a logo covers): the block
# look does not judge them
PARTLY_COVERED = (retouched.OVERDRAWN,)


def second_looks(thumbs, trims, i, j, signals, aspect, rule: VerifyRule, best: Best, judged, accepted, rules, how):
    """The accepted pairs `judged` measured again where their kind of image misleads the verifier: two graphics by the
    shape check, two photographs inside their frame where either may show one (the other's rim may be too grainy to
    count, and the framed one's colours are looked for in both; where the aligned regions share none, block by block
    over all of them), any other two photographs block by block (`_block_look`; but where a stage left out what is
    drawn over one, PARTLY_COVERED). `accepted`, `rules`, `how` and the evidence in `best` are updated in place. Only
    the images of accepted pairs are looked at."""
    sim, det, stage = best.sim, best.det, best.stage
    drawn, edged = np.zeros(len(thumbs), bool), np.zeros(len(thumbs), bool)
    touched = np.unique(np.r_[i[judged], j[judged]])
    seen = plain(thumbs[touched])
    one, several = framed(seen)
    frames = np.full((len(thumbs), seen.tones.shape[1]), np.nan)  # per image its frame's colour, or its several tones
    drawn[touched], edged[touched] = is_graphic(seen), one | several
    frames[touched] = frame_colours(seen)  # NaN where no frame: the other's colours are looked for in it
    graphics = drawn[i[judged]] & drawn[j[judged]]
    captioned = caption_panels(thumbs, trims, np.r_[i[judged[graphics]], j[judged[graphics]]])
    for q in judged[graphics].tolist() if rule.min_shape_similarity > -1 else []:
        stretched = best.stretch[q] > GRAPHIC_STRETCH and stage[q] not in REFITTED
        whole = stretched and _resized_whole(trims, i[q], j[q], signals[q], stage[q])
        if stretched and not whole and _panel_stripped(captioned, i[q], j[q], stage[q], aspect):
            pair, untrimmed = thumbs[[i[q], j[q]]], np.tile(np.array([0, THUMB, 0, THUMB]), (2, 1))
            accepted[q], det[q], note = _shape(pair, untrimmed, 0, 1, signals[q], 0, aspect[[i[q], j[q]]], rule)
            note = f"{note}, compared as whole frames (one trim stripped a caption)"
        elif stretched and not whole:  # no refit can bring its proportions back within MAX_ANISOTROPY
            accepted[q], note = False, f"shape: proportions changed by {best.stretch[q]:.0%}"
        else:
            accepted[q], det[q], note = _shape(thumbs, trims, i[q], j[q], signals[q], stage[q], aspect, rule, whole)
            note = f"{note}, the whole file resized" if whole else note
        how[q], rules[q] = f"{how[q]}; {note}", "shape"

    def holds(look: Inside) -> bool:  # the inside of a shared frame agrees as a copy's does
        return look.similarity >= MIN_INSIDE_SIMILARITY and look.detail >= rule.min_detail_similarity

    for q in judged[~graphics & (edged[i[judged]] | edged[j[judged]])].tolist():
        pair = (thumbs, trims, i[q], j[q], signals[q])
        look, p_region, q_region = _framed_look(*pair, stage[q], aspect, frames, rule, det[q])
        passed = holds(look)
        if look.left_out > 0 and not passed and stage[q] == 0 and signal_mirrored(signals[q]):
            # a mirrored copy of a picture framed symmetrically (a disc, a mat) agrees unmirrored through its frame,
            # so the frames inside their bars won: inside, the mirrored views the signal names are compared
            again = _framed_look(*pair, 1, aspect, frames, rule, det[q])[0]
            if again.left_out > 0 and holds(again):
                look, passed, stage[q] = again, True, 1
                how[q] = signal_boxes(signals[q], trims[i[q]], trims[j[q]])[3]
        if look.left_out > 0:
            sim[q], det[q], rules[q], accepted[q] = look.similarity, look.detail, "frame", passed
            how[q] = f"{how[q]}; inside the shared frame ({look.left_out:.0%} left out)"
            if look.shading > BEYOND_SHADING:
                note = f"residual {look.shading:.1f}x their departure from a smooth surface"
                how[q] = f"{how[q]}, its shading no tone change of the other's ({note})"
            elif look.pixels > rule.flat_max_difference:
                note = f"{look.pixels:.1f} grey levels apart after one brightness gain"
                how[q] = f"{how[q]}, a ramp or a glow whose pixels are not the other's ({note})"
            continue
        blocks = _blocks_apart(p_region, q_region)  # no frame shared in what was aligned: its blocks must agree
        if blocks < MIN_BLOCK_AGREEMENT:
            sim[q], rules[q], accepted[q] = blocks, "frame", False
            how[q] = f"{how[q]}; no frame shared, its blocks disagree ({blocks:.2f})"
    unframed = judged[~graphics & ~edged[i[judged]] & ~edged[j[judged]] & ~np.isin(stage[judged], PARTLY_COVERED)]
    blocks = _block_look(thumbs, trims, i, j, signals, aspect, stage, unframed)
    for q in unframed[blocks[unframed] < MIN_BLOCK_AGREEMENT].tolist():
        mirrored = stage[q] == 0 and signal_mirrored(signals[q])
        if mirrored and _mirrored_look(thumbs, trims, i, j, signals, aspect, rule, best, q):
            how[q] = signal_boxes(signals[q], trims[i[q]], trims[j[q]])[3]
            continue
        sim[q], rules[q], accepted[q] = blocks[q], "blocks", False
        how[q] = f"{how[q]}; its parts disagree (blocks {blocks[q]:.2f})"


def _inside(p: np.ndarray, q: np.ndarray, frame_p, frame_q, rule: VerifyRule) -> Inside:
    """`inside_agreement` of two aligned regions; where it falls short, again with q refitted onto p (`refit`, an
    affine warp of the whole regions): a copy whose bars were trimmed a pixel or two off lies a few percent off its
    original, which two smooth frames forgive and the inside of a product shot does not (8 of 52 letterboxed product
    shots compared inside their shared ground at 0.72-0.85). Two pictures framed alike have their frames aligned
    already; a refit cannot make their insides agree."""
    found = inside_agreement(p, q, frame_p, frame_q, flat_max_difference=rule.flat_max_difference)
    detailed = np.isnan(found[1]) or found[1] >= rule.min_detail_similarity  # NaN: the caller's detail stands
    if found[2] <= 0 or (found[0] >= MIN_INSIDE_SIMILARITY and detailed):
        return found
    fitted = refit(p, q)
    if fitted is None:
        return found
    again = inside_agreement(p, q, frame_p, frame_q, lambda x: warped(x, fitted[0]), rule.flat_max_difference)
    score = [r[0] + (1.0 if np.isnan(r[1]) else r[1]) for r in (again, found)]  # NaN detail: not measured, stands
    return again if again[2] > 0 and score[0] > score[1] else found


def _framed_look(thumbs, trims, x: int, y: int, signal: str, stage: int, aspect, frames, rule: VerifyRule, det: float):
    """(`Inside`, region of x, region of y) of `_inside` on the regions `aligned_pair` places at `stage`, with the
    images' frame colours `frames` and the regions' own; a detail not measured inside (NaN) is `det`, the verifier's
    over the whole regions."""
    p_region, q_region, _ = aligned_pair(thumbs, trims, x, y, signal, stage, aspect)
    # a region cut from a frame (a crop's view) may reach another of its layers: a print's white border where the
    # whole thumbnail's rim shows the table it lies on
    own = frame_colours(plain(np.stack([p_region, q_region])))
    frame_p, frame_q = np.r_[frames[x], own[0]], np.r_[frames[y], own[1]]
    look = _inside(p_region, q_region, frame_p, frame_q, rule)
    return look._replace(detail=det if np.isnan(look.detail) else look.detail), p_region, q_region


def _block_look(thumbs, trims, i, j, signals, aspect, stage, looked) -> np.ndarray:
    """Per pair, NaN but for the pairs `looked`: `_blocks_apart` of the regions the verifier aligned. Pairs compared
    as their frames are (most) in batches: each image's content smoothed once, its pairs' blocks together."""
    out = np.full(len(i), np.nan)
    batched = looked[np.isin(stage[looked], INSIDE_BARS)]
    order = batched[local_order(len(thumbs), i[batched], j[batched])] if len(batched) > PAIR_CHUNK else batched
    inside = whole_inside(THUMB)
    for s in range(0, len(order), PAIR_CHUNK):
        part = order[s : s + PAIR_CHUNK]
        used, inverse = np.unique(np.r_[i[part], j[part]], return_inverse=True)
        a, b = np.split(inverse.ravel(), 2)
        content = np.stack([cut(thumbs[x], tuple(trims[x])) for x in used.tolist()])
        parts = block_parts(blur_each(content, SMOOTH_SIGMA), inside)
        out[part] = block_agreements(parts, parts, a, b)
    for q in np.setdiff1d(looked, batched).tolist() + batched[~(out[batched] >= MIN_BLOCK_AGREEMENT)].tolist():
        p_region, q_region, _ = aligned_pair(thumbs, trims, i[q], j[q], signals[q], stage[q], aspect)
        out[q] = _blocks_apart(p_region, q_region)  # refitted where short
    return out


def _mirrored_look(thumbs, trims, i, j, signals, aspect, rule: VerifyRule, best: Best, q: int) -> bool:
    """Whether pair q, whose frames as they are passed but whose blocks disagree, passes on the mirrored views its
    signal names, blocks and all (kept in `best` where it does): a mirrored copy of a picture in a symmetric surround
    (a grainy mount) agrees unmirrored through it, and the verifier looked no further."""
    p, r, _ = aligned_pair(thumbs, trims, i[q], j[q], signals[q], 1, aspect)
    sim, det = (float(x[0]) for x in evidence(p[None], r[None]))
    overlap, stretch = np.array([best.overlap[q]]), np.array([best.stretch[q]])
    if not passing(rule)(np.array([sim]), np.array([det]), overlap, stretch)[0]:
        return False
    if _blocks_apart(p, r) < MIN_BLOCK_AGREEMENT:
        return False
    best.sim[q], best.det[q], best.stage[q] = sim, det, 1
    return True


def _blocks_apart(p: np.ndarray, q: np.ndarray) -> float:
    """`blocks_apart` of two aligned regions; where under MIN_BLOCK_AGREEMENT, again with q refitted onto p (a crop's
    view aligns a copy a few percent off, which the blocks of a texture do not forgive), the higher kept."""
    blocks = blocks_apart(p, q)
    fitted = refit(p, q) if blocks < MIN_BLOCK_AGREEMENT else None
    return blocks if fitted is None else max(blocks, blocks_apart(p, warped(q, fitted[0])))


def _shape(
    thumbs, trims, x: int, y: int, signal: str, stage: int, aspect, rule: VerifyRule, whole: bool = False
) -> tuple[bool, float, str]:
    """(accepted, fine-detail agreement, description) of two graphics by the shape check (finetuner/dedup/shape.py).
    `whole`: the alignment maps one whole frame onto the other (`_resized_whole`), so the proportions the refit may not
    change are the thumbnails' (both squashed alike), not the images' true ones."""
    p, q, frames = aligned_pair(thumbs, trims, x, y, signal, stage, aspect)
    if whole:
        frames = ((1.0, 1.0), (1.0, 1.0))
    score, anisotropy, note = shape_agreement(p, q, rule.min_shape_similarity, frames)
    return score >= rule.min_shape_similarity and anisotropy <= MAX_ANISOTROPY, score, note


def _panel_stripped(captioned: np.ndarray, x: int, y: int, stage: int, aspect) -> bool:
    """Whether a caption panel's trim made the stretch: the kept alignment maps frames as they lie (AS_THEY_ARE, or
    one whole frame with the other inside its bars), the two files have one shape, and exactly one image's trim
    stripped a caption panel (`captioned`, per image: `trims.caption_panels`, a caption drawn over its foot or its
    head). A caption over a copy of a product shot cuts the product's ground short, and its content then has other
    proportions than the original's."""
    if stage not in (*AS_THEY_ARE, 11, 12) or aspect is None or abs(np.log(aspect[x] / aspect[y])) > MAX_ANISOTROPY:
        return False
    return bool(captioned[x] != captioned[y])


def _resized_whole(trims: np.ndarray, x: int, y: int, signal: str, stage: int) -> bool:
    """Whether the kept alignment maps x's whole frame onto y's as they lie (AS_THEY_ARE: the frames as they are)
    with the content in one box of both frames (their trims within RESIZED_SLACK): a copy of the whole file
    resized to another shape, which changes a graphic's proportions with its file's. Two designs of one letter drawn
    on canvases of one shape (a glyph set) differ in proportions inside their frames, which this never excuses: the
    two boxes may differ in shape by no more than the shape check lets a graphic's refit (MAX_ANISOTROPY)."""
    if stage not in AS_THEY_ARE:
        return False
    box_x = trims[x].astype(np.int64)
    box_y = mirrored_boxes(trims[y]) if stage == 4 and signal_mirrored(signal) else trims[y].astype(np.int64)
    if int(np.abs(box_x - box_y).max()) > RESIZED_SLACK:
        return False
    (top, bottom, left, right), (top_y, bottom_y, left_y, right_y) = box_x.tolist(), box_y.tolist()
    reshaped = abs(np.log((right - left) * (bottom_y - top_y) / ((bottom - top) * (right_y - left_y))))
    return reshaped <= MAX_ANISOTROPY  # what the slack lets the boxes differ in shape is a graphic's own limit
