"""Candidates from the views (finetuner/dedup/views.py): every view of every image in one exact radius search.

`view_candidates` stacks the views' 64-bit hashes (a low-detail image takes part with its whole-frame views only, an
image with nothing to trim or cut without its trim and square views) and searches them with multi-index hashing
(finetuner/dedup/neighbours.py), so the cost stays near-linear in the number of images. Turned views are searched
against whole frames alone, tilted ones against centre crops too (views.TILT_CENTRE). Each image pair keeps its closest
view pair (`Candidates.signal`, e.g. "full~crop90"), taken as the search hands its pairs on, so memory follows the image
pairs, not the view pairs (in a crowded collection one image pair is found through dozens). `nearest_per_image` keeps
each image's closest candidates. Used by finetuner/dedup/candidates.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from finetuner.dedup.neighbours import load_compiled, radius_pair_parts, radius_pairs_between_parts, uses_compiled
from finetuner.dedup.views import (
    CORNERS,
    DETAIL_VIEWS,
    TILT_CENTRE,
    TILTS,
    TURNED,
    VIEWS,
    allowed_combos,
    view_margin,
)

COMPACT_AT = 4_000_000  # closest-view keys kept from earlier blocks before they are reduced again (32 MB)


@dataclass(frozen=True)
class Candidates:
    """Image pairs i < j worth verifying, with the closest view pair (`signal`, e.g. "full~crop90") and its distance."""

    i: np.ndarray
    j: np.ndarray
    signal: np.ndarray
    distance: np.ndarray


def view_candidates(
    views: dict[str, np.ndarray],
    low_detail: np.ndarray,
    radius: int,
    workers: int = 1,
    per_image: int = 0,
    new: np.ndarray | None = None,
) -> Candidates:
    """Image pairs with some view of one within `radius` bits of some view of the other, closest view pair each.

    All views of all images go into one search; a low-detail image takes part with its full and mirror views only,
    so flat images do not multiply chance matches. Ties between view pairs go to view order. With `per_image` > 0,
    a pair is kept only when it is among the `per_image` closest of one of its two images: in a crowded collection
    (letters of 100 typefaces) every image is near hundreds of others, and the copies are the closest of them.
    With `new` (a mask over the images), only pairs with at least one new image are searched for: a grown collection
    whose old pairs are known pays for its new images only.
    """
    names = [v for v in VIEWS if v in views]
    n = len(low_detail)
    owner, kind, stacked = [], [], []
    for k, name in enumerate(names):
        members = np.flatnonzero(~low_detail) if name in DETAIL_VIEWS else np.arange(n)
        if name in ("trim", "square") and "full" in views:  # nothing trimmed or cut: the full view finds all it
            members = members[views[name][members] != views["full"][members]]  # would, and more
        owner.append(members)
        kind.append(np.full(len(members), k))
        stacked.append(views[name][members])
    owner, kind, stacked = np.concatenate(owner), np.concatenate(kind), np.concatenate(stacked)
    # a turned frame or a corner is only ever compared with a whole one: searched against those alone
    to_whole = np.isin(kind, [k for k, name in enumerate(names) if name in TURNED or name in CORNERS])
    whole = np.isin(kind, [k for k, name in enumerate(names) if name in ("full", "mirror")])
    blocks = _searched(stacked, owner, np.flatnonzero(~to_whole), radius, workers, new)
    if to_whole.any():
        between = _between(stacked, owner, np.flatnonzero(to_whole), np.flatnonzero(whole), radius, workers, new)
        blocks = itertools.chain(blocks, between)
    # a tilted frame against the centre crops too: a copy turned with the canvas's corners showing
    tilted = np.isin(kind, [k for k, name in enumerate(names) if name in TILTS])
    centre = np.isin(kind, [k for k, name in enumerate(names) if name == TILT_CENTRE])
    if tilted.any() and centre.any():
        between = _between(stacked, owner, np.flatnonzero(tilted), np.flatnonzero(centre), radius, workers, new)
        blocks = itertools.chain(blocks, between)
    margin = _margins(names)
    per_pair = (65 + int(margin.max())) * len(names) ** 2  # a key: (pair, distance, view pair); a tilt ranks farther
    code, rest = np.divmod(_closest(blocks, stacked, owner, kind, names, n, per_pair), per_pair)
    dist, combo = np.divmod(rest, len(names) ** 2)
    dist = dist - margin[combo]
    label = np.array([f"{x}~{y}" for x in names for y in names], dtype=object)
    i, j = np.divmod(code, n)
    found = Candidates(i=i, j=j, signal=label[combo], distance=dist)
    return subset(found, nearest_per_image(found, n, per_image)) if per_image > 0 else found


def _searched(stacked, owner, rows, radius: int, workers: int, new) -> Iterator[np.ndarray]:
    """Pairs of `rows` of the stacked view hashes within `radius` (two views of one image never pair; with `new`, only
    pairs with a new image's view), as row pairs of the whole stack, in blocks as the search finds them."""
    if new is None:
        m = len(rows)
        for codes in radius_pair_parts(stacked[rows], radius, workers, groups=owner[rows]):
            yield rows[np.stack([codes // m, codes % m], axis=1)]
    else:
        queries = np.flatnonzero(new[owner[rows]])
        m = len(rows)
        for codes in radius_pairs_between_parts(stacked[rows][queries], stacked[rows], radius, workers):
            yield rows[np.stack([queries[codes // m], codes % m], axis=1)]


def _closest(blocks: Iterable[np.ndarray], stacked, owner, kind, names: list[str], n: int, per_pair: int) -> np.ndarray:
    """Each image pair's closest allowed view pair, as sorted keys (i * n + j, distance, view pair) in one int64
    (`per_pair`: the key's span per image pair), from blocks of row pairs reduced as they come: memory follows the
    image pairs, not the view pairs. In a crowded collection one image pair is found through dozens of view pairs
    (2,000 frames of one static scene: 57M view pairs, 2M image pairs; 6.3 GB when they were all kept at once)."""
    v = len(names)
    allowed_table = allowed_combos(names)
    tilt = _margins(names)  # a tilted view pair only where no other lies within its margin (views.view_margin)
    kept, size, bound = [], 0, COMPACT_AT
    for pairs in blocks:
        a, b = owner[pairs[:, 0]], owner[pairs[:, 1]]
        other = a != b
        pairs, a, b = pairs[other], a[other], b[other]
        dist = np.bitwise_count(stacked[pairs[:, 0]] ^ stacked[pairs[:, 1]]).astype(np.int64)
        swap = a > b
        i, j = np.where(swap, b, a), np.where(swap, a, b)
        ka, kb = kind[pairs[:, 0]], kind[pairs[:, 1]]
        combo = np.where(swap, kb * v + ka, ka * v + kb)  # (view of image i, view of image j)
        allowed = allowed_table[combo]
        # One int64 sort key (pair, distance, view pair): a single sort instead of a multi-key lexsort of millions.
        combo = combo[allowed]
        key = (i[allowed] * n + j[allowed]) * per_pair + (dist[allowed] + tilt[combo]) * v * v + combo
        kept.append(_first_per_pair(key, per_pair))
        size += len(kept[-1])
        if size > bound:  # the same image pairs found again in later blocks: keep each pair's closest once
            kept = [_first_per_pair(np.concatenate(kept), per_pair)]
            size = len(kept[0])
            bound = max(COMPACT_AT, 2 * size)
    return _first_per_pair(np.concatenate([np.zeros(0, np.int64), *kept]), per_pair)


def _margins(names: list[str]) -> np.ndarray:
    """Per view pair (x * len(names) + y), the bits its distance counts more (views.view_margin)."""
    return np.array([view_margin(x, y) for x in names for y in names], np.int64)


def _first_per_pair(key: np.ndarray, per_pair: int) -> np.ndarray:
    """The smallest key of each image pair (key // per_pair), sorted."""
    key = np.sort(key)
    pair = key // per_pair
    return key[np.r_[True, pair[1:] != pair[:-1]]] if len(key) else key


def _between(stacked, owner, queries, targets, radius: int, workers: int, new) -> Iterator[np.ndarray]:
    """Pairs (query row, target row) of the stacked view hashes within `radius`, in blocks as the search finds them;
    with `new`, only those with a new image on either side."""
    sides = (
        [(queries, targets)]
        if new is None
        else [
            (queries[new[owner[queries]]], targets),
            (queries[~new[owner[queries]]], targets[new[owner[targets]]]),
        ]
    )
    for q, t in sides:
        for codes in radius_pairs_between_parts(stacked[q], stacked[t], radius, workers):
            yield np.stack([q[codes // len(t)], t[codes % len(t)]], axis=1)


def search_loader(n_contents: int, n_new: int, radius: int) -> Callable[[], None] | None:
    """`load_compiled` when the view search over `n_contents` images, `n_new` of them new (all: a cold search), at
    `radius` will run the compiled loop, so a caller can load it while it waits on decoding; else None."""
    queries = n_new * len(VIEWS) if n_new < n_contents else None
    if n_new and uses_compiled(n_contents * len(VIEWS), radius, queries):
        return load_compiled
    return None


def nearest_per_image(found: Candidates, n: int, per_image: int, key: np.ndarray | None = None) -> np.ndarray:
    """Which pairs are among each image's `per_image` closest, for either image: by `key` (lower is closer; default
    the hash distance), ties by the other image's index. A boolean mask over `found`."""
    k = len(found.i)
    ends = np.r_[found.i, found.j]
    others = np.r_[found.j, found.i]
    key = found.distance if key is None else key
    values, level = np.unique(key, return_inverse=True)  # the key as integers in the same order
    m = max(len(values), 1)
    if n * n * m < 2**62:  # (image, key, other) as one int64: one sort, not lexsort's three (2.0 s, not 6.8 s, at 8M)
        order = np.argsort((ends * m + np.r_[level, level].ravel()) * n + others, kind="stable")
    else:
        order = np.lexsort((others, np.r_[key, key], ends))
    start = np.searchsorted(ends[order], np.arange(n))
    rank = np.empty(2 * k, dtype=np.int64)
    rank[order] = np.arange(2 * k) - start[ends[order]]
    return (rank[:k] < per_image) | (rank[k:] < per_image)


def subset(found: Candidates, keep: np.ndarray) -> Candidates:
    return Candidates(found.i[keep], found.j[keep], found.signal[keep], found.distance[keep])
