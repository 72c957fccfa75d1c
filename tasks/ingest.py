"""The `ingest` stage: `data/raw` -> `data/interim/manifest.csv` and `reports/ingest.json`.

Run by DVC as `python -m tasks.ingest` (see dvc.yaml; `dvc repro ingest`). Every file under `data/raw/images` gets
one manifest row, `ok` or `quarantined` with a reason; the report holds the counts by status, class and reason,
the metadata.csv problems and the classes too small to split. Paths come from params.yaml's `data.raw_dir`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from finetuner import layout
from finetuner.common.stage import InputError, run_stage, write_csv, write_json
from finetuner.config import Params
from finetuner.ingest.manifest import (
    MANIFEST_COLUMNS,
    OK,
    SERIAL_BELOW,
    build_manifest,
    check_classes,
    inspect_files,
    list_files,
    missing_files,
    summarize,
)
from finetuner.ingest.metadata import Metadata, MetadataError, MetadataProblem, decode_metadata, parse_metadata

log = logging.getLogger("finetuner.ingest")

MANIFEST = layout.MANIFEST
REPORT = layout.INGEST_REPORT
MAX_LOGGED = 20  # problems beyond this are counted in the log and listed in full in the report


def read_metadata(path: Path) -> Metadata | None:
    """Parse metadata.csv when it exists; a file the stage cannot use at all is an InputError naming it."""
    if not path.exists():
        return None
    try:
        text, problems = decode_metadata(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    try:
        metadata = parse_metadata(text, source=str(path))
    except MetadataError as exc:
        raise InputError(str(exc)) from None
    return dataclasses.replace(metadata, problems=(*problems, *metadata.problems))


def no_images_message(images_dir: Path, problem: str) -> str:
    """What to do when there is nothing to train on (also said by the flows before they start DVC)."""
    return (
        f"{images_dir}: {problem}; put images in {images_dir}/<label>/ (any nested folders below the label) "
        "or run `make demo-data` for the demo dataset (data/README.md describes the layout)"
    )


def ingest(params: Params, manifest_path: Path = MANIFEST, report_path: Path = REPORT) -> dict[str, Any]:
    """Scan, decode, hash and label every file; write the manifest and the report; return the report."""
    raw_dir = Path(params.data.raw_dir)
    images_dir = raw_dir / layout.RAW_IMAGES
    if not images_dir.is_dir():
        raise InputError(no_images_message(images_dir, "no such folder"))
    metadata = read_metadata(raw_dir / layout.RAW_METADATA)
    rel_paths = list_files(images_dir)
    if not rel_paths:
        raise InputError(no_images_message(images_dir, "no files in it"))
    log.info("found %d files under %s; decoding and hashing them", len(rel_paths), images_dir)
    checks = inspect_files(
        images_dir,
        rel_paths,
        max_pixels=params.data.max_image_pixels,
        workers=params.data.workers,
        progress=len(rel_paths) >= SERIAL_BELOW,
    )
    rows = build_manifest(checks, metadata, params.split.group_pattern)
    fractions = params.split.fractions
    n_splits = sum(1 for fraction in (fractions.train, fractions.val, fractions.test) if fraction > 0)
    report = summarize(rows, check_classes(rows, params.data.min_images_per_class, n_splits))
    problems = [*metadata.problems, *missing_files(metadata, rel_paths)] if metadata else []
    problems.sort(key=lambda problem: problem.line or 0)
    report["metadata"] = {
        "file": metadata.source if metadata else None,
        "rows": metadata.n_rows if metadata else 0,
        "extra_columns": list(metadata.extra_columns) if metadata else [],
        "problems": [{"line": p.line, "path": p.path, "problem": p.problem} for p in problems],
    }
    write_csv(manifest_path, rows, MANIFEST_COLUMNS)
    write_json(report_path, report)
    _log_summary(report, problems, metadata.source if metadata else "")
    if report["by_status"][OK] == 0:
        raise InputError(f"none of the {len(rows)} files is a usable image; see {manifest_path} and {report_path}")
    return report


def _log_summary(report: dict[str, Any], problems: list[MetadataProblem], source: str) -> None:
    log.info("manifest: %d files, %s", report["n_files"], report["by_status"])
    log.info("by class: %s", {label: counts[OK] for label, counts in report["by_class"].items()})
    log.info("groups: %d (from %s)", report["n_groups"], report["by_group_source"])
    if report["by_reason"]:
        log.warning("quarantined by reason: %s", report["by_reason"])
    for problem in problems[:MAX_LOGGED]:
        log.warning("%s", problem.describe(source))
    if len(problems) > MAX_LOGGED:
        log.warning("... and %d more metadata problems, listed in %s", len(problems) - MAX_LOGGED, REPORT)
    for finding in report["classes_too_small"]:
        log.warning("class %r is too small: %s", finding["label"], "; ".join(finding["problems"]))


def main() -> int:
    return run_stage("ingest", ingest)


if __name__ == "__main__":
    sys.exit(main())
