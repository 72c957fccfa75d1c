"""The surround check: two photographs framed alike are compared inside their frames, not through them.

Many collections frame every picture the same way: a fundus camera's black disc surround, a microscope's circular
field, a white mat on scanned prints, black bars on video frames. Two different pictures framed alike correlate
through the frame: it is the largest and sharpest structure both share, so on their thumbnails the verifier's
similarity and fine detail (finetuner/dedup/verify.py) pass as if they were copies. 52 different photographs, each
given one circular black surround, gave 39 accepted pairs; with a white mat, 13; a real fundus collection would chain
into one cluster. Trimming bars does not help: a disc's corners are not bars.

So for an accepted pair of photographs that both may show a frame (a plain, flat rim: `plain`), the frame in each
aligned region is found (`frame_mask`: plain pixels connected to the region's border) and, where the two share at
least MIN_SHARED of the region, the evidence is measured again over the rest, less a margin of EDGE pixels where the
frame's edge still dominates the fine detail: the pair (rule "frame") must reach MIN_INSIDE_SIMILARITY there and the
verifier's detail threshold. A copy agrees inside as it does outside; two pictures framed alike do not: on the same
52 photographs, 0 pairs in the disc and 1 in the mat are accepted now, and the real-photo bench, where every picture
is also seen through one disc, went from 87 false pairs (largest cluster 168) to 2 (16), recall unchanged. Graphics
(letters, logos on paper), whose plain background is part of the design, are left to the shape check
(finetuner/dedup/shape.py).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from finetuner.dedup.correlation import evidence_inside

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


class Plain(NamedTuple):
    """How plain each thumbnail is, measured against its frame colour (the median of its outer RIM rows and columns)."""

    share: np.ndarray  # of the thumbnail within PLAIN_TOLERANCE of the frame colour
    spread: np.ndarray  # how far those plain pixels lie from it on average (a drawn background: under one grey level)
    rim: np.ndarray  # the share of the rim itself within PLAIN_TOLERANCE
    rim_spread: np.ndarray  # how far those rim pixels lie from the frame colour on average
    colour: np.ndarray  # the frame colour


def plain(thumbs: np.ndarray) -> Plain:
    """`Plain` of each (n, h, w) grey thumbnail, in batches of CHUNK: a float copy of 15,000 thumbnails at once took
    6 s on this VM (fresh memory), the batches 0.15 s."""
    thumbs = np.asarray(thumbs)
    out = Plain(*(np.zeros(len(thumbs)) for _ in Plain._fields))
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
    return out


def frame_mask(region: np.ndarray, colour: float) -> np.ndarray:
    """Where a grey region shows its image's frame: plain pixels (within PLAIN_TOLERANCE of `colour`, with all 8
    neighbours plain too, so texture of a similar grey does not count, or inside a run of THIN_RUN plain pixels in a
    row or a column: an app window's canvas between its title bar and the picture) connected to the region's
    border."""
    near = (np.abs(np.asarray(region, np.float32) - colour) <= PLAIN_TOLERANCE).astype(np.uint8)
    solid = cv2.erode(near, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    for run in (np.ones((1, THIN_RUN), np.uint8), np.ones((THIN_RUN, 1), np.uint8)):
        solid |= cv2.erode(near, run, borderType=cv2.BORDER_REPLICATE)
    _, labels = cv2.connectedComponents(solid, connectivity=4)
    rim = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.isin(labels, rim[rim > 0])


def inside_agreement(p: np.ndarray, q: np.ndarray, frame_p: float, frame_q: float) -> tuple[float, float, float]:
    """(similarity, detail similarity, share left out) of two aligned grey regions of one size over the pixels that
    are not frame in both (`frame_mask`, with frame colours `frame_p`, `frame_q`), less EDGE pixels around it. The
    share left out is 0 (and the similarities NaN) where the regions share less than MIN_SHARED of frame: there is
    no frame to see through."""
    p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
    shared = frame_mask(p, frame_p) & frame_mask(q, frame_q)
    if shared.mean() < MIN_SHARED:
        return float("nan"), float("nan"), 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE + 1, 2 * EDGE + 1))
    inside = cv2.dilate(shared.astype(np.uint8), kernel) == 0
    if inside.mean() < MIN_INSIDE:
        return 0.0, 0.0, float(1.0 - inside.mean())
    sim, det = evidence_inside(p, q, inside)  # a caption band may disagree, as in the verifier's correlation
    return sim, det, float(1.0 - inside.mean())
