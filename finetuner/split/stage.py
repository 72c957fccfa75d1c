"""The `split` stage: leakage-aware, stratified, sticky train/val/test split. Run by DVC as `python -m tasks.split`.

Reads data/interim/manifest.csv (status `ok` rows), data/interim/units.csv and data/interim/near_duplicates.csv;
keeps the sticky record data/splits/registry.csv (a DVC `persist: true` output, read back on the next run);
writes data/splits/{train,val,test}.csv and reports/split.json. After writing, the split files are read back and
checked for leaks; on a leak they are removed and the stage fails. `python -m tasks.split audit` prints only the
leak audit (what a naive per-image random split would leak on the current data) and writes nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finetuner import layout
from finetuner.common.stage import InputError, atomic_path, read_frame, run_stage, write_json
from finetuner.config import ConfigError, Params
from finetuner.split.assign import HELD_OUT, SPLITS, SplitError, assign_splits, fraction_array
from finetuner.split.registry import latest_run_counts, read_registry, write_registry
from finetuner.split.report import (
    REGISTRY_COLUMNS,
    check_leaks,
    leak_audit,
    moved_images,
    next_run,
    summarize,
    update_registry,
)

log = logging.getLogger("finetuner.split")
SPLIT_COLUMNS = layout.SPLIT_COLUMNS


class LeakError(RuntimeError):
    """The written split leaks: a bug, never bad input. The split files have been removed."""


@dataclass(frozen=True)
class SplitPaths:
    manifest: Path = layout.MANIFEST
    units: Path = layout.UNITS
    near_duplicates: Path = layout.NEAR_DUPLICATES
    out_dir: Path = layout.SPLITS
    report: Path = layout.SPLIT_REPORT

    @property
    def registry(self) -> Path:
        return self.out_dir / layout.SPLIT_REGISTRY.name


def load_images(paths: SplitPaths) -> pd.DataFrame:
    """Usable images (manifest status `ok`) with their unit; every one must have a unit."""
    manifest = read_frame(paths.manifest, ("path", "label", "group", "status"))
    units = read_frame(paths.units, ("path", "unit"))
    images = manifest.loc[manifest["status"] == "ok", ["path", "label", "group"]].reset_index(drop=True)
    units = units.drop_duplicates("path")
    at = pd.Index(units["path"]).get_indexer(images["path"])
    images["unit"] = np.where(at >= 0, units["unit"].to_numpy()[at], "")
    lacking = images.loc[images["unit"] == "", "path"]
    if len(lacking):
        raise InputError(
            f"{paths.units}: {len(lacking)} usable image(s) of {paths.manifest} have no unit, e.g. "
            f"{lacking.head(3).tolist()}; rerun the dedup stage (`dvc repro dedup`)"
        )
    return images.reset_index(drop=True)


def split_dataset(params: Params, paths: SplitPaths = SplitPaths()) -> dict[str, Any]:
    """Assign, write, verify and report; returns the report."""
    config = params.split
    images = load_images(paths)
    edges = read_frame(paths.near_duplicates, ("path_a", "path_b")) if paths.near_duplicates.exists() else None
    old = read_registry(paths.registry) if paths.registry.exists() else None
    registry = None if config.reshuffle else old
    fractions = config.fractions.model_dump()
    try:
        assignment = assign_splits(
            images, fractions, params.seed, registry, edges=edges, max_unit_share=config.max_unit_share
        )
    except SplitError as exc:
        raise InputError(str(exc)) from None
    for warning in assignment.warnings:
        log.warning("split: %s", warning)
    target = fraction_array(fractions)
    report = summarize(images, assignment, target, edges)
    frame = images.assign(split=assignment.split.to_numpy())
    for code, name in enumerate(SPLITS):
        _write_split(frame.loc[assignment.code == code, list(SPLIT_COLUMNS)], paths.out_dir / f"{name}.csv")
    bridged = set(frame.loc[assignment.code < 0, "unit"])
    problems = _verify(paths, edges, bridged, registry)
    run = next_run(old)  # a reshuffle is a new run too
    new_registry = update_registry(registry, images, assignment, run)
    report.update(
        seed=params.seed,
        reshuffle=config.reshuffle,
        warnings=list(assignment.warnings),
        # The run that last added rows, not a count of executions: a rerun on unchanged inputs writes the same bytes.
        registry={
            "run": next_run(new_registry) - 1,
            "changed_by_reshuffle": _changed(old, frame) if config.reshuffle else 0,
        },
        leak_check={"passed": not problems, "problems": problems},
        images={**report["images"], **latest_run_counts(new_registry, frame.loc[assignment.code >= 0, "path"])},
        leak_audit=leak_audit(images, target, params.seed, edges),
    )
    if problems:
        write_json(paths.report, report)
        for name in SPLITS:
            (paths.out_dir / f"{name}.csv").unlink(missing_ok=True)
        raise LeakError(
            "the split leaks (split files removed; see reports/split.json; if units.csv and near_duplicates.csv "
            "disagree, rerun `dvc repro dedup`):\n  - " + "\n  - ".join(problems)
        )
    write_registry(paths.registry, lambda target: _write_split(new_registry[list(REGISTRY_COLUMNS)], target))
    write_json(paths.report, report)
    log.info("split: %s", json.dumps(report["per_split"]))
    return report


def _write_split(frame: pd.DataFrame, path: Path) -> None:
    """Atomic CSV write; plain joins when no cell needs quoting (several times faster than to_csv on 1M rows)."""
    columns = [frame[column].astype(str).to_numpy(dtype=object) for column in frame.columns]
    joined = ["\x00".join(column) for column in columns]
    plain = not any(char in text for text in joined for char in ',"\r\n')
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        if plain:
            handle.write(",".join(frame.columns) + "\n")
            if len(frame):
                handle.write("\n".join(map(",".join, zip(*columns))) + "\n")
        else:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(frame.columns)
            writer.writerows(zip(*columns))


def _verify(
    paths: SplitPaths, edges: pd.DataFrame | None, bridged: set[str], registry: pd.DataFrame | None
) -> list[str]:
    """Read the written split files back and check them; a sticky run must also have moved nothing."""
    written = pd.concat(
        [read_frame(paths.out_dir / f"{name}.csv", SPLIT_COLUMNS).assign(split=name) for name in SPLITS],
        ignore_index=True,
    )
    problems = check_leaks(written, edges, bridged)
    if registry is not None:
        moved = moved_images(registry, written)
        if len(moved):
            problems.append(f"{len(moved)} registered image(s) changed split, e.g. {moved.head(5).tolist()}")
    return problems


def _changed(old: pd.DataFrame | None, frame: pd.DataFrame) -> int:
    if old is None:
        return 0
    return len(moved_images(old, frame[frame["split"] != HELD_OUT]))


def audit(paths: SplitPaths = SplitPaths()) -> dict[str, Any]:
    """The leak audit alone, on the current inputs and params; writes nothing."""
    from finetuner.common.stage import load_params

    params = load_params()
    images = load_images(paths)
    edges = read_frame(paths.near_duplicates, ("path_a", "path_b")) if paths.near_duplicates.exists() else None
    return leak_audit(images, fraction_array(params.split.fractions.model_dump()), params.seed, edges)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:
        try:
            print(json.dumps(audit(), indent=2))
        except (InputError, ConfigError) as exc:
            print(f"split audit: {exc}", file=sys.stderr)
            return 2
        return 0
    return run_stage("split", lambda params: split_dataset(params))


if __name__ == "__main__":
    sys.exit(main())
