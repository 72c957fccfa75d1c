"""Pair rules, unit assignment and components (finetuner/dedup/units.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.dedup.units import (
    PairRule,
    assign_units,
    brute_force_find_pairs,
    exact_duplicate_pairs,
    find_pairs,
)


@st.composite
def hashed_images(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = draw(st.integers(2, 25))
    centre = draw(st.integers(0, 2**64 - 1))
    hashes = {}
    for method in ("phash", "dhash"):
        values = []
        for _ in range(n):
            value = centre
            for bit in draw(st.lists(st.integers(0, 63), max_size=10)):
                value ^= 1 << bit
            values.append(value)
        hashes[method] = np.array(values, dtype=np.uint64)
    detail = np.array(draw(st.lists(st.floats(0, 40), min_size=n, max_size=n)))
    return hashes, detail


@settings(max_examples=40, deadline=None)
@given(data=hashed_images(), radius=st.integers(0, 12), agree=st.booleans(), low=st.integers(0, 12))
def test_find_pairs_equals_brute_force(data, radius: int, agree: bool, low: int) -> None:
    hashes, detail = data
    rule = PairRule(("phash", "dhash"), radius, agree, low_info_std=10.0, low_info_max_distance=low)
    pairs = find_pairs(hashes, detail, rule)
    assert set(zip(pairs.i.tolist(), pairs.j.tolist())) == brute_force_find_pairs(hashes, detail, rule)
    for k in range(len(pairs)):
        matched = pairs.method[k].split("+")
        assert pairs.distance[k] == max(int(pairs.distances[m][k]) for m in matched)


def test_agreement_stops_a_single_hash_collision() -> None:
    hashes = {"phash": np.array([0, 0], np.uint64), "dhash": np.array([0, 2**40 - 1], np.uint64)}
    detail = np.array([30.0, 30.0])
    assert len(find_pairs(hashes, detail, PairRule(("phash", "dhash"), 8, require_agreement=True))) == 0
    loose = find_pairs(hashes, detail, PairRule(("phash", "dhash"), 8, require_agreement=False))
    assert loose.method.tolist() == ["phash"]


def test_low_detail_images_need_a_closer_match() -> None:
    hashes = {"phash": np.array([0, 0b111111], np.uint64)}  # distance 6
    rule = PairRule(("phash",), 8, low_info_std=5.0, low_info_max_distance=4)
    assert len(find_pairs(hashes, np.array([30.0, 30.0]), rule)) == 1
    assert len(find_pairs(hashes, np.array([30.0, 2.0]), rule)) == 0


def test_exact_duplicates_form_a_star() -> None:
    left, right = exact_duplicate_pairs(["a", "b", "a", "c", "a", "b"])
    assert list(zip(left.tolist(), right.tolist())) == [(0, 2), (0, 4), (1, 5)]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 20),
    edges=st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19)), max_size=15),
    groups=st.lists(st.sampled_from(["", "g1", "g2", "g3"]), min_size=20, max_size=20),
    perm_seed=st.integers(0, 2**32 - 1),
)
def test_units_are_components_and_independent_of_row_order(n, edges, groups, perm_seed) -> None:
    paths = [f"img{k:02d}.jpg" for k in range(n)]
    edges = [(a, b) for a, b in edges if a < n and b < n]
    i, j = np.array([e[0] for e in edges], int), np.array([e[1] for e in edges], int)
    units = assign_units(paths, groups[:n], i, j)
    for a, b in edges:
        assert units[a] == units[b]
    for a in range(n):
        for b in range(n):
            if groups[a] and groups[a] == groups[b]:
                assert units[a] == units[b]
    perm = np.random.default_rng(perm_seed).permutation(n)
    inverse = np.argsort(perm)
    shuffled = assign_units([paths[p] for p in perm], [groups[p] for p in perm], inverse[i], inverse[j])
    assert dict(zip([paths[p] for p in perm], shuffled)) == dict(zip(paths, units))
    assert len(set(units)) == len({frozenset(np.flatnonzero(np.array(units) == u)) for u in units})
