"""A content-addressed, sharded, memory-mapped store of decoded uint8 images that training reads lazily.

Layout under `<cache root>/<store key>/` (the key names the preprocessing and the stored size):
- `shard-000000.u8`: rows of S x S x 3 uint8 pixels, raw bytes, written once and never modified;
- `shard-000000.json`: the content hash (sha256 of the image file, as in the manifest) of every row, the shape,
  the sha256 of the `.u8` bytes and a checksum of the JSON itself;
- `files.json`: a memo `path|size|mtime -> sha256`, so an unchanged file is not read again to learn its hash;
- `verified.json`: the size, mtime and inode of each shard when its sha256 was last checked: unchanged shards are
  not hashed again at every start (delete the file to force a full check, e.g. after a disk error).
An image is decoded once per content hash: renamed or copied files cost a hash, not a decode. New images go into
new shards (data file first, then its JSON, each by an atomic rename), so a killed write leaves at most an orphan
`.u8` that the next open deletes. A shard whose bytes or JSON do not match their checksums is logged, deleted and
its images decoded again; it is never read. Shards are raw fixed-size rows, so any reader can memory-map them
(`Shard.array`); `StoreView` reads only the rows a batch needs, by positioned reads, so the process's resident
memory stays flat however large the store grows (the kernel's page cache still keeps hot shards in RAM). The store
is gitignored and not a DVC output: deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetuner.common.stage import atomic_path, write_text
from finetuner.train.crops import random_resized_crop
from finetuner.train.data import decode_images
from finetuner.train.preprocessing import Preprocessing

log = logging.getLogger("finetuner.store")

SHARD_BYTES = 256 * 2**20  # rows per shard = this / bytes per image: large sequential files, few of them
DECODE_CHUNK = 512  # images decoded per step while writing: bounds the memory a write needs


def file_sha256(path: Path) -> str:
    """The manifest's content hash of an image file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sealed(data: dict[str, Any]) -> str:
    """JSON text carrying a checksum of its own content, so a torn or edited index is detected."""
    body = json.dumps(data, sort_keys=True)
    return json.dumps({"checksum": hashlib.sha256(body.encode()).hexdigest(), "data": data}, sort_keys=True)


