"""Radius search over 64-bit hashes: exactly the pairs brute force finds, for every radius and chunking."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.dedup import multi_index, neighbours
from finetuner.dedup.multi_index import choose_plan, make_plan
from finetuner.dedup.neighbours import radius_pairs, radius_pairs_between


@contextlib.contextmanager
def probing(compiled: bool):
    """Force the compiled probe loop (finetuner/dedup/probing.py) or the numpy one, whatever the search's size."""
    saved = neighbours.COMPILED_MIN_PROBES, neighbours.BETWEEN_COMPILED_MIN_PROBES, neighbours.CROWDED_KEY_PAIRS
    neighbours.COMPILED_MIN_PROBES = neighbours.BETWEEN_COMPILED_MIN_PROBES = 0 if compiled else 10**18
    neighbours.CROWDED_KEY_PAIRS = 0 if compiled else 10**18
    try:
        yield
    finally:
        neighbours.COMPILED_MIN_PROBES, neighbours.BETWEEN_COMPILED_MIN_PROBES, neighbours.CROWDED_KEY_PAIRS = saved


def python_brute_force(hashes: list[int], radius: int) -> set[tuple[int, int]]:
    return {
        (a, b)
        for a in range(len(hashes))
        for b in range(a + 1, len(hashes))
        if bin(hashes[a] ^ hashes[b]).count("1") <= radius
    }


@st.composite
def clustered_hashes(draw: st.DrawFn) -> list[int]:
    """A few random centres, each with copies a few bit flips away: many pairs near any radius, plus duplicates."""
    centres = draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6))
    out = []
    for centre in centres:
        for _ in range(draw(st.integers(1, 8))):
            flips = draw(st.lists(st.integers(0, 63), max_size=12))
            value = centre
            for bit in flips:
                value ^= 1 << bit
            out.append(value)
    return out


@settings(max_examples=25, deadline=None)
@given(hashes=clustered_hashes(), radius=st.integers(0, 20), workers=st.sampled_from([1, 2]))
def test_equals_brute_force(hashes: list[int], radius: int, workers: int) -> None:
    found = radius_pairs(np.array(hashes, dtype=np.uint64), radius, workers=workers)
    assert {tuple(p) for p in found.tolist()} == python_brute_force(hashes, radius)


