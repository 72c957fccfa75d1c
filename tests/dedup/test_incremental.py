"""A grown collection pays for its new images only, and gets what a cold run on it gets: the append-only caches
(finetuner/common/shards.py) return the same hashes, thumbnails and pairs as one cold pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from finetuner.common import shards
from finetuner.common.stage import write_csv
from finetuner.config import parse_params
from finetuner.dedup import stage as dedup
from finetuner.dedup.hash_cache import HashCache
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes
from tests.tasks.test_dedup import COLUMNS, add_image, make_dataset

NAMES = ["phash", "view-full"]


def _cache(root: Path) -> HashCache:
    return HashCache(root, NAMES, hash_size=8, decode_size=64, thumbs=True)


def _rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shas = [f"{k:064x}" for k in range(n)]
    hashes = {m: rng.integers(0, 2**63, n, dtype=np.uint64) for m in NAMES}
    return shas, hashes, rng.random(n).astype(np.float32), rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)


def test_append_only_cache_returns_what_one_cold_save_does(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shards, "MAX_SHARDS", 3)
    shas, hashes, detail, thumbs = _rows(40)
    colours = np.random.default_rng(5).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    cuts = [0, 10, 20, 25, 30, 36, 40]  # six growths: compacted once MAX_SHARDS shards exist
    first_shard_bytes = None
    for lo, hi in zip(cuts, cuts[1:]):
        cache = _cache(tmp_path / "grown")
        assert cache.missing(shas) == list(range(lo, 40))  # earlier rows come back from their shards
        cache.add(shas[lo:hi], {m: h[lo:hi] for m, h in hashes.items()}, detail[lo:hi], thumbs[lo:hi], colours[lo:hi])
        cache.save()
        if lo == 0:
            first = cache.table.files[0]
            first_shard_bytes = first.read_bytes()
        elif lo == 10:  # a growth writes a new shard; the old one is not rewritten
            assert first.read_bytes() == first_shard_bytes and len(cache.table.files) == 2
    assert len(list((cache.table.directory).glob("*.npz"))) <= 3  # compaction bounds the shard count
    cold = _cache(tmp_path / "cold")
    cold.add(shas, hashes, detail, thumbs, colours)
    cold.save()
    order = shas[::-1]  # lookups follow the caller's order, not the shards'
    for a, b in [(_cache(tmp_path / "grown"), _cache(tmp_path / "cold"))]:
        (ha, da, oka), (hb, db, okb) = a.lookup(order), b.lookup(order)
        assert all(np.array_equal(ha[m], hb[m]) for m in NAMES) and np.array_equal(da, db) and oka.all() and okb.all()
        assert np.array_equal(a.thumbs(order)[np.arange(40)], thumbs[::-1])
        assert np.array_equal(a.thumbs(order)[np.array([3, 0])], thumbs[[36, 39]])
        assert np.array_equal(a.colours(order)[np.arange(40)], colours[::-1])


def test_unknown_contents_are_not_ok_and_read_as_zeros(tmp_path: Path) -> None:
    shas, hashes, detail, thumbs = _rows(5)
    cache = _cache(tmp_path)
    cache.add(shas[:3], {m: h[:3] for m, h in hashes.items()}, detail[:3], thumbs[:3])
    cache.save()
    found, _, ok = _cache(tmp_path).lookup(shas)
    assert ok.tolist() == [True, True, True, False, False] and found["phash"][3:].tolist() == [0, 0]
    assert not _cache(tmp_path).thumbs(shas)[np.array([4])].any()


def _pairs(root: Path) -> str:
    return (root / dedup.PAIRS_CSV).read_text()


@pytest.mark.parametrize("max_shards", [2, 8])
def test_grown_runs_find_the_pairs_a_cold_run_finds(tmp_path: Path, monkeypatch, max_shards: int) -> None:
    monkeypatch.setattr(shards, "MAX_SHARDS", max_shards)
    params = parse_params({"data": {"workers": 1}})
    grown, cold = tmp_path / "grown", tmp_path / "cold"
    rows = make_dataset(grown, n_photos=4)
    dedup.run(params, grown)
    base = photo(0, (96, 72))
    # each growth adds a copy of photo 0 (joins its family) or a new photo (joins nothing)
    news = [base.crop((2, 1, 91, 70)), photo(7, (96, 72)), base.crop((5, 0, 96, 68)), photo(8, (96, 72))]
    for k, data in enumerate(to_jpeg_bytes(image) for image in news):
        add_image(grown, rows, f"c1/new{k}.jpg", data, f"n{k}")
        write_csv(grown / dedup.MANIFEST, rows, COLUMNS)
        summary = dedup.run(params, grown)
        assert summary["counts"]["newly_hashed"] == 1, summary["counts"]
        shutil.rmtree(cold, ignore_errors=True)
        shutil.copytree(grown / "data/raw", cold / "data/raw")
        shutil.copytree(grown / "data/interim", cold / "data/interim", ignore=shutil.ignore_patterns("*.csv"))
        write_csv(cold / dedup.MANIFEST, rows, COLUMNS)
        dedup.run(params, cold)
        assert _pairs(grown) == _pairs(cold)
    assert "c1/new0.jpg" in _pairs(grown)  # the crop was found after growing


def test_the_old_single_file_tables_are_removed_and_others_kept(tmp_path: Path) -> None:
    old = ["phash-64bit-d64-v2.npz", "thumbs-d64-v2.npz", "verdicts-0123456789ab-v2.npz"]
    kept = ["embed-0123456789ab-v2.npz", "previews-96-v2.npz"]
    for name in old + kept:
        (tmp_path / name).write_bytes(b"x")
    _cache(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(kept)


def test_pair_tables_of_the_string_keyed_layout_are_removed(tmp_path: Path) -> None:
    from finetuner.dedup.pair_cache import CandidateCache, LookCache, VerdictCache

    old = ["verdicts-0123456789ab-v2", "candidates-0123456789ab-v2"]
    current = ["verdicts-0123456789ab-v2-k3", "candidates-0123456789ab-v2-k3", "hashes-64bit-d64-v2-abcd"]
    for name in old + current:
        (tmp_path / name).mkdir()
        (tmp_path / name / "000001-00000000.npz").write_bytes(b"x")
    VerdictCache(tmp_path, "s"), LookCache(tmp_path, "s"), CandidateCache(tmp_path, "s")
    assert not any((tmp_path / name).exists() for name in old)
    assert all((tmp_path / name).exists() for name in current)  # tables of the current layout and others stay


def test_content_id_lookup_finds_each_id_and_resolves_shared_high_halves() -> None:
    from finetuner.dedup.pair_cache import _content_ids, _IdFinder

    ids = np.array([[5, 1], [5, 2], [3, 9], [7, 0], [5, 3]], dtype=np.uint64)  # three share their high half
    find = _IdFinder(ids)
    wanted = np.array([[5, 3], [3, 9], [5, 1], [5, 4], [8, 1], [7, 0], [5, 2]], dtype=np.uint64)
    assert find(wanted).tolist() == [4, 2, 0, -1, -1, 3, 1]
    assert _IdFinder(np.zeros((0, 2), np.uint64))(wanted).tolist() == [-1] * 7
    # sha256 text folds to 128 bits; texts that differ only in their second half still differ; made-up texts work
    shas = [f"{k:064x}" for k in range(3)] + ["not a sha256"]
    assert len({tuple(row) for row in _content_ids(shas).tolist()}) == 4
    assert np.array_equal(_content_ids(shas[:3]), _content_ids(shas)[:3])  # one text's id does not depend on others


def test_the_candidate_cache_is_searched_again_when_the_views_boxes_change(tmp_path: Path, monkeypatch) -> None:
    """A view's box (a trim) changes its hashes: candidates found from the old hashes are not reused."""
    from finetuner.dedup import candidates
    from finetuner.dedup.hashing import hash_images
    from finetuner.dedup.views import VIEWS, view_hashes

    batch = hash_images([photo(seed, (96, 72)) for seed in range(4)], ("phash", "dhash"))
    hashes = dict(batch.hashes) | {f"view-{v}": h for v, h in view_hashes(batch.thumbs).items() if v in VIEWS}
    config = parse_params({}).dedup

    shas = [f"{k:064x}" for k in range(4)]

    def search() -> None:
        candidates.searched_candidates(hashes, np.zeros(4, bool), ("phash",), 8, config.verify, 1, shas, tmp_path)

    search()
    search()
    assert len(list(tmp_path.glob("candidates-*"))) == 1
    monkeypatch.setattr(candidates, "VIEW_BOXES", candidates.VIEW_BOXES + 1)
    search()
    assert len(list(tmp_path.glob("candidates-*"))) == 2
