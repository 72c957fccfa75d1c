"""What the split stage verifies and reports: the leak check, the naive-split leak audit, the sticky registry and
the summary written to reports/split.json. Pure functions over frames; `tasks/split.py` does the reading/writing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from finetuner import layout
from finetuner.dedup.units import explain_units
from finetuner.split.assign import HELD_OUT, NEW, SPLITS, STICKY, SplitAssignment
from finetuner.split.graph import link_pairs

REGISTRY_COLUMNS = layout.REGISTRY_COLUMNS
_EXAMPLES = 5


def check_leaks(
    placed: pd.DataFrame, edges: pd.DataFrame | None, bridged_units: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Every way `placed` (path, group, unit, split; held-out images excluded) could leak, as messages; [] = none.

    A path in two splits; a declared group or a near-duplicate pair across splits; a unit across splits. Units in
    `bridged_units` lost their bridging images to the hold-out, so they are judged link by link instead (which
    needs `edges`); every other unit must sit whole in one split.
    """
    problems = []
    repeated = placed.loc[placed["path"].duplicated(), "path"]
    if len(repeated):
        problems.append(f"{len(repeated)} path(s) in more than one split, e.g. {repeated.head(_EXAMPLES).tolist()}")
    a, b = link_pairs(placed["path"], placed["group"], edges)
    split = placed["split"].to_numpy()
    crossing = split[a] != split[b]
    if crossing.any():
        paths = placed["path"].to_numpy()
        examples = [f"{paths[i]} ({split[i]}) ~ {paths[j]} ({split[j]})" for i, j in zip(a[crossing], b[crossing])]
        problems.append(f"{crossing.sum()} group/near-duplicate link(s) across splits, e.g. {examples[:_EXAMPLES]}")
    unit, names = pd.factorize(placed["unit"])
    code = pd.factorize(split)[0]
    strict = np.ones(len(placed), dtype=bool)
    if edges is not None and bridged_units:
        strict = ~placed["unit"].isin(bridged_units).to_numpy()
    pairs = np.unique(unit[strict].astype(np.int64) * 3 + code[strict])
    spread = np.bincount(pairs // 3, minlength=len(names))
    if (spread > 1).any():
        problems.append(f"{(spread > 1).sum()} unit(s) in several splits, e.g. {names[spread > 1][:5].tolist()}")
    return problems


def moved_images(registry: pd.DataFrame, placed: pd.DataFrame) -> pd.Series:
    """Paths of registered images whose split now differs from the registry (must be none unless reshuffled)."""
    reg = registry.drop_duplicates("path", keep="last")
    at = pd.Index(reg["path"]).get_indexer(placed["path"])
    known = at >= 0
    was = reg["split"].to_numpy()[at[known]]
    now = placed["split"].to_numpy()[known]
    return placed["path"][known][was != now]


def update_registry(
    registry: pd.DataFrame | None, images: pd.DataFrame, assignment: SplitAssignment, run: int
) -> pd.DataFrame:
    """The registry after this run: earlier rows keep their split and run (unit, group and label refreshed for
    images still present; vanished images stay so they return to their split); placed unregistered images are
    added with `run`. Held-out images are never registered, so they stay free to be placed later."""
    current = images.assign(split=assignment.split.to_numpy())[["path", "unit", "group", "label", "split"]]
    if registry is None or registry.empty:
        old = pd.DataFrame(columns=list(REGISTRY_COLUMNS))
    else:
        old = registry.drop_duplicates("path", keep="last").set_index("path")
        fresh = current.set_index("path").reindex(old.index)
        for column in ("unit", "group", "label"):
            old[column] = fresh[column].where(fresh[column].notna(), old[column])
        old = old.reset_index()
    added = current[(current["split"] != HELD_OUT) & ~current["path"].isin(old["path"])].assign(assigned_at_run=run)
    merged = pd.concat([old[list(REGISTRY_COLUMNS)], added[list(REGISTRY_COLUMNS)]], ignore_index=True)
    return merged.sort_values("path", kind="stable").reset_index(drop=True)


def next_run(registry: pd.DataFrame | None) -> int:
    if registry is None or registry.empty:
        return 1
    return int(pd.to_numeric(registry["assigned_at_run"], errors="coerce").fillna(0).max()) + 1


def leak_audit(images: pd.DataFrame, target: np.ndarray, seed: int, edges: pd.DataFrame | None) -> dict[str, Any]:
    """What a naive per-image random split at the same fractions would have leaked: test images with a sibling
    in train (same unit; same declared group; a near-duplicate pair)."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(target)[:2] * len(images)
    naive = np.searchsorted(cuts, rng.permutation(len(images)), side="right")
    audit = _siblings_across(images, naive, edges)
    audit["split"] = "naive per-image random split (same fractions and seed)"
    return audit


def _siblings_across(images: pd.DataFrame, split: np.ndarray, edges: pd.DataFrame | None) -> dict[str, Any]:
    test, train = split == 2, split == 0
    out: dict[str, Any] = {"test_images": int(test.sum())}
    for key in ("unit", "group"):
        values = images[key].to_numpy()
        codes, _ = pd.factorize(values)
        has_train = np.bincount(codes[train], minlength=codes.max() + 1) > 0
        leaking = test & has_train[codes] & (values != "")
        out[f"test_images_with_same_{key}_in_train"] = int(leaking.sum())
    pairs = np.zeros(len(images), dtype=bool)
    if edges is not None and len(edges):
        index = pd.Index(images["path"].to_numpy())
        ia, ib = index.get_indexer(edges["path_a"].to_numpy()), index.get_indexer(edges["path_b"].to_numpy())
        ok = (ia >= 0) & (ib >= 0)
        ia, ib = ia[ok], ib[ok]
        pairs[ia[test[ia] & train[ib]]] = True
        pairs[ib[test[ib] & train[ia]]] = True
    out["test_images_with_near_duplicate_in_train"] = int(pairs.sum())
    out["share_of_test_leaking"] = round(out["test_images_with_same_unit_in_train"] / max(out["test_images"], 1), 4)
    return out


def giant_units(images: pd.DataFrame, edges: pd.DataFrame | None, share: float) -> list[dict[str, Any]]:
    """Units holding more than `share` of a class, each with the near-duplicate pairs that bridge it (the cut edges
    that would split it, largest cut first; its weakest links when no single pair does)."""
    if edges is None or not len(edges):
        return []
    index = pd.Index(images["path"].to_numpy())
    ia, ib = index.get_indexer(edges["path_a"].to_numpy()), index.get_indexer(edges["path_b"].to_numpy())
    both = (ia >= 0) & (ib >= 0)
    found = edges[both].reset_index(drop=True)
    strength = pd.to_numeric(found.get("similarity", pd.Series(1.0, index=found.index)), errors="coerce")
    groups = images["group"].fillna("").astype(str).tolist()
    units = explain_units(
        images["label"].astype(str).tolist(),
        groups,
        images["unit"].astype(str).tolist(),
        ia[both],
        ib[both],
        strength.fillna(1.0).to_numpy(),
        share,
    )
    columns = [c for c in ("path_a", "path_b", "method", "distance", "signal", "similarity") if c in found]
    for unit in units:
        unit["bridges"] = [
            {**{c: _plain(found.at[e, c]) for c in columns}, "images_cut_off": cut} for e, cut in unit["bridges"]
        ]
    return units


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def summarize(
    images: pd.DataFrame,
    assignment: SplitAssignment,
    target: np.ndarray,
    edges: pd.DataFrame | None,
    explain_share: float = 0.25,
) -> dict[str, Any]:
    """Counts per split and class, achieved vs target fractions, largest units (and what bridges the giant ones),
    leak bridges, our own audit."""
    code = np.asarray(assignment.code, dtype=np.int64)
    y, classes = pd.factorize(images["label"], sort=True)
    u, _ = pd.factorize(images["unit"])
    k, on = len(classes), code >= 0
    n_images = np.bincount(code[on] * k + y[on], minlength=3 * k).reshape(3, k)
    triples = np.unique((u[on].astype(np.int64) * k + y[on]) * 3 + code[on])
    n_units = np.bincount((triples % 3) * k + (triples // 3) % k, minlength=3 * k).reshape(3, k)
    units_per_split = np.bincount(np.unique(u[on].astype(np.int64) * 3 + code[on]) % 3, minlength=3)
    units_per_class = np.bincount(np.unique(u[on].astype(np.int64) * k + y[on]) % k, minlength=k)
    shares = n_images / np.maximum(n_images.sum(axis=0), 1)
    per_class = {
        str(label): {"images": int(n_images[:, c].sum()), "units": int(units_per_class[c])}
        | {
            name: {
                "images": int(n_images[s, c]),
                "units": int(n_units[s, c]),
                "fraction": round(float(shares[s, c]), 4),
                "target": float(target[s]),
            }
            for s, name in enumerate(SPLITS)
        }
        for c, label in enumerate(classes)
    }
    total = max(int(on.sum()), 1)
    origin = assignment.origin.to_numpy()
    held = images[~on].assign(reason=origin[~on])
    return {
        "images": {
            "usable": len(images),
            "placed": int(on.sum()),
            "held_out": int((~on).sum()),
            "sticky": int((origin == STICKY).sum()),
            "new": int((origin == NEW).sum()),
        },
        "per_split": {
            name: {
                "images": int(n_images[s].sum()),
                "units": int(units_per_split[s]),
                "fraction": round(n_images[s].sum() / total, 4),
                "target": float(target[s]),
            }
            for s, name in enumerate(SPLITS)
        },
        "per_class": per_class,
        "max_class_fraction_error": round(float(np.abs(shares - target[:, None]).max()), 4),
        "largest_units": _largest_units(images, u, code),
        "giant_units": giant_units(images, edges, explain_share),
        "leak_bridges": {"count": len(held), "images": held[["path", "unit", "reason"]].head(100).to_dict("records")},
        "our_split_audit": _siblings_across(images[on], code[on], edges),
    }


def _largest_units(images: pd.DataFrame, u: np.ndarray, code: np.ndarray, top: int = 10) -> list[dict[str, Any]]:
    sizes = np.bincount(u)
    rows = []
    for unit in np.argsort(-sizes, kind="stable")[:top]:
        members = np.flatnonzero(u == unit)
        labels = images["label"].to_numpy()[members]
        names, counts = np.unique(labels.astype(str), return_counts=True)
        rows.append(
            {
                "unit": str(images["unit"].iat[members[0]]),
                "images": int(sizes[unit]),
                "classes": {str(n): int(c) for n, c in zip(names, counts)},
                "splits": [SPLITS[s] for s in sorted(set(code[members].tolist())) if s >= 0],
            }
        )
    return rows
