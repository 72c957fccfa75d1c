"""Layers of a template that two aligned regions both show and that no frame colour found: the surround check
(finetuner/dedup/surround.py) compares a pair inside its shared frame without them, and finds the frame of two
regions framed apart with `flat_alike`. Frames of one image are finetuner/dedup/frames.py.

A print may be letterboxed: black bars and slivers of the table reach the rim, and the print's border lies behind a
blended line, turned, where no one level holds the band `frames.inner_layer` reads, and no rim shows its colour for
`frames.nested_tones`. Its wide foot was then compared as content: a foggy pier and boats at sunset agreed at 0.85
inside. Since 2026-12-07 a flat piece alike in both regions, within LAYER_BAND[1] pixels of the shared frame, of one
tone no frame colour is, and walled off from the rest of the region (the pixels two out from it, the frame not counted,
at least TEMPLATE_WALL grey levels off its tone) is a layer of the template too (`template_layers`), and the evidence is
measured again without it; the lower similarity counts. A smooth picture's flat parts, however alike in its copy, shade
into the rest of it and are not walled. On the print set 2 of its 4 false pairs went (largest cluster 42 to 28); the
thirteen other quality sets gave the same pairs. Framed apart, where the frame is found only where both regions are flat
and alike (`flat_alike`: a matted print's wide foot), its colours going on from there in both regions, walled off alike,
are frame too (`frame_grown`: the border's thin strips along the picture, flat nowhere, through whose edges two dim
pictures agreed at 0.88); one more false pair went. And where nothing of a frame colour is alike (a print brightened to
a grey border against a white one), a layer both show in tones of their own, next to a frame either shows, flat in both
and grown into each one's tone, walled off in both, is the frame they share (`toned_layers`): the last false pair went
(largest cluster 28 to 14).
"""

from __future__ import annotations

import cv2
import numpy as np

from finetuner.dedup.frames import PLAIN_TOLERANCE, near_frame

FLAT_RANGE = 4.0  # grey levels a 3x3 neighbourhood spans at most to be flat (`flat_alike`)
MIN_PIECE = 24  # pixels of one flat piece alike in both regions (less: specks of texture)
# A layer of the template both pictures lie in that no frame colour found (a print's white border where only black
# bars and slivers of table reach the rim: `template_layers`): a flat piece alike in both, within LAYER_BAND[1] pixels
# of the shared frame, of one tone in each (within PLAIN_TOLERANCE), and walled: the pixels two out from it lie at
# least TEMPLATE_WALL grey levels off that tone (median), where a smooth picture's flat parts shade into the rest of it
TEMPLATE_WALL = 2 * PLAIN_TOLERANCE


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


def _flat_pieces_near(flat: np.ndarray, frame: np.ndarray) -> list[np.ndarray]:
    """The 4-connected pieces of `flat` of MIN_PIECE pixels or more that come within LAYER_BAND[1] of `frame`."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat.astype(np.uint8), connectivity=4)
    reaching = np.zeros(count, bool)
    reaching[labels[near_frame(frame)]] = True
    return [labels == label for label in np.flatnonzero(reaching[1:] & (stats[1:, cv2.CC_STAT_AREA] >= MIN_PIECE)) + 1]


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
