"""An image's frame as the verifier sees it on its 64x64 grey thumbnail, and where a region of it shows that frame: a
mat, bars, a camera's disc surround, a print's border on a table, an app window's title bar and panels. The surround
check (finetuner/dedup/surround.py) compares two photographs framed alike inside their frame; the shape check and the
candidate cap tell graphics by their plain paper (`plain`).

`plain` measures each thumbnail's rim: its median (the frame colour), how much of the rim and of the image lies near
it, and up to MAX_TONES flat tones (`rim_tones`); `framed` and `frame_colours` say whether, and in which colours, an
image may show a frame. In a region, `frame_mask` finds the plain pixels of one colour connected to its border, and
`frame_of` those of all of a frame's tones, with the layers nested inside them (`inner_layer`, `nested_tones`).

A frame may also be made of several flat tones: an app window's title bar, side panel and canvas around the picture
it shows, a social post's header and white page. Its rim then shows up to MAX_TONES levels, each held by MIN_TONE of
the rim (`rim_tones`), and the frame is the plain pixels of any of them connected to the border. On the composed
photo set (benchmarks/bench_dedup_quality.py --set composed: pictures in an app window with a title bar and a side
panel of folder names, in a social post, and in other templates) 37 of 68 accepted pairs were strangers in one window
or one post; with the tones, and each region's edge left out (`surround.inside_agreement`), none. A region of one of
those tones may also be the picture's own (a silhouette's black, a posterised sky): where the tones leave less than
surround.MIN_INSIDE to compare, the check says nothing (with one tone, such a pair is rejected, as it always was).

A frame may come in two layers: a print's white border on the dark table it lies on, turned, so that only the table's
corners reach the image's edge. The second layer is one flat tone just inside the first (`inner_layer`); 26 pictures
each on such a print gave 8 false pairs through the border, none with it. Where the second layer leaves less than
surround.MIN_INSIDE to compare, it is the picture's own (a silhouette on a mat), and the check measures without it. That
layer is found by the one tone that holds the band just inside the first, which a blended line two pixels wide or a
grainy border can deny it; where the other image's rim shows the border (a crop, a caption under one print), its colour
is known, and its plain pieces within LAYER_BAND[1] pixels of the table are the layer too (`nested_tones`, since
2026-12-06). On the print set that took 4 of 9 false pairs (a dark wallpaper's captioned print against three prints of a
night photograph, two letterboxed prints) and one pair of one picture's copies (a brightened logo and its captioned
copy, both still in their picture's cluster), and changed no pair on the nine other sets.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

PLAIN_TOLERANCE = 8.0  # grey levels from an image's border median that count as its frame (or a graphic's paper)
MIN_SHARED = 0.02  # share of the compared region that is frame in both images for the check to apply (a 2-pixel mat
# on three sides of a 64-pixel region is 5%, and still decided the correlation of two unrelated pictures)
THIN_RUN = 5  # ...or a run of this many plain pixels in a row or a column: a strip of frame one or two pixels thin
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
    band = near_frame(frame) & (blended == 0)
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
    grey, near = np.asarray(region, np.float32), near_frame(frame)
    return np.logical_or.reduce([_pieces(_solid(grey, tone), near) for tone in tones] + [np.zeros(frame.shape, bool)])


def near_frame(mask: np.ndarray) -> np.ndarray:
    """`mask` and the pixels within LAYER_BAND[1] of it: where a layer nested against a frame lies."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * LAYER_BAND[1] + 1,) * 2, np.uint8)).astype(bool)
