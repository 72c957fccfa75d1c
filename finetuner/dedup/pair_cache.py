"""The dedup stage's caches per candidate pair: candidates, verdicts and looks, keyed by the two contents.

A pair's key is a 128-bit digest of both contents' sha256 (`pair_keys`, with the candidate's signal and, for
verdicts, both aspect ratios), looked up by a sorted search, so a grown 20k collection reads its ~36,000 cached
verdicts in ~0.02 s. Every table is append-only (finetuner/common/shards.py): a run writes only its new rows, and a
damaged shard is reported, deleted and its rows rebuilt. Per-content caches (hashes, thumbnails, previews) are
finetuner/dedup/hash_cache.py; both live in data/cache/dedup.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetuner.common.shards import ShardedTable
from finetuner.dedup.hash_cache import VERSION
from finetuner.dedup.signals import signal_codes
from finetuner.dedup.view_search import Candidates

log = logging.getLogger("finetuner.dedup")

PAIR_LAYOUT = 3  # 3: tables per pair keyed by 128-bit digests (verdicts were keyed by "sha|sha|signal|..." strings)


class PairTable:
    """Columns per candidate pair, keyed by `pair_keys` (128-bit digests), one append-only table per setting, so
    when data grows only pairs with a new image are computed again. Keys are looked up with a sorted search
    (`_IdFinder`, as contents are): a grown 20k collection reads its ~36,000 cached verdicts in ~0.02 s, where a dict
    of 160-byte string keys ("sha|sha|signal|ratio|ratio") took ~0.3 s to load and query. Subclasses name the table
    and its columns."""

    NAME = ""
    FIELDS: tuple[str, ...] = ()
    TEXT: tuple[str, ...] = ()
    TYPES: tuple = ()

    def __init__(self, directory: Path, setting: str):
        tag = hashlib.sha256(setting.encode()).hexdigest()[:12]
        directory = Path(directory)
        for old in directory.glob(f"{self.NAME}s-*-v{VERSION}"):  # string-keyed tables before PAIR_LAYOUT 3
            shutil.rmtree(old, ignore_errors=True)
        self.shards = ShardedTable(directory / f"{self.NAME}s-{tag}-v{VERSION}-k{PAIR_LAYOUT}", f"{self.NAME} cache")
        parts = []
        for data in self.shards.load():
            if {"key_hi", "key_lo", *self.FIELDS} <= set(data):
                parts.append(data)
            else:  # a shard of another layout: its rows are computed again
                log.warning("ignoring a %s cache shard of another layout in %s", self.NAME, self.shards.directory)
        self.parts = [{**p, **{f: _texts(p[f]) for f in self.TEXT}} for p in parts]  # oldest first
        self.new: list[dict[str, np.ndarray]] = []
        self._table: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        self._finder: _IdFinder | None = None

    def table(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(keys, columns): every part's rows, a later row winning over an earlier one of the same key; built on
        first use after a change."""
        if self._table is None:
            parts = self.parts
            hi = np.concatenate([np.zeros(0, np.uint64), *(p["key_hi"] for p in parts)])
            lo = np.concatenate([np.zeros(0, np.uint64), *(p["key_lo"] for p in parts)])
            order = np.argsort(hi, kind="stable")[::-1]  # a key's newest row first (reversed: ties newest first)
            hi, lo = hi[order], lo[order]
            first = np.r_[True, (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])] if len(hi) else np.zeros(0, bool)
            order, keys = order[first][::-1], np.stack([hi[first], lo[first]], axis=1)[::-1]
            columns = {
                f: np.concatenate([np.zeros(0, t), *(p[f] for p in parts)])[order]
                for f, t in zip(self.FIELDS, self.TYPES)
            }
            self._table = (np.ascontiguousarray(keys), columns)
            self._finder = _IdFinder(self._table[0])
        return self._table

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Each key's row in the table, -1 where it has none."""
        self.table()
        return self._finder(keys)

    @classmethod
    def blank(cls, n: int) -> dict[str, np.ndarray]:
        """n rows of zeroed columns (placeholders to fill)."""
        return {f: np.zeros(n, t) for f, t in zip(cls.FIELDS, cls.TYPES)}

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(rows, columns): each key's row (-1: not cached) and the cached columns at those rows (where the row is -1
        the values are placeholders)."""
        rows = self.find(keys)
        _, columns = self.table()
        if not len(rows) or not len(columns[self.FIELDS[0]]):
            return rows, self.blank(len(rows))
        return rows, {f: values[np.maximum(rows, 0)] for f, values in columns.items()}

    def add(self, keys: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        keys = np.asarray(keys, np.uint64).reshape(-1, 2)
        part = {"key_hi": keys[:, 0].copy(), "key_lo": keys[:, 1].copy()}
        part |= {f: np.asarray(columns[f], dtype=t) for f, t in zip(self.FIELDS, self.TYPES)}
        self.new.append(part)
        self.parts.append(part)
        self._table = None

    def save(self) -> None:
        if self.new:
            self.shards.save(_stored(_concat(self.new), self.TEXT), lambda: self._everything())
            self.new = []

    def _everything(self) -> dict[str, np.ndarray]:
        keys, columns = self.table()
        return _stored({"key_hi": keys[:, 0], "key_lo": keys[:, 1], **columns}, self.TEXT)


class VerdictCache(PairTable):
    """The verifier's decision per candidate (keyed with both aspect ratios: the verifier reads them)."""

    NAME = "verdict"
    FIELDS = ("accepted", "rule", "similarity", "detail_similarity", "overlap", "transform", "colour")
    TEXT = ("rule", "transform")
    TYPES = (bool, object, np.float64, np.float64, np.float64, object, np.float64)


