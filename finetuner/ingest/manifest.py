"""The ingest stage's core: find every file under the image folder, decode and hash it, give it a label and a group.

`list_files` walks the folder; `inspect_files` decodes and hashes every file (in parallel for long scans);
`resolve_groups` applies metadata.csv, then `split.group_pattern`, then the image itself; `build_manifest` turns it
all into one manifest row per file, usable (`ok`) or `quarantined` with a reason, never dropped; `summarize`
counts what happened for the report. Run through `tasks/ingest.py` (`dvc repro ingest`).
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import re
import stat
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from tqdm import tqdm

from finetuner import layout
from finetuner.common.imageio import (
    DEFAULT_MAX_PIXELS,
    NOT_AN_IMAGE,
    UNREADABLE,
    ImageCheckError,
    ImageInfo,
    check_image,
)
from finetuner.ingest.metadata import Metadata, MetadataProblem

MANIFEST_COLUMNS = layout.MANIFEST_COLUMNS
EXTRA_COLUMNS = ("detail", "size_bytes", "format", "mode", "n_frames", "group_source")
OK, QUARANTINED = "ok", "quarantined"
NO_LABEL = "no label folder"
CONFLICT = "conflicting metadata"
HIDDEN_DETAIL = "hidden file or folder (e.g. .DS_Store, ._x.jpg); not decoded"
SERIAL_BELOW = 64  # starting worker processes costs more than decoding this many small files


@dataclass(frozen=True)
class FileCheck:
    """What reading one file found: its size and hash, and either its image facts or why it is unusable."""

    size_bytes: int | None
    sha256: str
    info: ImageInfo | None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    source: str  # "metadata", "pattern" or "image"


def is_hidden(rel_path: str) -> bool:
    """Files such as .DS_Store, ._x.jpg (macOS) or anything in a .folder are never treated as images."""
    return any(part.startswith(".") for part in rel_path.split("/"))


def list_files(images_dir: Path) -> list[str]:
    """Every non-directory entry under `images_dir`, as sorted posix paths relative to it.

    Symlinked folders are followed (data is often linked in from elsewhere), each real folder once, so a link
    cycle cannot loop. Dangling links are listed too, and so is a folder that cannot be listed: reading them
    fails later with a reason, where os.walk would have skipped them without a word.
    """
    found: list[str] = []
    seen: set[str] = set()

    def unlistable(error: OSError) -> None:
        found.append(Path(error.filename).relative_to(images_dir).as_posix())

    for folder, dirnames, filenames in os.walk(images_dir, onerror=unlistable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        rel_folder = Path(folder).relative_to(images_dir)
        found.extend((rel_folder / name).as_posix() for name in filenames)
    return sorted(found)


def inspect_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = True) -> FileCheck:
    """Hash one file and (with `decode`) decode it fully; a bad file gives a reason, never an exception.

    The file is streamed through the hash rather than read into memory, so a stray multi-gigabyte video
    costs time, not RAM; the decode then rereads it from the page cache.
    """
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return FileCheck(None, "", None, UNREADABLE, "a folder whose contents could not be listed")
        if not stat.S_ISREG(mode):  # a FIFO would block the scan forever; a device never ends
            return FileCheck(None, "", None, UNREADABLE, "not a regular file (a pipe, socket or device)")
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            size = handle.tell()
            handle.seek(0)
            if not decode:
                return FileCheck(size, digest, None, NOT_AN_IMAGE, HIDDEN_DETAIL)
            try:
                info = check_image(handle, max_pixels)
            except ImageCheckError as exc:
                return FileCheck(size, digest, None, exc.reason, exc.detail)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one file, not the whole scan
                return FileCheck(size, digest, None, "undecodable", f"{type(exc).__name__}: {exc}")
    except OSError as exc:  # permission denied, dangling link, a folder where a file was expected
        return FileCheck(None, "", None, UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}")
    return FileCheck(size, digest, info)


def available_cpus() -> int:
    """Cores this process may use (the affinity mask in containers), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def inspect_files(
    images_dir: Path,
    rel_paths: Sequence[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, FileCheck]:
    """Inspect every file, in parallel over `workers` processes (0 = all cores) unless the scan is tiny."""
    workers = workers or available_cpus()
    paths = [images_dir / rel for rel in rel_paths]
    decode = [not is_hidden(rel) for rel in rel_paths]
    work = partial(_inspect, max_pixels=max_pixels)
    jobs = list(zip(paths, decode))
    if workers == 1 or len(jobs) < SERIAL_BELOW:
        with _progress_bar(len(jobs), progress) as bar:
            results = [_tick(bar, work(job)) for job in jobs]
    else:
        chunksize = max(1, min(64, math.ceil(len(jobs) / (workers * 8))))
        with ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context()) as pool:
            # map submits every chunk (and so starts the workers) before the bar's monitor thread exists.
            checks = pool.map(work, jobs, chunksize=chunksize)
            with _progress_bar(len(jobs), progress) as bar:
                results = [_tick(bar, check) for check in checks]
    return dict(zip(rel_paths, results))


def _inspect(job: tuple[Path, bool], max_pixels: int) -> FileCheck:
    path, decode = job
    return inspect_file(path, max_pixels, decode)


