"""The dedup stage's caches per content sha256: hashes and thumbnails (`HashCache`), and the report's previews.

Live in data/cache/dedup (gitignored, not a DVC output), so `dvc repro` after data grew decodes only new files. A hash
depends on the decode (reduced-size JPEG draft), hence the decode size in the key; bump VERSION when the hashing code
changes what it computes. With `thumbs`, the 64x64 grey thumbnails the verifier compares are kept too (4 KiB per
content), and the 16x16 colour ones of its colour check (768 bytes), so verifying a pair never decodes a file again.
The hash cache is append-only (finetuner/common/shards.py): a run writes only its new rows, and a damaged shard is
reported, deleted and its rows rebuilt. The caches per candidate pair (candidates, verdicts, looks) are
finetuner/dedup/pair_cache.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetuner.common.content_cache import ContentCache
from finetuner.common.shards import ShardedTable
from finetuner.dedup.colour import SIDE as COLOUR_SIDE
from finetuner.dedup.hashing import PIXELS, THUMB
from finetuner.dedup.views import VIEW_BOXES

log = logging.getLogger("finetuner.dedup")

VERSION = 2  # 2: files carry a checksum (finetuner/common/integrity.py)
# single-file tables of the hash, candidate and verdict caches before they were sharded (directories now)
LEGACY = ("*bit-d*-v2.npz", "detail-d*-v2.npz", "thumbs-d*-v2.npz", "verdicts-*-v2.npz", "candidates-*-v2.npz")


class HashCache:
    """sha256 -> uint64 per hash name, detail (the thumbnail's grey std) and, with `thumbs`, the 64x64 thumbnail.

    `save` writes the rows added since the load as one new shard, so a grown collection writes its new contents only;
    stored thumbnails stay memory-mapped and are read where indexed (`Thumbs`)."""

    def __init__(self, directory: Path, methods: Sequence[str], hash_size: int, decode_size: int, thumbs: bool = False):
        self.names = tuple(methods)
        self.with_thumbs = thumbs
        # One table per set of columns: a content counts as cached only when every column is, so a changed method
        # list rehashes every content anyway.
        key = hashlib.sha256(repr((self.names, thumbs, PIXELS, VIEW_BOXES)).encode()).hexdigest()[:8]
        tag = f"{hash_size * hash_size}bit-d{decode_size}-v{VERSION}-{key}"
        mapped = ("thumbs", "colours") if thumbs else ()
        self.table = ShardedTable(Path(directory) / f"hashes-{tag}", "hash cache", mapped)
        _drop_legacy(Path(directory))
        self.shards = self.table.load()
        self.where: dict[str, tuple[int, int]] = {}  # sha -> (shard, row); later shards win
        for s, shard in enumerate(self.shards):
            self.where.update((sha, (s, r)) for r, sha in enumerate(shard["sha"].astype(str).tolist()))
        self.pending: list[int] = []  # shards added in memory, not yet written

    def missing(self, shas: Sequence[str]) -> list[int]:
        """Positions of the contents not cached."""
        return [k for k, sha in enumerate(shas) if sha not in self.where]

    def add(
        self,
        shas: Sequence[str],
        hashes: dict[str, np.ndarray],
        detail: np.ndarray,
        thumbs: np.ndarray | None = None,
        colours: np.ndarray | None = None,
    ) -> None:
        if not len(shas):
            return
        rows = {"sha": np.array(shas, dtype="S64"), "detail": np.asarray(detail, np.float32)}
        rows |= {f"hash_{name}": np.asarray(hashes[name], np.uint64) for name in self.names}
        if self.with_thumbs:
            rows["thumbs"] = np.asarray(thumbs, np.uint8)
            blank = np.zeros((len(shas), COLOUR_SIDE, COLOUR_SIDE, 3), np.uint8)  # no colour known: grey
            rows["colours"] = blank if colours is None else np.asarray(colours, np.uint8)
        self.pending.append(len(self.shards))
        self.where.update((sha, (len(self.shards), r)) for r, sha in enumerate(shas))
        self.shards.append(rows)  # read like a stored shard until `save` writes it

    def positions(self, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row) per content; -1 where not cached."""
        found = np.array([self.where.get(sha, (-1, -1)) for sha in shas], dtype=np.int64).reshape(len(shas), 2)
        return found[:, 0], found[:, 1]

    def gather(self, column: str, shard: np.ndarray, row: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`out` with the column's values filled in where shard >= 0 (one fancy index per shard)."""
        for s in np.unique(shard[shard >= 0]).tolist():
            mine = shard == s
            out[mine] = self.shards[s][column][row[mine]]
        return out

    def lookup(
        self, shas: Sequence[str], at: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(hashes per name, detail, ok) for every content; ok is False where nothing is cached (unreadable). `at`:
        their `positions`, where the caller has them."""
        shard, row = self.positions(shas) if at is None else at
        n = len(shas)
        hashes = {m: self.gather(f"hash_{m}", shard, row, np.zeros(n, np.uint64)) for m in self.names}
        return hashes, self.gather("detail", shard, row, np.zeros(n, np.float32)), shard >= 0

    def thumbs(self, shas: Sequence[str], at: tuple[np.ndarray, np.ndarray] | None = None) -> Thumbs:
        """The contents' thumbnails, read where indexed (zeros where not cached: such contents are not `ok`)."""
        return Thumbs(self, *(self.positions(shas) if at is None else at))

    def colours(self, shas: Sequence[str], at: tuple[np.ndarray, np.ndarray] | None = None) -> Thumbs:
        """The contents' colour thumbnails, as `thumbs`."""
        return Thumbs(self, *(self.positions(shas) if at is None else at), column="colours")

    def save(self) -> None:
        """Write the added rows as one new shard (or, past MAX_SHARDS shards, every live row as one)."""
        if not self.pending:
            return
        names = list(self.shards[self.pending[0]])
        self.table.save({n: np.concatenate([self.shards[s][n] for s in self.pending]) for n in names}, self._live)
        self.pending = []

    def _live(self) -> dict[str, np.ndarray]:
        """Every content's newest row, as one table (for compaction)."""
        shard, row = (np.array(c, dtype=np.int64) for c in zip(*self.where.values()))
        out = {"sha": np.array(list(self.where), dtype="S64"), "detail": np.zeros(len(shard), np.float32)}
        out |= {f"hash_{m}": np.zeros(len(shard), np.uint64) for m in self.names}
        if self.with_thumbs:
            out["thumbs"] = np.zeros((len(shard), THUMB, THUMB), np.uint8)
            out["colours"] = np.zeros((len(shard), COLOUR_SIDE, COLOUR_SIDE, 3), np.uint8)
        return {
            name: values if name == "sha" else self.gather(name, shard, row, values) for name, values in out.items()
        }


def _drop_legacy(directory: Path) -> None:
    """Delete the single-file tables older versions wrote (82 MiB of thumbnails at 20k): nothing reads them now."""
    for pattern in LEGACY:
        for path in directory.glob(pattern):
            log.info("removing %s: the dedup caches are sharded now (rebuilt once)", path)
            path.unlink(missing_ok=True)


class Thumbs:
    """A lazy (n, 64, 64) uint8 stack of cached thumbnails (with `column` "colours": (n, 16, 16, 3), the colour ones):
    `thumbs[index_array]` reads only those rows."""

    def __init__(self, cache: HashCache, shard: np.ndarray, row: np.ndarray, column: str = "thumbs"):
        self.cache, self.shard, self.row, self.column = cache, shard, row, column
        self.shape = (len(shard), *((THUMB, THUMB) if column == "thumbs" else (COLOUR_SIDE, COLOUR_SIDE, 3)))

    def __len__(self) -> int:
        return len(self.shard)

    def __getitem__(self, index) -> np.ndarray:
        shard, row = np.atleast_1d(self.shard[index]), np.atleast_1d(self.row[index])
        return self.cache.gather(self.column, shard, row, np.zeros((len(shard), *self.shape[1:]), np.uint8))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)


class PreviewCache:
    """dedup.html's base64 JPEG thumbnails per content sha256, so a rerun decodes only files it has not shown."""

    def __init__(self, directory: Path, size: int):
        self.cache = ContentCache(Path(directory) / f"previews-{size}-v{VERSION}.npz", "preview cache")

    def get(self, sha: str) -> str | None:
        return self.cache.get(sha)

    def put(self, sha: str, value: str) -> str:
        self.cache.update([sha], [value])
        return value

    def save(self) -> None:
        self.cache.save()
