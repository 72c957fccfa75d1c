"""Candidate signals that survive real edits: perceptual hashes of several views of each image, searched together.

A plain phash misses the copies that leak most in real collections: a crop moves every DCT coefficient, a mirror
flips the sign of half of them, and letterbox bars or a caption change the frame the hash is taken over. Each view
below undoes one kind of edit before hashing, so the copy and the original meet in at least one view pair:
- `full`: the whole frame; `mirror`: the frame flipped left-right (the same DCT with odd columns negated);
- `crop90`, `crop80`: centre crops keeping 90% / 80% of each side (borders cropped away, a caption bar trimmed);
- `trim`: the content inside uniform borders (letterbox / pillarbox bars, a plain mat) stripped before hashing.
Views are computed from a 64x64 grey thumbnail (aspect squashed: a per-axis scale, which the verifier undoes the
same way), so they can be recomputed from the cached thumbnail. `view_candidates` stacks every view of every image
into one multi-index search (finetuner/neighbours.py), so the cost stays near-linear in the number of images.
Pure functions; used by tasks/dedup.py and the verifier (finetuner/verify.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from finetuner.hashing import THUMB, bits_to_uint64, phash_bits
from finetuner.neighbours import radius_pairs

VIEWS = ("full", "mirror", "crop90", "crop80", "left90", "right90", "top90", "bottom90", "trim")
DETAIL_VIEWS = VIEWS[2:]  # skipped for low-detail images: they add only chance candidates
FLAT_STD = 3.0  # grey levels: an edge row or column flatter than this is a bar or mat
BAR_TOLERANCE = 10.0  # grey levels: ...when its mean is this close to the outermost row/column's
MAX_TRIM = 0.3  # never strip more than this share of a side from one edge


def _edge_run(lines: np.ndarray) -> int:
    """How many leading rows of `lines` (rows x pixels, float) form a flat bar of one shade."""
    limit = int(len(lines) * MAX_TRIM)
    flat = (lines.std(axis=1) < FLAT_STD) & (np.abs(lines.mean(axis=1) - lines[0].mean()) < BAR_TOLERANCE)
    run = int(np.argmin(flat)) if not flat.all() else len(flat)
    return min(run, limit)


def trim_box(thumb: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the content inside uniform borders; the whole frame when there are none."""
    grey = thumb.astype(np.float32)
    top = _edge_run(grey)
    bottom = len(grey) - _edge_run(grey[::-1])
    left = _edge_run(grey.T)
    right = grey.shape[1] - _edge_run(grey.T[::-1])
    if bottom - top < THUMB // 4 or right - left < THUMB // 4:  # a near-blank frame: nothing to trim towards
        return 0, THUMB, 0, THUMB
    return top, bottom, left, right


def _region_hash(thumbs: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """phash-style 64-bit hash of a region of each thumbnail, resized to 32x32."""
    if len(thumbs) == 0:
        return np.zeros(0, dtype=np.uint64)
    regions = np.stack([cv2.resize(t[a:b, c:d].astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
                        for t, (a, b, c, d) in zip(thumbs, boxes)])
    return bits_to_uint64(phash_bits(regions))


def view_box(view: str, thumb: np.ndarray) -> tuple[tuple[int, int, int, int], bool]:
    """((top, bottom, left, right), mirrored) of a view on a 64x64 thumbnail."""
    if view == "trim":
        return trim_box(thumb), False
    m = {"crop90": round(THUMB * 0.05), "crop80": round(THUMB * 0.1)}.get(view, 0)
    cut = round(THUMB * 0.1)  # 10% off one side: the view of the original that a one-sided crop shows
    boxes = {"left90": (0, THUMB, 0, THUMB - cut), "right90": (0, THUMB, cut, THUMB),
             "top90": (0, THUMB - cut, 0, THUMB), "bottom90": (cut, THUMB, 0, THUMB)}
    return boxes.get(view, (m, THUMB - m, m, THUMB - m)), view == "mirror"


def view_hashes(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """Every view's 64-bit hash per thumbnail, as uint64 arrays keyed by view name."""
    out = {}
    for name in VIEWS:
        boxes = [view_box(name, t)[0] for t in thumbs]
        out[name] = _region_hash(thumbs[:, :, ::-1] if name == "mirror" else thumbs, boxes)
    return out


@dataclass(frozen=True)
class Candidates:
    """Image pairs i < j worth verifying, with the closest view pair (`signal`, e.g. "full~crop90") and its distance."""

    i: np.ndarray
    j: np.ndarray
    signal: np.ndarray
    distance: np.ndarray


def view_candidates(views: dict[str, np.ndarray], low_detail: np.ndarray, radius: int, workers: int = 1,
                    per_image: int = 0) -> Candidates:
    """Image pairs with some view of one within `radius` bits of some view of the other, closest view pair each.

    All views of all images go into one search; a low-detail image takes part with its full and mirror views only,
    so flat images do not multiply chance matches. Ties between view pairs go to view order. With `per_image` > 0,
    a pair is kept only when it is among the `per_image` closest of one of its two images: in a crowded collection
    (letters of 100 typefaces) every image is near hundreds of others, and the copies are the closest of them.
    """
    names = [v for v in VIEWS if v in views]
    n = len(low_detail)
    owner, kind, stacked = [], [], []
    for k, name in enumerate(names):
        members = np.flatnonzero(~low_detail) if name in DETAIL_VIEWS else np.arange(n)
        owner.append(members)
        kind.append(np.full(len(members), k))
        stacked.append(views[name][members])
    owner, kind, stacked = np.concatenate(owner), np.concatenate(kind), np.concatenate(stacked)
    pairs = radius_pairs(stacked, radius, workers)
    a, b = owner[pairs[:, 0]], owner[pairs[:, 1]]
    other = a != b
    pairs, a, b = pairs[other], a[other], b[other]
    dist = np.bitwise_count(stacked[pairs[:, 0]] ^ stacked[pairs[:, 1]]).astype(np.int64)
    i, j = np.minimum(a, b), np.maximum(a, b)
    ka, kb = kind[pairs[:, 0]], kind[pairs[:, 1]]
    first = np.where(a < b, ka, kb)  # the view of image i, then of image j
    second = np.where(a < b, kb, ka)
    order = np.lexsort((second, first, dist, j, i))
    i, j, dist, first, second = i[order], j[order], dist[order], first[order], second[order]
    head = np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])] if len(i) else np.zeros(0, bool)
    label = np.array([f"{x}~{y}" for x in names for y in names], dtype=object).reshape(len(names), len(names))
    found = Candidates(i=i[head], j=j[head], signal=label[first[head], second[head]], distance=dist[head])
    return nearest_per_image(found, n, per_image) if per_image > 0 else found


def nearest_per_image(found: Candidates, n: int, per_image: int) -> Candidates:
    """The pairs among each image's `per_image` closest (ties by the other image's index), for either image."""
    k = len(found.i)
    ends = np.r_[found.i, found.j]
    others = np.r_[found.j, found.i]
    order = np.lexsort((others, np.r_[found.distance, found.distance], ends))
    start = np.searchsorted(ends[order], np.arange(n))
    rank = np.empty(2 * k, dtype=np.int64)
    rank[order] = np.arange(2 * k) - start[ends[order]]
    keep = (rank[:k] < per_image) | (rank[k:] < per_image)
    return Candidates(found.i[keep], found.j[keep], found.signal[keep], found.distance[keep])
