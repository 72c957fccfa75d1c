"""Candidates among near-blank images by their colour layout (finetuner/dedup/candidates.py adds them to the hash and
view candidates): a plain field's hash bits are its sensor noise's, so its copies are proposed by how its 4x4 colour
layout lies, as it is or mirrored, and the verifier's pixel rule for near-blank images decides them
(finetuner/dedup/low_detail.py).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from finetuner.dedup.align import resized
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.neighbours import hamming
from finetuner.dedup.trims import trim_boxes
from finetuner.dedup.view_search import Candidates, subset

# Near-blank images proposed by their colour layout (`plain_candidates`): each one's PLAIN_NEAREST nearest among the
# others, as they are or mirrored, whose 4x4 colour layouts differ by at most PLAIN_RADIUS levels in every block and
# channel. A plain field's hash bits are its sensor noise's, which a JPEG copy smooths away: among 300 smooth fields
# and their copies, 28 of 150 re-encoded copies and 7 of 150 PNG ones were no view's candidates (their layouts lie
# within 2 levels), and a letterboxed copy's trim view is that noise too. A brightened or recoloured field is another
# shade, which the pixel rule refuses anyway
PLAIN_NEAREST = 5
PLAIN_RADIUS = 12.0
PLAIN_SIGNAL = "plain-colour"


def plain_candidates(
    thumbs: np.ndarray,
    images: np.ndarray,
    low_detail: np.ndarray,
    trimmed: np.ndarray,
    full: np.ndarray,
    taken: Candidates,
    low_info_std: float,
    at: np.ndarray | None = None,
) -> Candidates:
    """Pairs of near-blank images near in colour layout (PLAIN_NEAREST, PLAIN_RADIUS) that `taken` lacks, with signal
    PLAIN_SIGNAL and their `full` view hashes' distance. Near-blank: `low_detail`, or `trimmed` (bars or a mat
    stripped: its trim view differs from its full one) with a content inside whose 32x32 grey std is under
    `low_info_std`, laid out as that content. `images`: the colour (or grey) thumbnails, `thumbs` the grey ones;
    image k's at row at[k] (default k; only the near-blank and trimmed images' rows are read). Searched afresh on
    every run (a k-d tree over the near-blank images alone: milliseconds for thousands), so a grown collection
    proposes what a cold run does."""
    at = np.arange(len(low_detail)) if at is None else at
    rows, layout = _plain_layouts(thumbs, images, low_detail, trimmed, low_info_std, at)
    if len(rows) < 2:
        return subset(taken, np.zeros(len(taken.i), bool))
    tree = cKDTree(layout.reshape(len(rows), -1))
    k = min(PLAIN_NEAREST + 1, len(rows))
    found = []
    for query in (layout, layout[:, :, ::-1]):  # as they are, and mirrored
        dist, nearest = tree.query(query.reshape(len(rows), -1), k=k, p=np.inf, distance_upper_bound=PLAIN_RADIUS)
        near = np.isfinite(dist.reshape(len(rows), -1))
        ends = np.stack([np.repeat(np.arange(len(rows)), k), nearest.reshape(-1)], axis=1)[near.ravel()]
        found.append(ends[ends[:, 0] != ends[:, 1]])
    pairs = np.unique(np.sort(rows[np.concatenate(found)], axis=1), axis=0).reshape(-1, 2)
    n = len(low_detail)
    fresh = ~np.isin(pairs[:, 0].astype(np.int64) * n + pairs[:, 1], taken.i.astype(np.int64) * n + taken.j)
    i, j = pairs[fresh, 0], pairs[fresh, 1]
    signal = np.empty(len(i), object)
    signal[:] = PLAIN_SIGNAL  # one string shared by every pair (signals.signal_codes)
    return Candidates(i, j, signal, hamming(full[i], full[j]))


def _plain_layouts(thumbs, images, low_detail, trimmed, low_info_std: float, at) -> tuple[np.ndarray, np.ndarray]:
    """(rows, (len(rows), 4, 4[, 3]) float32 layouts) of the near-blank images `plain_candidates` searches: the
    low-detail ones whole, the trimmed ones whose content is near-blank by that content (its box on `images` rounded
    inward, so no bar blends in)."""
    flat, barred = np.flatnonzero(low_detail), np.flatnonzero(~low_detail & trimmed)
    side = (4, 4)
    layouts = [resized(image, side) for image in np.asarray(images[at[flat]])] if len(flat) else []
    plain = []
    if len(barred):
        grey, colour = np.asarray(thumbs[at[barred]]), np.asarray(images[at[barred]])
        scale = colour.shape[1] / THUMB
        for r, image, shown, (top, bottom, left, right) in zip(
            barred.tolist(), grey, colour, trim_boxes(grey).tolist()
        ):
            inner = (math.ceil(top * scale), int(bottom * scale), math.ceil(left * scale), int(right * scale))
            if inner[1] <= inner[0] or inner[3] <= inner[2]:
                continue
            if resized(image[top:bottom, left:right], (32, 32)).std() < low_info_std:
                plain.append(r)
                layouts.append(resized(shown[inner[0] : inner[1], inner[2] : inner[3]], side))
    rows = np.r_[flat, np.array(plain, np.int64)]
    return rows, np.stack(layouts).astype(np.float32) if layouts else np.zeros((0, *side), np.float32)
