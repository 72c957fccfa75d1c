"""The multi-index a radius search over 64-bit hashes runs on (finetuner/dedup/neighbours.py).

The 64 bits are cut into m chunks (a `Plan`); two hashes within radius r agree within radius t_i on some chunk i
whenever sum(t_i) >= r - m + 1 (the general pigeonhole principle, Qin et al., "GPH", 2018). `choose_plan` picks m by
a cost model: the probes each query makes (every XOR mask of weight <= t_i, `masks_of_weight_at_most`) plus the
candidates it expects, dearer in a table too big for the caches. `ChunkIndex` groups the items by one chunk's key:
a direct-address table for chunks up to TABLE_MAX_BITS wide, a sorted array for wider ones; `expand` turns the runs
a probe lands on into candidate pairs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

BITS = 64
TABLE_MAX_BITS = 24  # chunks up to 2^24 keys use a direct-address table (64 MiB of int32 at most); wider ones sort
# A direct table holds a run start (int64) and a count (int32) per key. Past a few MiB (2^21 keys: 24 MiB) most of
# its probes, and the candidates they find, miss the caches: each costs about PROBE_MISS times one in a 16-bit table
# (768 KiB). Counted as cheap, the plan went to three chunks of 21-22 bits from 0.9M hashes at radius 12 (the views
# of 100,000 images): 19.5 s against 5.3 s for four chunks of 16 bits; 0.6M 12.7 s against 2.8 s; 2M 51.5 s against
# 18.1 s; at radius 8, 1M 2.3 s against 1.6 s and 2M 4.6 s against 3.9 s (random hashes, 2 threads; the model's
# ratios with PROBE_MISS 5: 4.9, 6.5, 3.0, 1.6, 1.0). The one case it loses: 0.3M at radius 8, 1.13 s against 1.01.
CACHED_TABLE_BYTES = 4 * 2**20
TABLE_BYTES_PER_KEY = 12
PROBE_MISS = 5.0


@dataclass(frozen=True)
class Plan:
    """How the 64 bits are cut: `widths[i]` bits per chunk (low chunks first), probed up to `radii[i]` bits."""

    widths: tuple[int, ...]
    radii: tuple[int, ...]


def make_plan(n: int, radius: int, m: int) -> Plan:
    """Cut 64 bits into m near-equal chunks with per-chunk radii summing to radius - m + 1 (the GPH bound)."""
    base, extra = divmod(BITS, m)
    widths = tuple(base + (1 if i < extra else 0) for i in range(m))
    total = radius - m + 1
    # Wider chunks take the larger radii: their buckets are sparser, so extra probes there cost fewest candidates.
    radii = tuple(total // m + (1 if i < total % m else 0) for i in range(m))
    return Plan(widths, radii)


def plan_cost(n: int, plan: Plan) -> float:
    """Probes plus expected candidates (uniform hashes), the two costs the search pays per query; both count
    PROBE_MISS times in a table too big for the caches."""
    cost = 0.0
    for width, r in zip(plan.widths, plan.radii):
        probes = sum(math.comb(width, k) for k in range(r + 1))
        missed = PROBE_MISS if TABLE_BYTES_PER_KEY << width > CACHED_TABLE_BYTES else 1.0
        cost += n * probes * (1.0 + n / 2.0**width) * missed
    return cost


def choose_plan(n: int, radius: int) -> Plan:
    """The cheapest chunking for n hashes at this radius (m <= radius + 1 keeps every chunk radius >= 0)."""
    plans = [make_plan(n, radius, m) for m in range(1, min(radius + 1, 16) + 1)]
    return min(plans, key=lambda plan: plan_cost(n, plan))


def masks_of_weight_at_most(width: int, r: int) -> np.ndarray:
    """Every `width`-bit XOR mask with at most r bits set (0 first)."""
    masks = [0]
    for k in range(1, r + 1):
        masks.extend(sum(1 << b for b in combo) for combo in itertools.combinations(range(width), k))
    return np.array(masks, dtype=np.uint64)


class ChunkIndex:
    """Items grouped by one chunk's key: `order` lists item ids sorted by key; a key's run is start..start+count.

    Direct tables (chunks up to TABLE_MAX_BITS wide) also hold each key's first occupant's full hash, so most
    probes are verified with one random read and a popcount, never touching ids until a pair is confirmed. An
    empty slot holds a sentinel whose chunk bits are the slot's complement, too far from any prober to pass.
    """

    def __init__(self, keys: np.ndarray, width: int, shift: int, hashes: np.ndarray, first: bool = True):
        self.order = key_order(keys, width)
        self.sorted_keys = sorted_keys = keys[self.order]
        self.sorted_hashes = hashes[self.order]
        self.direct = width <= TABLE_MAX_BITS
        if self.direct:
            counts = np.bincount(keys, minlength=1 << width)
            self.occupied = counts > 0
            self.multi = counts > 1
            self.count = counts.astype(np.int32)
            self.start = np.cumsum(counts) - counts
        if self.direct and first:  # the first-occupant tables (numpy probing only)
            slots = np.arange(1 << width, dtype=np.int64)
            # The sentinel's chunk bits sit where this chunk lives in the hash, so they differ from every key's.
            self.first_hash = (~slots & ((1 << width) - 1)).astype(np.uint64) << np.uint64(shift)
            self.first_id = np.full(1 << width, -1, dtype=np.int64)
            head = self.start[self.occupied]
            self.first_id[self.occupied] = self.order[head]
            self.first_hash[self.occupied] = hashes[self.order[head]]
        if not self.direct:
            self.unique, first, counts = np.unique(sorted_keys, return_index=True, return_counts=True)
            self.ustart, self.ucount = first.astype(np.int64), counts.astype(np.int32)

    def lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions of present queries, run start, run count) for the queries whose key is stored."""
        if self.direct:
            hit = np.flatnonzero(self.occupied[queries])
            found = queries[hit]
            return hit, self.start[found], self.count[found]
        pos = np.minimum(np.searchsorted(self.unique, queries), len(self.unique) - 1)
        hit = np.flatnonzero(self.unique[pos] == queries)
        return hit, self.ustart[pos[hit]], self.ucount[pos[hit]]

    def same_key_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pair of items sharing a key (mask 0), as (i, j) with i < j."""
        n = len(self.sorted_keys)
        starts = np.r_[0, np.flatnonzero(np.diff(self.sorted_keys)) + 1]
        counts = np.diff(np.r_[starts, n])
        multi = counts > 1
        return _expand_runs(starts[multi], counts[multi], self.order)


def key_order(keys: np.ndarray, width: int) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` for keys of at most `width` bits. Up to 32 bits it is one or two passes of
    numpy's radix sort, which it uses for 16-bit integers only: 190,000 keys of 16 bits in 0.7 ms, 11 ms as int64
    (a grown collection's search builds 24 such indexes)."""
    if width <= 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    if width <= 32:  # low half first, then the high half, stably: the order of the whole key
        low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
        return low[np.argsort((keys[low] >> 16).astype(np.uint16), kind="stable")]
    return np.argsort(keys, kind="stable")


