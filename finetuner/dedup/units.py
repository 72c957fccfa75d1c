"""From hashes to near-duplicate pairs, and from pairs to leakage units, with giant units explained.

Precision matters as much as recall: union-find over a loose radius chains unrelated low-detail images (faces,
documents, plain textures) into one giant unit, and then no split is possible. The hash rule has two guards of its own
(params.yaml):
- agreement: with `require_agreement`, a pair counts only when every hash method is within the radius;
- low information: a pair touching an image whose 32x32 thumbnail is nearly flat (grey std below
  `low_info_std`) must be within the stricter `low_info_max_distance`.
The guards on the pairs found, by any signal, are in finetuner/dedup/guards.py. Units are connected components of
declared groups and the kept pairs (`assign_units`); their ids depend only on their members. `explain_units` names
the few pairs that bridge a unit grown past a share of its class.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from finetuner.dedup.neighbours import hamming, radius_pairs, sorted_unique


@dataclass(frozen=True)
class PairRule:
    """The near-duplicate test, one value per `dedup` param it reads."""

    methods: tuple[str, ...]
    max_distance: int
    require_agreement: bool = True
    low_info_std: float = 0.0
    low_info_max_distance: int = 64


@dataclass(frozen=True)
class Pairs:
    """Index pairs i < j with, per method, the Hamming distance; `method` names the methods that matched."""

    i: np.ndarray
    j: np.ndarray
    distances: dict[str, np.ndarray]
    method: np.ndarray  # str labels such as "phash+dhash"
    distance: np.ndarray  # the largest distance among the matching methods

    def __len__(self) -> int:
        return len(self.i)


def find_pairs(hashes: dict[str, np.ndarray], detail: np.ndarray, rule: PairRule, workers: int = 1) -> Pairs:
    """Every pair satisfying `rule`; exactly the pairs brute force over all i < j would accept."""
    n = len(detail)
    # With agreement, a pair must be within the radius under the first method, so one search finds every candidate.
    searched = rule.methods[:1] if rule.require_agreement else rule.methods
    found = [radius_pairs(hashes[m], rule.max_distance, workers) for m in searched]
    codes = sorted_unique(np.concatenate([p[:, 0] * n + p[:, 1] for p in found])) if n else np.zeros(0, np.int64)
    i, j = codes // max(n, 1), codes % max(n, 1)
    distances = {m: hamming(hashes[m][i], hashes[m][j]) for m in rule.methods}
    return apply_rule(i, j, distances, detail, rule)


def rule_mask(
    i: np.ndarray, j: np.ndarray, distances: dict[str, np.ndarray], detail: np.ndarray, rule: PairRule
) -> tuple[np.ndarray, np.ndarray]:
    """(keep, within): which candidate pairs satisfy `rule`, and per pair and method whether it is within its limit."""
    methods = rule.methods
    low = detail < rule.low_info_std
    limit = np.where(low[i] | low[j], min(rule.low_info_max_distance, rule.max_distance), rule.max_distance)
    within = np.stack([distances[m] <= limit for m in methods], axis=1) if len(i) else np.zeros((0, len(methods)), bool)
    return (within.all(axis=1) if rule.require_agreement else within.any(axis=1)), within


def apply_rule(
    i: np.ndarray, j: np.ndarray, distances: dict[str, np.ndarray], detail: np.ndarray, rule: PairRule
) -> Pairs:
    """The candidate pairs that satisfy `rule` (a rule at most as loose as the one that found them)."""
    methods = rule.methods
    keep, within = rule_mask(i, j, distances, detail, rule)
    i, j, within = i[keep], j[keep], within[keep]
    distances = {m: d[keep] for m, d in distances.items()}
    # One label per pattern of matching methods (at most 2^methods of them), looked up by the pattern's bit code.
    codes = within.astype(np.int64) @ (1 << np.arange(len(methods), dtype=np.int64)) if len(i) else np.zeros(0, int)
    names = np.array(
        ["+".join(m for k, m in enumerate(methods) if code >> k & 1) for code in range(1 << len(methods))], dtype=object
    )
    labels = names[codes]
    matched = [np.where(within[:, k], distances[m], -1) for k, m in enumerate(methods)]
    distance = np.max(np.stack(matched, axis=1), axis=1) if len(i) else np.zeros(0, np.int64)
    return Pairs(i=i, j=j, distances=distances, method=labels, distance=distance)


def brute_force_find_pairs(hashes: dict[str, np.ndarray], detail: np.ndarray, rule: PairRule) -> set[tuple[int, int]]:
    """The reference for `find_pairs`: every pair checked in Python; for tests only."""
    n = len(detail)
    out = set()
    for a in range(n):
        for b in range(a + 1, n):
            low = detail[a] < rule.low_info_std or detail[b] < rule.low_info_std
            limit = min(rule.low_info_max_distance, rule.max_distance) if low else rule.max_distance
            ok = [int(hamming(hashes[m][a], hashes[m][b])) <= limit for m in rule.methods]
            if all(ok) if rule.require_agreement else any(ok):
                out.add((a, b))
    return out


def exact_duplicate_pairs(contents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (first copy, other copy) for every run of equal content hashes; rows are taken in the given order.

    A star per content, not all pairs: k identical files give k - 1 rows, which already join them into one unit.
    """
    first: dict[str, int] = {}
    left, right = [], []
    for index, content in enumerate(contents):
        if content in first:
            left.append(first[content])
            right.append(index)
        else:
            first[content] = index
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def assign_units(paths: Sequence[str], groups: Sequence[str], i: np.ndarray, j: np.ndarray) -> list[str]:
    """Unit id per path: connected components of declared groups and the given pairs.

    An empty group means "no group": the image is its own group. The id is `u-` + a short hash of the
    component's smallest path, so it is the same whatever the row order and stable while that path remains.
    """
    n = len(paths)
    if n == 0:
        return []
    # Each grouped image is joined to the first image of its group, then the pairs are added; no Python loop.
    group_ids = np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1].reshape(-1)
    rows = np.arange(n)
    grouped = np.asarray([bool(g) for g in groups])
    leader = np.full(group_ids.max() + 1, n, dtype=np.int64)
    np.minimum.at(leader, group_ids[grouped], rows[grouped])
    left = np.concatenate([rows[grouped], np.asarray(i, dtype=np.int64)])
    right = np.concatenate([leader[group_ids[grouped]], np.asarray(j, dtype=np.int64)])
    labels = component_labels(n, left, right)
    if labels is None:  # no groups and no pairs: every image is its own unit
        labels = rows
    order = sorted(range(n), key=paths.__getitem__)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = rows  # position of each path in sorted order
    smallest = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, labels, rank)
    ids = [unit_id(paths[order[r]]) for r in smallest.tolist()]
    return [ids[label] for label in labels.tolist()]


