"""The append-only shard tables under the dedup caches (finetuner/common/shards.py): their mapped columns' checksums."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from finetuner.common import shards
from finetuner.common.shards import ShardedTable


def _columns(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"id": np.arange(5), "thumbs": rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)}


def test_mapped_columns_come_back_as_written(tmp_path: Path) -> None:
    table = ShardedTable(tmp_path, "test table", ("thumbs",))
    table.append(_columns(0))
    (loaded,) = ShardedTable(tmp_path, "test table", ("thumbs",)).load()
    assert np.array_equal(loaded["thumbs"], _columns(0)["thumbs"]) and isinstance(loaded["thumbs"], np.memmap)
    assert set(loaded) == {"id", "thumbs"}  # the checksum is not a column


def test_shards_written_with_sha256_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # caches written before the mapped columns' checksum became CRC-32 are read, not rebuilt
    monkeypatch.setattr(shards, "WRITTEN_DIGEST", "sha256")
    ShardedTable(tmp_path, "test table", ("thumbs",)).append(_columns(1))
    monkeypatch.undo()
    (loaded,) = ShardedTable(tmp_path, "test table", ("thumbs",)).load()
    assert np.array_equal(loaded["thumbs"], _columns(1)["thumbs"])


@pytest.mark.parametrize("digest", ["crc32", "sha256"])
def test_a_changed_byte_of_a_mapped_column_drops_its_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, digest: str
) -> None:
    monkeypatch.setattr(shards, "WRITTEN_DIGEST", digest)
    table = ShardedTable(tmp_path, "test table", ("thumbs",))
    first = table.append(_columns(2))
    table.append(_columns(3))
    side = first.with_name(first.name.replace(".npz", ".thumbs.npy"))
    data = bytearray(side.read_bytes())
    data[-1] ^= 1  # the last pixel: the file still parses
    side.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        loaded = ShardedTable(tmp_path, "test table", ("thumbs",)).load()
    assert len(loaded) == 1 and np.array_equal(loaded[0]["thumbs"], _columns(3)["thumbs"])
    assert "checksum mismatch" in caplog.text and side.name in caplog.text and not first.exists()
