"""Pair rules, the chaining guard and unit assignment."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.dedup.units import (
    PairRule,
    assign_units,
    brute_force_find_pairs,
    components,
    exact_duplicate_pairs,
    find_pairs,
    guard_clusters,
    guard_designs,
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


def test_guard_cuts_a_chain_and_keeps_exact_copies() -> None:
    """A chain 0-1-2-...-9 where each link is within the radius would become one unit of 10 without the guard."""
    n = 10
    i, j = np.arange(n - 1), np.arange(1, n)
    distance = np.array([3, 1, 5, 2, 7, 1, 4, 6, 2])
    forced = np.zeros(n - 1, bool)
    keep = guard_clusters(n, i, j, distance, forced, max_cluster_size=4)
    sizes = [len(c) for c in components(n, i[keep], j[keep])]
    assert max(sizes) <= 4
    assert (~keep).sum() >= 2
    assert set(distance[~keep].tolist()) <= {5, 7, 6, 4, 3}  # the loosest links go first
    assert guard_clusters(n, i, j, distance, forced, max_cluster_size=0).all()
    copies = guard_clusters(6, np.zeros(5, int), np.arange(1, 6), np.zeros(5, int), np.ones(5, bool), 2)
    assert copies.all()


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


def designs_reference(declared, i, j, prone, alike_i, alike_j, min_share, max_chance) -> list[bool]:
    """guard_designs written out pair by pair, with sets and the Poisson tail summed term by term."""
    if min_share <= 0:
        return [False] * len(i)
    others: dict[int, set] = {}
    for x, y in zip(alike_i.tolist(), alike_j.tolist()):
        if declared[x] and declared[y] and declared[x] != declared[y]:
            others.setdefault(x, set()).add(declared[y])
            others.setdefault(y, set()).add(declared[x])
    touched: dict[tuple, set] = {}
    for x, y in zip(i.tolist(), j.tolist()):
        if declared[x] and declared[y] and declared[x] != declared[y]:
            touched.setdefault((declared[x], declared[y]), set()).add(x)
            touched.setdefault((declared[y], declared[x]), set()).add(y)
    groups = {g for g in declared if g}
    size = {g: declared.count(g) for g in groups}
    n_other = max(len(groups) - 1, 1)
    expected = {
        g: sum(len(others.get(x, ())) / n_other for x in range(len(declared)) if declared[x] == g) for g in groups
    }

    def stands(f: str, h: str) -> bool:
        k, lam = len(touched[(f, h)]), expected[f]
        chance = 1.0 - sum(math.exp(-lam) * lam**m / math.factorial(m) for m in range(k))
        return k / size[f] >= min_share or chance < max_chance

    out = []
    for x, y, g in zip(i.tolist(), j.tolist(), prone.tolist()):
        f, h = declared[x], declared[y]
        if not (g and f and h and f != h) or max(len(others.get(x, ())), len(others.get(y, ()))) < 2:
            out.append(False)
            continue
        out.append(not (stands(f, h) or stands(h, f)))
    return out


def test_design_guard_cuts_twin_designs_and_keeps_copies_and_clones() -> None:
    """Groups A-E of five graphics each, F a clone of A (each image a copy of one of A's), 30 and 31 in no group.
    One design is shared by A, B and C (images 0, 5, 10): a coincidence between groups sharing nothing else. D's
    image 15 was copied into E (20), and nothing else looks like it. With six groups no count of shared images is
    beyond chance here: the share decides."""
    declared = ["A"] * 5 + ["B"] * 5 + ["C"] * 5 + ["D"] * 5 + ["E"] * 5 + ["F"] * 5 + ["", ""]
    pairs = [(0, 5), (0, 10), (5, 10), (15, 20), *[(k, 25 + k) for k in range(5)], (5, 25), (30, 31), (0, 30), (11, 16)]
    i, j = np.array(pairs).T
    prone = np.array([True] * 12 + [False])  # (11, 16) is a pair of photographs
    alike = [*pairs[:11], (10, 25), (2, 11), (3, 16), (11, 16)]  # 2, 3, 11 and 16 look like one other group's each
    ai, aj = np.array(alike).T
    cut = guard_designs(declared, i, j, prone, ai, aj, 0.25, 0.001)
    assert {pairs[e] for e in np.flatnonzero(cut).tolist()} == {(0, 5), (0, 10), (5, 10), (5, 25)}
    assert cut.tolist() == designs_reference(declared, i, j, prone, ai, aj, 0.25, 0.001)
    assert (guard_designs(declared, j, i, prone, aj, ai, 0.25, 0.001) == cut).all()  # either image may be first
    assert not guard_designs(declared, i, j, prone, ai, aj, 0.0, 0.001).any()  # 0 = off
    # two of A's five images paired with B's (any kind of pair) reach 0.4: the twins between A and B stand at 0.25
    more = np.r_[i, 1], np.r_[j, 6], np.r_[prone, False]
    assert not guard_designs(declared, *more, ai, aj, 0.25, 0.001)[0]
    assert not guard_designs(declared, *more, ai, aj, 0.4, 0.001)[0]
    assert guard_designs(declared, *more, ai, aj, 0.5, 0.001)[0]


def test_design_guard_keeps_a_partial_clone_beyond_chance() -> None:
    """A family of 20 whose clone holds 6 of its designs (0.3 of it), each of which also looks like a letter of
    group t1, among 25 groups: the look-alikes explain 0.5 shared images, not 6, so the pairs stand though the
    share is below min_share. One design shared by t1, t2 and t3 (a quarter of each) is a coincidence."""
    declared = ["big"] * 20 + ["clone"] * 20 + ["t1"] * 4 + ["t2"] * 4 + ["t3"] * 4
    declared += [f"g{k}" for k in range(20) for _ in range(2)]  # other groups, no pairs
    t1, t2, t3 = 40, 44, 48
    pairs = [*[(k, 20 + k) for k in range(6)], (t1, t2), (t1, t3), (t2, t3)]
    alike = [*pairs, *[(k, t1 + 1) for k in range(6)]]
    i, j = np.array(pairs).T
    ai, aj = np.array(alike).T
    prone = np.ones(len(pairs), bool)
    cut = guard_designs(declared, i, j, prone, ai, aj, 0.5, 0.001)
    assert cut.tolist() == [False] * 6 + [True] * 3
    assert cut.tolist() == designs_reference(declared, i, j, prone, ai, aj, 0.5, 0.001)
    assert guard_designs(declared, i, j, prone, ai, aj, 0.5, 0.0).all()  # by the share alone, all are cut
    # the likelier side decides: the clone's six images each look like one of the 24 other groups' (the family's
    # like two): 0.25 expected by chance, six seen
    tail = 1.0 - sum(math.exp(-0.25) * 0.25**m / math.factorial(m) for m in range(6))  # P(Poisson(0.25) >= 6)
    assert not guard_designs(declared, i, j, prone, ai, aj, 0.5, tail * 1.01)[:6].any()
    assert guard_designs(declared, i, j, prone, ai, aj, 0.5, tail * 0.99)[:6].all()


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(st.sampled_from(["", "a", "b", "c", "d", "e", "f"]), min_size=2, max_size=12),
    edges=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.booleans()), max_size=24),
    alike=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=40),
    min_share=st.sampled_from([0.0, 0.2, 0.25, 0.5, 1.0]),
    max_chance=st.sampled_from([0.0, 0.001, 0.05, 0.3, 0.6, 0.9]),
)
def test_design_guard_equals_its_definition(groups, edges, alike, min_share, max_chance) -> None:
    n = len(groups)
    edges = [(x % n, y % n, g) for x, y, g in edges if x % n != y % n]
    alike = [(x % n, y % n) for x, y in alike if x % n != y % n]
    i = np.array([e[0] for e in edges], np.int64)
    j = np.array([e[1] for e in edges], np.int64)
    prone = np.array([e[2] for e in edges], bool)
    ai = np.array([a[0] for a in alike], np.int64)
    aj = np.array([a[1] for a in alike], np.int64)
    got = guard_designs(groups, i, j, prone, ai, aj, min_share, max_chance)
    assert got.tolist() == designs_reference(groups, i, j, prone, ai, aj, min_share, max_chance)
    assert (guard_designs(groups, j, i, prone, aj, ai, min_share, max_chance) == got).all()  # pairs are unordered
