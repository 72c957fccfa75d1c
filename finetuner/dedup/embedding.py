"""The dedup stage's optional second signal: embeddings from the configured backbone, cached per content.

Hashes miss near-duplicates that are new photographs of the same thing (another angle, another day); a pretrained
backbone maps those close together. With `dedup.embedding.enabled`, every hashed content is run once through
`model.arch` loaded with `model.weights` (the same loading code and preprocessing as training; never a download),
and the head's input is its embedding (compared by cosine similarity). Embeddings are cached (float16) in
data/cache/dedup per content sha256 under a key that fingerprints the backbone's weights, preprocessing and input
size, so grown data embeds only new files and a different backbone never reuses stale vectors. Work is done in
chunks, each saved before the next, so memory stays bounded and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.common.content_cache import ContentCache
from finetuner.common.stage import InputError
from finetuner.config import ConfigError, Params

log = logging.getLogger("finetuner.dedup")

CHUNK = 1024  # contents decoded and embedded per step (and saved to the cache after each)
VERSION = 2  # 2: files carry a checksum (finetuner/common/integrity.py)


@dataclass
class Embeddings:
    vectors: np.ndarray  # contents x dim float32 (the head's input; unnormalised)
    n_new: int
    origin: dict[str, Any] = field(default_factory=dict)  # which backbone, from where


class EmbeddingCache(ContentCache):
    """sha256 -> float16 vector, one file per backbone fingerprint."""

    def __init__(self, directory: Path, key: str):
        super().__init__(Path(directory) / f"embed-{key}-v{VERSION}.npz", "embedding cache")

    def add(self, shas: Sequence[str], vectors: np.ndarray) -> None:
        self.update(shas, vectors.astype(np.float16))


def backbone_key(model: Any, arch: str, head_prefix: str, preprocessing: Any) -> str:
    """A short fingerprint of what determines an embedding: every non-head tensor, the preprocessing, the arch."""
    from finetuner.evaluate.ledger import model_fingerprint

    backbone = {
        name: tensor
        for name, tensor in model.state_dict().items()
        if name != head_prefix and not name.startswith(head_prefix + ".")
    }
    weights = model_fingerprint(backbone, arch, {})
    return hashlib.sha256(f"{weights}|{preprocessing.to_dict()}".encode()).hexdigest()[:16]


def decode_named(paths: Sequence[Path], preprocessing: Any, workers: int) -> np.ndarray:
    """`decode_images`, but a file that cannot be decoded is an InputError naming it (hashing decodes less of it)."""
    from finetuner.common.imageio import load_rgb
    from finetuner.train.data import decode_images

    try:
        return decode_images(paths, preprocessing, workers)
    except Exception:  # noqa: BLE001 - find which file, and say so
        for path in paths:
            try:
                load_rgb(path)
            except Exception as exc:  # noqa: BLE001
                raise InputError(
                    f"{path}: cannot be decoded for dedup.embedding ({exc}); fix or remove the file, "
                    "or set dedup.embedding.enabled: false"
                ) from None
        raise


def embed_contents(
    paths: Sequence[Path], shas: Sequence[str], params: Params, cache_dir: Path, workers: int
) -> Embeddings:
    """The embedding of every content (as cached, float16 widened to float32), computing only what the cache lacks."""
    import torch

    from finetuner.train.engine import pick_runtime
    from finetuner.train.families import HEAD, block_prefixes
    from finetuner.train.features import extract_features
    from finetuner.train.models import WeightsError, build_model

    config = params.dedup.embedding
    arch = params.model.arch
    size = config.image_size or params.data.image_size
    torch.manual_seed(params.seed)  # model.weights null: a seeded random backbone, the same every run
    try:
        built = build_model(arch, 1, params.model.weights, size)
    except WeightsError as exc:
        raise ConfigError(f"dedup.embedding uses the configured backbone, which cannot be loaded: {exc}") from None
    model, preprocessing = built.model, built.preprocessing
    cache = EmbeddingCache(cache_dir, backbone_key(model, arch, block_prefixes(arch)[HEAD][0], preprocessing))
    missing = cache.missing(shas)
    origin = {"arch": arch, "weights": built.origin.get("weights"), "image_size": size, "cache": cache.path.name}
    log.info(
        "embedding %d of %d distinct contents with %s (%d cached)",
        len(missing),
        len(shas),
        arch,
        len(shas) - len(missing),
    )
    if missing:
        runtime = pick_runtime(params.train.device)
        model.to(runtime.device).eval()
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            images = torch.from_numpy(decode_named([paths[k] for k in chunk], preprocessing, workers))
            features = extract_features(model, arch, images, preprocessing, runtime, config.batch_size)
            cache.add([shas[k] for k in chunk], features.flatten(1).numpy())
            cache.save()
            log.info("embedded %d of %d", min(start + CHUNK, len(missing)), len(missing))
    vectors = np.stack([cache.table[sha].astype(np.float32) for sha in shas]) if shas else np.zeros((0, 0), np.float32)
    return Embeddings(vectors=vectors, n_new=len(missing), origin=origin)


@dataclass
class EmbeddingPairs:
    """Pairs of contents (indices into the embedded list, i < j) at the configured similarity, and the trade-off."""

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray
    tradeoff: list[dict]
    summary: dict[str, Any]


def thresholds(min_similarity: float) -> list[float]:
    """The similarities the report's trade-off table shows: a little looser and a little stricter than configured."""
    values = {round(min_similarity + step, 4) for step in (-0.04, -0.02, 0.0, 0.01, 0.02)}
    return sorted(v for v in values if 0 < v <= 1)