def unit_id(path: str) -> str:
    return "u-" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]


def components(n: int, i: np.ndarray, j: np.ndarray) -> list[list[int]]:
    """Connected components (of size >= 2) of the pair graph, largest first, members ascending."""
    labels = component_labels(n, i, j)
    if labels is None:
        return []
    order = np.argsort(labels, kind="stable")  # members ascending within each label
    sizes = np.bincount(labels)
    groups = np.split(order, np.cumsum(sizes)[:-1])
    return sorted((g.tolist() for g in groups if len(g) >= 2), key=lambda c: (-len(c), c[0]))


def component_labels(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray | None:
    """Component label per node of the pair graph over n nodes, or None when there are no pairs."""
    if len(i) == 0:
        return None
    graph = coo_matrix((np.ones(len(i), dtype=np.int32), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def tradeoff(n: int, pairs: Pairs, detail: np.ndarray, rule: PairRule, radii: Sequence[int]) -> list[dict]:
    """Pairs and largest cluster (before the size guard) per radius, from pairs found at the largest radius.

    Shows what loosening or tightening `max_distance` would do, so the chosen radius is a visible trade-off.
    """
    rows = []
    for radius in radii:
        keep, _ = rule_mask(pairs.i, pairs.j, pairs.distances, detail, replace(rule, max_distance=int(radius)))
        clusters, largest = cluster_stats(n, pairs.i[keep], pairs.j[keep])
        rows.append({"radius": int(radius), "pairs": int(keep.sum()), "clusters": clusters, "largest_cluster": largest})
    return rows


def cluster_stats(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, int]:
    """(number of components of size >= 2, size of the largest; 1 when there are none) of the pair graph."""
    labels = component_labels(n, i, j)
    if labels is None:
        return 0, 1
    sizes = np.bincount(labels)
    return int((sizes >= 2).sum()), int(sizes.max())


def explain_units(
    labels: Sequence[str],
    groups: Sequence[str],
    units: Sequence[str],
    i: np.ndarray,
    j: np.ndarray,
    strength: np.ndarray,
    share: float,
    top: int = 5,
) -> list[dict]:
    """Units holding more than `share` of a class's images, each with the few pairs that bridge it.

    A unit is declared groups (an image without one is its own group) joined by near-duplicate pairs; a giant unit
    is almost always a few pairs linking otherwise separate groups. Contracting each group to one node, a pair whose
    removal disconnects the unit (a bridge of that graph) is reported with how many images it would cut off,
    largest cut first; a unit without bridges reports its weakest links between groups (lowest `strength`).
    Returns dicts with the unit, class, size, share and `bridges` as (index into i/j, images cut off or None).
    """
    class_size = Counter(labels)
    giant = sorted(
        (label, unit, count)
        for (label, unit), count in Counter(zip(labels, units)).items()
        if count > share * class_size[label] and count >= 3
    )
    if not giant:
        return []
    units = np.asarray(units, dtype=object)
    node = np.asarray([g if g else f"\0{k}" for k, g in enumerate(groups)], dtype=object)
    out, seen = [], {}
    for label, unit, count in giant:
        if unit not in seen:  # a unit giant in several classes (groups spanning classes) is bridged once
            members = units == unit
            edges = np.flatnonzero(members[i] & (node[i] != node[j]))
            cuts = _bridges(node, i[edges], j[edges], members)
            ranked = (
                [(int(edges[e]), c) for e, c in sorted(cuts, key=lambda c: -c[1])[:top]]
                if cuts
                else [(int(e), None) for e in edges[np.argsort(strength[edges], kind="stable")][:top]]
            )
            seen[unit] = (int(members.sum()), len(edges), ranked)
        size, links, ranked = seen[unit]
        out.append(
            {
                "unit": unit,
                "class": label,
                "images": size,
                "images_of_class": count,
                "share_of_class": round(count / class_size[label], 4),
                "links_between_groups": links,
                "bridges": list(ranked),
            }
        )
    return out


def _bridges(node: np.ndarray, i: np.ndarray, j: np.ndarray, members: np.ndarray) -> list[tuple[int, int]]:
    """(edge position, images on the smaller side) of every bridge of the group-contracted multigraph."""
    names, weight = np.unique(node[members], return_counts=True)
    index = {name: k for k, name in enumerate(names.tolist())}
    size = weight.astype(np.int64)
    adjacency: list[list[tuple[int, int]]] = [[] for _ in names]
    for e, (a, b) in enumerate(zip(node[i].tolist(), node[j].tolist())):
        adjacency[index[a]].append((index[b], e))
        adjacency[index[b]].append((index[a], e))
    total = int(size.sum())
    found, order, low, below = [], [-1] * len(names), [0] * len(names), [0] * len(names)
    counter = 0
    for root in range(len(names)):
        if order[root] >= 0:
            continue
        order[root] = low[root] = counter
        counter += 1
        below[root] = int(size[root])
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:  # iterative DFS (Tarjan): recursion would overflow on long chains of groups
            v, via, it = stack[-1]
            advanced = False
            for w, e in it:
                if e == via:
                    continue
                if order[w] < 0:
                    order[w] = low[w] = counter
                    counter += 1
                    below[w] = int(size[w])
                    stack.append((w, e, iter(adjacency[w])))
                    advanced = True
                    break
                low[v] = min(low[v], order[w])
            if advanced:
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[v])
                below[parent] += below[v]
                if low[v] > order[parent]:
                    found.append((via, min(below[v], total - below[v])))
    return found
