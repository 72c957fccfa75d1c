"""Leakage-aware, class-stratified, sticky assignment of leakage units to train / val / test.

Pure functions over pandas frames and numpy arrays (no files, no params.yaml); `tasks/split.py` runs them.
The unit of assignment is the leakage unit (declared group joined with near-duplicate clusters), so no unit ever
spans two splits. Fractions are met per class and counted in images, not units, because units are very uneven.

Order of work, and why:
1. Sticky first (`finetuner.split.sticky`): an image listed in the registry keeps its split, and so does every new
   image of its unit; a new image whose path is unknown but whose declared group is registered inherits the
   group's split. A champion and a retrained challenger are then compared on a test split neither trained on.
2. A unit whose registered images sit in several splits (a new image or a new near-duplicate pair joined them):
   registered images never move; new images that link several splits (leak bridges) are held out of every split.
3. Free (new) units: large or multi-class units greedily by per-class deficit in images, largest first; the many
   small single-class units in bulk (vectorised cumulative fill of the remaining deficit); then single-unit moves
   that lower the per-class squared deviation; then a repair so each class reaches every split with a fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from finetuner import layout
from finetuner.split.fractions import fraction_problem
from finetuner.split.sticky import BRIDGE, CONFLICT, HELD_OUT, NEW, SPLITS, STICKY, apply_registry

__all__ = [
    "BRIDGE",
    "CONFLICT",
    "HELD_OUT",
    "NEW",
    "SPLITS",
    "STICKY",
    "SplitAssignment",
    "SplitError",
    "assign_splits",
    "check_feasibility",
    "fraction_array",
]
REQUIRED_COLUMNS = layout.SPLIT_COLUMNS
_BULK_SHARE = 0.005  # pure units smaller than this share of their class are filled in bulk
_IMPROVE_UNITS = 20_000  # the largest free units that local improvement may move
_IMPROVE_STEPS = 500


class SplitError(ValueError):
    """The requested split is impossible for this data; the message names the class and the counts."""


@dataclass(frozen=True)
class SplitAssignment:
    """Per image (aligned with the input frame's index): its split (`HELD_OUT` = none) and why; `code` is the
    split as an index into SPLITS (-1 = held out), for vectorised use."""

    split: pd.Series
    origin: pd.Series
    warnings: tuple[str, ...]
    code: np.ndarray


def fraction_array(fractions: Mapping[str, float]) -> np.ndarray:
    """The fractions as an array in SPLITS order; refuses unknown names, negatives, and sums other than 1."""
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise SplitError(f"unknown split name(s) {sorted(unknown)}; use {', '.join(SPLITS)}")
    values = np.array([float(fractions.get(name, 0.0)) for name in SPLITS])
    problem = fraction_problem(*values.tolist())
    if problem:
        raise SplitError(f"split {problem}")
    return values


def assign_splits(
    images: pd.DataFrame,
    fractions: Mapping[str, float],
    seed: int,
    registry: pd.DataFrame | None = None,
    *,
    edges: pd.DataFrame | None = None,
    max_unit_share: float = 0.5,
) -> SplitAssignment:
    """Assign every image (columns path, label, group, unit; paths unique) to a split or hold it out.

    `registry` (columns path, split, optional group) is the sticky record of earlier runs; None = fresh split.
    `edges` (columns path_a, path_b) are the near-duplicate pairs; they let a leak bridge be resolved precisely
    (without them a conflicting unit is treated as one piece). Raises SplitError for impossible requests.
    """
    target = fraction_array(fractions)
    _check_columns(images)
    y, classes = pd.factorize(images["label"], sort=True)
    u, unit_names = pd.factorize(images["unit"], sort=True)
    warnings = check_feasibility(y, u, classes, unit_names, target, max_unit_share)
    split = np.full(len(images), -1, dtype=np.int8)
    origin = np.full(len(images), NEW, dtype=object)
    if registry is not None and len(registry):
        apply_registry(images, registry, u, split, origin, edges)
    free = origin == NEW
    _assign_free(y, u, len(classes), unit_names, free, split, target, seed)
    warnings += _repair_coverage(y, u, classes, free, split, target)
    names = np.array([*SPLITS, HELD_OUT], dtype=object)
    return SplitAssignment(
        split=pd.Series(names[split], index=images.index, name="split"),
        origin=pd.Series(origin, index=images.index, name="origin"),
        warnings=tuple(warnings),
        code=split,
    )


def _check_columns(images: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in images.columns]
    if missing:
        raise SplitError(f"images need columns {list(REQUIRED_COLUMNS)}; missing {missing}")
    if images.empty:
        raise SplitError("no usable images to split")
    if images["path"].duplicated().any():
        duplicated = images.loc[images["path"].duplicated(), "path"].head(3).tolist()
        raise SplitError(f"each image path must appear once; repeated: {duplicated}")


def check_feasibility(
    y: np.ndarray, u: np.ndarray, classes, unit_names, target: np.ndarray, max_unit_share: float
) -> list[str]:
    """Raise SplitError for classes that cannot be split as asked; return warnings for the merely uneven.

    Errors: a class in fewer units than splits with a fraction > 0 (some split would miss it entirely); a class
    with one unit holding more than `max_unit_share` of its images (no assignment can come near the targets).
    """
    k = len(classes)
    pairs, counts = np.unique(u.astype(np.int64) * k + y, return_counts=True)
    pair_class = pairs % k
    units_per_class = np.bincount(pair_class, minlength=k)
    images_per_class = np.bincount(y, minlength=k)
    largest = np.zeros(k, dtype=np.int64)
    np.maximum.at(largest, pair_class, counts)
    needed = int((target > 0).sum())
    names = " and ".join(name for name, share in zip(SPLITS, target) if share > 0)
    problems = []
    for c in np.flatnonzero(units_per_class < needed):
        problems.append(
            f"class {classes[c]!r} has {units_per_class[c]} unit(s) ({images_per_class[c]} images) but {names} "
            f"each need at least one: add images from other groups, or set split.fractions.val: 0"
        )
    share = largest / np.maximum(images_per_class, 1)
    for c in np.flatnonzero((share > max_unit_share) & (units_per_class >= needed)):
        holder = unit_names[(pairs // k)[(pair_class == c) & (counts == largest[c])][0]]
        problems.append(
            f"class {classes[c]!r}: unit {holder!r} holds {largest[c]} of its {images_per_class[c]} images "
            f"({share[c]:.0%} > split.max_unit_share {max_unit_share:g}), so its fractions cannot come near "
            f"the targets: add images from other groups, or raise split.max_unit_share"
        )
    if problems:
        raise SplitError("impossible split:\n  - " + "\n  - ".join(problems))
    return [
        f"class {classes[c]!r}: its largest unit holds {share[c]:.0%} of its images; its fractions may be off"
        for c in np.flatnonzero(share > min(0.25, max_unit_share))
    ]


def _assign_free(
    y: np.ndarray,
    u: np.ndarray,
    k: int,
    unit_names: np.ndarray,
    free: np.ndarray,
    split: np.ndarray,
    target: np.ndarray,
    seed: int,
) -> None:
    """Assign the units no registry knows: greedy large units, bulk small ones, then local moves."""
    placed = split >= 0
    totals = np.bincount(y[placed | free], minlength=k).astype(np.float64)
    placed_counts = np.bincount(split[placed].astype(np.int64) * k + y[placed], minlength=3 * k).reshape(3, k)
    deficit = placed_counts - np.outer(target, totals)  # images over (+) or under (-) target, per split and class
    if not free.any():
        return
    table = UnitTable.build(y[free], u[free], k, unit_names, seed)
    weight = 1.0 / np.maximum(totals, 1.0) ** 2  # every class counts equally, whatever its size
    choice = np.full(table.n_units, -1, dtype=np.int8)
    bulk = table.bulk_mask(totals, _BULK_SHARE)
    _greedy(table, np.flatnonzero(~bulk), deficit, weight, target, choice)
    _bulk_fill(table, bulk, deficit, target, choice)
    _improve(table, np.flatnonzero(~bulk)[:_IMPROVE_UNITS], deficit, weight, target, choice)
    split[free] = choice[table.unit_of_image]


@dataclass
class UnitTable:
    """The free units, numbered 0..n-1 from largest to smallest (ties in seeded random order), with their
    per-class image counts in CSR form (pair_start[i]:pair_start[i+1] index pair_class / pair_count)."""

    n_units: int
    size: np.ndarray
    pair_start: np.ndarray
    pair_class: np.ndarray
    pair_count: np.ndarray
    unit_of_image: np.ndarray

    @classmethod
    def build(cls, y: np.ndarray, u: np.ndarray, k: int, unit_names: np.ndarray, seed: int) -> UnitTable:
        local, first = np.unique(u, return_inverse=True)
        size = np.bincount(first)
        # A per-unit key from the unit's name and the seed: independent of row order and of other units.
        key = pd.util.hash_array(np.asarray(unit_names[local], dtype=object), hash_key=f"{seed & (2**64 - 1):016x}")
        order = np.lexsort((key, -size))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        unit_of_image = rank[first]
        pairs, counts = np.unique(unit_of_image.astype(np.int64) * k + y, return_counts=True)
        pair_unit = pairs // k
        start = np.searchsorted(pair_unit, np.arange(len(order) + 1))
        return cls(len(order), size[order], start, (pairs % k).astype(np.int64), counts, unit_of_image)

    def bulk_mask(self, totals: np.ndarray, share: float) -> np.ndarray:
        """Single-class units small enough (vs their class) to be filled in bulk without a measurable error."""
        single = np.diff(self.pair_start) == 1
        cls_of = self.pair_class[np.minimum(self.pair_start[:-1], len(self.pair_class) - 1)]
        return single & (self.size <= np.maximum(1.0, share * totals[cls_of]))


def _greedy(table, units, deficit, weight, target, choice) -> None:
    """Largest first: each unit goes where it lowers the weighted squared per-class deviation the most."""
    closed = np.where(target > 0, 0.0, np.inf)[:, None]
    for unit in units:
        lo, hi = table.pair_start[unit], table.pair_start[unit + 1]
        cls, cnt = table.pair_class[lo:hi], table.pair_count[lo:hi]
        cost = ((2 * deficit[:, cls] + cnt) * (cnt * weight[cls]) + closed).sum(axis=1)
        best = int(np.argmin(cost))
        deficit[best, cls] += cnt
        choice[unit] = best


def _bulk_fill(table, bulk, deficit, target, choice) -> None:
    """Small single-class units, per class in seeded order, cut at the remaining deficits by cumulative size."""
    units = np.flatnonzero(bulk)
    if not len(units):
        return
    cls = table.pair_class[table.pair_start[units]]
    size = table.size[units].astype(np.float64)
    key = pd.util.hash_array(units.astype(np.int64)) ^ np.uint64(0x9E3779B97F4A7C15)
    order = np.lexsort((key, cls))
    units, cls, size = units[order], cls[order], size[order]
    room = np.clip(-deficit, 0.0, None) * (target > 0)[:, None]  # images each split still lacks, per class
    remaining = np.bincount(cls, weights=size, minlength=deficit.shape[1])
    scale = np.divide(remaining, room.sum(axis=0), out=np.zeros_like(remaining), where=room.sum(axis=0) > 0)
    room = np.where(room.sum(axis=0) > 0, room * scale, np.outer(target, remaining))
    bounds = np.cumsum(room, axis=0)  # 3 x k cumulative cut points
    cum = np.cumsum(size)
    class_start = np.concatenate([[0.0], np.cumsum(np.bincount(cls, weights=size, minlength=len(remaining)))])
    middle = cum - size / 2 - class_start[cls]
    pick = (middle[:, None] >= bounds[:2, cls].T).sum(axis=1)
    choice[units] = pick
    np.add.at(deficit, (pick, cls), size)


def _improve(table, units, deficit, weight, target, choice) -> None:
    """Single-unit moves among the large free units while one lowers the weighted squared deviation."""
    if len(units) < 2:
        return
    k = deficit.shape[1]
    dense = np.zeros((len(units), k))
    for row, unit in enumerate(units):
        lo, hi = table.pair_start[unit], table.pair_start[unit + 1]
        dense[row, table.pair_class[lo:hi]] = table.pair_count[lo:hi]
    self_term = (dense**2) @ weight
    closed = np.where(target > 0, 0.0, np.inf)
    current = choice[units].astype(np.int64)
    for _ in range(_IMPROVE_STEPS):
        gain = dense @ (deficit * weight).T  # unit x split: sum_k w c D
        delta = 2 * (gain - gain[np.arange(len(units)), current][:, None] + self_term[:, None]) + closed
        delta[np.arange(len(units)), current] = 0.0
        row, dest = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[row, dest] >= -1e-12:
            break
        deficit[current[row]] -= dense[row]
        deficit[dest] += dense[row]
        current[row] = dest
    choice[units] = current


def _repair_coverage(y, u, classes, free, split, target) -> list[str]:
    """Give every class at least one image in every split with a fraction > 0, moving the smallest free unit
    whose departure leaves no class of it missing from its current split; report what cannot be repaired."""
    k = len(classes)
    placed = split >= 0
    counts = np.bincount(split[placed].astype(np.int64) * k + y[placed], minlength=3 * k).reshape(3, k)
    warnings = []
    for dest, c in zip(*np.nonzero((counts == 0) & (target > 0)[:, None])):
        if counts[dest, c] > 0:  # an earlier move in this loop already covered it
            continue
        unit = _spare_unit(y, u, c, free, split, counts, k)
        if unit is None:
            warnings.append(f"class {classes[c]!r} has no images in {SPLITS[dest]} (no unit could be spared)")
            continue
        moving = (u == unit) & free
        np.subtract.at(counts, (split[moving].astype(np.int64), y[moving]), 1)
        np.add.at(counts, (np.full(moving.sum(), dest), y[moving]), 1)
        split[moving] = dest
    return warnings


def _spare_unit(y, u, c, free, split, counts, k) -> int | None:
    """The smallest free, placed unit holding class `c` whose whole move (a unit may mix classes) leaves every
    class it holds still present in the split it leaves, so one repair never undoes another."""
    candidates = np.unique(u[(y == c) & free & (split >= 0)])
    best, best_size = None, None
    for unit in candidates:
        members = (u == unit) & free
        source = int(split[members][0])
        held = np.bincount(y[members], minlength=k)
        if np.any((held > 0) & (counts[source] <= held)):
            continue
        size = int(members.sum())
        if best_size is None or size < best_size:
            best, best_size = int(unit), size
    return best