class LookCache(PairTable):
    """The prescreen's 16x16 look per candidate, which ranks a crowded image's candidates (keyed without ratios)."""

    NAME = "look"
    FIELDS = ("look",)
    TYPES = (np.float64,)


def pair_keys(
    shas: Sequence[str], a: np.ndarray, b: np.ndarray, signal: np.ndarray, ratio: np.ndarray | None = None
) -> np.ndarray:
    """(n, 2) uint64: a 128-bit digest per candidate of (content a's sha256, content b's, the proposing signal, both
    aspect ratios to 4 decimals, NaN where unknown or no `ratio`); `a`, `b` index `shas` and `ratio`."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ids = _content_ids(shas)
    values = signal.tolist() if isinstance(signal, np.ndarray) else list(signal)
    crc = {name: zlib.crc32(str(name).encode()) for name in set(values)}  # a few distinct signals
    signals = np.fromiter(map(crc.__getitem__, values), np.uint64, len(values))
    ratio = np.full(len(shas), np.nan) if ratio is None else np.asarray(ratio, np.float64)
    scaled = np.where(np.isnan(ratio), -1, np.round(np.nan_to_num(ratio, nan=0.0) * 10_000)).astype(np.int64)
    parts = [signals, scaled[a].view(np.uint64), scaled[b].view(np.uint64)]
    return np.stack([_digest([ids[a, h], ids[b, h], *parts], seed) for h, seed in ((0, _SEEDS[0]), (1, _SEEDS[1]))], 1)


def _content_ids(shas: Sequence[str]) -> np.ndarray:
    """(n, 2) uint64 per content: its sha256 (64 hex digits) folded to 128 bits (the two halves XORed, so texts
    differing anywhere differ); a text that is not one is hashed with sha256 first."""
    try:
        whole = np.frombuffer(bytes.fromhex("".join(shas)), dtype="<u8")
        if len(whole) == 4 * len(shas) and all(len(s) == 64 for s in shas):
            return _fold(whole.reshape(-1, 4))
    except ValueError:  # some text is not hex (only made-up manifests)
        pass
    return _fold(np.frombuffer(b"".join(_digest_bytes(s) for s in shas), dtype="<u8").reshape(-1, 4))


def _digest_bytes(sha: str) -> bytes:
    try:
        value = bytes.fromhex(sha)
    except ValueError:
        value = b""
    return value if len(value) == 32 else hashlib.sha256(sha.encode()).digest()


def _fold(words: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(words[:, :2] ^ words[:, 2:])


_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03))


def _digest(parts: list[np.ndarray], seed: np.uint64) -> np.ndarray:
    """splitmix64's finaliser folded over the parts (uint64 arithmetic wraps, as intended)."""
    h = np.full(len(parts[0]), seed, np.uint64)
    for part in parts:
        h = h ^ np.asarray(part, np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _stored(columns: dict[str, np.ndarray], text: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns as written: text columns as UTF-8 bytes (no pickled objects in a cache file)."""
    return {k: _utf8(v.tolist()) if k in text else v for k, v in columns.items()}


def _texts(column: np.ndarray) -> np.ndarray:
    """A stored text column back as an object array of str."""
    return np.array(_strings(column), dtype=object) if len(column) else np.zeros(0, object)


def _utf8(texts) -> np.ndarray:
    """Strings as a bytes array of their longest length (a transform text is ~40 bytes): a fixed "U300" column took
    1,200 a row (100 MiB to checksum, write and read back for 83,000 candidates)."""
    return np.array([t.encode() for t in texts], dtype=bytes) if len(texts) else np.zeros(0, "S1")


def _strings(column: np.ndarray) -> list[str]:
    """The stored strings back (bytes columns, or unicode columns written by other code)."""
    return [v.decode() for v in column.tolist()] if column.dtype.kind == "S" else column.astype(str).tolist()


class CandidateCache:
    """The candidate search's pairs (before the per-image cap) by content, one append-only table per search setting,
    so a grown collection searches only the pairs touching a new content: pairs of two old contents do not change.
    Each shard holds the contents its run searched from (`sha`, with their low-detail flag, which decides their
    views) and the pairs that search found (`a`, `b`, oriented as `signal` reads). Contents are stored as their
    sha256 folded to 128 bits and signals as codes into the shard's `signals`: 36 bytes a pair, where sha256 text and
    a unicode signal took 296 (the glyph set's 1.4M pairs: 410 MiB to read and checksum per run, now 50)."""

    FIELDS = {"sha", "low", "a", "b", "signal", "signals", "distance"}

    def __init__(self, directory: Path, setting: str):
        tag = hashlib.sha256(setting.encode()).hexdigest()[:12]
        directory = Path(directory)
        for old in directory.glob(f"candidates-*-v{VERSION}"):  # sha256 text and unicode signals before PAIR_LAYOUT 3
            shutil.rmtree(old, ignore_errors=True)
        self.table = ShardedTable(directory / f"candidates-{tag}-v{VERSION}-k{PAIR_LAYOUT}", "candidate cache")
        self.shards = [s for s in self.table.load() if set(s) >= self.FIELDS]

    def pairs(self, shas: Sequence[str], low_detail: np.ndarray):
        """(known, candidates): which contents an earlier search covered (with the same low-detail flag), and the
        pairs found between two known contents, as positions in `shas`."""
        return self._pairs(_content_ids(shas), low_detail)

    def _pairs(self, ids: np.ndarray, low_detail: np.ndarray):
        empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64))
        if not self.shards:
            return np.zeros(len(ids), bool), empty
        find = _IdFinder(ids)
        covered = np.full(len(ids), -1, np.int64)  # the last shard that searched from each content
        flag = np.zeros(len(ids), bool)
        for s, shard in enumerate(self.shards):
            at = find(shard["sha"])
            covered[at[at >= 0]], flag[at[at >= 0]] = s, shard["low"][at >= 0]
        known = (covered >= 0) & (flag == low_detail)
        parts = []
        for s, shard in enumerate(self.shards):
            i, j = find(shard["a"]), find(shard["b"])
            # a pair stands while neither end was searched again later (its views may have changed since)
            keep = (i >= 0) & (j >= 0)
            keep[keep] &= known[i[keep]] & known[j[keep]] & (covered[i[keep]] <= s) & (covered[j[keep]] <= s)
            i, j, code = i[keep], j[keep], shard["signal"][keep].astype(np.int64)
            names = shard["signals"].astype(str).tolist()
            # positions follow the current path order: a swapped pair's view pair is swapped with it
            swapped = np.array(["~".join(n.split("~")[::-1]) for n in names] + names, dtype=object)
            swap = i > j
            signal = swapped[np.where(swap, code, code + len(names))] if len(names) else np.zeros(0, object)
            parts.append((np.minimum(i, j), np.maximum(i, j), signal, shard["distance"][keep].astype(np.int64)))
        i, j, signal, distance = (np.concatenate(c) for c in zip(*parts))
        return known, Candidates(i, j, signal, distance)

    def save(self, shas: Sequence[str], low_detail: np.ndarray, searched: np.ndarray, found) -> None:
        """Record a search from the contents `searched` (a mask) and the pairs it found (positions in `shas`)."""
        ids = _content_ids(shas)
        new = {"sha": ids[searched], "low": np.asarray(low_detail, bool)[searched]}
        new |= _pair_columns(ids, np.asarray(found.i, np.int64), np.asarray(found.j, np.int64), found)
        self.table.save(new, lambda: self._everything(ids, low_detail, new))

    def _everything(self, ids: np.ndarray, low_detail: np.ndarray, new: dict) -> dict[str, np.ndarray]:
        """Compaction: the current collection's contents and pairs (old valid pairs plus the new ones)."""
        _, old = self._pairs(ids, low_detail)
        columns = _pair_columns(ids, old.i, old.j, old)
        names = np.r_[columns["signals"], new["signals"]]
        return {
            "sha": ids,
            "low": np.asarray(low_detail, bool),
            "a": np.r_[columns["a"], new["a"]],
            "b": np.r_[columns["b"], new["b"]],
            "signal": np.r_[columns["signal"], new["signal"] + len(columns["signals"])].astype(np.int16),
            "signals": names,
            "distance": np.r_[columns["distance"], new["distance"]],
        }


def _pair_columns(ids: np.ndarray, i: np.ndarray, j: np.ndarray, found) -> dict[str, np.ndarray]:
    """The stored columns of pairs (i, j) (positions into `ids`) with their signals and distances."""
    names, code = signal_codes(found.signal)
    return {
        "a": ids[i].reshape(-1, 2),
        "b": ids[j].reshape(-1, 2),
        "signal": code.reshape(-1).astype(np.int16),
        "signals": names.astype("U40"),
        "distance": np.asarray(found.distance, np.int16),
    }


class _IdFinder:
    """Position of content ids ((n, 2) uint64: a sha256 folded to 128 bits) in `ids`, -1 where absent; searched
    on the high half, confirmed on the low one (a high half shared by two of the ids, ~1e-8 in a million, is
    resolved one query at a time)."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, np.uint64).reshape(-1, 2)
        self.order = np.argsort(self.ids[:, 0], kind="stable")  # a run of one high half is scanned whole
        self.hi = self.ids[self.order, 0]

    def __call__(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, np.uint64).reshape(-1, 2)
        if len(self.ids) == 0:
            return np.full(len(wanted), -1, np.int64)
        left, right = _runs(self.hi, wanted[:, 0])
        position = self.order[np.minimum(left, len(self.ids) - 1)]
        out = np.where((right > left) & (self.ids[position, 1] == wanted[:, 1]), position, -1)
        for k in np.flatnonzero(right - left > 1).tolist():  # shared high halves: look through the run
            run = self.order[left[k] : right[k]]
            match = run[self.ids[run, 1] == wanted[k, 1]]
            out[k] = match[0] if len(match) else -1
        return out


def _runs(stored: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.searchsorted's left and right sides of each wanted value in `stored`, the wanted values sorted once first:
    each search then starts where the last ended (1.4M into 1.4M: 0.28 s -> 0.14 s a side)."""
    order = np.argsort(wanted)
    left, right = np.empty(len(wanted), np.int64), np.empty(len(wanted), np.int64)
    left[order] = np.searchsorted(stored, wanted[order], side="left")
    right[order] = np.searchsorted(stored, wanted[order], side="right")
    return left, right