def expand(query_ids: np.ndarray, start: np.ndarray, count: np.ndarray, order: np.ndarray) -> tuple:
    """All (query, stored item) candidate pairs from runs given by start/count (mostly runs of one: fast path)."""
    single = count == 1
    left, right = [query_ids[single]], [order[start[single]]]
    if not single.all():
        many = ~single
        qs, ss, cs = query_ids[many], start[many], count[many]
        total = int(cs.sum())
        offsets = np.arange(total) - np.repeat(np.cumsum(cs) - cs, cs)
        left.append(np.repeat(qs, cs))
        right.append(order[np.repeat(ss, cs) + offsets])
    return np.concatenate(left), np.concatenate(right)


def _expand_runs(starts: np.ndarray, counts: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j), i < j, within each run of `order` (a stable sort keeps ids ascending inside a run)."""
    lefts, rights = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for size in np.unique(counts).tolist():
        run_starts = starts[counts == size]
        a, b = np.triu_indices(size, k=1)
        lefts.append(order[(run_starts[:, None] + a[None, :]).ravel()])
        rights.append(order[(run_starts[:, None] + b[None, :]).ravel()])
    return np.concatenate(lefts), np.concatenate(rights)


def probes_per_item(plan: Plan) -> int:
    return sum(math.comb(w, k) for w, r in zip(plan.widths, plan.radii) for k in range(r + 1))
