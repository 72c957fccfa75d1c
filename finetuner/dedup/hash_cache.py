"""The dedup stage's hash cache: per content sha256, one file per (method, hash size, decode size, version).

Lives in data/cache/dedup (gitignored, not a DVC output), so `dvc repro` after data grew decodes only new files.
A hash depends on the decode (reduced-size JPEG draft), hence the decode size in the key; bump VERSION when the
hashing code changes what it computes. With `thumbs`, the 64x64 grey thumbnails the verifier compares are kept too
(4 KiB per content), so verifying a pair never decodes a file again. Files are written atomically and checksummed; a
damaged file is reported, ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetuner.common.content_cache import ContentCache
from finetuner.common.integrity import CorruptFile, load_npz_checked, save_npz_checked
from finetuner.dedup.hashing import THUMB
from finetuner.dedup.views import Candidates

log = logging.getLogger("finetuner.dedup")

VERSION = 2  # 2: files carry a checksum (finetuner/common/integrity.py)


class HashCache:
    """sha256 -> uint64 per method, plus sha256 -> detail (the thumbnail's grey std)."""

    def __init__(self, directory: Path, methods: Sequence[str], hash_size: int, decode_size: int, thumbs: bool = False):
        self.directory = Path(directory)
        tag = f"{hash_size * hash_size}bit-d{decode_size}-v{VERSION}"
        self.files = {m: self.directory / f"{m}-{tag}.npz" for m in methods}
        self.files["detail"] = self.directory / f"detail-d{decode_size}-v{VERSION}.npz"
        if thumbs:
            self.files["thumbs"] = self.directory / f"thumbs-d{decode_size}-v{VERSION}.npz"
        self.tables = {name: ContentCache(path, "hash cache") for name, path in self.files.items()}

    def missing(self, shas: Sequence[str]) -> list[int]:
        """Positions of the contents lacking any method's hash or the detail value."""
        complete = self._complete()
        return [k for k, sha in enumerate(shas) if sha not in complete]

    def _complete(self) -> set[str]:
        """The contents every table holds (one set intersection, not a membership test per table and content)."""
        tables = [t.table.keys() for t in self.tables.values()]
        return set(tables[0]).intersection(*tables[1:])

    def add(
        self, shas: Sequence[str], hashes: dict[str, np.ndarray], detail: np.ndarray, thumbs: np.ndarray | None = None
    ) -> None:
        extra = [("thumbs", thumbs)] if "thumbs" in self.tables and thumbs is not None else []
        for name, values in [*hashes.items(), ("detail", detail), *extra]:
            self.tables[name].update(shas, values.tolist() if values.ndim == 1 else values)

    def lookup(self, shas: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(hashes per method, detail, ok) for every content; ok is False where nothing is cached (unreadable)."""
        complete = self._complete()
        ok = np.array([sha in complete for sha in shas], dtype=bool)
        hashes = {
            name: np.array([table.get(sha, 0) for sha in shas], dtype=np.uint64)
            for name, table in self.tables.items()
            if name not in ("detail", "thumbs")
        }
        detail = np.array([self.tables["detail"].get(sha, 0.0) for sha in shas], dtype=np.float32)
        return hashes, detail, ok

    def thumbs(self, shas: Sequence[str]) -> np.ndarray:
        """(n, 64, 64) uint8 thumbnails (zeros where missing: such contents are not `ok` in `lookup`)."""
        table = self.tables["thumbs"]
        out = np.zeros((len(shas), THUMB, THUMB), dtype=np.uint8)
        for k, sha in enumerate(shas):
            if sha in table:
                out[k] = table.get(sha)
        return out

    def save(self) -> None:
        for name, table in self.tables.items():
            table.save({"detail": np.float32, "thumbs": np.uint8}.get(name, np.uint64))


class VerdictCache:
    """The verifier's decision per candidate (both contents' sha256, the proposing signal, both aspect ratios),
    one file per verifier setting, so when data grows only pairs with a new image are verified again."""

    FIELDS = ("accepted", "rule", "similarity", "detail_similarity", "overlap", "transform")
    TEXT = ("rule", "transform")

    def __init__(self, directory: Path, setting: str):
        tag = hashlib.sha256(setting.encode()).hexdigest()[:12]
        self.path = Path(directory) / f"verdicts-{tag}-v{VERSION}.npz"
        self.table: dict[str, tuple] = {}
        self.dirty = False
        if self.path.exists():
            try:
                data = load_npz_checked(self.path)
                columns = [_strings(data[f]) if f in self.TEXT else data[f].tolist() for f in self.FIELDS]
                self.table = dict(zip(_strings(data["key"]), zip(*columns)))
            except (CorruptFile, KeyError) as exc:
                log.warning("ignoring damaged verdict cache %s (%s); it will be rebuilt", self.path, exc)

    def get(self, keys: Sequence[str]) -> list[tuple | None]:
        return [self.table.get(key) for key in keys]

    def add(self, keys: Sequence[str], rows: Sequence[tuple]) -> None:
        self.table.update(zip(keys, rows))
        self.dirty = self.dirty or bool(keys)

    def save(self) -> None:
        if not self.dirty:
            return
        keys = sorted(self.table)
        columns = list(zip(*(self.table[k] for k in keys))) if keys else [[]] * len(self.FIELDS)
        arrays = {
            f: _utf8(c) if f in self.TEXT else np.array(c, dtype=d)
            for f, c, d in zip(self.FIELDS, columns, (bool, None, np.float64, np.float64, np.float64, None))
        }
        save_npz_checked(self.path, key=_utf8(keys), **arrays)
        self.dirty = False


def _utf8(texts) -> np.ndarray:
    """Strings as a bytes array of their longest length: a key of two sha256s is ~160 bytes, where a fixed "U300"
    column took 1,200 (100 MiB to checksum, write and read back for 83,000 candidates)."""
    return np.array([t.encode() for t in texts], dtype=bytes) if len(texts) else np.zeros(0, "S1")


def _strings(column: np.ndarray) -> list[str]:
    """The stored strings back (bytes columns, or the unicode columns of files written before)."""
    return [v.decode() for v in column.tolist()] if column.dtype.kind == "S" else column.astype(str).tolist()


class CandidateCache:
    """The candidate search's pairs (before the per-image cap) by content sha256, one file per search setting, so a
    grown collection searches only the pairs touching a new content: pairs of two old contents do not change."""

    def __init__(self, directory: Path, setting: str):
        tag = hashlib.sha256(setting.encode()).hexdigest()[:12]
        self.path = Path(directory) / f"candidates-{tag}-v{VERSION}.npz"
        self.data: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                loaded = load_npz_checked(self.path)
                self.data = {f: loaded[f] for f in ("sha", "low", "i", "j", "signal", "distance")}
            except (CorruptFile, KeyError) as exc:
                log.warning("ignoring damaged candidate cache %s (%s); it will be rebuilt", self.path, exc)

    def pairs(self, shas: Sequence[str], low_detail: np.ndarray):
        """(known, candidates): which contents the last search covered (with the same low-detail flag, which decides
        their views), and its pairs between two known contents, as positions in `shas`."""
        empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64))
        if not self.data:
            return np.zeros(len(shas), bool), empty
        where = {sha: k for k, sha in enumerate(self.data["sha"].astype(str).tolist())}
        old = np.array([where.get(sha, -1) for sha in shas], dtype=np.int64)
        known = old >= 0
        known[known] = self.data["low"][old[known]] == low_detail[known]
        position = np.full(len(self.data["sha"]), -1, dtype=np.int64)
        position[old[known]] = np.flatnonzero(known)
        i, j = position[self.data["i"]], position[self.data["j"]]
        keep = (i >= 0) & (j >= 0)
        # positions follow the current path order, which may differ from the cached one: a swapped pair's view
        # pair ("crop90~full": view of a ~ view of b) is swapped with it
        swap = (i > j)[keep]
        signal = self.data["signal"][keep].astype(object)
        signal[swap] = ["~".join(s.split("~")[::-1]) for s in signal[swap].tolist()]
        a, b = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
        return known, Candidates(a, b, signal, self.data["distance"][keep])

    def save(self, shas: Sequence[str], low_detail: np.ndarray, found) -> None:
        save_npz_checked(
            self.path,
            sha=np.array(shas, dtype="S64"),
            low=np.asarray(low_detail, bool),
            i=np.asarray(found.i, np.int64),
            j=np.asarray(found.j, np.int64),
            signal=np.asarray(found.signal, dtype="U40"),
            distance=np.asarray(found.distance, np.int64),
        )


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
