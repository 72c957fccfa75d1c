"""Benchmark: the split stage on 1,000,000 manifest rows (target: under a minute on 2 cores).

Prints our time (core assignment alone, and the whole stage with CSV reading, writing, read-back leak check,
registry and report), a baseline measured in the same run (scikit-learn's GroupShuffleSplit twice: train vs rest,
then val vs test; it counts groups, not images, and ignores classes) and the ratio, plus each method's worst
per-class fraction error so the speed is compared at the quality each delivers. Run: `python benchmarks/bench_split.py`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from finetuner.config import parse_params
from finetuner.split.assign import assign_splits
from finetuner.split.stage import SplitPaths, split_dataset

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def make_rows(n: int, n_classes: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` images in groups of very uneven size (Zipf, capped at 2,000), 2% of images off their group's class,
    and 5% of groups merged pairwise by a near-duplicate pair (so units are bigger than groups)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(1.6, n), 2000)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    group = np.repeat(np.arange(len(sizes)), sizes)
    label = rng.integers(n_classes, size=len(sizes))[group]
    off = rng.random(n) < 0.02
    label[off] = rng.integers(n_classes, size=off.sum())
    ids = np.arange(len(sizes))
    merged = (rng.random(len(sizes)) < 0.05) & (ids % 2 == 1)  # odd group g joins group g - 1
    unit = np.where(merged, ids - 1, ids)[group]
    paths = np.char.add(np.char.add("c", label.astype(str)), np.char.add("/img", np.arange(n).astype(str)))
    images = pd.DataFrame(
        {
            "path": paths.astype(object),
            "label": np.char.add("c", label.astype(str)).astype(object),
            "group": np.char.add("g", group.astype(str)).astype(object),
            "unit": np.char.add("u", unit.astype(str)).astype(object),
        }
    )
    first_image = np.cumsum(sizes) - sizes
    pairs = pd.DataFrame(
        {
            "path_a": paths[first_image[ids[merged]]].astype(object),
            "path_b": paths[first_image[ids[merged] - 1]].astype(object),
        }
    )
    return images, pairs


def worst_error(labels: pd.Series, split: np.ndarray) -> float:
    shares = pd.crosstab(labels.to_numpy(), split, normalize="index")
    return max(abs(shares.get(name, 0.0) - share).max() for name, share in FRACTIONS.items())


def baseline(images: pd.DataFrame, seed: int) -> np.ndarray:
    groups = images["unit"].to_numpy()
    first = GroupShuffleSplit(n_splits=1, train_size=0.7, random_state=seed)
    train, rest = next(first.split(images, groups=groups))
    second = GroupShuffleSplit(n_splits=1, train_size=0.5, random_state=seed)
    val, test = next(second.split(rest, groups=groups[rest]))
    split = np.empty(len(images), dtype=object)
    split[train], split[rest[val]], split[rest[test]] = "train", "val", "test"
    return split


def write_stage_inputs(images: pd.DataFrame, pairs: pd.DataFrame, root: Path) -> SplitPaths:
    paths = SplitPaths(
        root / "manifest.csv", root / "units.csv", root / "near_duplicates.csv", root / "splits", root / "split.json"
    )
    images.assign(status="ok", reason="", sha256="", width=64, height=64)[
        ["path", "label", "group", "status", "reason", "sha256", "width", "height"]
    ].to_csv(paths.manifest, index=False)
    images[["path", "unit"]].to_csv(paths.units, index=False)
    pairs.assign(method="phash", distance=4).to_csv(paths.near_duplicates, index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    images, pairs = make_rows(args.rows, args.classes, seed=0)
    print(
        f"{len(images):,} images, {images['group'].nunique():,} groups, {images['unit'].nunique():,} units, "
        f"largest unit {images['unit'].value_counts().iloc[0]:,}, {args.classes} classes"
    )

    start, cpu = time.perf_counter(), time.process_time()
    ours = assign_splits(images, FRACTIONS, 0, edges=pairs, max_unit_share=1.0)
    core, core_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    reference = baseline(images, 0)
    base, base_cpu = time.perf_counter() - start, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_stage_inputs(images, pairs, Path(tmp))
        params = parse_params({"split": {"max_unit_share": 1.0}})
        start, cpu = time.perf_counter(), time.process_time()
        split_dataset(params, paths)
        stage, stage_cpu = time.perf_counter() - start, time.process_time() - cpu
        more, more_pairs = make_rows(args.rows // 20, args.classes, seed=1)  # 5% more images, in new groups
        more = more.assign(**{key: "new/" + more[key] for key in ("path", "group", "unit")})
        more_pairs = "new/" + more_pairs
        write_stage_inputs(pd.concat([images, more]), pd.concat([pairs, more_pairs]), Path(tmp))
        start, cpu = time.perf_counter(), time.process_time()
        report = split_dataset(params, paths)
        sticky, sticky_cpu = time.perf_counter() - start, time.process_time() - cpu
    print("wall s / CPU s (CPU time is what a busy shared machine does not inflate)")
    print(
        f"ours, assign_splits (core):                 {core:6.2f} / {core_cpu:6.2f}   worst per-class fraction "
        f"error {worst_error(images['label'], ours.split.to_numpy()):.4f}"
    )
    print(f"ours, whole stage (CSV in/out, leak check): {stage:6.2f} / {stage_cpu:6.2f}")
    print(
        f"ours, sticky rerun with 5% more data:       {sticky:6.2f} / {sticky_cpu:6.2f}   "
        f"({report['images']['sticky']:,} sticky, {report['images']['new']:,} new, "
        f"leak check passed: {report['leak_check']['passed']})"
    )
    print(
        f"baseline, GroupShuffleSplit x2:             {base:6.2f} / {base_cpu:6.2f}   worst per-class fraction "
        f"error {worst_error(images['label'], reference):.4f}"
    )
    print(
        f"ratio ours(core)/baseline: {core / base:.2f}x wall, {core_cpu / base_cpu:.2f}x CPU;  "
        f"whole stage under a minute: {stage < 60} (wall), {stage_cpu < 60} (CPU)"
    )


if __name__ == "__main__":
    main()
