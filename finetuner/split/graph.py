"""Links between images that make them one leakage unit: a shared declared group, or a near-duplicate pair.

Used by the split to resolve leak bridges precisely (which registered images are still linked once the bridging
new images are held out) and by the leak check. Pure functions, vectorised with scipy's connected components.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def link_pairs(paths: pd.Series, groups: pd.Series, edges: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Positional index pairs (a, b) among `paths` that are linked: consecutive members of one non-empty
    declared group (a chain suffices for connectivity), and near-duplicate pairs with both ends present."""
    values = groups.to_numpy()
    group, names = pd.factorize(values)  # missing -> -1
    for empty in np.flatnonzero(np.asarray(names, dtype=object) == ""):  # "" = no declared group
        group[group == empty] = -1
    order = np.argsort(group, kind="stable")
    same = (group[order][1:] == group[order][:-1]) & (group[order][1:] >= 0)
    a, b = [order[:-1][same]], [order[1:][same]]
    if edges is not None and len(edges):
        index = pd.Index(paths.to_numpy())
        ia = index.get_indexer(edges["path_a"].to_numpy())
        ib = index.get_indexer(edges["path_b"].to_numpy())
        both = (ia >= 0) & (ib >= 0)
        a.append(ia[both])
        b.append(ib[both])
    return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64)


def components_of(paths: pd.Series, groups: pd.Series, edges: pd.DataFrame | None) -> np.ndarray:
    """Connected-component label (0..m-1) of each image under `link_pairs`."""
    n = len(paths)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    a, b = link_pairs(paths, groups, edges)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
