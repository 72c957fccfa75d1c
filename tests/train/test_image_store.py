"""The on-disk image store: same pixels as decoding, one decode per content, corruption detected and rebuilt."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from finetuner.train import image_store
from finetuner.train.data import decode_images
from finetuner.train.image_cache import cached_images, stored_images
from finetuner.train.preprocessing import Preprocessing
from tests.train_fixtures import make_images

PREP = Preprocessing(resize_size=36, crop_size=32)


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    rows = make_images(tmp_path, per_class=4, size=40)
    paths = [tmp_path / "data" / "raw" / "images" / row["path"] for row in rows]
    copy = paths[0].with_name("copy_of_first.png")  # same content under another name: stored once
    shutil.copyfile(paths[0], copy)
    return paths + [copy]


def _shards(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/shard-*.u8"))


def test_view_equals_decoding_in_order_and_stores_each_content_once(tmp_path: Path, files: list[Path]) -> None:
    cache = tmp_path / "cache"
    view = stored_images(files, PREP, cache, workers=1)
    expected = decode_images(files, PREP, 1)
    assert view.shape == expected.shape
    assert np.array_equal(view[:].numpy(), expected)
    order = torch.tensor([5, 0, 12, 5])
    assert np.array_equal(view[order].numpy(), expected[[5, 0, 12, 5]])
    assert np.array_equal(view[3].numpy(), expected[3])
    (data_file,) = _shards(cache)
    assert data_file.stat().st_size == (len(files) - 1) * 32 * 32 * 3  # the copy was not stored again
    assert np.array_equal(cached_images(files, PREP, cache, 1), expected)


def test_growing_data_adds_a_shard_and_decodes_only_new_content(
    tmp_path: Path, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    stored_images(files[:6], PREP, cache, workers=1)
    decoded: list[int] = []
    real = image_store.decode_images
    monkeypatch.setattr(image_store, "decode_images", lambda paths, *a: decoded.append(len(paths)) or real(paths, *a))
    view = stored_images(files, PREP, cache, workers=1)
    assert decoded == [len(files) - 1 - 6]  # the copy's content was among the first six
    assert len(_shards(cache)) == 2
    assert np.array_equal(view[:].numpy(), decode_images(files, PREP, 1))
    stored_images(files, PREP, cache, workers=1)
    assert decoded == [len(files) - 1 - 6]


@pytest.mark.parametrize("damage", ["pixels", "index", "truncated"])
def test_a_corrupt_shard_is_logged_deleted_and_rebuilt_never_read(
    tmp_path: Path, files: list[Path], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    stored_images(files, PREP, cache, workers=1)
    (data_file,) = _shards(cache)
    if damage == "pixels":
        raw = bytearray(data_file.read_bytes())
        raw[100] ^= 0xFF
        stamp = data_file.stat()
        data_file.write_bytes(bytes(raw))
        # A rewrite moves the mtime; pinned here so a coarse filesystem clock cannot hide it.
        os.utime(data_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    elif damage == "index":
        meta = data_file.with_suffix(".json")
        meta.write_text(meta.read_text().replace('"keys": ["', '"keys": ["0'))
    else:
        data_file.write_bytes(data_file.read_bytes()[:-7])
    with caplog.at_level(logging.WARNING, logger="finetuner.store"):
        view = stored_images(files, PREP, cache, workers=1)
    assert any("corrupt" in record.getMessage() and "deleted" in record.getMessage() for record in caplog.records)
    assert np.array_equal(view[:].numpy(), decode_images(files, PREP, 1))


def test_unchanged_shards_are_not_hashed_again_at_every_open(
    tmp_path: Path, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    stored_images(files, PREP, cache, workers=1)
    hashed: list[str] = []
    real = image_store.hashlib.file_digest
    monkeypatch.setattr(
        image_store.hashlib, "file_digest", lambda handle, name: hashed.append(handle.name) or real(handle, name)
    )
    stored_images(files, PREP, cache, workers=1)
    assert not [name for name in hashed if name.endswith(".u8")]
    (_shards(cache)[0].parent / "verified.json").unlink()  # forces the full check
    stored_images(files, PREP, cache, workers=1)
    assert [Path(name).suffix for name in hashed] == [".u8"]


def test_interrupted_write_and_corrupt_file_memo_are_recovered(tmp_path: Path, files: list[Path]) -> None:
    cache = tmp_path / "cache"
    stored_images(files, PREP, cache, workers=1)
    folder = _shards(cache)[0].parent
    orphan = folder / "shard-000009.u8"
    orphan.write_bytes(b"half a shard")
    (folder / "files.json").write_text("{not json")
    view = stored_images(files, PREP, cache, workers=1)
    assert not orphan.exists()
    assert np.array_equal(view[:].numpy(), decode_images(files, PREP, 1))


def test_augmenting_view_crops_a_larger_stored_image_reproducibly(tmp_path: Path, files: list[Path]) -> None:
    cache = tmp_path / "cache"
    view = stored_images(files, PREP, cache, workers=1, augment=True)
    assert view.size == 40 and view.shape == (len(files), 32, 32, 3)  # stored at 1.25 x the crop
    torch.manual_seed(3)
    first = view[torch.arange(8)]
    torch.manual_seed(3)
    again = view[torch.arange(8)]
    second_draw = view[torch.arange(8)]
    assert first.shape == (8, 32, 32, 3) and first.dtype == torch.uint8
    assert torch.equal(first, again) and not torch.equal(first, second_draw)
    # The plain store is separate and untouched by augmentation.
    assert np.array_equal(stored_images(files, PREP, cache, workers=1)[:].numpy(), decode_images(files, PREP, 1))


def test_view_pickles_for_dataloader_workers_without_its_mappings(tmp_path: Path, files: list[Path]) -> None:
    view = stored_images(files, PREP, tmp_path / "cache", workers=1)
    expected = view[torch.tensor([1, 2])]
    clone = pickle.loads(pickle.dumps(view))
    assert torch.equal(clone[torch.tensor([1, 2])], expected)


def test_training_with_augment_reads_random_crops_from_the_larger_store(tmp_path: Path) -> None:
    from finetuner.train.stage import run_training_stage
    from tests.train_fixtures import make_splits, tiny_params

    make_splits(tmp_path)
    params = tiny_params(**{"stages.head.epochs": 1, "stages.partial.epochs": 1, "train.augment": True})
    run_training_stage("train_head", params, tmp_path)
    stores = lambda: sorted(p.name.split("-")[-1] for p in (tmp_path / "data/cache/images").iterdir())  # noqa: E731
    assert stores() == ["32"]  # a head-only stage fits the clean images: augmentation is for backbone blocks
    run_training_stage("train_partial", params, tmp_path)
    assert stores() == ["32", "40"]  # val at the training size, train at 1.25 x for the random crops
    assert (tmp_path / "models/train_partial/best.pt").is_file()
