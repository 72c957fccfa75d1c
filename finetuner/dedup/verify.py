"""The verifier: decides every candidate pair by aligning the two images and measuring what the alignment explains.

Hash distance is a poor judge on real photographs: smooth wallpapers and near-blank frames sit within a few bits of
each other without being copies, while a 10% crop or a mirror is far away. So candidates (finetuner/dedup/views.py) are
only proposals. On the 64x64 grey thumbnails, a pair joins units when its two images align, and what the alignment
explains is enough.

Where the images are compared, first to last (each try keeps the best alignment so far; searches.py):
- the frames as they are, inside their bars (where the two were trimmed differently, also over the content both
  trims keep);
- the regions the candidate's views name (a view of image a shows a view of image b; mirrored for a mirror view);
- a local template search (OpenCV's normalised cross-correlation) over shifts and a few scales, for pairs close to
  the threshold or with a texture (`thorough`);
- an affine refit (OpenCV's ECC: a crop on two sides, a crop resized back) for pairs still short; it bends more
  freely, so it must explain more (REFIT_MIN_*);
- for pairs the views leave short: whole frames where they place well at 16x16 (a corner crop, a crop then
  mirrored), and two shapes compared as one picture shown in the other's canvas (a repost on a blurred copy of
  itself);
- the frames as they are without the tenth of pixels that disagree most (a watermark across the middle, a logo);
- the frames as they are with one lit like the other by a smooth light field (a vignette, light from one side),
  where their fine detail already agrees, at stricter thresholds still;
- the frames as they are with one's grey as turning its hues would make it, by the turn (at most the colour check's)
  that relates their colours (a filter's hue shift brightens some colours and darkens others).

What is enough, over the aligned overlap (verdicts.py):
- the images correlate (`similarity`, Pearson over pixels, tolerant of one caption band at the top or bottom);
- so do their fine structures (`detail_similarity`, the same on a difference of Gaussians: two different smooth
  gradients correlate almost perfectly, their textures do not);
- and the overlap covers at least `min_overlap` of each image's content (inside letterbox bars).

Where images mislead that measure, they have their own rules:
- low-detail images (finetuner/dedup/low_detail.py): any two near-blank images correlate, so the frames must agree
  pixel for pixel within `flat_max_difference` grey levels on average (or mirrored; frames with visible shading may
  differ by one brightness gain), or both show shading beyond a plain ramp and one's is the other's up to a tone
  change and a centre crop;
- accepted pairs of graphics pass the shape check (finetuner/dedup/shape.py); large pages of text it refuses are
  looked at again from their files at full size, after the verifier (finetuner/dedup/full_size.py);
- accepted pairs of photographs of which either may show a frame pass the surround check
  (finetuner/dedup/surround.py); every other accepted pair of photographs must agree part by part too (`_block_look`:
  the median correlation of its textured 16-pixel blocks, finetuner/dedup/correlation.py `block_agreement`, at least
  surround.MIN_BLOCK_AGREEMENT; rule "blocks"). Two pictures can correlate as a whole through what they share around
  them (a grainy mount, a pixelated mat, a caption panel) while no part of the pictures agrees; a copy agrees in every
  part, a crop once refitted, a mirrored copy once compared mirrored;
- last, every accepted pair must agree in colour up to one global colour edit (finetuner/dedup/colour.py: the grey
  thumbnails cannot tell a product from the same shot in another colour), on the 16x16 colour thumbnails aligned as
  the grey ones were; a pair the surround check passed below `min_similarity` must agree without the allowance for a
  toned copy, which is no evidence of one (`_toned_in_frame`, rule "toned").

`verify_pairs` does the cheap steps for all pairs at once (numpy) and the search only where it can matter: the frames
as they are here, the searches beyond them in finetuner/dedup/searches.py, the thresholds and verdicts in
finetuner/dedup/verdicts.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from finetuner.dedup import searches
from finetuner.dedup.align import (
    INSIDE_BARS,
    aligned_colours,
    aligned_pair,
    cut,
    refit,
    resized,
    signal_boxes,
    warped,
)
from finetuner.dedup.colour import EQUALIZED_MIN_FIT, colour_fit, colour_planes, equalized_fit, same_colour_fit
from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.correlation import (
    BAND,
    SMOOTH_SIGMA,
    bands,
    block_agreements,
    block_parts,
    blur_each,
    evidence,
    unit_rows,
)
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.low_detail import SHADING, low_detail_verdicts, mean_deviation
from finetuner.dedup.searches import IMAGE_CHUNK
from finetuner.dedup.shape import GRAPHIC_STRETCH, MAX_ANISOTROPY, is_graphic, shape_agreement
from finetuner.dedup.surround import (
    BEYOND_SHADING,
    MIN_BLOCK_AGREEMENT,
    MIN_INSIDE_SIMILARITY,
    Inside,
    blocks_apart,
    frame_colours,
    framed,
    inside_agreement,
    plain,
    whole_inside,
)
from finetuner.dedup.trims import caption_panels
from finetuner.dedup.verdicts import Best, Verdict, Verdicts, VerifyRule, passing, refit_rule
from finetuner.dedup.views import (
    VIEWS,
    allowed_combos,
    mirrored_boxes,
    signal_cornered,
    signal_mirrored,
    trim_boxes,
    unturned,
    view_hashes,
)

# Two near-blank frames agree in grey whatever they show, so their colours carry the pair: one copy's colour edit must
# explain this share of them (colour.py scores 1 within the edit's allowance, falling as the square of the gap past
# it: 0.8 is 12% past it), not only `min_colour_fit`'s
LOW_DETAIL_COLOUR_FIT = 0.8

__all__ = [
    "LOW_DETAIL_COLOUR_FIT",
    "VERIFIER",
    "Verdict",
    "Verdicts",
    "VerifyRule",
    "best_signal",
    "verify",
    "verify_pairs",
]

# Bump VERIFIER when verdicts change for the same thresholds (cached verdicts are then recomputed): 2 shape check,
# 3 flat graphics, 4 surround check, 5 refit, 6 textures placed, trims compared where both agree, 7 frames placed,
# 8 thin frame strips, 9 one picture as a band in the other's canvas, 10 bands gated at 16x16, 11 frames and bands held
# to the refit's thresholds, 12 the colour check, 13 watermarks and logos left out, 14 photographs refitted turned up
# to 5 degrees, 15 the square view; a band taken wherever the best alignment so far fails, 16 low-detail pairs' shading
# match, a bar's blended edge line trimmed with the bar (views.VIEW_BOXES 2), pairs lit differently fitted, one whole
# frame against the other's content, corner views' alignments held to the refit's thresholds, 17 frames of several
# flat tones (an app window), 18 caption panels trimmed (views.VIEW_BOXES 3), the surround check clear of the regions'
# edges, 19 the prescreen's look at whole frames where two trims differ, 20 bars around a plain ground trimmed with the
# ground (trims.py, views.VIEW_BOXES 4), 21 large graphics the shape check refused looked at again at full size
# (full_size.py), 22 brightened graphics compared with tones clipped alike (shape._clipped_alike), mirrored copies
# compared mirrored across differing trims, whole frames also placed mirrored (searches._place_mirrored), the surround
# check refitted where the inside falls short, 23 graphics whose whole file was resized to another shape
# (_resized_whole), 24 the shape check's proportions counting the refit's warp (align.aligned_pair), 25 toned copies
# whose tone bends where a channel clips, and toned copies of a picture of one hue (colour._tone), 26 copies with
# their hues turned compared with the grey turned alike (searches.hue_turned), 27 a whole frame opposite a cut
# compared whole, as it was hashed (views.whole_frame), 28 textures refused at 64x64 looked at full size
# (full_size.worth_a_look), 29 a bar's edge blended over two lines trimmed with it, and a ground with text on it
# trimmed under bars of another shade (trims.py, views.VIEW_BOXES 5), 30 a picture in a post or a window trimmed to
# it (trims._picture_on_ground, views.VIEW_BOXES 6), 31 a mirrored pair looked at full size with the mirror undone
# (full_size.full_size_looks), 32 a picture on a plain ground found with bays in its box (trims.py, VIEW_BOXES 7), 33
# the full-size look's overlap a share of each image's content (its trim), not of its frame, 34 a crop of one side
# compared as a band at one end of the other's canvas (searches._bands, align.BAND_STAGES), 35 a frame in two layers
# (surround.inner_layer), a frame holding under half the rim by its flat tone, the aligned regions' own rims, 36 the
# full-size look's matches must spread over the overlap (full_size.MIN_SPREAD), 37 the surround check where either
# image may show a frame, 38 inside a frame, textured blocks must agree too (surround.MIN_BLOCK_AGREEMENT), 39 and
# where no frame is shared in the aligned regions, over all of them (surround.blocks_apart), 40 a mirrored copy of a
# picture framed symmetrically compared mirrored inside the frame, 41 every other pair of photographs compared block
# by block too (`_block_look`), a mirrored copy that fails there compared mirrored, 42 a side without colour
# structure held to the mean colour of one with (colour._fit), 43 a frame colour the other image shows found nested
# inside the frame (surround.nested_tones), 44 inside a frame below min_similarity, colours must fit without the toned
# allowance (_toned_in_frame), 45 low-detail pairs' colours compared over the regions their match compared, each way,
# and held to LOW_DETAIL_COLOUR_FIT, 46 those short of it refused as rule "low-detail-colour" (the report's margin),
# 47 the pixel match also compares contents inside bars where they show (low_detail._bars), 48 two plain fields held
# to one colour (colour.PLAIN_SHIFT), bars pin no gain on frames, proposed views stay out of them, 49 the shading
# match's residual within the shading's departure from a quadratic too (low_detail.BEYOND_BOWL_SHARE), 50 caption
# panels whose letters fill most of their lines trimmed (views.VIEW_BOXES 8), two graphics stretched apart by a caption
# panel one trim stripped compared as whole frames (_panel_stripped), 51 low-detail pairs, one under a caption panel,
# matched over that trim's box as they lie (low_detail: trims.caption_panels), 52 the prescreen's look over a caption
# panel's trim box on both frames (prescreen._under_captions), 53 `_panel_stripped` asks trims.caption_panels (a
# caption stripped with nothing at the sides, by exactly one of the two trims), 54 caption panels whose text reaches
# the line where the picture starts trimmed (views.VIEW_BOXES 9), 55 two low-detail images of one hue each no toned
# copy of one another (colour._fit), 56 inside a frame, one's shading a tone change of the other's
# (surround.shading_apart), 57 copies with their tones remapped compared over local contrast (searches.retoned),
# blurred copies with the sharper blurred to match (searches.deblurred), 58 a retoned pair may pass on its fine detail
# (searches.retoned_rule), 59 a template's layer no frame colour found left out inside a shared frame
# (surround.template_layers), 60 a frame found only where flat, framed apart, followed into its thin strips
# (surround.frame_grown), 61 framed apart, a layer of one template in tones of their own (surround.toned_layers), 62
# colours the colour check refused compared again with each channel equalized (_by_channel, colour.equalized_fit)
VERIFIER = 62
# Pairs whose frames correlate this well as they are (and in fine detail) are also compared without what is drawn
# over one (searches.overdrawn; watermarked copies: 0.79 and up in detail)
OVERDRAWN_REACH = 0.6
OVERDRAWN_REACH_DETAIL = 0.7
PAIR_CHUNK = 1024  # pairs whose images' identity rows are built together (at most 2,048 images, 110 MiB)
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
PARTLY_COVERED = (searches.OVERDRAWN,)
COLOUR_CHUNK = 2048  # pairs whose colours are compared together (a few MiB, reused: fresh memory is slow to touch)


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


def detail_levels(thumbs: np.ndarray) -> np.ndarray:
    """Each thumbnail's detail std inside its bars, as the verifier measures it: below `low_detail` an image is
    near-blank and pairs by the pixel rule."""
    return _identity_rows(thumbs, trim_boxes(thumbs))[1]


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
    best = Best(sim, det, np.ones(k), searches.content_stretch(trims, i, j, aspect), _identity_names(trims, i, j))
    searches.untrimmed(best, thumbs, trims, i, j, aspect, rule, signals)
    flat = (level[i] < rule.low_detail) | (level[j] < rule.low_detail)
    passes = passing(rule)
    todo = np.flatnonzero(~flat & ~passes(sim, det, best.overlap, best.stretch))
    _search(best, thumbs, trims, i, j, signals, aspect, rule, todo, chunk, thorough, sim0, det0, colours)
    sim, det, overlap, stretch, how = best.sim, best.det, best.overlap, best.stretch, best.how
    accepted = passes(sim, det, overlap, stretch)
    retoned = best.stage == searches.RETONED  # over local contrast: its own pair of thresholds too
    accepted[retoned] |= passing(searches.retoned_rule(rule))(sim, det, overlap, stretch)[retoned]
    # A corner view proposes one picture zoomed into a corner of the other, which look-alike designs can meet near
    # the thresholds: what its regions align must explain as much as a refit
    named = np.flatnonzero(accepted & np.isin(best.stage, (1, 2, 3)))  # only these can be a corner view's
    cornered = named[[signal_cornered(signals[q]) for q in named.tolist()]]
    accepted[cornered] = passing(refit_rule(rule))(sim[cornered], det[cornered], overlap[cornered], stretch[cornered])
    how = np.array(
        [f"{h}, stretch {b:.0%}" if b >= 0.005 else h for h, b in zip(how.tolist(), stretch.tolist())], dtype=object
    )
    rules = np.where(flat, "low-detail", "aligned").astype(object)
    judged = np.flatnonzero(accepted & ~flat)
    _second_looks(thumbs, trims, i, j, signals, aspect, rule, best, judged, accepted, rules, how)
    inside = np.zeros((k, 2), bool)  # low-detail pairs: whether the match took each image's content inside its bars
    if flat.any():
        accepted[flat], sim[flat], overlap[flat], how[flat], inside[flat] = low_detail_verdicts(
            thumbs, i[flat], j[flat], rule, trims, np.asarray(signals, dtype=object)[flat], aspect
        )
        det[flat] = 0.0
    colour = np.full(k, np.nan)
    if colours is not None and rule.min_colour_fit > -1:
        looked = np.flatnonzero(accepted)
        plain_level = SHADING * rule.flat_max_difference  # frames the pixel match compares without a gain
        colour[looked] = _colour_look(
            thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, looked, inside, plain_level=plain_level
        )
        # inside a shared frame the frame's pixels rank alike in every channel of both: no rescue there
        refused = looked[(colour[looked] < rule.min_colour_fit) & ~flat[looked] & (rules[looked] != "frame")]
        curved = _by_channel(thumbs, colours, trims, i, j, signals, aspect, best, flat, refused, rule, colour, how)
        _colour_verdicts(colour, looked, rule.min_colour_fit, accepted, rules, how)
        # two near-blank frames agree in grey whatever they show: their colours must agree within one copy's edit
        low_detail_fit = max(rule.min_colour_fit, LOW_DETAIL_COLOUR_FIT)
        plain_pairs = looked[flat[looked] & accepted[looked]]
        _colour_verdicts(colour, plain_pairs, low_detail_fit, accepted, rules, how, "low-detail-colour")
        toned = accepted & ~curved  # a copy's colours equalized by channel are evidence without a toned allowance
        _toned_in_frame(thumbs, colours, trims, i, j, signals, aspect, best, flat, rule, toned, accepted, rules, how)
    how = turned.noted(how)
    return Verdicts(accepted, rules, np.round(sim, 4), np.round(det, 4), np.round(overlap, 4), how, np.round(colour, 4))


def _search(best, thumbs, trims, i, j, signals, aspect, rule, todo, chunk, thorough, sim0, det0, colours) -> None:
    """The searches beyond the frames as they are, into `best`, each on the pairs (of `todo`) the one before left
    short of the thresholds: the signal's alignment and the local search (`realign`, in chunks), a copy drawn over
    where the frames as they are already came close (`overdrawn`), a copy relit where their detail agreed (`relit`),
    a copy with its hues turned where its colours show the turn (`hue_turned`; with `colours`), a copy with its tones
    remapped where its fine detail agreed (`retoned`), a blurred copy where its smoothed content agreed
    (`deblurred`)."""
    passes = passing(rule)
    for s in range(0, len(todo), chunk):
        searches.realign(best, thumbs, trims, i, j, signals, aspect, rule, todo[s : s + chunk], thorough)
    short = todo[~passes(best.sim[todo], best.det[todo], best.overlap[todo], best.stretch[todo])]
    reach = (sim0[short] >= OVERDRAWN_REACH) & (det0[short] >= OVERDRAWN_REACH_DETAIL)
    searches.overdrawn(best, thumbs, trims, i, j, aspect, rule, short[reach])
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    searches.relit(best, thumbs, trims, i, j, aspect, rule, short[det0[short] >= searches.RELIT_MIN_DETAIL])
    if colours is not None:
        short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
        reach = short[det0[short] >= searches.HUE_REACH_DETAIL]
        searches.hue_turned(best, thumbs, colours, trims, i, j, aspect, rule, reach)
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    searches.retoned(best, thumbs, trims, i, j, aspect, rule, short[det0[short] >= searches.TONE_REACH_DETAIL])
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    searches.deblurred(best, thumbs, trims, i, j, aspect, rule, short[sim0[short] >= searches.BLUR_REACH])


def _colour_verdicts(
    colour: np.ndarray,
    looked: np.ndarray,
    min_fit: float,
    accepted: np.ndarray,
    rules: np.ndarray,
    how: np.ndarray,
    name: str = "colour",
) -> None:
    """Reject, in place, as rule `name`, the pairs `looked` whose colours one global colour edit explains less than
    `min_fit` of."""
    for q in looked[colour[looked] < min_fit].tolist():
        accepted[q], rules[q] = False, name
        how[q] = f"{how[q]}; colours differ ({colour[q]:.2f} of chroma explained by one colour edit)"


def _by_channel(thumbs, colours, trims, i, j, signals, aspect, best: Best, flat, refused, rule, colour, how):
    """Which of the pairs `refused` by the colour check pass it with each image's red, green and blue channels
    equalized on their own (`colour.equalized_fit`, at EQUALIZED_MIN_FIT or more): a copy whose channels went through
    tone curves of their own (equalized or auto-contrasted channel by channel, brightened until some channels clip),
    whose colours no one global colour edit explains. Their `colour` becomes that fit and `how` says so, in place; a
    mask over all pairs. On the heavier photo set (benchmarks/bench_dedup_quality.py --set heavier) the pairs between
    copies equalized by channel (Pillow's ImageOps.equalize) and their pictures or their other copies went from
    refused to accepted (tone 0.892 -> 0.915); no picture's colour twin (hues turned 120 degrees, its colourful parts
    recoloured) passes so on the colour set, where sepia copies and muted pictures, which equalize to grey, are held to
    the colour check as it was."""
    curved = np.zeros(len(i), bool)
    if len(refused) == 0:
        return curved
    again = _colour_look(thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, refused, equalized=True)
    enough = again >= max(rule.min_colour_fit, EQUALIZED_MIN_FIT)
    for q, fit in zip(refused[enough].tolist(), again[enough].tolist()):
        colour[q], curved[q] = fit, True
        how[q] = f"{how[q]}; colours alike once each channel is equalized ({fit:.2f})"
    return curved


def _toned_in_frame(
    thumbs, colours, trims, i, j, signals, aspect, best: Best, flat, rule: VerifyRule, looked, *verdicts
):
    """Reject, in place (`verdicts`: accepted, rules, how), as rule "toned", the pairs `looked` (a mask: the
    accepted ones, less those whose colours agreed once equalized by channel, `_by_channel`, a fit without the toned
    allowance) compared inside a frame below the verifier's own similarity (the surround check's
    MIN_INSIDE_SIMILARITY is lower) whose colours agree only as a toned copy's: the colour check's allowance for a
    toned copy is no evidence of one, and the grey must then carry the pair at `min_similarity`, as a pair outside a
    frame does. On the framed set a wallpaper of one muted purple-red hue, its colour following its brightness,
    passed as a toned copy of a pastel one whose grey agreed with it inside the disc at 0.87-0.88 (3 pairs, joining
    the two pictures' 26 images). So too the pairs whose grey agreed only over local contrast (`searches.retoned`),
    which a toned copy's levels do not hold to the other's."""
    accepted, rules, how = verdicts
    inside = (rules == "frame") & (best.sim < rule.min_similarity)
    lenient = np.flatnonzero(looked & (inside | (best.stage == searches.RETONED)))
    if not len(lenient):
        return
    untoned = _colour_look(thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, lenient, None, False)
    for q in lenient[untoned < rule.min_colour_fit].tolist():
        accepted[q], rules[q] = False, "toned"
        grey = "over local contrast" if best.stage[q] == searches.RETONED else "inside the frame"
        how[q] = f"{how[q]}; colours agree only as a toned copy's, and the grey {grey} at {best.sim[q]:.2f}"


def _colour_look(
    thumbs,
    colours,
    trims,
    i,
    j,
    signals,
    aspect,
    stage,
    flat,
    looked,
    inside=None,
    tones=True,
    plain_level=None,
    equalized=False,
) -> np.ndarray:
    """The colour check's share explained for the pairs `looked`, aligned as the grey verdict placed them (low-detail
    pairs: the regions their match compared, each image's frame or, where `inside` (k, 2) says so, its content inside
    its bars, as they are or mirrored, whichever agrees better), COLOUR_CHUNK pairs at a time. Pairs compared as their
    frames are (most: re-encodes, rescales, tone changes) take each image's trimmed content. `tones`: as
    `colour_fit`'s; with `equalized`, the pairs that are not low-detail are compared with each channel equalized
    (`colour.equalized_fit`)."""
    inside = np.zeros((len(i), 2), bool) if inside is None else inside
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
        inside_a = as_they_are | (flat[part] & inside[part, 0])
        inside_b = as_they_are | (flat[part] & inside[part, 1])
        a = np.where(inside_a[:, None, None, None], content[x_at], planes[x_at])
        b = np.where(inside_b[:, None, None, None], content[y_at], planes[y_at])
        for n in np.flatnonzero(~as_they_are & ~flat[part]).tolist():
            x, y, q = int(i[part[n]]), int(j[part[n]]), part[n]
            p, r = aligned_colours(thumbs, enlarged, trims, x, y, signals[q], int(stage[q]), aspect)
            a[n], b[n] = resized(p, side), resized(r, side)
        rest, low = np.flatnonzero(~flat[part]), np.flatnonzero(flat[part])
        if len(rest):  # as aligned
            fit[s + rest] = equalized_fit(a[rest], b[rest]) if equalized else colour_fit(a[rest], b[rest], tones)
        if len(low):  # low-detail pairs: as they are or mirrored, each way
            as_is = colour_fit(a[low], b[low], tones, both_ways=True)
            turned = colour_fit(a[low], b[low][:, :, ::-1], tones, both_ways=True)
            fit[s + low] = np.maximum(as_is, turned)
            if plain_level is not None:  # two plain fields: their colours the same, not one edit apart
                shading_a, shading_b = (mean_deviation(x[low][..., 0]) for x in (a, b))
                both = low[(shading_a < plain_level) & (shading_b < plain_level)]
                fit[s + both] = np.minimum(fit[s + both], same_colour_fit(a[both], b[both]))
    return fit


class _Enlarged:
    """Images' colour planes enlarged to the grey thumbnails' size where read, so the grey alignment's boxes apply."""

    def __init__(self, small: dict[int, np.ndarray]):
        self.small = small

    def __getitem__(self, x: int) -> np.ndarray:
        return cv2.resize(self.small[x], (THUMB, THUMB), interpolation=cv2.INTER_LINEAR)


def _second_looks(thumbs, trims, i, j, signals, aspect, rule: VerifyRule, best: Best, judged, accepted, rules, how):
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
    found = inside_agreement(p, q, frame_p, frame_q)
    detailed = np.isnan(found[1]) or found[1] >= rule.min_detail_similarity  # NaN: the caller's detail stands
    if found[2] <= 0 or (found[0] >= MIN_INSIDE_SIMILARITY and detailed):
        return found
    fitted = refit(p, q)
    if fitted is None:
        return found
    again = inside_agreement(p, q, frame_p, frame_q, move=lambda x: warped(x, fitted[0]))
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
    order = batched[_local_order(len(thumbs), i[batched], j[batched])] if len(batched) > PAIR_CHUNK else batched
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


def _identity_names(trims: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    whole = (trims == (0, THUMB, 0, THUMB)).all(axis=1)
    return np.where(whole[i] & whole[j], "identity", "identity, bars trimmed").astype(object)


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
