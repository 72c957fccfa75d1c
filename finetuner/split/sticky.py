"""Stickiness: what the registry of earlier runs decides before any new unit is assigned. Pure; used by
`finetuner.split.assign.assign_splits`.

Stickiness is keyed by image path (and declared group), not by unit id, because the dedup stage renumbers units
when components merge as data grows. Registered images never move. A new image inherits the split of the
registered images it is linked to; if it links registered images of different splits it is a leak bridge and is
held out of every split. If registered images are themselves newly linked across splits (a new near-duplicate
pair between old images), the split holding most of that linked piece keeps it and the rest is held out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from finetuner.split.graph import components_of, link_pairs

SPLITS = ("train", "val", "test")
HELD_OUT = ""
# Why an image ended up where it is (column `origin` of the assignment).
NEW, STICKY, BRIDGE, CONFLICT = "new", "registry", "leak_bridge", "registered_conflict"
MASK_TO_SPLIT = np.array([-1, 0, 1, -1, 2, -1, -1, -1], dtype=np.int8)  # a one-bit split mask -> its split


def apply_registry(
    images: pd.DataFrame,
    registry: pd.DataFrame,
    u: np.ndarray,
    split: np.ndarray,
    origin: np.ndarray,
    edges: pd.DataFrame | None,
) -> None:
    """Fill `split`/`origin` in place for every unit the registry already knows (sticky, bridges, conflicts)."""
    reg = registry.drop_duplicates("path", keep="last")
    reg_code = pd.Categorical(reg["split"], categories=SPLITS).codes.astype(np.int8)
    at = pd.Index(reg["path"]).get_indexer(images["path"])
    by_path = np.where(at >= 0, reg_code[at], -1).astype(np.int8)
    prior = by_path.copy()
    if "group" in reg.columns:
        prior = np.where(prior >= 0, prior, _group_prior(images["group"], reg["group"], reg_code)).astype(np.int8)
    known = prior >= 0
    mask = np.zeros(u.max() + 1, dtype=np.uint8)
    np.bitwise_or.at(mask, u[known], np.left_shift(1, prior[known].astype(np.uint8)).astype(np.uint8))
    unit_split = MASK_TO_SPLIT[mask]
    sticky = unit_split[u] >= 0
    split[sticky] = unit_split[u][sticky]
    origin[sticky] = STICKY
    conflicted = np.flatnonzero((mask[u] > 0) & ~sticky)
    if len(conflicted):
        sub = images.iloc[conflicted]
        _keep_registered(sub, conflicted, by_path[conflicted], split, origin, edges)
        _place_new(sub, conflicted, by_path[conflicted], prior[conflicted], split, origin, edges)


def _group_prior(groups: pd.Series, reg_groups: pd.Series, reg_code: np.ndarray) -> np.ndarray:
    """The registered split of each image's declared group, when the registry gives that group exactly one."""
    table = pd.DataFrame({"group": reg_groups.to_numpy(), "code": reg_code})
    table = table[(table["group"] != "") & table["group"].notna() & (table["code"] >= 0)]
    per_group = table.groupby("group")["code"].agg(["min", "max"])
    single = per_group[per_group["min"] == per_group["max"]]["min"]
    return single.reindex(groups.to_numpy()).fillna(-1).to_numpy().astype(np.int8)


def _keep_registered(sub, rows, by_path, split, origin, edges) -> None:
    """Registered images of conflicting units keep their split, unless linked to another split's images; then
    the split with most images of the linked piece keeps it (ties keep test, then val, stable) and the rest is
    held out. Without `edges` the whole unit counts as one linked piece."""
    registered = by_path >= 0
    if not registered.any():
        return
    old = sub[registered]
    piece = pd.factorize(old["unit"])[0] if edges is None else components_of(old["path"], old["group"], edges)
    code = by_path[registered].astype(np.int64)
    counts = np.bincount(piece * 3 + code, minlength=(piece.max() + 1) * 3).reshape(-1, 3)
    keep = np.argmax(counts * 4 + np.arange(3), axis=1)
    stays = keep[piece] == code
    targets = rows[registered]
    split[targets[stays]] = code[stays]
    origin[targets[stays]] = STICKY
    origin[targets[~stays]] = CONFLICT


def _place_new(sub, rows, by_path, prior, split, origin, edges) -> None:
    """New images of conflicting units: a piece of new images linked (directly, or through other new images)
    to placed images of exactly one split joins it; a piece touching several splits is a leak bridge."""
    new = by_path < 0
    if not new.any():
        return
    if edges is None:  # without the pairs we cannot tell a bridge from a bystander: hold out every new image
        origin[rows[new]] = BRIDGE
        return
    a, b = link_pairs(sub["path"], sub["group"], edges)
    both_new = new[a] & new[b]
    n = len(rows)
    graph = coo_matrix((np.ones(both_new.sum(), dtype=np.int8), (a[both_new], b[both_new])), shape=(n, n))
    piece = connected_components(graph, directed=False)[1]
    touched = np.zeros(piece.max() + 1, dtype=np.uint8)
    placed_split = split[rows]
    for x, r in ((a, b), (b, a)):
        hit = new[x] & (placed_split[r] >= 0)
        np.bitwise_or.at(touched, piece[x[hit]], np.left_shift(1, placed_split[r[hit]].astype(np.uint8)))
    own = new & (prior >= 0)  # a registered declared group counts as a link to its split
    np.bitwise_or.at(touched, piece[own], np.left_shift(1, prior[own].astype(np.uint8)))
    joins = MASK_TO_SPLIT[touched[piece]]
    placeable = new & (joins >= 0)
    split[rows[placeable]] = joins[placeable]
    origin[rows[placeable]] = STICKY
    origin[rows[new & ~placeable]] = BRIDGE
