"""The colour check on the verifier's accepted pairs (finetuner/dedup/verify.py): the grey thumbnails cannot tell a
product from the same shot in another colour, so every accepted pair must also agree in colour up to one global colour
edit (finetuner/dedup/colour.py), on the 16x16 colour thumbnails aligned as the grey ones were.

`colour_checks` runs it, in this order, on the pairs the grey verdicts and the second looks accepted:
- each pair's share of chroma one colour edit explains (`_colour_look`), below `min_colour_fit` refused (rule
  "colour");
- a refused pair whose channels went through tone curves of their own (equalized or auto-contrasted channel by
  channel) compared again with each channel equalized (`_by_channel`);
- a refused pair whose grey agreed with one's tones clipped as the other's compared again with that one's colours
  clipped alike (`_clipped`);
- two near-blank frames, which agree in grey whatever they show, held to LOW_DETAIL_COLOUR_FIT (rule
  "low-detail-colour");
- a pair whose grey agreed only inside a shared frame below `min_similarity`, or only over local contrast, held to the
  check without its allowance for a toned copy (`_toned_in_frame`, rule "toned").
"""

from __future__ import annotations

import cv2
import numpy as np

from finetuner.dedup import retouched
from finetuner.dedup.align import aligned_colours, cut, resized
from finetuner.dedup.colour import EQUALIZED_MIN_FIT, colour_fit, colour_planes, equalized_fit, same_colour_fit
from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.low_detail import SHADING, mean_deviation
from finetuner.dedup.shape import clip_maps
from finetuner.dedup.verdicts import Best, VerifyRule

# Two near-blank frames agree in grey whatever they show, so their colours carry the pair: one copy's colour edit must
# explain this share of them (colour.py scores 1 within the edit's allowance, falling as the square of the gap past
# it: 0.8 is 12% past it), not only `min_colour_fit`'s
LOW_DETAIL_COLOUR_FIT = 0.8
COLOUR_CHUNK = 2048  # pairs whose colours are compared together (a few MiB, reused: fresh memory is slow to touch)


def colour_checks(
    thumbs, colours, trims, i, j, signals, aspect, best: Best, flat, inside, rule: VerifyRule, *verdicts
) -> np.ndarray:
    """Each pair's share of chroma explained (NaN where not looked at: the pairs refused before), with the pairs that
    fail the colour check refused in place (`verdicts`: accepted, rules, how). `flat` marks the low-detail pairs, and
    `inside` (k, 2) whether their match took each image's content inside its bars."""
    accepted, rules, how = verdicts
    colour = np.full(len(i), np.nan)
    looked = np.flatnonzero(accepted)
    plain_level = SHADING * rule.flat_max_difference  # frames the pixel match compares without a gain
    colour[looked] = _colour_look(
        thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, looked, inside, plain_level=plain_level
    )
    # inside a shared frame the frame's pixels rank alike in every channel of both: no rescue there
    refused = looked[(colour[looked] < rule.min_colour_fit) & ~flat[looked] & (rules[looked] != "frame")]
    curved = _by_channel(thumbs, colours, trims, i, j, signals, aspect, best, flat, refused, rule, colour, how)
    curved |= _clipped(thumbs, colours, trims, i, j, best, refused[~curved[refused]], rule, colour, how)
    _colour_verdicts(colour, looked, rule.min_colour_fit, accepted, rules, how)
    # two near-blank frames agree in grey whatever they show: their colours must agree within one copy's edit
    low_detail_fit = max(rule.min_colour_fit, LOW_DETAIL_COLOUR_FIT)
    plain_pairs = looked[flat[looked] & accepted[looked]]
    _colour_verdicts(colour, plain_pairs, low_detail_fit, accepted, rules, how, "low-detail-colour")
    toned = accepted & ~curved  # a copy's colours equalized by channel are evidence without a toned allowance
    _toned_in_frame(thumbs, colours, trims, i, j, signals, aspect, best, flat, rule, toned, accepted, rules, how)
    return colour


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


def _clipped(thumbs, colours, trims, i, j, best: Best, refused, rule: VerifyRule, colour, how) -> np.ndarray:
    """Which of the pairs `refused` by the colour check whose grey agreed with one's tones clipped as the other's
    (`retouched.clipped`) pass it with the same map applied to that one's red, green and blue, each clipped to the
    range (`shape.clip_maps`; at `min_colour_fit` or more): a copy brightened past the range turns its highlights
    white channel by channel, so its chroma no longer follows its original's by one global edit (a photo brightened 2x
    explained 0.24-0.25). Their `colour` becomes that fit and `how` says so, in place; a mask over all pairs."""
    passed = np.zeros(len(i), bool)
    for q in refused[best.stage[refused] == retouched.CLIPPED].tolist():
        x, y = int(i[q]), int(j[q])
        grey = [cut(thumbs[z], tuple(trims[z])) for z in (x, y)]
        rgb = [_inside_bars(colours[z], trims[z]) for z in (x, y)]
        for side, gain, offset in clip_maps(*grey):
            mapped = list(rgb)
            mapped[side] = np.clip(gain * rgb[side] + offset, 0, 255)
            fit = float(colour_fit(*(colour_planes(m)[None] for m in mapped))[0])
            if fit >= rule.min_colour_fit and fit > (colour[q] if passed[q] else -np.inf):
                colour[q], passed[q] = fit, True
        if passed[q]:
            how[q] = f"{how[q]}; colours alike once clipped alike ({colour[q]:.2f})"
    return passed


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
    the two pictures' 26 images). So too the pairs whose grey agreed only over local contrast (`retouched.retoned`),
    which a toned copy's levels do not hold to the other's."""
    accepted, rules, how = verdicts
    inside = (rules == "frame") & (best.sim < rule.min_similarity)
    lenient = np.flatnonzero(looked & (inside | (best.stage == retouched.RETONED)))
    if not len(lenient):
        return
    untoned = _colour_look(thumbs, colours, trims, i, j, signals, aspect, best.stage, flat, lenient, None, False)
    for q in lenient[untoned < rule.min_colour_fit].tolist():
        accepted[q], rules[q] = False, "toned"
        grey = "over local contrast" if best.stage[q] == retouched.RETONED else "inside the frame"
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
                content[k] = _inside_bars(planes[k], trims[x])
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


def _inside_bars(image: np.ndarray, box) -> np.ndarray:
    """A 16x16 colour thumbnail (or its planes) cut to a box on the grey thumbnails (a trim), back at 16x16."""
    return resized(cut(_enlarged(image), tuple(box)), (COLOUR_SIDE, COLOUR_SIDE))


def _enlarged(image: np.ndarray) -> np.ndarray:
    """A 16x16 colour thumbnail (or its planes) as float32 at the grey thumbnails' size, so their boxes apply."""
    return cv2.resize(np.asarray(image, np.float32), (THUMB, THUMB), interpolation=cv2.INTER_LINEAR)


class _Enlarged:
    """Images' colour planes enlarged to the grey thumbnails' size where read, so the grey alignment's boxes apply."""

    def __init__(self, small: dict[int, np.ndarray]):
        self.small = small

    def __getitem__(self, x: int) -> np.ndarray:
        return _enlarged(self.small[x])
