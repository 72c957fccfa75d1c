"""The colour check: whether two aligned images' colours could be one picture's after a global colour edit.

The verifier compares grey thumbnails, so it cannot tell a product photographed in red from the same shot in blue,
or two renders of one shape in other colours: their grey structure agrees. Copies do change colour, but as a whole:
a grey or sepia copy, more or less saturation, a warmer or cooler white balance, a filter's slight turn of hue. So
the check asks how much of one image's chroma (Cb + i Cr of each pixel of a 16x16 colour thumbnail, a complex
number) one such edit explains from the other's: v = z u + t for a gain z (any saturation, a turn of every hue of at
most MAX_TURN) and a shift t (white balance, at most MAX_SHIFT), fitted by least squares. Recolouring an object, or
turning a whole picture's hues far round, is not a copy's edit.

Where an image has no colour structure to compare (grey, plain, or one tint throughout), it must only lie within one
such edit of the other's mean colour; a toned copy (sepia, a gradient map: one hue throughout, its chroma a function
of its brightness) of a picture of several hues passes. Two pictures that are each one hue on a neutral ground (a red
shirt, the same shot in blue) look to these statistics like a toned copy and its original, so a toned copy of a
picture of one hue passes only where the two mean colours are one turn of at most MAX_TURN apart: a sepia copy of a
blue picture is taken for another picture. Every sum the fit needs is a moment of the pixels, kept per row, so the
regions without a caption band at the top or the bottom cost nothing more.

Until 2026-12-06 only a pair with no colour structure on either side was held to the mean colours: where one side
had some and the other none, the check passed it: a flat green field against a purple one whose hue drifts a little
across it. Leaving a caption band out can also leave a region flat: a blue tile and a maroon one, alike in grey along
one diagonal edge, passed once the maroon tile's lower band was left out. Held to its mean colour, such a flat side is
refused. On 918 tiles of the bench's pictures (256 pixels, 30 with a copy) 3 of 68 false pairs went; on the
fresh and caption sets their one false pair each (two smooth fields of other colours); on the colour set one pair
of a sepia copy and a recoloured twin; no copy was lost on any set.

Until 2026-12-07 two low-detail images also had the allowance for a toned copy of a picture of one hue. A smooth
picture of one hue is toned by its own shading (its chroma follows its luma along the gradient, as a sepia copy's
follows its brightness), so two such passed whenever their mean hues lay within MAX_TURN, at any saturation: a vivid
blue glow and a greyish lilac one whose grey matched once mirrored. On the blank set (bench_dedup_quality.py --set
blanks) false pairs went from 182 to 73 (precision 0.915 to 0.964, largest cluster 21 to 20), and no true pair was
lost there or on the eleven other sets.

Since 2026-12-07 a pair the check refuses may pass on its colours with each red, green and blue channel equalized on its
own (`equalized_fit`, finetuner/dedup/colour_checks.py `_by_channel`): a copy equalized or auto-contrasted channel by
channel, or brightened until one channel clips before the others, ranks its pixels in each channel as its original does,
while no one global edit explains its colours. A twin does not: a hue turned far round trades the channels, a
recoloured part ranks its pixels elsewhere. On the heavier photo set equalized copies went from 0.81 to 0.92 found.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from finetuner.dedup.correlation import BAND

SIDE = 16  # pixels a side of the colour thumbnail kept per image (hashing.thumbnails), and of the regions compared
MAX_TURN = np.radians(30.0)  # the largest turn of all hues a copy's edit may make (a warm or cool filter)
MAX_SHIFT = 20.0  # the largest shift of all chroma (levels of 255) a copy's edit may make (white balance, a tint)
# Two plain fields (near-blank, no shading: the pixel rule's frames without a gain) are copies only where their mean
# chroma lies within this many levels: a re-encode or rescale moves it 0-2; another field of the same grey, or one
# tinted or made paler (a copy's colour edit, which no pixel tells from another field), 4 or more
PLAIN_SHIFT = 4.0
FIT_ROUNDS = 4  # alternations of the gain and the shift (each exact given the other)
# A toned copy (sepia): one hue (|sum of chroma| / sum of |chroma| at least ONE_HUE; sepia copies 0.99-1.0), its
# chroma a function of its luma (a quadratic in luma explains TONE_FIT of it: 0.71-1.0; a linear fit missed the bend
# where a filter's brightest channel clips, CSS's sepia(1) on bright pictures: 0.22-0.52) and muted (mean |chroma| at
# most TONE_CHROMA levels; 12-32). A copy of a picture of several hues (at most SEVERAL_HUES) passes as one; a copy
# of a picture of one hue passes where their mean colours lie within one turn of MAX_TURN, with no shift.
ONE_HUE, TONE_FIT, TONE_CHROMA, SEVERAL_HUES = 0.97, 0.7, 40.0, 0.9
# A copy whose channels went through tone curves of their own (`equalized_fit`): its equalized channels' colours must
# agree to EQUALIZED_MIN_FIT (on the heavier photo set the copies it takes fit their originals at 0.76-0.87; the
# colour set's twins, over whole thumbnails, at most 0.24)
EQUALIZED_MIN_FIT = 0.7
FLOOR = 3.0  # chroma std (levels of 255) below which an image has no colour structure to compare
# BT.601 luma and chroma of 8-bit RGB, as JPEG stores them: Y, Cb, Cr (without the 128 offset)
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
LUMA = _YCC[0]  # the luma plane's weights alone
_RGB = np.linalg.inv(_YCC.astype(np.float64)).astype(np.float32)  # colour planes back to red, green and blue


def colour_planes(rgb: np.ndarray) -> np.ndarray:
    """The (..., h, w, 3) float32 luma, Cb, Cr planes of (..., h, w, 3) RGB images: what the check compares. Linear in
    the pixels, so cutting and resizing them gives the planes of the cut and resized colour image."""
    return np.asarray(rgb, np.float32) @ _YCC.T


def colour_fit(a: np.ndarray, b: np.ndarray, tones: bool = True, both_ways: bool = False) -> np.ndarray:
    """Per pair of aligned regions' colour planes (n, 16, 16, 3), the share of chroma one global colour edit
    explains, the better of b's from a's and a's from b's. Measured inside a one-pixel rim (a thin coloured border,
    the alignment's edges), and, like the grey evidence, also without a caption band at the top or the bottom
    (finetuner/dedup/correlation.py BAND); the best of the three counts. Without `tones`, no toned copy passes as one:
    the share one colour edit explains, the evidence alone. With `both_ways` (low-detail pairs, whose grey says
    nothing), two regions without colour structure must each be one edit of the other's mean colour: one way only, a
    pale blue passes as a vivid red made grey and tinted within MAX_SHIFT, though no edit takes the blue to the red;
    and a region of one hue is not taken for a toned copy of another of one hue (`_fit`)."""
    u = a[:, :, 1:-1, 1] + 1j * a[:, :, 1:-1, 2]
    v = b[:, :, 1:-1, 1] + 1j * b[:, :, 1:-1, 2]
    rows = {  # per row: the moments of the pixels
        "u": u.sum(axis=2),
        "v": v.sum(axis=2),
        "uu": (np.abs(u) ** 2).sum(axis=2),
        "vv": (np.abs(v) ** 2).sum(axis=2),
        "vu": (v * u.conj()).sum(axis=2),
        "|u|": np.abs(u).sum(axis=2),
        "|v|": np.abs(v).sum(axis=2),
    }
    band, height = 1 + int(np.ceil(a.shape[1] * BAND)), a.shape[1]
    parts = ((1, height - 1), (band, height - 1), (1, height - band))
    sums = [{k: m[:, lo:hi].sum(axis=1) for k, m in rows.items()} for lo, hi in parts]
    # only an image of one hue can be toned: the tone's moments for those pairs alone (a few in a collection)
    one = np.flatnonzero(np.any([(_hues(s, "u") >= ONE_HUE) | (_hues(s, "v") >= ONE_HUE) for s in sums], axis=0))
    one = one if tones else one[:0]
    tone_rows = {**_tone_moments("u", u[one], a[one, :, 1:-1, 0]), **_tone_moments("v", v[one], b[one, :, 1:-1, 0])}
    fits = []
    for (lo, hi), part in zip(parts, sums):
        pixels = u.shape[2] * (hi - lo)
        means = {k: m[:, lo:hi].sum(axis=1) / pixels for k, m in tone_rows.items()}
        means.update({k: part[k][one] / pixels for k in ("u", "v", "uu", "vv", "|u|", "|v|")})
        tone_u, tone_v = np.zeros(len(u), bool), np.zeros(len(u), bool)
        tone_u[one], tone_v[one] = _tone(means, "u"), _tone(means, "v")
        fits.append(_fit(part, pixels, tone_u, tone_v, both_ways))
    return np.max(fits, axis=0)


def same_colour_fit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of regions' colour planes (n, h, w, 3), the share `colour_fit` would give two plain fields whose mean
    chroma may differ only by what a re-encode moves it (PLAIN_SHIFT), not by a colour edit: 1 within PLAIN_SHIFT
    levels, then falling as the square (0.8 at 1.12 PLAIN_SHIFT). Two plain fields of one grey are as alike as their
    colours, and one tinted or made paler is another field of that colour, as one brightened is another shade."""
    gap = np.abs(a[..., 1:].mean(axis=(1, 2)) - b[..., 1:].mean(axis=(1, 2)))  # (n, 2): Cb, Cr
    return np.minimum(1.0, PLAIN_SHIFT / np.maximum(np.hypot(gap[:, 0], gap[:, 1]), 1e-12)) ** 2


def _hues(sums: dict[str, np.ndarray], c: str) -> np.ndarray:
    """How nearly one hue an image's chroma is: |sum of chroma| / sum of |chroma| (1: one hue throughout)."""
    return np.abs(sums[c]) / np.maximum(sums[f"|{c}|"], 1e-12)


def _fit(
    sums: dict[str, np.ndarray], pixels: int, tone_u: np.ndarray, tone_v: np.ndarray, both_ways: bool = False
) -> np.ndarray:
    """`colour_fit` of regions given their pixel sums, and whether each side's chroma is a tone's (`_tone`)."""
    m = {k: s / pixels for k, s in sums.items()}
    spread_u, spread_v = m["uu"] - np.abs(m["u"]) ** 2, m["vv"] - np.abs(m["v"]) ** 2
    structured_u, structured_v = spread_u >= FLOOR**2, spread_v >= FLOOR**2
    conjugate = {"u": m["v"], "v": m["u"], "uu": m["vv"], "vv": m["uu"], "vu": m["vu"].conj()}
    share = np.maximum(_explained(m, spread_v), _explained(conjugate, spread_u))
    # a toned copy (sepia, a tint over grey) of a picture of several hues: one hue throughout, following brightness
    hues_u, hues_v = _hues(sums, "u"), _hues(sums, "v")
    toned_u, toned_v = (hues_u >= ONE_HUE) & tone_u, (hues_v >= ONE_HUE) & tone_v
    toned = (toned_u & (hues_v <= SEVERAL_HUES)) | (toned_v & (hues_u <= SEVERAL_HUES))
    # one side without structure (grey, or one tint throughout: a copy made grey and tinted), the other with: the flat
    # one's mean colour must be the other's scaled and turned within MAX_TURN, then shifted by at most MAX_SHIFT (a
    # flat maroon field is no edit of a blue picture, however alike their grey)
    flat_gap = np.where(structured_u, _off_cone(m["u"], m["v"]), _off_cone(m["v"], m["u"]))
    share = np.where(structured_u & structured_v, share, _within_shift(flat_gap))
    share = np.where(toned, 1.0, share)
    # neither with structure (plain or grey frames, perhaps tinted): either mean colour the other's so edited (a red
    # card is not a green one)
    gap = (np.maximum if both_ways else np.minimum)(_off_cone(m["u"], m["v"]), _off_cone(m["v"], m["u"]))
    # a toned copy of a picture of one hue: their mean colours one turn of at most MAX_TURN apart, with no shift (a
    # shift of MAX_SHIFT takes a red object to a purple one). Not for two low-detail images (`both_ways`): a smooth
    # picture of one hue is toned by its own shading, so any two such would pass at any saturation
    if not both_ways:
        share = np.where((toned_u | toned_v) & ~toned & (gap <= 0.0), 1.0, share)
    return np.where(~structured_u & ~structured_v, _within_shift(gap), share)


def _within_shift(gap: np.ndarray) -> np.ndarray:
    """The share a mean colour `gap` levels off every allowed edit of the other's scores: 1 within MAX_SHIFT, then
    falling as its square."""
    return np.minimum(1.0, MAX_SHIFT / np.maximum(gap, 1e-12)) ** 2


def _tone_moments(c: str, chroma: np.ndarray, luma: np.ndarray) -> dict[str, np.ndarray]:
    """Per row, the moments a quadratic fit of `chroma` on `luma` needs, named after `c` (luma scaled to 0-1, in
    float64: its fourth powers)."""
    s = luma.astype(np.float64) / 255.0
    chroma = chroma.astype(np.complex128)
    return {
        f"{c}:s": s.sum(axis=2),
        f"{c}:s2": (s**2).sum(axis=2),
        f"{c}:s3": (s**3).sum(axis=2),
        f"{c}:s4": (s**4).sum(axis=2),
        f"{c}:cs": (chroma * s).sum(axis=2),
        f"{c}:cs2": (chroma * s**2).sum(axis=2),
    }


def _tone(m: dict[str, np.ndarray], c: str) -> np.ndarray:
    """Whether chroma `c` (its pixel means in `m`) is a function of luma as a tone's is: muted (mean magnitude at most
    TONE_CHROMA), and a quadratic in brightness explains TONE_FIT of its variance (a tint over grey, bent where the
    filter's brightest channel clips)."""
    s1, s2, s3, s4 = (m[f"{c}:{k}"] for k in ("s", "s2", "s3", "s4"))
    gram = np.stack(
        [np.stack([np.ones_like(s1), s1, s2], -1), np.stack([s1, s2, s3], -1), np.stack([s2, s3, s4], -1)], -2
    )
    mean = m[c].astype(np.complex128)
    rhs = np.stack([mean, m[f"{c}:cs"], m[f"{c}:cs2"]], -1)
    gram = gram + 1e-9 * np.eye(3)  # a frame of one brightness: no fit
    coef = np.linalg.solve(gram.astype(np.complex128), rhs[..., None])[..., 0]
    explained = np.einsum("...i,...i->...", rhs.conj(), coef).real - np.abs(mean) ** 2
    spread = m[f"{c}{c}"] - np.abs(mean) ** 2
    return (explained >= TONE_FIT * np.maximum(spread, 1e-12)) & (m[f"|{c}|"] <= TONE_CHROMA)


def _explained(m: dict[str, np.ndarray], spread: np.ndarray) -> np.ndarray:
    """The share of v's chroma variance (`spread`) that z u + t explains, for the gain z (any scale, a turn of at most
    MAX_TURN) and the shift t (|t| <= MAX_SHIFT) that fit best, from the pixel means `m` (u, v, |u|^2, |v|^2, v u*),
    by alternating least squares."""
    t = np.zeros_like(m["u"])
    for _ in range(FIT_ROUNDS):
        z = (m["vu"] - t * m["u"].conj()) / np.maximum(m["uu"], 1e-12)
        turn = np.clip(np.angle(z), -MAX_TURN, MAX_TURN)
        z = np.maximum((z * np.exp(-1j * turn)).real, 0.0) * np.exp(1j * turn)  # the best gain at the allowed turn
        t = m["v"] - z * m["u"]
        t = t * np.minimum(1.0, MAX_SHIFT / np.maximum(np.abs(t), 1e-12))
    # mean |v - z u - t|^2, expanded in the moments
    residual = (
        m["vv"]
        + np.abs(z) ** 2 * m["uu"]
        + np.abs(t) ** 2
        - 2 * (z.conj() * m["vu"]).real
        - 2 * (t.conj() * m["v"]).real
        + 2 * (z * m["u"] * t.conj()).real
    )
    return np.clip(1.0 - residual / np.maximum(spread, 1e-12), 0.0, 1.0)


def _off_cone(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """How far chroma v lies from every z u with |arg z| <= MAX_TURN (any scale, zero included)."""
    turn = np.abs(np.angle(v * u.conj()))
    # within the cone: 0; beside it: the distance to its nearer edge; behind it (past 90 degrees from an edge): to 0
    return np.where(turn <= MAX_TURN, 0.0, np.abs(v) * np.sin(np.minimum(turn - MAX_TURN, np.pi / 2)))


def equalized_fit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of aligned regions' colour planes (n, h, w, 3), `colour_fit` (no toned allowance) of the two with
    each red, green and blue channel histogram-equalized on its own (`channels_equalized`): a copy whose channels
    went through tone curves of their own (equalized or auto-contrasted channel by channel, as Pillow's and
    torchvision's equalize and autocontrast do, levels or curves per channel, a brightening that clips some channels
    before others) ranks its pixels in each channel as its original does, whatever its colours now. 0 where either
    equalized region shows no colour structure (chroma spread under FLOOR): a picture whose channels all rank its
    pixels alike (a grey or sepia copy, a muted picture) equalizes to grey, and every equalized region's mean colour
    is grey, so `colour_fit`'s rule for a side without structure (its mean colour one edit of the other's) would pass
    any two."""
    x, y = channels_equalized(a), channels_equalized(b)
    shown = (_chroma_spread(x) >= FLOOR) & (_chroma_spread(y) >= FLOOR)
    fit = np.zeros(len(a))
    if shown.any():
        fit[shown] = colour_fit(x[shown], y[shown], tones=False)
    return fit


def channels_equalized(planes: np.ndarray) -> np.ndarray:
    """The colour planes (n, h, w, 3) of regions each of whose red, green and blue channels is histogram-equalized
    on its own (each pixel's rank among the region's, ties averaged, spread over 0-255)."""
    n, h, w, _ = planes.shape
    rgb = (np.asarray(planes, np.float32) @ _RGB.T).reshape(n, h * w, 3)
    ranks = rankdata(rgb, method="average", axis=1) - 1.0
    return (ranks * (255.0 / max(h * w - 1, 1))).astype(np.float32).reshape(n, h, w, 3) @ _YCC.T


def _chroma_spread(planes: np.ndarray) -> np.ndarray:
    """Per region (n, h, w, 3 planes), the spread of its chroma inside a one-pixel rim (as `colour_fit` measures)."""
    chroma = planes[:, 1:-1, 1:-1, 1:].reshape(len(planes), -1, 2)
    return np.sqrt(chroma.var(axis=1).sum(axis=1))
