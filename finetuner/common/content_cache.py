"""One content-addressed cache: content sha256 -> a value (number, string or fixed-shape array), in one file.

Used for everything the pipeline computes once per image content and reuses when data grows: perceptual hashes,
thumbnails and previews (dedup), backbone embeddings (dedup.embedding). The file name is the caller's key (what was
computed, with which settings and code version). Files are written atomically with a checksum
(finetuner/common/integrity.py); a damaged one is reported, ignored and rebuilt, never half used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.common.integrity import CorruptFile, load_npz_checked, save_npz_checked

log = logging.getLogger("finetuner.cache")


class ContentCache:
    """sha256 -> value for one file; `what` names the cache in the warning about a damaged file."""

    def __init__(self, path: Path, what: str = "cache"):
        self.path = Path(path)
        self.table: dict[str, Any] = {}
        self.dirty = False
        if self.path.exists():
            try:
                data = load_npz_checked(self.path)
                values = data["value"]
                self.table = dict(
                    zip(data["sha"].astype(str).tolist(), values.tolist() if values.ndim == 1 else values)
                )
            except (CorruptFile, KeyError) as exc:
                log.warning("ignoring damaged %s %s (%s); it will be rebuilt", what, self.path, exc)

    def __contains__(self, sha: str) -> bool:
        return sha in self.table

    def get(self, sha: str, default: Any = None) -> Any:
        return self.table.get(sha, default)

    def missing(self, shas: Sequence[str]) -> list[int]:
        """Positions of the contents without a value."""
        return [k for k, sha in enumerate(shas) if sha not in self.table]

    def update(self, shas: Iterable[str], values: Iterable[Any]) -> None:
        for sha, value in zip(shas, values):
            old = self.table.get(sha)
            if old is None or isinstance(value, np.ndarray) or old != value:
                self.table[sha] = value
                self.dirty = True

    def save(self, dtype: Any = None) -> None:
        """Write the whole table when it changed (`dtype`: of the stored values; None = numpy's choice)."""
        if not self.dirty or not self.table:
            return
        values = np.array(list(self.table.values()), dtype)
        save_npz_checked(self.path, sha=np.array(list(self.table), dtype="S64"), value=values)
        self.dirty = False
