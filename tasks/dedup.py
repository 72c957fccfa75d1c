"""The `dedup` stage. Run by DVC as `python -m tasks.dedup` (see dvc.yaml), from the repository root.

Reads the manifest's usable rows, hashes each distinct content once (cached by sha256 in data/cache/dedup, so grown
data decodes only new files), finds exact and near-duplicate pairs, guards against chaining, and writes
data/interim/near_duplicates.csv, data/interim/units.csv, reports/dedup.json and reports/dedup.html.
"""
from __future__ import annotations

import base64
import io
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from finetuner.config import DedupConfig, Params
from finetuner.dedup_report import pair_record, paths_to_preview, render_html, summarize
from finetuner.hashing import DECODE_SIZE, HASH_SIZE, hash_files, resolve_workers
from finetuner.imageio import load_rgb
from finetuner.units import (
    PairRule, apply_rule, assign_units, components, exact_duplicate_pairs, find_pairs, guard_clusters, tradeoff,
)
from tasks.common import read_csv, run_stage, write_csv, write_json, write_text
from tasks.dedup_cache import HashCache

log = logging.getLogger("finetuner.dedup")

MANIFEST = Path("data/interim/manifest.csv")
PAIRS_CSV = Path("data/interim/near_duplicates.csv")
UNITS_CSV = Path("data/interim/units.csv")
REPORT_JSON = Path("reports/dedup.json")
REPORT_HTML = Path("reports/dedup.html")
CACHE_DIR = Path("data/cache/dedup")
TRADEOFF_EXTRA = 4  # the report shows radii up to max_distance + 4
THUMB = 96


def pair_rule(config: DedupConfig) -> PairRule:
    return PairRule(methods=tuple(config.methods), max_distance=config.max_distance,
                    require_agreement=config.require_agreement, low_info_std=config.low_info_std,
                    low_info_max_distance=config.low_info_max_distance)


def hash_contents(paths: list[Path], shas: list[str], methods: tuple[str, ...], cache_dir: Path, workers: int):
    """Hashes and detail per content, decoding only contents the cache lacks; returns (hashes, detail, ok, n_new)."""
    cache = HashCache(cache_dir, methods, HASH_SIZE, DECODE_SIZE)
    missing = cache.missing(shas)
    log.info("hashing %d of %d distinct contents (%d cached)", len(missing), len(shas), len(shas) - len(missing))
    batch = hash_files([paths[k] for k in missing], methods, workers)
    good = [k for k, ok in zip(missing, batch.ok.tolist()) if ok]
    cache.add([shas[k] for k in good], {m: batch.hashes[m][batch.ok] for m in methods}, batch.detail[batch.ok])
    cache.save()
    hashes, detail, ok = cache.lookup(shas)
    return hashes, detail, ok, len(missing)


def thumbnail_b64(path: Path) -> str | None:
    try:
        image = load_rgb(path, size=None)
    except Exception:  # noqa: BLE001 - a preview is a convenience; the report says "no preview" instead
        return None
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def detect_pairs(rule: PairRule, hashes: dict, detail: np.ndarray, ok: np.ndarray, workers: int):
    """Near pairs among the hashed contents at the configured radius, and the radius trade-off table."""
    hashed = np.flatnonzero(ok)
    subset = {m: h[hashed] for m, h in hashes.items()}
    # One search at a wider radius serves both the trade-off table and the pairs at the configured radius.
    wide = replace(rule, max_distance=min(64, rule.max_distance + TRADEOFF_EXTRA))
    wide_pairs = find_pairs(subset, detail[hashed], wide, workers)
    table = tradeoff(len(hashed), wide_pairs, detail[hashed], rule, range(0, wide.max_distance + 1))
    near = apply_rule(wide_pairs.i, wide_pairs.j, wide_pairs.distances, detail[hashed], rule)
    return hashed[near.i], hashed[near.j], near, table


def run(params: Params, root: Path = Path(".")) -> dict:
    """The whole stage under `root`; returns the summary written to reports/dedup.json."""
    config, rule = params.dedup, pair_rule(params.dedup)
    images_dir = root / params.data.raw_dir / "images"
    rows = read_csv(root / MANIFEST, required=("path", "group", "status", "sha256"))
    usable = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["path"])  # row order never matters
    paths, groups, shas = [r["path"] for r in usable], [r["group"] for r in usable], [r["sha256"] for r in usable]
    rep: dict[str, int] = {}  # content -> first row (in path order) holding it; copies are linked as `exact`
    for index, sha in enumerate(shas):
        rep.setdefault(sha, index)
    contents = list(rep)
    rep_rows = np.array([rep[s] for s in contents], dtype=np.int64)
    workers = resolve_workers(params.data.workers)
    hashes, detail, ok, n_new = hash_contents(
        [images_dir / paths[k] for k in rep_rows], contents, rule.methods, root / CACHE_DIR, workers)
    near_a, near_b, near, table = detect_pairs(rule, hashes, detail, ok, workers)
    a, b = rep_rows[near_a], rep_rows[near_b]
    ex_a, ex_b = exact_duplicate_pairs(shas)
    i, j = np.concatenate([ex_a, np.minimum(a, b)]), np.concatenate([ex_b, np.maximum(a, b)])
    methods = np.concatenate([np.full(len(ex_a), "exact", dtype=object), near.method])
    distance = np.concatenate([np.zeros(len(ex_a), np.int64), near.distance])
    forced = np.r_[np.ones(len(ex_a), bool), np.zeros(len(a), bool)]
    keep = guard_clusters(len(paths), i, j, distance, forced, config.max_cluster_size)
    records = [pair_record(paths[x], paths[y], str(m), int(d), groups[x], groups[y])
               for x, y, m, d in zip(i.tolist(), j.tolist(), methods, distance.tolist())]
    kept = sorted((r for r, k in zip(records, keep) if k), key=lambda r: (r["path_a"], r["path_b"]))
    cut = sorted((r for r, k in zip(records, keep) if not k), key=lambda r: (r["distance"], r["path_a"], r["path_b"]))
    units = assign_units(paths, groups, i[keep], j[keep])
    summary = summarize(
        n_images=len(paths), n_contents=len(contents), n_hashed=n_new, kept=kept, cut=cut,
        clusters=[[paths[k] for k in c] for c in components(len(paths), i[keep], j[keep])],
        units=units, tradeoff=table, settings=config.model_dump(mode="json"),
        unreadable=[paths[rep_rows[k]] for k in np.flatnonzero(~ok).tolist()])
    write_outputs(root, images_dir, kept, paths, units, summary)
    return summary


def write_outputs(root: Path, images_dir: Path, kept: list[dict], paths: list[str], units: list[str],
                  summary: dict) -> None:
    write_csv(root / PAIRS_CSV, kept, ("path_a", "path_b", "method", "distance"))
    write_csv(root / UNITS_CSV, ({"path": p, "unit": u} for p, u in zip(paths, units)), ("path", "unit"))
    write_json(root / REPORT_JSON, summary)
    thumbs = {p: t for p in paths_to_preview(summary) if (t := thumbnail_b64(images_dir / p)) is not None}
    write_text(root / REPORT_HTML, render_html(summary, thumbs))
    counts = summary["counts"]
    log.info("dedup: %d images, %d pairs kept, %d cut, %d cross-group, %d units", counts["images"], counts["pairs"],
             counts["pairs_cut_by_size_guard"], counts["cross_group_pairs"], counts["units"])


def main() -> int:
    return run_stage("dedup", lambda params: run(params))


if __name__ == "__main__":
    sys.exit(main())