def embedding_pairs(
    params: Params,
    paths: Sequence[Path],
    shas: Sequence[str],
    groups: Sequence[str],
    low_detail: np.ndarray,
    hash_i: np.ndarray,
    hash_j: np.ndarray,
    cache_dir: Path,
    workers: int,
) -> EmbeddingPairs:
    """Embedding pairs among the contents; low-detail contents take no part (to a backbone they all look alike).

    `hash_i`, `hash_j` are the pairs the hashes already found: the trade-off table's clusters include them, since
    that is the graph the size guard and the split will see. `groups` (declared group per content, "" for none)
    lets the table count pairs joining two different declared groups: with groups declared, that column is the
    closest thing to a false-positive count the stage can show without labels.
    """
    from finetuner.dedup.similarity import TooManyPairs, similar_pairs
    from finetuner.dedup.units import cluster_stats

    config = params.dedup.embedding
    embedded = embed_contents(paths, shas, params, cache_dir, workers)
    vectors = embedded.vectors.copy()
    vectors[low_detail] = 0.0  # a zero vector is similar to nothing
    n = len(shas)
    cap = int(config.max_pairs_per_image * max(n, 1))
    shown = thresholds(config.min_similarity)
    try:
        i, j, sim = similar_pairs(vectors, shown[0], max_pairs=cap)
    except TooManyPairs:  # the looser rows of the table are too many; the configured threshold may still be fine
        shown = [t for t in shown if t >= config.min_similarity]
        try:
            i, j, sim = similar_pairs(vectors, config.min_similarity, max_pairs=cap)
        except TooManyPairs as exc:
            raise ConfigError(
                f"dedup.embedding.min_similarity: {exc}, over dedup.embedding.max_pairs_per_image "
                f"({config.max_pairs_per_image}) per image; the embeddings of {params.model.arch} with model.weights "
                f"{params.model.weights!r} do not tell these images apart. Raise min_similarity, use pretrained "
                f"weights, or set dedup.embedding.enabled: false"
            ) from None
    group = np.asarray(groups, dtype=object)
    crosses = (group[i] != "") & (group[j] != "") & (group[i] != group[j]) if len(i) else np.zeros(0, bool)
    table = []
    for t in shown:
        keep = sim >= np.float32(t)
        clusters, largest = cluster_stats(n, np.concatenate([hash_i, i[keep]]), np.concatenate([hash_j, j[keep]]))
        table.append(
            {
                "min_similarity": t,
                "pairs": int(keep.sum()),
                "cross_group_pairs": int(crosses[keep].sum()),
                "clusters": clusters,
                "largest_cluster": largest,
            }
        )
    keep = sim >= np.float32(config.min_similarity)
    summary = {
        **embedded.origin,
        "min_similarity": config.min_similarity,
        "newly_embedded": embedded.n_new,
        "low_detail_skipped": int(low_detail.sum()),
    }
    return EmbeddingPairs(i[keep], j[keep], sim[keep], table, summary)


@dataclass(frozen=True)
class HashedContents:
    """The dedup stage's distinct contents after hashing: content k is image row `rep_rows[k]`."""

    images_dir: Path
    paths: list[str]  # every usable image, in path order
    groups: list[str]  # their declared groups ("" for none)
    shas: list[str]  # one per distinct content
    rep_rows: np.ndarray  # content -> the first row holding it
    detail: np.ndarray  # content -> its thumbnail's grey std (low-detail contents are never embedded pairs)
    ok: np.ndarray  # content -> hashed (decodable)
    workers: int
    cache_dir: Path


def embedding_signal(
    params: Params, contents: HashedContents, near_a: np.ndarray, near_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Rows (a, b) and similarity of the pairs only the embeddings found (`near_a`, `near_b`: the contents the
    hashes already paired), and the report's embedding section."""
    none = np.zeros(0, np.int64)
    if not params.dedup.embedding.enabled:
        return none, none, np.zeros(0, np.float32), {"enabled": False}
    c = contents
    hashed = np.flatnonzero(c.ok)
    position = np.full(len(c.shas), -1, dtype=np.int64)
    position[hashed] = np.arange(len(hashed))
    found = embedding_pairs(
        params,
        [c.images_dir / c.paths[k] for k in c.rep_rows[hashed]],
        [c.shas[k] for k in hashed],
        [c.groups[k] for k in c.rep_rows[hashed]],
        c.detail[hashed] < params.dedup.low_info_std,
        position[near_a],
        position[near_b],
        c.cache_dir,
        c.workers,
    )
    a, b = hashed[found.i], hashed[found.j]
    n = max(len(c.shas), 1)
    new = ~np.isin(np.minimum(a, b) * n + np.maximum(a, b), np.minimum(near_a, near_b) * n + np.maximum(near_a, near_b))
    section = {
        "enabled": True,
        **found.summary,
        "pairs_also_found_by_hashes": int((~new).sum()),
        "tradeoff": found.tradeoff,
    }
    return c.rep_rows[a[new]], c.rep_rows[b[new]], found.similarity[new], section
