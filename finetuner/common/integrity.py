"""Checksums for the files a stage reads back on a later run: caches, resume checkpoints, registries.

Every such file is written atomically, so a kill never leaves half of one; these checks catch what atomic writes
cannot: a disk or copy that garbles bytes, a truncated file, a hand edit. Callers decide what a failed check means:
a cache is rebuilt (it only costs time), a registry stops the stage with the file named (it holds decisions).

- `save_npz_checked` / `load_npz_checked`: arrays with an embedded sha256 over their bytes;
- `wrap_checked` / `load_torch_checked`: a torch object wrapped with the sha256 of its serialised bytes;
- `replace_with_sidecar` / `verify_sidecar`: a `<file>.sha256` beside a file that must keep its own format (a CSV).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.common.stage import atomic_path, write_text

log = logging.getLogger("finetuner.integrity")

_CHECKSUM = "sha256_of_arrays"


class CorruptFile(ValueError):
    """A file failed its checksum or could not be parsed; the message names it and the reason."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8) if array.size else b"")  # the bytes in place, not a copy
    return digest.hexdigest()


def save_npz_checked(path: Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically, plus a checksum array over every other array (name, dtype, shape, bytes)."""
    checksum = np.array(_arrays_digest(arrays))
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays, **{_CHECKSUM: checksum})


def load_npz_checked(path: Path) -> dict[str, np.ndarray]:
    """Every array of a file written by save_npz_checked; CorruptFile when it is unreadable or fails its checksum."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFile(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    stored = arrays.pop(_CHECKSUM, None)
    if stored is None or str(stored) != _arrays_digest(arrays):
        raise CorruptFile(f"{path}: checksum mismatch (the file was changed or damaged after it was written)")
    return arrays


def wrap_checked(obj: Any) -> dict[str, Any]:
    """`obj` serialised, as a uint8 tensor beside its sha256: torch.save this (it loads with weights_only=True)."""
    import torch

    from finetuner.train.stage_files import torch_bytes

    payload = torch_bytes(obj)
    return {"sha256": sha256_hex(payload), "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}


def load_torch_checked(path: Path) -> Any:
    """The object of a torch.save(wrap_checked(obj)); CorruptFile when unreadable, of another layout or failing its
    checksum."""
    import torch

    from finetuner.train.checkpoint import CheckpointError, load_checkpoint

    try:
        wrapped = load_checkpoint(path)
    except CheckpointError as exc:
        raise CorruptFile(str(exc)) from None
    if not isinstance(wrapped, dict) or set(wrapped) != {"sha256", "payload"}:
        raise CorruptFile(f"{path}: not a checksummed file of this pipeline")
    payload = wrapped["payload"].numpy().tobytes()
    if sha256_hex(payload) != wrapped["sha256"]:
        raise CorruptFile(f"{path}: checksum mismatch (the file was changed or damaged after it was written)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def replace_with_sidecar(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` with `write(target)` and record its sha256 in `<path>.sha256`, so that a kill at any point
    leaves a pair that verifies: the new file is staged, the sidecar first accepts old and new, then the rename,
    then the sidecar names the new one only."""
    staged = path.with_name(f".{path.name}.staged")
    write(staged)
    new = sha256_hex(staged.read_bytes())
    old = [sha256_hex(path.read_bytes())] if path.is_file() else []
    write_text(sidecar(path), "".join(f"{digest}  {path.name}\n" for digest in [new, *old]))
    os.replace(staged, path)
    write_text(sidecar(path), f"{new}  {path.name}\n")


def verify_sidecar(path: Path) -> bool:
    """True when `path` matches its recorded sha256; False when no sha256 was recorded (a file from before checksums
    or made by hand); CorruptFile when it differs from what was recorded."""
    record = sidecar(path)
    if not record.is_file():
        return False
    accepted = [
        line.split()[0] for line in record.read_text(encoding="utf-8", errors="replace").splitlines() if line.split()
    ]
    if sha256_hex(path.read_bytes()) not in accepted:
        raise CorruptFile(
            f"{path}: differs from the sha256 recorded in {record} when it was written "
            "(truncated, garbled or edited by hand)"
        )
    return True