def _worker_context() -> BaseContext:
    """fork where it exists: spawned workers would re-import the stage's __main__ and with it torch (~10 s each)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _progress_bar(total: int, enabled: bool) -> tqdm:
    return tqdm(total=total, desc="ingest", unit="file", file=sys.stderr, disable=not enabled)


def _tick(bar: tqdm, check: FileCheck) -> FileCheck:
    bar.update(1)
    return check


def resolve_groups(
    rel_paths: Iterable[str], metadata: Metadata | None = None, group_pattern: str | None = None
) -> dict[str, Group]:
    """Each image's group: its metadata.csv row, else `group_pattern`'s named group `group`, else the image itself.

    The image as its own group is the honest default: with no declared unit of independence, only
    near-duplicate detection can join images, and the split must not pretend to know more.
    """
    pattern = re.compile(group_pattern) if group_pattern else None
    groups: dict[str, Group] = {}
    for rel in rel_paths:
        entry = metadata.entries.get(rel) if metadata else None
        match = pattern.search(rel) if pattern else None
        if entry is not None and entry.group:
            groups[rel] = Group(entry.group, "metadata")
        elif match is not None and match.group("group"):
            groups[rel] = Group(match.group("group"), "pattern")
        else:
            groups[rel] = Group(rel, layout.IMAGE_GROUP)
    return groups


def resolve_label(rel_path: str, metadata: Metadata | None = None) -> str:
    """The first folder under images/, unless metadata.csv gives a label; "" when there is neither."""
    entry = metadata.entries.get(rel_path) if metadata else None
    if entry is not None and entry.label:
        return entry.label
    head, sep, _ = rel_path.partition("/")
    return head if sep else ""


def build_manifest(
    checks: Mapping[str, FileCheck], metadata: Metadata | None = None, group_pattern: str | None = None
) -> list[dict[str, Any]]:
    """One row per inspected file, sorted by path: MANIFEST_COLUMNS, EXTRA_COLUMNS, then metadata's extra columns."""
    groups = resolve_groups(checks, metadata, group_pattern)
    conflicts = metadata.conflicts if metadata else {}
    rows = []
    for rel in sorted(checks):
        check, group = checks[rel], groups[rel]
        label = resolve_label(rel, metadata)
        reason, detail = check.reason, check.detail
        if not reason and rel in conflicts:
            reason, detail = CONFLICT, f"contradicting metadata.csv rows on lines {list(conflicts[rel])}"
        elif not reason and not label:
            reason, detail = NO_LABEL, "directly in images/; put it in images/<label>/ or give it a metadata label"
        info = check.info
        row: dict[str, Any] = {
            "path": rel,
            "label": label,
            "group": group.name,
            "status": QUARANTINED if reason else OK,
            "reason": reason,
            "sha256": check.sha256,
            "width": info.width if info else "",
            "height": info.height if info else "",
            "detail": detail,
            "size_bytes": "" if check.size_bytes is None else check.size_bytes,
            "format": info.format if info else "",
            "mode": info.mode if info else "",
            "n_frames": info.n_frames if info else "",
            "group_source": group.source,
        }
        entry = metadata.entries.get(rel) if metadata else None
        for name in metadata.extra_columns if metadata else ():
            # An extra column named like one of ours is kept under a prefixed name instead of overwriting it.
            key = f"meta_{name}" if name in row else name
            row[key] = entry.extras.get(name, "") if entry else ""
        rows.append(row)
    return rows


def missing_files(metadata: Metadata, rel_paths: Iterable[str]) -> list[MetadataProblem]:
    """metadata.csv rows (and contradicting rows) naming a path that is not under the image folder."""
    present = set(rel_paths)
    lines = {path: entry.line for path, entry in metadata.entries.items()}
    lines.update({path: rows[0] for path, rows in metadata.conflicts.items()})
    return [
        MetadataProblem(line, path, "no such file under data/raw/images; the row is ignored")
        for path, line in sorted(lines.items(), key=lambda item: item[1])
        if path not in present
    ]


def check_classes(rows: Iterable[Mapping[str, Any]], min_images: int, n_splits: int) -> list[dict[str, Any]]:
    """Labels that are too small to train and evaluate on: few usable images, or fewer groups than splits.

    Groups are counted before near-duplicate merging, which can only lower the count further.
    """
    usable: Counter[str] = Counter()
    groups: dict[str, set[str]] = defaultdict(set)
    labels: set[str] = set()
    for row in rows:
        labels.add(row["label"])
        if row["status"] == OK:
            usable[row["label"]] += 1
            groups[row["label"]].add(row["group"])
    findings = []
    for label in sorted(labels - {""}):
        n_images, n_groups = usable[label], len(groups[label])
        problems = []
        if n_images < min_images:
            problems.append(f"{n_images} usable image(s), fewer than data.min_images_per_class = {min_images}")
        if n_groups < n_splits:
            problems.append(
                f"only {n_groups} group(s) for {n_splits} splits: whole groups go to one split, "
                "so this class cannot appear in every split"
            )
        if problems:
            findings.append({"label": label, "usable": n_images, "groups": n_groups, "problems": problems})
    return findings


def summarize(rows: Sequence[Mapping[str, Any]], class_findings: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Counts by status, class, reason and group source, the quarantined files, and the class findings."""
    by_class: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_class[row["label"] or "(no label)"][row["status"]] += 1
    ok_rows = [row for row in rows if row["status"] == OK]
    return {
        "n_files": len(rows),
        "by_status": {OK: len(ok_rows), QUARANTINED: len(rows) - len(ok_rows)},
        "by_class": {label: {OK: c[OK], QUARANTINED: c[QUARANTINED]} for label, c in sorted(by_class.items())},
        "by_reason": dict(sorted(Counter(row["reason"] for row in rows if row["reason"]).items())),
        "by_group_source": dict(sorted(Counter(row["group_source"] for row in ok_rows).items())),
        "n_groups": len({row["group"] for row in ok_rows}),
        "classes_too_small": list(class_findings),
        "quarantined": [
            {"path": row["path"], "reason": row["reason"], "detail": row["detail"]}
            for row in rows
            if row["status"] != OK
        ],
    }
