"""Write the synthetic demo world to disk: `python -m finetuner.demo.data [--batch N] [--force] [--root DIR]`.

Batch 1 (the default) writes, when absent, `<root>/raw/images/<label>/<specimen>/<file>.jpg` with
`<root>/raw/metadata.csv` (`path,group`), the pretraining source task in `<root>/source/` (same layout), and the
ground truth of what was planted in `<root>/demo_truth.json` (kept outside `raw/images`, so ingest never sees it).
`--batch 2` (3, ...) adds new specimens to `raw/`, appending their rows to metadata.csv and leaving every earlier
file and row as it was. Without `--force` anything already present is left alone (and the log says so).
The seed is params.yaml's `seed`; the world itself is `finetuner.demo.world` (pure, deterministic).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from finetuner.common.stage import InputError, atomic_path, read_csv, run_stage, write_csv, write_json
from finetuner.demo.world import (
    BATCH_SPEC,
    DEMO_SPEC,
    SOURCE_SPEC,
    DemoFile,
    DemoWorld,
    WorldSpec,
    build_source,
    build_world,
)

log = logging.getLogger("finetuner.demo_data")
COLUMNS = ("path", "group")


def _present(images: Path) -> bool:
    return images.is_dir() and any(images.iterdir())


def _write_tree(target: Path, files: Sequence[DemoFile]) -> None:
    """Write all files into a staging folder beside `target`, then swap it in with one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    trash = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        for file in files:
            path = staging / file.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.data)
        if target.exists():  # only with --force: move the old tree aside first, so the swap stays one rename
            os.replace(target, trash)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)


def _update_truth(root: Path, seed: int, key: str, world: DemoWorld) -> None:
    path = root / "demo_truth.json"
    truth: dict[str, Any] = {"seed": seed, "batches": {}}
    if path.exists():
        with contextlib.suppress(ValueError):
            truth = json.loads(path.read_text(encoding="utf-8"))
    truth.setdefault("batches", {})[key] = world.truth()
    write_json(path, truth)


def _summarise(name: str, world: DemoWorld) -> dict[str, Any]:
    kinds = Counter(file.kind for file in world.files)
    truth = world.truth()
    summary = {
        "files": len(world.files),
        "groups": len({file.group for file in world.files}),
        "by_class": truth["counts_by_class"],
        "by_kind": dict(sorted(kinds.items())),
        "cross_group_copies": sum(pair["cross_group"] for pair in truth["planted"]),
    }
    log.info(
        "%s: wrote %d files in %d groups; by class %s; planted copies and broken files %s "
        "(%d copies filed under another group)",
        name,
        summary["files"],
        summary["groups"],
        summary["by_class"],
        {k: v for k, v in summary["by_kind"].items() if k != "photo"},
        summary["cross_group_copies"],
    )
    return summary


def write_first_batch(seed: int, root: Path, force: bool = False, spec: WorldSpec = DEMO_SPEC) -> dict[str, Any] | None:
    """Batch 1 into `<root>/raw` when absent (or with force); returns its summary, or None when left alone."""
    raw = root / "raw"
    if _present(raw / "images") and not force:
        log.info("%s already present: nothing written (use --force to regenerate the demo world)", raw / "images")
        return None
    log.info("%s: drawing the demo world (batch 1, %d specimens)...", raw, spec.specimens)
    world = build_world(seed, spec, batch=1)
    # metadata first: a run killed before the images are swapped in leaves no images, so the next run redoes both
    write_csv(raw / "metadata.csv", world.metadata_rows(), COLUMNS)
    _write_tree(raw / "images", world.files)
    truth = root / "demo_truth.json"
    if force and truth.exists():
        truth.unlink()  # later batches' truth described the tree just replaced
    _update_truth(root, seed, "1", world)
    return _summarise(f"{raw} batch 1", world)


def write_source(seed: int, root: Path, force: bool = False, spec: WorldSpec = SOURCE_SPEC) -> dict[str, Any] | None:
    """The pretraining source task into `<root>/source` when absent (or with force)."""
    source = root / "source"
    if _present(source / "images") and not force:
        log.info("%s already present: nothing written", source / "images")
        return None
    log.info("%s: drawing the pretraining source task (%d photos, ~10 s on 2 cores)...", source, spec.specimens)
    world = build_source(seed, spec)
    write_csv(source / "metadata.csv", world.metadata_rows(), COLUMNS)
    _write_tree(source / "images", world.files)
    return _summarise(f"{source} (pretraining source task)", world)


def _earlier_photos(images: Path, rows: Sequence[dict[str, str]]) -> list[tuple[str, bytes]]:
    """Decodable files already in the dataset, in path order: the pool batch N copies a few from."""
    photos = []
    for row in sorted(rows, key=lambda r: r["path"]):
        path = images / row["path"]
        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # the planted broken files, or anything else unreadable
        photos.append((row["path"], data))
    return photos


def write_later_batch(
    seed: int, root: Path, batch: int, force: bool = False, spec: WorldSpec = BATCH_SPEC
) -> dict[str, Any] | None:
    """New specimens (group ids `b<batch>-...`) added to `<root>/raw`; earlier files and rows are never touched."""
    raw, prefix = root / "raw", f"b{batch}-"
    metadata = raw / "metadata.csv"
    if not _present(raw / "images") or not metadata.exists():
        raise InputError(f"{raw}: no demo world yet; write batch 1 first (`python -m finetuner.demo.data`)")
    rows = read_csv(metadata, required=COLUMNS)
    mine = [row for row in rows if row["group"].startswith(prefix)]
    if mine and not force:
        log.info("%s: batch %d already present (%d rows): nothing written", raw, batch, len(mine))
        return None
    kept = [row for row in rows if not row["group"].startswith(prefix)]
    for row in mine:  # --force: this batch's old files go; nothing of any other batch does
        (raw / "images" / row["path"]).unlink(missing_ok=True)
    world = build_world(seed, spec, batch=batch, previous=_earlier_photos(raw / "images", kept))
    for file in world.files:
        with atomic_path(raw / "images" / file.path) as tmp:
            tmp.write_bytes(file.data)
    # the rows last: until they are in, the batch counts as absent and a rerun rewrites the same bytes
    write_csv(metadata, kept + world.metadata_rows(), COLUMNS)
    _update_truth(root, seed, str(batch), world)
    return _summarise(f"{raw} batch {batch}", world)


def write_demo_data(seed: int, root: Path, batch: int = 1, force: bool = False) -> None:
    """What the CLI does: batch 1 and the source task, or one later batch."""
    if batch == 1:
        write_first_batch(seed, root, force)
        write_source(seed, root, force)
    else:
        write_later_batch(seed, root, batch, force)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m finetuner.demo.data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="1: the demo world and source task; 2+: new specimens")
    parser.add_argument("--force", action="store_true", help="regenerate even if present (batch 1 replaces all)")
    parser.add_argument("--root", default="data", help="folder holding raw/ and source/ (default: data)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stage("demo_data", lambda params: write_demo_data(params.seed, Path(args.root), args.batch, args.force))


if __name__ == "__main__":
    sys.exit(main())
