"""The guards on the pairs found: twin designs between declared groups, cluster size, unit share
(finetuner/dedup/guards.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.dedup import guards
from finetuner.dedup.guards import guard_clusters, guard_designs, guard_units
from finetuner.dedup.units import assign_units, components


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


def test_unit_guard_stops_look_alikes_chaining_a_class() -> None:
    # ten families (groups) of one letter each with 3 styles; look-alike pairs chain family k to k+1
    groups = [f"f{k // 3}" for k in range(30)]
    labels = ["N"] * 30
    i = np.arange(0, 27, 3)
    j = i + 3
    order = np.linspace(0.0, 0.5, len(i))  # the first links are the closest
    keep = guard_units(groups, labels, i, j, order, np.zeros(len(i), bool), max_share=0.3, floor=2)
    assert keep[:2].all() and not keep.all()  # the closest links stay; the chain stops at 30% of the class (9)
    units = assign_units([str(k) for k in range(30)], groups, i[keep], j[keep])
    assert max(units.count(u) for u in set(units)) <= 9
    assert guard_units(groups, labels, i, j, order, np.zeros(len(i), bool), 0.3, floor=50).all()  # small: untouched


@pytest.mark.parametrize("seed", range(6))
def test_unit_guard_shortcut_keeps_what_the_walk_keeps(seed: int, monkeypatch) -> None:
    """Random groups, classes and pairs: the guard with its shortcut (every unit of all pairs within the limits: keep
    all) decides as the pair-by-pair walk does, on collections that need cuts and on ones that need none."""
    rng = np.random.default_rng(seed)
    n = 60
    groups = [f"g{k}" if k % 3 else "" for k in rng.integers(0, 25, n).tolist()]
    labels = rng.choice(["A", "B"], n).tolist()
    i, j = rng.integers(0, n, (2, 12 + 30 * (seed % 2)))
    i, j = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j]
    order, forced = rng.random(len(i)), rng.random(len(i)) < 0.1
    shortcut = guard_units(groups, labels, i, j, order, forced, 0.3, floor=4)
    monkeypatch.setattr(guards, "_within_limits", lambda *args: False)
    assert np.array_equal(shortcut, guard_units(groups, labels, i, j, order, forced, 0.3, floor=4))


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
