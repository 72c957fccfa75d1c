"""From the manifest's distinct contents to near-duplicate pairs: each content hashed once (the hash cache in
data/cache/dedup decodes only new files), then either the hash rule alone (`dedup.verify.enabled: false`) or candidate
views searched and every candidate verified (finetuner/dedup/candidates.py). Used by finetuner/dedup/stage.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from finetuner.common.memory import with_array_memory
from finetuner.config import DedupConfig, Params
from finetuner.dedup.audit import nearest_rejected, verify_tradeoff
from finetuner.dedup.candidates import TWIN_PRONE, Verified, verified_pairs
from finetuner.dedup.decoding import DECODE_SIZE
from finetuner.dedup.hash_cache import HashCache
from finetuner.dedup.hashing import HASH_SIZE, hash_files, view_key
from finetuner.dedup.units import PairRule, apply_rule, find_pairs, tradeoff
from finetuner.dedup.view_search import search_loader
from finetuner.dedup.views import VIEWS

log = logging.getLogger("finetuner.dedup")

TRADEOFF_EXTRA = 4  # the report shows radii up to max_distance + 4


def pair_rule(config: DedupConfig) -> PairRule:
    return PairRule(
        methods=tuple(config.methods),
        max_distance=config.max_distance,
        require_agreement=config.require_agreement,
        low_info_std=config.low_info_std,
        low_info_max_distance=config.low_info_max_distance,
    )


@with_array_memory  # the batch is copied into the cache, gathered back out: 80 MiB each at 20k (common/memory.py)
def hash_contents(
    images_dir: Path,
    paths: list[str],
    shas: list[str],
    methods: tuple[str, ...],
    cache_dir: Path,
    workers: int,
    views: bool = False,
    view_radius: int = -1,
):
    """Hashes, detail and (with `views`: view hashes, thumbnails) per content, decoding only contents the cache
    lacks; returns (hashes, detail, ok, (thumbs, colour thumbnails) or None, n_new). When the view search that follows
    (at `view_radius`) will run compiled, its code is loaded while the workers decode."""
    names = methods + (tuple(view_key(v) for v in VIEWS) if views else ())
    cache = HashCache(cache_dir, names, HASH_SIZE, DECODE_SIZE, thumbs=views)
    missing = cache.missing(shas)
    log.info("hashing %d of %d distinct contents (%d cached)", len(missing), len(shas), len(shas) - len(missing))
    start = time.perf_counter()
    batch = hash_files(
        [images_dir / paths[k] for k in missing],
        methods,
        workers,
        views=VIEWS if views else (),
        meanwhile=search_loader(len(shas), len(missing), view_radius) if views else None,
    )
    good = [k for k, ok in zip(missing, batch.ok.tolist()) if ok]
    if missing:
        seconds = time.perf_counter() - start
        log.info("hashed %d files in %.1f s (%d unreadable)", len(missing), seconds, len(missing) - len(good))
    cache.add(
        [shas[k] for k in good],
        {m: batch.hashes[m][batch.ok] for m in names},
        batch.detail[batch.ok],
        batch.thumbs[batch.ok],
        batch.colours[batch.ok],
    )
    cache.save()
    at = cache.positions(shas)
    hashes, detail, ok = cache.lookup(shas, at)
    return hashes, detail, ok, (cache.thumbs(shas, at), cache.colours(shas, at)) if views else None, len(missing)


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


class ContentFiles(Sequence[Path]):
    """Each content's file, `folder / paths[rows[k]]`, made when read: a run reads few (the full-size look's), and
    building all of them took 25 ms at 21,000 images."""

    def __init__(self, folder: Path, paths: list[str], rows: list[int]):
        self.folder, self.paths, self.rows = folder, paths, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int | slice) -> Path | list[Path]:  # type: ignore[override]
        if isinstance(k, slice):
            return [self[n] for n in range(*k.indices(len(self)))]
        return self.folder / self.paths[self.rows[k]]


def verified_files(
    files: list[Path], config: DedupConfig, workers: int, aspect: np.ndarray | None = None, hash_workers: int = 0
) -> Verified:
    """The verifier's verdicts on the candidates among image files, as the stage makes them from its contents (views,
    colour check, the second look at full size), without caches or guards: for benchmarks and tests. `aspect`: width
    / height per file (None: not checked); the files are hashed by `hash_workers` processes (0: one per core)."""
    batch = hash_files(files, tuple(config.methods), hash_workers, views=VIEWS)
    return verified_pairs(
        batch.hashes,
        batch.detail,
        batch.thumbs,
        batch.ok,
        tuple(config.methods),
        config.max_distance,
        config.low_info_std,
        config.verify,
        workers,
        aspect=aspect,
        colours=batch.colours,
        files=files,
    )


@dataclass(frozen=True)
class Found:
    """Near-duplicate pairs between contents (indices a, b) found from the hashes, verified or by the hash rule."""

    a: np.ndarray
    b: np.ndarray
    method: np.ndarray  # "verified", or the hash rule's label such as "phash+dhash"
    distance: list  # Hamming distance of the signal that proposed the pair
    evidence: list[dict]  # the verifier's evidence columns ({} without the verifier)
    order: np.ndarray  # the size guard's key: closest (most similar) first
    tradeoff: list[dict]
    rejected: list[tuple[int, int, int, dict]]  # (a, b, distance, evidence) of rejected candidates nearest the cut-off
    twin_prone: np.ndarray  # per pair: decided by a rule twins pass as copies: the shape check, the pixel rule
    alike: tuple[np.ndarray, np.ndarray]  # look-alikes by those rules, accepted or not (Verified.look_alikes)
    warnings: tuple[str, ...] = ()  # what the report tells its reader (Verified.warnings)


def hash_pairs(
    params: Params,
    hashes: dict,
    detail: np.ndarray,
    thumbnails: tuple[np.ndarray, np.ndarray] | None,
    ok: np.ndarray,
    aspect: np.ndarray,
    workers: int,
    shas: list[str],
    cache_dir: Path,
    files: Sequence[Path] | None = None,
) -> Found:
    """The pairs of the hashed contents, by the hash rule alone or verified (with `files`, each content's file: large
    graphics the shape check refused are looked at again at full size, finetuner/dedup/full_size.py)."""
    config, rule = params.dedup, pair_rule(params.dedup)
    if not config.verify.enabled:
        near_a, near_b, near, table = detect_pairs(rule, hashes, detail, ok, workers)
        return Found(
            near_a,
            near_b,
            near.method,
            near.distance.tolist(),
            [{}] * len(near_a),
            near.distance.astype(float),
            table,
            [],
            np.zeros(len(near_a), dtype=bool),
            (np.zeros(0, np.int64), np.zeros(0, np.int64)),
        )
    grey, colours = thumbnails  # the verifier's thumbnails, read from the hash cache where indexed
    found = verified_pairs(
        hashes,
        detail,
        grey,
        ok,
        rule.methods,
        rule.max_distance,
        config.low_info_std,
        config.verify,
        workers,
        aspect,
        shas,
        cache_dir,
        colours=colours,
        files=files,
    )
    kept = np.flatnonzero(found.verdicts.accepted)
    rejected = [
        (int(found.a[k]), int(found.b[k]), int(found.distance[k]), found.evidence(k))
        for k in nearest_rejected(found, config.verify).tolist()
    ]
    return Found(
        found.a[kept],
        found.b[kept],
        np.full(len(kept), "verified", dtype=object),
        found.distance[kept].tolist(),
        found.evidence_rows(kept),
        1.0 - found.verdicts.similarity[kept],
        verify_tradeoff(len(detail), found, config.verify),
        rejected,
        np.isin(found.verdicts.rule[kept], TWIN_PRONE),
        found.look_alikes(config.verify.min_shape_similarity),
        found.warnings,
    )
