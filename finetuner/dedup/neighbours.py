"""Every pair of 64-bit hashes within a Hamming radius, exactly, without comparing all pairs.

`radius_pairs(hashes, radius)` returns the same pair set as brute force (`popcount(h[i] ^ h[j]) <= radius` over all
i < j) by multi-index hashing (finetuner/dedup/multi_index.py: the 64 bits cut into chunks by a cost model, so 2,000
or 1,000,000 hashes both run fast, and each chunk's items indexed by key). For each chunk every stored key is probed
with every XOR mask within the chunk's radius, and candidates are verified with a vectorised popcount: in numpy, or
for big or crowded searches in a compiled loop (finetuner/dedup/probing.py). `radius_pairs_between` searches from
new items only. `radius_pair_parts` hands the same pairs on in parts as they are found, for a caller that reduces
them as they come (the view search: in a crowded collection one image pair is found through dozens of view pairs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from finetuner.dedup.multi_index import (
    BITS,
    TABLE_MAX_BITS,
    ChunkIndex,
    Plan,
    choose_plan,
    expand,
    masks_of_weight_at_most,
    probes_per_item,
)

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


def _probe(hashes: np.ndarray, index: ChunkIndex, bit: int, masks: list[int], radius: int, fast: bool) -> np.ndarray:
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
            left, right = expand(ids[extra], index.start[slots[extra]] + 1, index.count[slots[extra]] - 1, index.order)
        else:
            hit, start, count = index.lookup(slots)
            left, right = expand(ids[hit], start, count, index.order)
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
            index = ChunkIndex(keys, width, shift, hashes, first=not compiled)
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
            index = ChunkIndex(keys, width, shift, hashes, first=False)
            if not prior and not compiled and index.direct:  # the queries' own keys already pair them with crowds
                compiled = int(index.count[qkeys].sum(dtype=np.int64)) >= CROWDED_KEY_PAIRS
            if compiled:
                yield from _between_compiled(
                    pool, max(1, workers), queries, qkeys, hashes, index, width, r, radius, prior
                )
            else:
                for mask in masks_of_weight_at_most(width, r).tolist():
                    hit, start, count = index.lookup(qkeys ^ qkeys.dtype.type(mask))
                    left, right = expand(ids[hit], start, count, index.order)
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
