"""The dedup stage's hash cache: per content sha256, one file per (method, hash size, decode size, version).

Lives in data/cache/dedup (gitignored, not a DVC output), so `dvc repro` after data grew decodes only new files.
A hash depends on the decode (reduced-size JPEG draft), hence the decode size in the key; bump VERSION when the
hashing code changes what it computes. Files are written atomically and checksummed; a damaged file is reported,
ignored and rebuilt.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.integrity import CorruptFile, load_npz_checked, save_npz_checked

log = logging.getLogger("finetuner.dedup")

VERSION = 2  # 2: files carry a checksum (tasks/integrity.py)


class HashCache:
    """sha256 -> uint64 per method, plus sha256 -> detail (the thumbnail's grey std)."""

    def __init__(self, directory: Path, methods: Sequence[str], hash_size: int, decode_size: int):
        self.directory = Path(directory)
        tag = f"{hash_size * hash_size}bit-d{decode_size}-v{VERSION}"
        self.files = {m: self.directory / f"{m}-{tag}.npz" for m in methods}
        self.files["detail"] = self.directory / f"detail-d{decode_size}-v{VERSION}.npz"
        self.tables = {name: self._load(path) for name, path in self.files.items()}
        self.dirty: set[str] = set()

    @staticmethod
    def _load(path: Path) -> dict[str, float | int]:
        if not path.exists():
            return {}
        try:
            data = load_npz_checked(path)
            return dict(zip(data["sha"].astype(str).tolist(), data["value"].tolist()))
        except (CorruptFile, KeyError) as exc:
            log.warning("ignoring damaged hash cache %s (%s); it will be rebuilt", path, exc)
            return {}

    def missing(self, shas: Sequence[str]) -> list[int]:
        """Positions of the contents lacking any method's hash or the detail value."""
        return [k for k, sha in enumerate(shas) if any(sha not in table for table in self.tables.values())]

    def add(self, shas: Sequence[str], hashes: dict[str, np.ndarray], detail: np.ndarray) -> None:
        for name, values in [*hashes.items(), ("detail", detail)]:
            self.tables[name].update(zip(shas, values.tolist()))
            self.dirty.add(name)

    def lookup(self, shas: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(hashes per method, detail, ok) for every content; ok is False where nothing is cached (unreadable)."""
        ok = np.array([all(sha in t for t in self.tables.values()) for sha in shas], dtype=bool)
        hashes = {
            name: np.array([table.get(sha, 0) for sha in shas], dtype=np.uint64)
            for name, table in self.tables.items() if name != "detail"
        }
        detail = np.array([self.tables["detail"].get(sha, 0.0) for sha in shas], dtype=np.float32)
        return hashes, detail, ok

    def save(self) -> None:
        for name in sorted(self.dirty):
            table = self.tables[name]
            dtype = np.float32 if name == "detail" else np.uint64
            save_npz_checked(self.files[name], sha=np.array(list(table), dtype="S64"),
                             value=np.array(list(table.values()), dtype))
        self.dirty.clear()
