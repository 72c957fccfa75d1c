"""The decoded-image cache of the training stages: uint8 arrays, decoded once per preprocessing.

`data/cache/images/<preprocessing hash>/images.npy` (N x crop x crop x 3 uint8, memory-mapped on read) plus
`index.json` (file key -> row). A file's key is its path, size and modification time, so an edited image is
decoded again; new images are appended, nothing already decoded is decoded twice. The cache is gitignored and not
a DVC output: deleting it only costs time.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetuner.data import decode_images
from finetuner.preprocessing import Preprocessing
from tasks.common import atomic_path, write_json

log = logging.getLogger("finetuner.cache")


def preprocessing_key(preprocessing: Preprocessing) -> str:
    text = json.dumps(preprocessing.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.as_posix()}|{stat.st_size}|{stat.st_mtime_ns}"


def cached_images(
    paths: Sequence[Path], preprocessing: Preprocessing, cache_root: Path | None, workers: int = 0
) -> np.ndarray:
    """The uint8 images of `paths` in order, decoding only those not cached yet (no cache: decode all)."""
    if cache_root is None or not paths:
        return decode_images(paths, preprocessing, workers)
    folder = cache_root / preprocessing_key(preprocessing)
    index_file, array_file = folder / "index.json", folder / "images.npy"
    index: dict[str, int] = json.loads(index_file.read_text()) if index_file.exists() and array_file.exists() else {}
    stored = np.load(array_file, mmap_mode="r") if index else None
    keys = [file_key(path) for path in paths]
    missing = list(dict.fromkeys(key for key in keys if key not in index))
    if missing:
        by_key = dict(zip(keys, paths))
        log.info("decoding %d images into the cache %s (%d already there)", len(missing), folder, len(index))
        fresh = decode_images([by_key[key] for key in missing], preprocessing, workers)
        merged = fresh if stored is None else np.concatenate([np.asarray(stored), fresh])
        index.update({key: len(index) + i for i, key in enumerate(missing)})
        # Array first, then index: a kill in between leaves an index whose rows all still exist.
        with atomic_path(array_file) as tmp:
            with tmp.open("wb") as handle:
                np.save(handle, merged)
        write_json(index_file, index)
        stored = np.load(array_file, mmap_mode="r")
    assert stored is not None
    return np.ascontiguousarray(stored[[index[key] for key in keys]])