def _unseal(path: Path) -> dict[str, Any]:
    """The data of a sealed JSON file; ValueError if it is unreadable or does not match its checksum."""
    try:
        outer = json.loads(path.read_text(encoding="utf-8"))
        data, checksum = outer["data"], outer["checksum"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable ({type(exc).__name__})") from None
    if hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest() != checksum:
        raise ValueError("checksum mismatch")
    return data


def _stamp(path: Path, sha256: str) -> list[Any]:
    """What identifies one version of a shard file, for trusting an earlier full check of it."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, sha256]


@dataclass
class Shard:
    """One data file, opened on first read; pickles without its file handle so DataLoader workers reopen it."""

    path: Path
    rows: int
    size: int
    _fd: int | None = field(default=None, repr=False)

    def read(self, row: int, target: np.ndarray) -> None:
        """Copy one stored image into `target` (S x S x 3 uint8) with a positioned read.

        Not through a mapping: on filesystems with large page-cache folios (ext4 on recent kernels) a mapped read
        maps far more than the row it needs, so a batch of random rows added ~75 MiB to the process's peak RSS.
        """
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row_bytes = target.nbytes
        if os.preadv(self._fd, [target.reshape(-1)], row * row_bytes) != row_bytes:
            raise OSError(f"{self.path}: short read at row {row}; delete the image store to rebuild it")

    def array(self) -> np.ndarray:
        """The whole shard as a read-only memory map (for sequential readers; `read` keeps RSS flat)."""
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.rows, self.size, self.size, 3))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "size": self.size, "_fd": None}

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


class ImageStore:
    """The shards of one preprocessing at one stored size, verified once when opened."""

    def __init__(self, folder: Path, size: int):
        self.folder, self.size = folder, size
        self.shards: list[Shard] = []
        self.rows: dict[str, tuple[int, int]] = {}  # content hash -> (shard number, row)
        folder.mkdir(parents=True, exist_ok=True)
        self.verified = self._read_memo("verified.json", "shards will be checked in full again")
        self._saved_verified = dict(self.verified)
        self.files = self._read_memo("files.json", "files will be hashed again")
        self._open_shards()

    def _open_shards(self) -> None:
        metas = sorted(self.folder.glob("shard-*.json"))
        for orphan in sorted(set(self.folder.glob("shard-*.u8")) - {m.with_suffix(".u8") for m in metas}):
            log.info("image store: removing %s, left by an interrupted write", orphan)
            orphan.unlink()
        for meta in metas:
            try:
                keys = self._verified_keys(meta)
            except ValueError as exc:
                log.warning("image store: %s is corrupt (%s); deleted, its images will be decoded again", meta, exc)
                meta.with_suffix(".u8").unlink(missing_ok=True)
                meta.unlink()
                continue
            number = len(self.shards)
            self.shards.append(Shard(meta.with_suffix(".u8"), len(keys), self.size))
            self.rows.update({key: (number, row) for row, key in enumerate(keys) if key not in self.rows})
        self._save_verified()

    def _verified_keys(self, meta: Path) -> list[str]:
        """The shard's keys, after checking its JSON, its length and (once per version of the file) its sha256."""
        data = _unseal(meta)
        keys, data_file = data["keys"], meta.with_suffix(".u8")
        if data["size"] != self.size:
            raise ValueError(f"stored size {data['size']}, expected {self.size}")
        if not data_file.is_file() or data_file.stat().st_size != len(keys) * self.size * self.size * 3:
            raise ValueError(f"{data_file.name} is missing or has the wrong length")
        # Hashing every shard at every start would cost a full read of the store (minutes at 10^6 images): a
        # shard is hashed once, then trusted while its size, mtime and inode match what was hashed.
        if self.verified.get(data_file.name) != _stamp(data_file, data["sha256"]):
            with data_file.open("rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != data["sha256"]:
                    raise ValueError(f"{data_file.name} does not match its checksum")
            self.verified[data_file.name] = _stamp(data_file, data["sha256"])
        return keys

    def _save_verified(self) -> None:
        current = {shard.path.name for shard in self.shards}
        kept = {name: stamp for name, stamp in self.verified.items() if name in current}
        if kept != self._saved_verified:
            write_text(self.folder / "verified.json", _sealed(kept))
            self._saved_verified = dict(kept)

    def _read_memo(self, name: str, consequence: str) -> dict[str, Any]:
        memo = self.folder / name
        try:
            return dict(_unseal(memo)) if memo.exists() else {}
        except ValueError as exc:
            log.warning("image store: %s is corrupt (%s); %s", memo, exc, consequence)
            return {}

    def content_keys(self, paths: Sequence[Path]) -> list[str]:
        """The sha256 of each file, read from the memo when its path, size and mtime are unchanged."""
        keys, fresh = [], False
        for path in paths:
            stat = path.stat()
            memo_key = f"{path.as_posix()}|{stat.st_size}|{stat.st_mtime_ns}"
            if memo_key not in self.files:
                self.files[memo_key], fresh = file_sha256(path), True
            keys.append(self.files[memo_key])
        if fresh:
            write_text(self.folder / "files.json", _sealed(self.files))
        return keys

    def add(self, paths: Sequence[Path], keys: Sequence[str], preprocessing: Preprocessing, workers: int) -> None:
        """Decode the images whose content is not stored yet into new shards."""
        todo = list({key: path for key, path in zip(keys, paths) if key not in self.rows}.items())
        if not todo:
            return
        log.info("image store: decoding %d images into %s (%d stored)", len(todo), self.folder, len(self.rows))
        per_shard = max(1, SHARD_BYTES // (self.size * self.size * 3))
        for start in range(0, len(todo), per_shard):
            self._write_shard(todo[start : start + per_shard], preprocessing, workers)

    def _write_shard(self, items: list[tuple[str, Path]], preprocessing: Preprocessing, workers: int) -> None:
        number = len(self.shards)
        name = f"shard-{max([int(s.path.stem[6:]) for s in self.shards] + [-1]) + 1:06d}"
        data_file = self.folder / f"{name}.u8"
        digest = hashlib.sha256()
        with atomic_path(data_file) as tmp, tmp.open("wb") as handle:
            for start in range(0, len(items), DECODE_CHUNK):
                chunk = decode_images([path for _, path in items[start : start + DECODE_CHUNK]], preprocessing, workers)
                digest.update(chunk.data)
                handle.write(chunk.data)
            handle.flush()
            os.fsync(handle.fileno())
        keys = [key for key, _ in items]
        # The JSON is written last: until it exists the data file is an orphan, never read.
        write_text(
            data_file.with_suffix(".json"), _sealed({"keys": keys, "size": self.size, "sha256": digest.hexdigest()})
        )
        self.shards.append(Shard(data_file, len(keys), self.size))
        self.rows.update({key: (number, row) for row, key in enumerate(keys)})
        self.verified[data_file.name] = _stamp(data_file, digest.hexdigest())
        self._save_verified()

    def view(self, keys: Sequence[str], crop: CropSpec | None = None, pin_memory: bool = False) -> StoreView:
        locations = np.array([self.rows[key] for key in keys], dtype=np.int64).reshape(-1, 2)
        return StoreView(self.shards, locations, self.size, crop, pin_memory)


@dataclass(frozen=True)
class CropSpec:
    """Training-time augmentation on read: random-resized-crop to `size` and a horizontal flip."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


class StoreView:
    """N stored images in a given order, indexable like the uint8 NHWC tensor the engine expects.

    `view[index]` (an int, a slice, or an index array/tensor) gathers the rows from the shards and returns a new
    uint8 tensor; nothing else is held in memory. With a `CropSpec`, each read is a fresh random crop drawn from
    torch's global generator, which the engine reseeds at every epoch, so a resumed run sees the same crops.
    """

    def __init__(
        self,
        shards: list[Shard],
        locations: np.ndarray,
        size: int,
        crop: CropSpec | None = None,
        pin_memory: bool = False,
    ):
        self.shards, self.locations, self.size, self.crop = shards, locations, size, crop
        # Pinned (page-locked) batches let `.to("cuda", non_blocking=True)` copy while the GPU computes.
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        return len(self.locations)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        side = self.crop.size if self.crop else self.size
        return (len(self), side, side, 3)

    def __getitem__(self, index: Any) -> torch.Tensor:
        single = isinstance(index, (int, np.integer))
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index, dtype=np.int64)
        rows = rows.reshape(-1)
        picked = self.locations[rows]
        batch = torch.empty(
            (len(rows), self.size, self.size, 3), dtype=torch.uint8, pin_memory=self.pin_memory and self.crop is None
        )
        for target, (number, row) in zip(batch.numpy(), picked.tolist()):
            self.shards[number].read(row, target)
        if self.crop is not None:
            batch = random_resized_crop(batch, self.crop.size, self.crop.scale, self.crop.ratio)
            batch = batch.pin_memory() if self.pin_memory else batch
        return batch[0] if single else batch
