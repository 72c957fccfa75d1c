"""Every pair of 64-bit hashes within a Hamming radius, exactly, without comparing all pairs.

`radius_pairs(hashes, radius)` returns the same pair set as brute force (`popcount(h[i] ^ h[j]) <= radius` over all
i < j) using multi-index hashing with the general pigeonhole principle: split the 64 bits into m chunks; if two
hashes differ in at most r bits, then some chunk i differs in at most t_i bits whenever sum(t_i) >= r - m + 1
(Qin et al., "GPH", 2018). For each chunk every stored key is probed with every XOR mask of weight <= t_i in a
direct-address table (or a sorted array for wide chunks); candidates are verified with a vectorised popcount.
m is chosen per call by a cost model (probes + expected candidates), so 2,000 or 1,000,000 hashes both run fast.
`radius_pair_parts` hands the same pairs on in parts as they are found, for a caller that reduces them as they come
(the view search: in a crowded collection one image pair is found through dozens of view pairs).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

BITS = 64
# Searches probing at least this many slots (n / 2 items x masks) run the compiled loop (finetuner/dedup/probing.py):
# 4.5x faster than numpy on the 20k view search (1.5 s vs 6.1 s), but numba's import and first call cost ~1.5 s
# per process, more than a whole 2k-image search (10M probes, 0.3 s) takes in numpy.
COMPILED_MIN_PROBES = 40_000_000
# The search from new items only (radius_pairs_between) runs it from 2M probes: 9,000 new views against 189,000 at
# radius 12 take 0.10 s compiled, 0.41 s in numpy. The ~0.4 s numba costs a fresh process (import, LLVM start,
# cache load) is paid while new images decode (`load_compiled`), so the grown collection's search gains it all.
BETWEEN_COMPILED_MIN_PROBES = 2_000_000
# ...and a search whose first chunk already pairs this many items by a shared key runs it whatever its probe count: a
# crowded collection (frames of one static scene, letters of many typefaces) fills a few keys with most items, and the
# numpy probing materialises every pair of a key's items once per chunk. 2,000 frames of one scene: 1.6M such pairs
# (67x what random hashes give), 46 s and 5.9 GB in numpy, 9.8 s and 3.4 GB compiled; the glyph set: 0.84M, 2.5-5.0 s
# vs 1.3-2.3 s; 2,000 and 10,000 photos: 44k and 175k.
CROWDED_KEY_PAIRS = 500_000
SLICES_PER_WORKER = 16  # slices of the items per thread in the compiled search; each slice's pairs go on when done
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


class _ChunkIndex:
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


def _expand(query_ids: np.ndarray, start: np.ndarray, count: np.ndarray, order: np.ndarray) -> tuple:
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


def _probe(hashes: np.ndarray, index: _ChunkIndex, bit: int, masks: list[int], radius: int, fast: bool) -> np.ndarray:
    """Verified pairs (as i * n + j, i < j) whose chunk keys differ by one of `masks`, all with top bit `bit`.

    Only items with `bit` clear probe: of two keys differing by such a mask exactly one has it clear, so each
    unordered pair is probed once.
    """
    n = len(hashes)
    # Probing in key order makes `slots` sweep the tables almost sequentially (XOR with a mask keeps keys within
    # aligned blocks), which the prefetcher turns into streaming reads: ~3x faster than probing in item order.
    sel = np.flatnonzero(((index.sorted_keys >> bit) & 1) == 0)
    ids, qkeys, qhashes = index.order[sel], index.sorted_keys[sel], index.sorted_hashes[sel]
    found = [np.zeros(0, np.int64)]
    for mask in masks:
        slots = qkeys ^ qkeys.dtype.type(mask)
        if fast:
            hit = np.flatnonzero(np.bitwise_count(qhashes ^ index.first_hash[slots]) <= radius)
            found.append(_codes(ids[hit], index.first_id[slots[hit]], n))
            extra = np.flatnonzero(index.multi[slots])  # keys with more than one item: the rest of each run
            left, right = _expand(ids[extra], index.start[slots[extra]] + 1, index.count[slots[extra]] - 1, index.order)
        else:
            hit, start, count = index.lookup(slots)
            left, right = _expand(ids[hit], start, count, index.order)
        close = np.bitwise_count(hashes[left] ^ hashes[right]) <= radius
        found.append(_codes(left[close], right[close], n))
    return np.concatenate(found)


def _codes(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(left, right) * n + np.maximum(left, right)


def _top_bit_jobs(width: int, r: int) -> list[tuple[int, list[int]]]:
    """Non-zero masks of weight <= r grouped by their top bit, biggest groups first (for thread balance)."""
    groups: dict[int, list[int]] = {}
    for mask in masks_of_weight_at_most(width, r)[1:].tolist():
        groups.setdefault(mask.bit_length() - 1, []).append(mask)
    return sorted(groups.items(), key=lambda item: -len(item[1]))


def radius_pairs(
    hashes: np.ndarray, radius: int, workers: int = 1, plan: Plan | None = None, groups: np.ndarray | None = None
) -> np.ndarray:
    """All index pairs (i, j), i < j, with popcount(hashes[i] ^ hashes[j]) <= radius, sorted, shape (k, 2).

    Exact: equal to `brute_force_pairs`. With `groups` (an int per item), pairs within one group are left out (the
    views of one image). `workers` threads probe concurrently (numpy and the compiled loop release the GIL).
    """
    pairs = _gathered(radius_pair_parts(hashes, radius, workers, plan, groups), len(hashes))
    if groups is not None:
        groups = np.asarray(groups)
        pairs = pairs[groups[pairs[:, 0]] != groups[pairs[:, 1]]]
    return pairs


def radius_pair_parts(
    hashes: np.ndarray, radius: int, workers: int = 1, plan: Plan | None = None, groups: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """The pairs of `radius_pairs` as codes i * n + j (i < j), in parts as the search finds them, for a caller that
    reduces them as they come (a crowded collection's pairs can outnumber memory). Unsorted; a pair may come in more
    than one part, and, with `groups`, a part may hold pairs within one group: drop those where that matters."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    groups = np.arange(n, dtype=np.int64) if groups is None else np.ascontiguousarray(groups, dtype=np.int64)
    if n < 2 or radius < 0:
        return
    radius = min(radius, BITS)
    if radius == BITS:
        i, j = np.triu_indices(n, k=1)
        yield i.astype(np.int64) * n + j
        return
    plan = plan or choose_plan(n, radius)
    compiled = _compiled(plan, n / 2, COMPILED_MIN_PROBES)
    shift, prior = 0, []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for width, r in zip(plan.widths, plan.radii):
            keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            if width <= TABLE_MAX_BITS:  # table indices; wide chunks stay unsigned (a 64-bit key overflows int64)
                keys = keys.astype(np.int64)
            index = _ChunkIndex(keys, width, shift, hashes, first=not compiled)
            if not prior and not compiled and index.direct:  # items sharing the first chunk's keys, pair by pair
                count = index.count.astype(np.int64)
                compiled = int((count * (count - 1) // 2).sum()) >= CROWDED_KEY_PAIRS
            if compiled:
                yield from _probe_compiled(pool, max(1, workers), hashes, groups, keys, index, width, r, radius, prior)
            else:
                left, right = index.same_key_pairs()
                close = np.bitwise_count(hashes[left] ^ hashes[right]) <= radius
                yield left[close] * n + right[close]
                # The sentinel in empty slots is >= width - r bits from any prober's chunk, so it can never pass.
                fast = index.direct and width - r > radius
                jobs = [
                    pool.submit(_probe, hashes, index, bit, masks, radius, fast)
                    for bit, masks in _top_bit_jobs(width, r)
                ]
                yield from (job.result() for job in jobs)
            prior.append((((1 << width) - 1) << shift, r))
            shift += width


def uses_compiled(n: int, radius: int, queries: int | None = None) -> bool:
    """Whether a search over n hashes (`radius_pairs`) or from `queries` new ones into n (`radius_pairs_between`)
    runs the compiled loop."""
    if radius < 0 or radius >= BITS:
        return False
    plan = choose_plan(n, radius)
    if queries is None:
        return _compiled(plan, n / 2, COMPILED_MIN_PROBES)
    return _compiled(plan, queries, BETWEEN_COMPILED_MIN_PROBES)


def _compiled(plan: Plan, probing_items: float, min_probes: int) -> bool:
    return max(plan.widths) <= TABLE_MAX_BITS and probing_items * probes_per_item(plan) >= min_probes


def load_compiled() -> None:
    """Import and load the compiled loops now. numba's first call in a process costs ~0.4 s (import, LLVM start,
    machine code read from the cache), which a caller can pay while it waits on something else (the dedup stage:
    while worker processes decode new images)."""
    from finetuner.dedup.probing import warm

    warm()


def probes_per_item(plan: Plan) -> int:
    return sum(math.comb(w, k) for w, r in zip(plan.widths, plan.radii) for k in range(r + 1))


def _probe_compiled(pool, workers, hashes, groups, keys, index, width, r, radius, prior) -> Iterator[np.ndarray]:
    """This chunk's new pairs as codes i * n + j, i < j, probed by `workers` threads over slices of the items, a slice's
    codes as it is done: at most `workers` + 1 slices are probed or waiting ahead of the caller, so a crowded search's
    pairs are never all held at once."""
    # imported here: numba's import and first call cost ~1.5 s, which only big searches earn back
    from finetuner.dedup.probing import probe_chunk

    masks = masks_of_weight_at_most(width, r).astype(np.int64)
    tops = np.array([1 << (m.bit_length() - 1) if m else 0 for m in masks.tolist()], dtype=np.int64)
    n = len(hashes)
    prior_masks, prior_radii, cuts = _earlier_chunks_and_slices(prior, n, workers)
    args = (index.order, keys, hashes, groups, index.sorted_hashes, groups[index.order], index.start, index.count)
    calls = (
        (probe_chunk, lo, hi, *args, masks, tops, np.uint64(radius), prior_masks, prior_radii)
        for lo, hi in zip(cuts, cuts[1:])
    )
    for left, right in _ahead(pool, workers, calls):
        yield _codes(left, right, n)


def radius_pairs_between(queries: np.ndarray, hashes: np.ndarray, radius: int, workers: int = 1) -> np.ndarray:
    """All pairs (q, h) with popcount(queries[q] ^ hashes[h]) <= radius, sorted, shape (k, 2).

    For a grown collection: only the new items query an index of all items, so the cost follows the number of new
    items, not the collection. Every query probes every mask (no top-bit halving: the two sides differ). Big
    searches run the compiled loop in `workers` threads, as `radius_pairs` does."""
    return _gathered(radius_pairs_between_parts(queries, hashes, radius, workers), len(hashes))


def radius_pairs_between_parts(
    queries: np.ndarray, hashes: np.ndarray, radius: int, workers: int = 1
) -> Iterator[np.ndarray]:
    """The pairs of `radius_pairs_between` as codes q * n + h, in parts as the search finds them (unsorted; a pair may
    come in more than one part), for a caller that reduces them as they come (`radius_pair_parts`)."""
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n == 0 or len(queries) == 0 or radius < 0:
        return
    if radius >= BITS:
        yield np.arange(len(queries) * n, dtype=np.int64)
        return
    plan, shift, prior = choose_plan(n, radius), 0, []
    compiled = _compiled(plan, len(queries), BETWEEN_COMPILED_MIN_PROBES)
    ids = np.arange(len(queries))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for width, r in zip(plan.widths, plan.radii):
            keys, qkeys = ((x >> np.uint64(shift)) & np.uint64((1 << width) - 1) for x in (hashes, queries))
            if width <= TABLE_MAX_BITS:
                keys, qkeys = keys.astype(np.int64), qkeys.astype(np.int64)
            index = _ChunkIndex(keys, width, shift, hashes, first=False)
            if not prior and not compiled and index.direct:  # the queries' own keys already pair them with crowds
                compiled = int(index.count[qkeys].sum(dtype=np.int64)) >= CROWDED_KEY_PAIRS
            if compiled:
                yield from _between_compiled(
                    pool, max(1, workers), queries, qkeys, hashes, index, width, r, radius, prior
                )
            else:
                for mask in masks_of_weight_at_most(width, r).tolist():
                    hit, start, count = index.lookup(qkeys ^ qkeys.dtype.type(mask))
                    left, right = _expand(ids[hit], start, count, index.order)
                    close = np.bitwise_count(queries[left] ^ hashes[right]) <= radius
                    yield left[close] * n + right[close]
            prior.append((((1 << width) - 1) << shift, r))
            shift += width


def _earlier_chunks_and_slices(prior: list, n: int, workers: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The compiled loops' arguments for skipping pairs an earlier chunk found (its bit mask and radius each), and
    the cuts of n items into slices for `workers` threads."""
    prior_masks = np.array([m for m, _ in prior], dtype=np.uint64)
    prior_radii = np.array([t for _, t in prior], dtype=np.uint64)  # unsigned like the popcounts: integer compares
    # more slices than threads: they finish evenly
    cuts = np.linspace(0, n, SLICES_PER_WORKER * workers + 1).astype(np.int64).tolist()
    return prior_masks, prior_radii, cuts


def _between_compiled(pool, workers, queries, qkeys, hashes, index, width, r, radius, prior) -> Iterator[np.ndarray]:
    """This chunk's new (query, item) pairs as codes q * n + h, the queries split into slices over `workers` threads,
    a slice's codes as it is done, at most `workers` + 1 slices ahead (as `_probe_compiled`)."""
    from finetuner.dedup.probing import probe_between  # numba: imported only for searches that earn it back

    masks = masks_of_weight_at_most(width, r).astype(np.int64)
    prior_masks, prior_radii, cuts = _earlier_chunks_and_slices(prior, len(queries), workers)
    args = (qkeys, queries, index.sorted_hashes, index.order, index.start, index.count, masks, np.uint64(radius))
    n = len(hashes)
    calls = ((probe_between, lo, hi, *args, prior_masks, prior_radii) for lo, hi in zip(cuts, cuts[1:]))
    for left, right in _ahead(pool, workers, calls):
        yield left * n + right


def _ahead(pool, workers: int, calls: Iterable[tuple]) -> Iterator:
    """The results of `calls` ((function, *args) each) in order, submitted to `pool` at most `workers` + 1 ahead of
    the caller, so a caller that is slower than the threads never has every result waiting at once."""
    ahead: deque = deque()
    for call in calls:
        ahead.append(pool.submit(*call))
        if len(ahead) > workers:
            yield ahead.popleft().result()
    while ahead:
        yield ahead.popleft().result()


def _gathered(parts: Iterable[np.ndarray], n: int) -> np.ndarray:
    """Pair codes a * n + b from every part, each pair once, sorted, as a (k, 2) array of (a, b)."""
    codes = sorted_unique(np.concatenate([np.zeros(0, np.int64), *parts]))
    return np.stack([codes // n, codes % n], axis=1) if n else np.zeros((0, 2), np.int64)


def sorted_unique(codes: np.ndarray) -> np.ndarray:
    """np.unique of an int64 array by sorting: numpy 2's hash-based unique took 4 s where this takes 0.3 s (3M codes,
    a million of them repeated: a pair close in several chunks is found once per chunk)."""
    codes = np.sort(codes)
    return codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes


def brute_force_pairs(hashes: np.ndarray, radius: int) -> np.ndarray:
    """The reference: every pair compared (O(n^2) memory per row block); for tests and benchmarks."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    pairs = []
    for i in range(len(hashes) - 1):
        d = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
        j = np.nonzero(d <= radius)[0] + i + 1
        pairs.append(np.stack([np.full(len(j), i), j], axis=1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), dtype=np.int64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise Hamming distance of two uint64 arrays."""
    return np.bitwise_count(np.asarray(a, dtype=np.uint64) ^ np.asarray(b, dtype=np.uint64)).astype(np.int64)
