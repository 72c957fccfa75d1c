"""The guards that cut near-duplicate pairs before they join leakage units (finetuner/dedup/stage.py runs them in
this order, each on the pairs the one before kept).

- `guard_designs`: look-alike graphics (one letter in two typefaces) and near-blank frames between two declared
  groups that share no more than chance gives (`dedup.min_design_share`, `dedup.max_design_chance`);
  `blank_copies`: exact copies of a blank frame that three or more declared groups hold.
- `guard_clusters`: edges are added closest first (Kruskal order) and one that would grow a near-duplicate cluster
  beyond `dedup.max_cluster_size` is cut. Exact copies are never cut.
- `guard_units`: a pair that would grow a unit (declared groups joined by pairs) past `dedup.max_unit_share` of a
  class is cut: look-alikes between groups must not chain a whole class into one unit, or no split is possible.
Each returns a boolean mask over the pairs it is given; the stage reports every cut pair with the guard that cut it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from finetuner.dedup.units import cluster_stats, component_labels
from finetuner.dedup.verify import detail_levels


def guard_designs(
    declared: Sequence[str],
    i: np.ndarray,
    j: np.ndarray,
    twin_prone: np.ndarray,
    alike_i: np.ndarray,
    alike_j: np.ndarray,
    min_share: float,
    max_chance: float,
) -> np.ndarray:
    """Which pairs to cut as twin designs: a pair decided by evidence a twin passes as well as a copy (`twin_prone`:
    two graphics by the shape check, two near-blank frames by the pixel rule) between two declared groups, whose
    images look like images of other groups too, where the two groups share no more than chance gives.

    Two typefaces' letter O, two icon sets' arrow: the shape check cannot tell such a twin design from a copy (on the
    glyph set their fine detail agrees as well as a clone's does; docs/dedup.md). What tells them apart is the groups:
    a copied design repeats across the two groups (a clone typeface pairs with nearly every letter of its original),
    a coincidence does not (two typefaces share an O, a T and a V).

    The rule applies only where the evidence is ambiguous: an image that matches images of at least two other groups
    as a copy or nearly so (`alike_i`, `alike_j`: graphics the shape check scored within LOOK_ALIKE_MARGIN of its
    threshold, accepted or not; blank frames the pixel rule matched) shows a design many groups share; a copy of a
    one-off graphic (a scanned form, a product on white) looks like its copy alone and is kept. Such a pair stands
    where, on either side, the images of one group that pairs (`i`, `j`: every accepted pair, of any kind) join to
    the other are
    - at least `min_share` of that group's images, or
    - more than its look-alikes explain: if each image, looking like images of d of the N other groups, has a chance
      d / N of a look-alike in any one of them, that many or more would come by chance (a Poisson tail over the
      group's expected count) with a probability below `max_chance`.
    A fixed share alone fails both ways: four letters of 13 are 0.31 of a small typeface (a coincidence of plain
    letters), while a redrawn clone of a large family can share a quarter of it. Groups are `declared` ones ("" for
    none: such an image crosses no group, so its pairs are kept); `min_share` 0 turns the guard off."""
    cut = np.zeros(len(i), dtype=bool)
    if min_share <= 0 or len(i) == 0 or not twin_prone.any():
        return cut
    names, code = np.unique(np.asarray(declared, dtype=object).astype(str), return_inverse=True)
    code = np.where(names[code] == "", -1, code).astype(np.int64)
    size = np.bincount(code[code >= 0], minlength=len(names))
    gi, gj = code[i], code[j]
    across = (gi >= 0) & (gj >= 0) & (gi != gj)
    suspect = twin_prone & across
    if not suspect.any():
        return cut
    # per image, how many other groups hold its look-alikes: (image, other group) pairs, counted per image
    ai, aj = code[alike_i], code[alike_j]
    other = (ai >= 0) & (aj >= 0) & (ai != aj)
    seen = np.unique(np.r_[alike_i[other] * len(names) + aj[other], alike_j[other] * len(names) + ai[other]])
    groups_alike = np.bincount(seen // len(names), minlength=len(code))
    suspect &= np.maximum(groups_alike[i], groups_alike[j]) >= 2
    if not suspect.any():
        return cut
    from scipy.special import gammainc  # P(Poisson(lam) >= k) = gammainc(k, lam); loaded only when needed

    others = max(int((size > 0).sum()) - 1, 1)
    expected = np.bincount(code[code >= 0], weights=groups_alike[code >= 0] / others, minlength=len(names))
    # per (two groups, one side): the side's images joined to the other group, their share and their chance
    pair = np.minimum(gi, gj)[across] * len(names) + np.maximum(gi, gj)[across]
    own = np.r_[gi[across], gj[across]]
    key = np.unique(np.c_[np.r_[pair, pair], own, np.r_[i[across], j[across]]], axis=0)  # distinct images
    per_side, joined = np.unique(key[:, :2], axis=0, return_counts=True)
    group = per_side[:, 1]
    stands = (joined / size[group] >= min_share) | (gammainc(joined, expected[group]) < max_chance)
    suspect_pairs = (np.minimum(gi, gj) * len(names) + np.maximum(gi, gj))[suspect]
    cut[np.flatnonzero(suspect)[~np.isin(suspect_pairs, per_side[stands, 0])]] = True
    return cut


def blank_copies(
    declared: list[str],
    rep_rows: np.ndarray,
    ex_a: np.ndarray,
    ex_b: np.ndarray,
    thumbnails: tuple[np.ndarray, np.ndarray] | None,
    ok: np.ndarray,
    low_detail: float,
) -> np.ndarray:
    """Per exact pair: does it join two declared groups through a near-blank image (its detail below
    dedup.verify.low_detail, the verifier's pixel rule) that three or more declared groups hold? A black frame in
    every video, a blank padding tile in every slide: copies by their bytes, twins by what they show, and through them
    every group would join one unit. They are cut whatever else the groups share: a blank shows nothing to leak, and
    groups that share more are joined by that. Without the verifier's thumbnails, none."""
    out = np.zeros(len(ex_a), dtype=bool)
    if thumbnails is None or not len(ex_a):
        return out
    content = np.searchsorted(rep_rows, ex_a)  # ex_a is each content's first row, and rep_rows those rows in order
    crossing = np.array([bool(declared[x] and declared[y] and declared[x] != declared[y]) for x, y in zip(ex_a, ex_b)])
    held = {}  # content -> the declared groups holding it, for the contents copied across groups
    for x, y, c in zip(ex_a[crossing].tolist(), ex_b[crossing].tolist(), content[crossing].tolist()):
        held.setdefault(c, set()).update((declared[x], declared[y]))
    looked = np.array(sorted(c for c, groups in held.items() if len(groups) >= 3 and ok[c]), dtype=np.int64)
    if len(looked):
        blank = looked[detail_levels(np.asarray(thumbnails[0][looked])) < low_detail]
        out = crossing & np.isin(content, blank)
    return out


class UnionFind:
    """Disjoint sets over 0..n-1 with sizes; `find` compresses paths."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra


def guard_clusters(
    n: int, i: np.ndarray, j: np.ndarray, distance: np.ndarray, forced: np.ndarray, max_cluster_size: int
) -> np.ndarray:
    """Which edges to keep so no near-duplicate cluster exceeds `max_cluster_size` (0 = no limit).

    Edges are taken closest first (ties by index, so the result does not depend on input order); one that would
    join two clusters into one larger than the limit is cut. `forced` edges (exact copies) are always kept.
    """
    keep = np.ones(len(i), dtype=bool)
    if max_cluster_size <= 0 or cluster_stats(n, i, j)[1] <= max_cluster_size:
        return keep  # no final cluster exceeds the limit, so no cluster on the way there did: nothing to cut
    sets = UnionFind(n)
    order = np.lexsort((j, i, distance, ~forced))
    for e in order.tolist():
        a, b = sets.find(int(i[e])), sets.find(int(j[e]))
        if a == b:
            continue
        if not forced[e] and sets.size[a] + sets.size[b] > max_cluster_size:
            keep[e] = False
            continue
        sets.union(a, b)
    return keep


def guard_units(
    groups: Sequence[str],
    labels: Sequence[str],
    i: np.ndarray,
    j: np.ndarray,
    order: np.ndarray,
    forced: np.ndarray,
    max_share: float,
    floor: int,
) -> np.ndarray:
    """Which pairs to keep so no unit (declared groups joined by pairs) holds more than `max_share` of a class's
    images, and never fewer than `floor` (small collections are left alone).

    Declared groups are joined first (they are facts); then pairs closest first (`order`, ties by index), cutting one
    that would push a class past its limit in the merged unit. Look-alikes between groups (letters of two typefaces)
    otherwise chain whole classes into one unit and no split is possible; `forced` pairs (exact copies) are kept.
    """
    n = len(groups)
    keep = np.ones(len(i), dtype=bool)
    if max_share >= 1 or len(i) == 0:
        return keep
    classes, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    limit = np.maximum(np.floor(max_share * np.bincount(y, minlength=len(classes))), floor)
    if _within_limits(groups, y, i, j, limit):
        return keep
    sets = UnionFind(n)
    counts: dict[int, np.ndarray] = {}

    def count(root: int) -> np.ndarray:
        return counts.get(root, np.bincount(y[[root]], minlength=len(classes)))

    def join(a: int, b: int) -> None:
        ra, rb = sets.find(a), sets.find(b)
        if ra != rb:
            total = count(ra) + count(rb)
            counts.pop(ra, None), counts.pop(rb, None)
            counts[sets.union(ra, rb)] = total

    first: dict[str, int] = {}
    for k, group in enumerate(groups):
        if group:
            join(first.setdefault(group, k), k)
    for e in np.lexsort((j, i, order, ~forced)).tolist():
        ra, rb = sets.find(int(i[e])), sets.find(int(j[e]))
        if ra != rb and not forced[e] and (count(ra) + count(rb) > limit).any():
            keep[e] = False
            continue
        join(int(i[e]), int(j[e]))
    return keep


def _within_limits(groups: Sequence[str], y: np.ndarray, i: np.ndarray, j: np.ndarray, limit: np.ndarray) -> bool:
    """Whether every unit of all pairs and groups together stays within `limit` images per class (`y`): then no
    pair can be cut (a unit while pairs are added is part of one of these), and the pairs need no walk one by one."""
    n = len(groups)
    _, group_ids = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    declared = np.flatnonzero(np.asarray([bool(g) for g in groups]))
    first = np.full(len(declared) and group_ids.max() + 1, -1, np.int64)
    first[group_ids[declared]] = declared  # one member of each group, which all its members join
    a = np.r_[np.asarray(i, np.int64), first[group_ids[declared]]]
    b = np.r_[np.asarray(j, np.int64), declared]
    unit = component_labels(n, a, b)
    if unit is None:
        return True
    per_class = np.zeros((unit.max() + 1, len(limit)), np.int64)
    np.add.at(per_class, (unit, y), 1)
    return bool((per_class <= limit).all())
