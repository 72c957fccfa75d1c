"""Append-only tables on disk: a run adds one shard file holding its new rows and never rewrites the older ones.

For caches that grow with the data (dedup's hashes, thumbnails, candidate pairs and verdicts): after 5% more images
a run writes 5% of the rows, where a single-file cache rewrote (and checksummed) all of them every run. A shard is
`<seq>-<token>.npz` of named columns, written atomically with a checksum (finetuner/common/integrity.py); big
fixed-shape columns (`mapped`) go to `<seq>-<token>.<name>.npy` beside it and are memory-mapped when read, so a run
pages in only the rows it uses; their CRC-32 is kept in the npz and checked on every load. The npz is written last:
it is the shard's commit, so a run killed mid-append leaves at most an orphan .npy, which is ignored and cleared.
A damaged or partial shard is reported with its file name, deleted, and its rows are simply missing (callers
recompute them). `save` appends, or once MAX_SHARDS shards exist compacts the table into one shard (`replace`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from finetuner.common.integrity import CorruptFile, load_npz_checked, save_npz_checked
from finetuner.common.stage import atomic_path

log = logging.getLogger("finetuner.cache")

MAX_SHARDS = 8  # once this many exist, the next save writes one shard of every row instead (a rewrite per 8 growths)


def _bytes(values: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(values)).cast("B")


# A mapped column's checksum, by the name it is stored under in the npz. Every load checks every mapped column (82 MB
# of thumbnails at 20,000 images): CRC-32 reads it in 11 ms, sha256 in 37 ms. It guards against damage, not against
# someone forging a cache. Shards written with sha256 still load.
_DIGESTS: dict[str, Callable[[np.ndarray], str]] = {
    "crc32": lambda values: f"{zlib.crc32(_bytes(values)):08x}",
    "sha256": lambda values: hashlib.sha256(_bytes(values)).hexdigest(),
}
WRITTEN_DIGEST = "crc32"


class ShardedTable:
    """The shards of one table in `directory`; `what` names the table in the warning about a damaged shard."""

    def __init__(self, directory: Path, what: str, mapped: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.what = what
        self.mapped = mapped
        self.files: list[Path] = []  # the shards `load` found valid, oldest first

    def _shard_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.npz"), key=lambda p: (_seq(p), p.name))

    def load(self) -> list[dict[str, np.ndarray]]:
        """Every valid shard's columns, oldest first (mapped columns as read-only memory maps)."""
        shards, self.files = [], []
        for path in self._shard_files():
            try:
                shards.append(self._read(path))
                self.files.append(path)
            except CorruptFile as exc:
                log.warning("ignoring damaged %s shard (%s); its rows will be rebuilt", self.what, exc)
                self._remove(path)
        self._clear_orphans()
        return shards

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        columns = load_npz_checked(path)
        for name in self.mapped:
            stored = {kind: columns.pop(f"{name}_{kind}", None) for kind in _DIGESTS}
            side = _mapped_path(path, name)
            try:
                values = np.load(side, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise CorruptFile(f"{side}: unreadable ({type(exc).__name__}: {exc})") from None
            kind = next((k for k in _DIGESTS if stored[k] is not None), None)
            if kind is None or _DIGESTS[kind](values) != str(stored[kind]):
                raise CorruptFile(f"{side}: checksum mismatch (the file was changed or damaged after it was written)")
            columns[name] = values
        return columns

    def append(self, columns: dict[str, np.ndarray]) -> Path:
        """Write `columns` as a new shard (newest); returns its path."""
        seq = max((_seq(p) for p in self._shard_files()), default=0) + 1
        path = self.directory / f"{seq:06d}-{secrets.token_hex(4)}.npz"
        small = {k: v for k, v in columns.items() if k not in self.mapped}
        for name in self.mapped:
            values = np.ascontiguousarray(columns[name])
            with atomic_path(_mapped_path(path, name)) as tmp, tmp.open("wb") as handle:
                np.save(handle, values, allow_pickle=False)
            small[f"{name}_{WRITTEN_DIGEST}"] = np.array(_DIGESTS[WRITTEN_DIGEST](values))
        save_npz_checked(path, **small)
        self.files.append(path)
        return path

    def save(self, new: dict[str, np.ndarray], everything: Callable[[], dict[str, np.ndarray]]) -> None:
        """Append `new` as a shard; once the table holds MAX_SHARDS, write `everything()` as one instead."""
        if len(self.files) >= MAX_SHARDS:
            self.replace(everything())
            log.info("%s compacted into one shard (%s)", self.what, self.directory)
        else:
            self.append(new)

    def replace(self, columns: dict[str, np.ndarray]) -> None:
        """Compact: write `columns` as one new shard, then delete every older one (a reader in between sees the
        new shard last, so its rows win)."""
        older = self._shard_files()
        newest = self.append(columns)
        for path in older:
            if path != newest:
                self._remove(path)
        self.files = [newest]

    def _remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        for name in self.mapped:
            _mapped_path(path, name).unlink(missing_ok=True)

    def _clear_orphans(self) -> None:
        """Mapped files without their npz: a killed append or a deleted shard; nothing can read them."""
        live = {p.name.removesuffix(".npz") for p in self.files}
        for side in self.directory.glob("*.npy") if self.directory.is_dir() else []:
            if side.name.split(".")[0] not in live:
                side.unlink(missing_ok=True)


def _seq(path: Path) -> int:
    head = path.name.split("-")[0]
    return int(head) if head.isdigit() else 0


def _mapped_path(shard: Path, name: str) -> Path:
    return shard.with_name(f"{shard.name.removesuffix('.npz')}.{name}.npy")
