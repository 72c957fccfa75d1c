"""The verifier: decides every candidate pair by aligning the two images and measuring what the alignment explains.

Hash distance is a poor judge on real photographs: smooth wallpapers and near-blank frames sit within a few bits of
each other without being copies, while a 10% crop or a mirror is far away. So candidates (finetuner/dedup/views.py) are
only proposals. On the 64x64 grey thumbnails, a pair joins units when its two images align, and what the alignment
explains is enough.

Where the images are compared, first to last (each try keeps the best alignment so far; searches.py, retouched.py):
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
  that relates their colours (a filter's hue shift brightens some colours and darkens others);
- the frames as they are with one's tones clipped as the other's (a copy brightened past white), each over its local
  contrast or with one's grey levels put on the other's by rank (tones remapped), the sharper blurred to match (a
  heavy blur).

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
  (finetuner/dedup/surround.py); every other accepted pair of photographs must agree part by part too (the block
  look: the median correlation of its textured 16-pixel blocks, at least surround.MIN_BLOCK_AGREEMENT; rule
  "blocks"). These second looks are finetuner/dedup/second_looks.py;
- last, every accepted pair must agree in colour up to one global colour edit (finetuner/dedup/colour_checks.py, on
  finetuner/dedup/colour.py's fit: the grey thumbnails cannot tell a product from the same shot in another colour),
  on the 16x16 colour thumbnails aligned as the grey ones were; a pair the surround check passed below
  `min_similarity` must agree without the allowance for a toned copy, which is no evidence of one (rule "toned").

`verify_pairs` does the cheap steps for all pairs at once (numpy) and the search only where it can matter: the frames
as they are here, the searches beyond them in finetuner/dedup/searches.py (where the two images lie) and retouched.py
(copies edited in their pixels), the second looks and the colour check in the two modules above, the thresholds and
verdicts in finetuner/dedup/verdicts.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from finetuner.dedup import retouched, searches
from finetuner.dedup.align import resized
from finetuner.dedup.colour_checks import LOW_DETAIL_COLOUR_FIT, colour_checks
from finetuner.dedup.correlation import BAND, PAIR_CHUNK, bands, local_order, unit_rows
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.low_detail import low_detail_verdicts
from finetuner.dedup.refit import PHOTO_MAX_TURN, max_turns
from finetuner.dedup.searches import IMAGE_CHUNK
from finetuner.dedup.second_looks import second_looks
from finetuner.dedup.signals import signal_cornered, unturned
from finetuner.dedup.verdicts import Best, Verdict, Verdicts, VerifyRule, passing, refit_rule
from finetuner.dedup.views import TILTS, VIEWS, allowed_combos, trim_boxes, view_hashes, view_margin

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
# (full_size.py), 22 brightened graphics compared with tones clipped alike (shape.clipped_alike), mirrored copies
# compared mirrored across differing trims, whole frames also placed mirrored (searches._place_mirrored), the surround
# check refitted where the inside falls short, 23 graphics whose whole file was resized to another shape
# (_resized_whole), 24 the shape check's proportions counting the refit's warp (align.aligned_pair), 25 toned copies
# whose tone bends where a channel clips, and toned copies of a picture of one hue (colour._tone), 26 copies with
# their hues turned compared with the grey turned alike (retouched.hue_turned), 27 a whole frame opposite a cut
# compared whole, as it was hashed (views.whole_frame), 28 textures refused at 64x64 looked at full size
# (full_size.worth_a_look), 29 a bar's edge blended over two lines trimmed with it, and a ground with text on it
# trimmed under bars of another shade (trims.py, views.VIEW_BOXES 5), 30 a picture in a post or a window trimmed to
# it (trims._picture_on_ground, views.VIEW_BOXES 6), 31 a mirrored pair looked at full size with the mirror undone
# (full_size.full_size_looks), 32 a picture on a plain ground found with bays in its box (trims.py, VIEW_BOXES 7), 33
# the full-size look's overlap a share of each image's content (its trim), not of its frame, 34 a crop of one side
# compared as a band at one end of the other's canvas (searches._bands, align.BAND_STAGES), 35 a frame in two layers
# (frames.inner_layer), a frame holding under half the rim by its flat tone, the aligned regions' own rims, 36 the
# full-size look's matches must spread over the overlap (full_size.MIN_SPREAD), 37 the surround check where either
# image may show a frame, 38 inside a frame, textured blocks must agree too (surround.MIN_BLOCK_AGREEMENT), 39 and
# where no frame is shared in the aligned regions, over all of them (surround.blocks_apart), 40 a mirrored copy of a
# picture framed symmetrically compared mirrored inside the frame, 41 every other pair of photographs compared block
# by block too (`_block_look`), a mirrored copy that fails there compared mirrored, 42 a side without colour
# structure held to the mean colour of one with (colour._fit), 43 a frame colour the other image shows found nested
# inside the frame (frames.nested_tones), 44 inside a frame below min_similarity, colours must fit without the toned
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
# (surround.shading_apart), 57 copies with their tones remapped compared over local contrast (retouched.retoned),
# blurred copies with the sharper blurred to match (retouched.deblurred), 58 a retoned pair may pass on its fine detail
# (retouched.retoned_rule), 59 a template's layer no frame colour found left out inside a shared frame
# (layers.template_layers), 60 a frame found only where flat, framed apart, followed into its thin strips
# (layers.frame_grown), 61 framed apart, a layer of one template in tones of their own (layers.toned_layers), 62
# colours the colour check refused compared again with each channel equalized (_by_channel, colour.equalized_fit), 63
# a copy brightened or darkened past the grey range compared with one's tones clipped as the other's, in grey and in
# colour (retouched.clipped, colour_checks._clipped), 64 copies with their tones remapped also compared with one's
# levels put on the other's by rank (retouched.tones_matched), after the tones clipped alike, 65 inside a frame, two
# ramps or glows the same pixels up to one brightness gain (surround.pixels_apart), and framed apart, a template's
# layer no frame colour found left out too, 66 a low-detail pair both matches refused tried again with the sharper
# frame blurred to match (low_detail._blurred_match), 67 the sharper blurred to match by up to 4.8 thumbnail pixels
# (retouched.BLUR_SIGMAS), 68 photographs refitted turned by up to 10 degrees, not 5 (refit.PHOTO_MAX_TURN), past 5
# held to refit.WIDE_TURN_MIN_DETAIL, 69 copies turned 5-15 degrees proposed through a whole frame turned 10 degrees
# (views.TILTS) and aligned on it (signals.unturned, searches.refit_tilted), 70 a pair proposed through a tilted view
# and the other's centre (views.TILT_CENTRE: a copy turned with the canvas's corners showing) placed from that centre
VERIFIER = 70
# Pairs whose frames correlate this well as they are (and in fine detail) are also compared without what is drawn
# over one (retouched.overdrawn; watermarked copies: 0.79 and up in detail)
OVERDRAWN_REACH = 0.6
OVERDRAWN_REACH_DETAIL = 0.7


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
    order = local_order(len(thumbs), i, j) if len(i) > PAIR_CHUNK else np.arange(len(i))
    for s in range(0, len(i), PAIR_CHUNK):
        part = order[s : s + PAIR_CHUNK]
        used, inverse = np.unique(np.r_[i[part], j[part]], return_inverse=True)
        a, b = np.split(inverse.ravel(), 2)
        rows, level[used] = _identity_rows(thumbs[used], trims[used])
        for (top, bottom), out in zip(rows, (sim, det)):
            out[part] = np.maximum(np.einsum("kd,kd->k", top[a], top[b]), np.einsum("kd,kd->k", bottom[a], bottom[b]))
    return sim, det, level


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
    tilted = np.flatnonzero(~flat & np.isin(turned.turns, list(TILTS.values())).any(axis=1))
    searches.refit_tilted(best, thumbs, trims, i, j, signals, aspect, rule, tilted)
    sim, det, overlap, stretch, how = best.sim, best.det, best.overlap, best.stretch, best.how
    accepted = passes(sim, det, overlap, stretch)
    # one frame turned 10 degrees: fine detail as a refit turned past 5 degrees agrees, and never a graphic (a letter
    # turned 10 degrees is a slanted one of another typeface: the refit turns graphics 1.5 degrees at most)
    accepted[tilted] &= passing(searches.tilted_rule(rule))(sim, det, overlap, stretch)[tilted]
    accepted[tilted] &= max_turns(thumbs, i[tilted], j[tilted]) >= PHOTO_MAX_TURN
    retoned = best.stage == retouched.RETONED  # over local contrast: its own pair of thresholds too
    accepted[retoned] |= passing(retouched.retoned_rule(rule))(sim, det, overlap, stretch)[retoned]
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
    second_looks(thumbs, trims, i, j, signals, aspect, rule, best, judged, accepted, rules, how)
    inside = np.zeros((k, 2), bool)  # low-detail pairs: whether the match took each image's content inside its bars
    if flat.any():
        accepted[flat], sim[flat], overlap[flat], how[flat], inside[flat] = low_detail_verdicts(
            thumbs, i[flat], j[flat], rule, trims, np.asarray(signals, dtype=object)[flat], aspect
        )
        det[flat] = 0.0
    colour = np.full(k, np.nan)
    if colours is not None and rule.min_colour_fit > -1:
        verdicts = (accepted, rules, how)  # the colour check refuses in place
        colour = colour_checks(thumbs, colours, trims, i, j, signals, aspect, best, flat, inside, rule, *verdicts)
    how = turned.noted(how)
    return Verdicts(accepted, rules, np.round(sim, 4), np.round(det, 4), np.round(overlap, 4), how, np.round(colour, 4))


def _search(best, thumbs, trims, i, j, signals, aspect, rule, todo, chunk, thorough, sim0, det0, colours) -> None:
    """The searches beyond the frames as they are, into `best`, each on the pairs (of `todo`) the one before left
    short of the thresholds: the signal's alignment and the local search (`realign`, in chunks), a copy drawn over
    where the frames as they are already came close (`overdrawn`), a copy relit where their detail agreed (`relit`),
    a copy with its hues turned where its colours show the turn (`hue_turned`; with `colours`), a copy brightened or
    darkened past the grey range where its fine detail agreed (`clipped`; before `retoned`, whose rank map would take
    it too, but without the colour check's look at its colours clipped alike), a copy with its tones remapped where
    its fine detail agreed (`retoned`), a blurred copy where its smoothed content agreed (`deblurred`)."""
    passes = passing(rule)
    for s in range(0, len(todo), chunk):
        searches.realign(best, thumbs, trims, i, j, signals, aspect, rule, todo[s : s + chunk], thorough)
    short = todo[~passes(best.sim[todo], best.det[todo], best.overlap[todo], best.stretch[todo])]
    reach = (sim0[short] >= OVERDRAWN_REACH) & (det0[short] >= OVERDRAWN_REACH_DETAIL)
    retouched.overdrawn(best, thumbs, trims, i, j, aspect, rule, short[reach])
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    retouched.relit(best, thumbs, trims, i, j, aspect, rule, short[det0[short] >= retouched.RELIT_MIN_DETAIL])
    if colours is not None:
        short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
        reach = short[det0[short] >= retouched.HUE_REACH_DETAIL]
        retouched.hue_turned(best, thumbs, colours, trims, i, j, aspect, rule, reach)
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    retouched.clipped(best, thumbs, trims, i, j, aspect, rule, short[det0[short] >= retouched.CLIP_REACH])
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    retouched.retoned(best, thumbs, trims, i, j, aspect, rule, short[det0[short] >= retouched.TONE_REACH_DETAIL])
    short = short[~passes(best.sim[short], best.det[short], best.overlap[short], best.stretch[short])]
    retouched.deblurred(best, thumbs, trims, i, j, aspect, rule, short[sim0[short] >= retouched.BLUR_REACH])


def _identity_names(trims: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    whole = (trims == (0, THUMB, 0, THUMB)).all(axis=1)
    return np.where(whole[i] & whole[j], "identity", "identity, bars trimmed").astype(object)


def best_signal(a: np.ndarray, b: np.ndarray, aspect: tuple[float, float] | None = None) -> str:
    """The view pair ("full~crop90") whose hashes of two thumbnails (of images of `aspect`, width / height) are
    closest, as a candidate search names it (a tilted view pair `view_margin` bits farther)."""
    hashes = view_hashes(np.stack([a, b]), None if aspect is None else np.array(aspect, np.float64))
    allowed = allowed_combos(VIEWS).tolist()
    pairs = [
        (int(np.bitwise_count(hashes[x][0] ^ hashes[y][1])) + view_margin(x, y), f"{x}~{y}")
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