@settings(max_examples=5, deadline=None)  # few: a 3-chunk plan builds 2^22-slot tables even for 10 hashes
@given(hashes=clustered_hashes(), radius=st.integers(0, 12), data=st.data())
def test_every_chunking_is_exact(hashes: list[int], radius: int, data: st.DataObject) -> None:
    # at least (radius + 1) / 3 chunks keeps each chunk's radius <= 2 (one 64-bit chunk at radius 12 is 10^12 masks)
    m = data.draw(st.integers(max(1, -(-(radius + 1) // 3)), min(radius + 1, 16)))
    found = radius_pairs(np.array(hashes, dtype=np.uint64), radius, plan=make_plan(len(hashes), radius, m))
    assert {tuple(p) for p in found.tolist()} == python_brute_force(hashes, radius)


@pytest.mark.parametrize("compiled", [False, True])
@settings(max_examples=25, deadline=None)
@given(hashes=clustered_hashes(), radius=st.integers(0, 20), data=st.data())
def test_groups_leave_out_exactly_the_pairs_within_a_group(
    compiled: bool, hashes: list[int], radius: int, data
) -> None:
    groups = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(hashes), max_size=len(hashes))))
    m = data.draw(st.integers(max(1, -(-(radius + 1) // 3)), min(radius + 1, 16)))  # wide chunks too
    with probing(compiled):
        found = radius_pairs(np.array(hashes, dtype=np.uint64), radius, 2, make_plan(len(hashes), radius, m), groups)
    expected = {(i, j) for i, j in python_brute_force(hashes, radius) if groups[i] != groups[j]}
    assert {tuple(p) for p in found.tolist()} == expected


@pytest.mark.parametrize("compiled", [False, True])
def test_compiled_and_numpy_probing_agree_on_clustered_views(compiled: bool) -> None:
    """Like the 20k view search: groups of 9 correlated hashes (one image's views), some groups near each other."""
    rng = np.random.default_rng(1)
    centres = rng.integers(0, 2**63, 300, dtype=np.uint64)
    centres[150:] = centres[:150] ^ np.uint64(0b1011)  # near-copies of the first 150 images
    flips = rng.integers(0, 64, (300, 9, 3)).astype(np.uint64)
    views = centres[:, None] ^ np.bitwise_or.reduce(np.uint64(1) << flips, axis=2)
    owner = np.repeat(np.arange(300), 9)
    with probing(compiled):
        found = radius_pairs(views.ravel(), 12, workers=2, groups=owner)
    expected = neighbours.brute_force_pairs(views.ravel(), 12)
    expected = expected[owner[expected[:, 0]] != owner[expected[:, 1]]]
    assert np.array_equal(found, expected) and len(found) > 1000


def test_a_crowded_search_runs_compiled_whatever_its_probe_count(monkeypatch) -> None:
    """Frames of one static scene: most hashes a few bits from one another, so a few chunk keys hold most items. The
    search is small by its probe count, but numpy would materialise every pair of a key's items once per chunk."""
    rng = np.random.default_rng(3)
    centre = rng.integers(0, 2**63, dtype=np.uint64)
    flips = rng.integers(0, 64, (2000, 2)).astype(np.uint64)
    hashes = np.r_[centre ^ np.bitwise_or.reduce(np.uint64(1) << flips, axis=1), rng.integers(0, 2**63, 500, np.uint64)]
    assert not neighbours._compiled(choose_plan(len(hashes), 8), len(hashes) / 2, neighbours.COMPILED_MIN_PROBES)
    calls = []
    compiled = neighbours._probe_compiled
    monkeypatch.setattr(neighbours, "_probe_compiled", lambda *args: calls.append(1) or compiled(*args))
    found = radius_pairs(hashes, 8, workers=2)
    assert calls and np.array_equal(found, neighbours.brute_force_pairs(hashes, 8)) and len(found) > 1_000_000
    spread = rng.integers(0, 2**63, 2000, dtype=np.uint64)  # the same size, not crowded: numpy probes it
    calls.clear()
    assert np.array_equal(radius_pairs(spread, 8, workers=2), neighbours.brute_force_pairs(spread, 8)) and not calls


def test_new_frames_of_a_crowded_scene_search_compiled_whatever_their_probe_count(monkeypatch) -> None:
    """A grown crowded collection: 600 new frames of one scene against 2,400 old ones, all within a few bits."""
    rng = np.random.default_rng(4)
    centre = rng.integers(0, 2**63, dtype=np.uint64)
    frames = centre ^ np.bitwise_or.reduce(np.uint64(1) << rng.integers(0, 64, (3000, 2)).astype(np.uint64), axis=1)
    queries = frames[2400:]
    assert not neighbours._compiled(choose_plan(3000, 8), 600, neighbours.BETWEEN_COMPILED_MIN_PROBES)
    calls = []
    compiled = neighbours._between_compiled
    monkeypatch.setattr(neighbours, "_between_compiled", lambda *args: calls.append(1) or compiled(*args))
    found = radius_pairs_between(queries, frames, 8, workers=2)
    close = np.bitwise_count(queries[:, None] ^ frames[None, :]) <= 8
    assert calls and np.array_equal(found, np.argwhere(close)) and len(found) > 100_000


def test_large_random_sample_matches_brute_force() -> None:
    """50,000 random hashes plus planted neighbours at radius 8 (3 chunks of ~21 bits: the table fast path)."""
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**64 - 1, size=50_000, dtype=np.uint64, endpoint=True)
    flips = np.uint64(0)
    for bit in rng.choice(64, size=7, replace=False).tolist():
        flips |= np.uint64(1) << np.uint64(bit)
    hashes[1000:1100] = hashes[:100] ^ flips  # 100 planted pairs at distance 7
    found = radius_pairs(hashes, 8, workers=2, plan=make_plan(len(hashes), 8, 3))
    planted = {(k, 1000 + k) for k in range(100)}
    assert planted <= {tuple(p) for p in found.tolist()}
    sample = rng.choice(len(hashes), size=300, replace=False)  # brute force on rows of a sample
    found_set = {tuple(p) for p in found.tolist()}
    for a in sample.tolist():
        d = np.bitwise_count(hashes ^ hashes[a])
        near = {tuple(sorted((a, b))) for b in np.flatnonzero(d <= 8).tolist() if b != a}
        assert near == {p for p in found_set if a in p}


def test_plans_satisfy_the_pigeonhole_bound() -> None:
    for n in (10, 2_000, 1_000_000):
        for radius in range(0, 17):
            plan = choose_plan(n, radius)
            assert sum(plan.widths) == 64
            assert sum(plan.radii) >= radius - len(plan.widths) + 1
            assert min(plan.radii) >= 0


def test_plans_keep_their_tables_in_cache_where_that_is_cheaper() -> None:
    # the views of 100,000 images at the default radius: four 16-bit tables (768 KiB each), not three of 21-22 bits
    # (24-48 MiB), whose probes miss the caches (19.5 s against 5.3 s on random hashes)
    assert choose_plan(900_000, 12).widths == (16, 16, 16, 16)
    assert multi_index.plan_cost(900_000, make_plan(900_000, 12, 3)) > multi_index.plan_cost(
        900_000, make_plan(900_000, 12, 4)
    )
    assert choose_plan(20_000_000, 8).widths == (22, 21, 21)  # where 16-bit keys hold hundreds of items each


def test_edge_cases() -> None:
    assert radius_pairs(np.zeros(0, np.uint64), 8).shape == (0, 2)
    assert radius_pairs(np.array([5], np.uint64), 8).shape == (0, 2)
    everything = radius_pairs(np.array([0, 2**64 - 1, 7], np.uint64), 64)
    assert everything.tolist() == [[0, 1], [0, 2], [1, 2]]


@pytest.mark.parametrize("compiled", [False, True])
@settings(max_examples=10, deadline=None)
@given(hashes=clustered_hashes(), radius=st.integers(0, 12), split=st.integers(0, 48))
def test_new_items_against_all_equals_brute_force(compiled: bool, hashes: list[int], radius: int, split: int) -> None:
    """A grown collection's search: every pair of a new item (query) with any item, as brute force finds them."""
    queries = hashes[split % (len(hashes) + 1) :]
    with probing(compiled):
        found = radius_pairs_between(
            np.array(queries, dtype=np.uint64), np.array(hashes, dtype=np.uint64), radius, workers=2
        )
    expected = {
        (q, h)
        for q in range(len(queries))
        for h in range(len(hashes))
        if bin(queries[q] ^ hashes[h]).count("1") <= radius
    }
    assert {tuple(p) for p in found.tolist()} == expected


@pytest.mark.parametrize("compiled", [False, True])
def test_new_views_against_all_agree_with_brute_force(compiled: bool) -> None:
    """Like a grown collection's view search: 60 new images' 9 views against all 300 images' views, at radius 12
    (4 chunks of 16 bits: the table path), exactly the pairs brute force finds, each once."""
    rng = np.random.default_rng(2)
    centres = rng.integers(0, 2**63, 300, dtype=np.uint64)
    centres[150:] = centres[:150] ^ np.uint64(0b1011)
    flips = rng.integers(0, 64, (300, 9, 3)).astype(np.uint64)
    views = (centres[:, None] ^ np.bitwise_or.reduce(np.uint64(1) << flips, axis=2)).ravel()
    queries = views[-60 * 9 :]
    with probing(compiled):
        found = radius_pairs_between(queries, views, 12, workers=2)
    distance = np.bitwise_count(queries[:, None] ^ views[None, :])
    assert np.array_equal(found, np.argwhere(distance <= 12)) and len(found) > 1000


def test_uses_compiled_follows_the_search_size() -> None:
    assert not neighbours.uses_compiled(2_000, 12)
    assert neighbours.uses_compiled(189_000, 12)
    assert not neighbours.uses_compiled(189_000, 12, queries=100)
    assert neighbours.uses_compiled(189_000, 12, queries=9_000)
    assert not neighbours.uses_compiled(189_000, 64) and not neighbours.uses_compiled(189_000, -1)


def test_search_loader_loads_only_for_searches_that_run_compiled() -> None:
    from finetuner.dedup.view_search import search_loader

    assert search_loader(20_000, 20_000, 12) is neighbours.load_compiled  # a cold 20k view search
    assert search_loader(20_000, 1_000, 12) is neighbours.load_compiled  # 5% more: 9,000 new views
    assert search_loader(2_000, 2_000, 12) is None and search_loader(20_000, 10, 12) is None
    assert search_loader(20_000, 0, 12) is None  # nothing new: nothing is searched
    neighbours.load_compiled()  # loads (or compiles) both loops without error


@settings(max_examples=60, deadline=None)
@given(width=st.sampled_from([1, 8, 13, 16, 17, 21, 24, 32, 40]), n=st.integers(0, 400), data=st.data())
def test_key_order_is_the_stable_argsort(width: int, n: int, data: st.DataObject) -> None:
    # the index's order by chunk key: numpy's radix sort on 16-bit halves must give exactly the stable argsort
    few = data.draw(st.booleans())  # few distinct keys: long runs of equal keys, whose order must stay by id
    top = min(1 << width, 4) if few else 1 << width
    keys = np.random.default_rng(n * 64 + width).integers(0, top, n, dtype=np.uint64)
    for dtype in (np.int64, np.uint64) if width <= 32 else (np.uint64,):
        values = keys.astype(dtype)
        assert np.array_equal(multi_index.key_order(values, width), np.argsort(values, kind="stable"))
