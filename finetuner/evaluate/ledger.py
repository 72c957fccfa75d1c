"""The test-reuse ledger: how many distinct models have been scored on one exact test split.

Every look at the test split and every decision taken on it (a params tweak, a champion/challenger comparison) makes
the test figure a little more optimistic. The ledger counts distinct models by the content of their weights (not by
file, so re-saving a model does not count twice) per test split, identified by the hash of its file contents (a new
split starts a fresh count; old entries are kept as history). Pure functions over a plain dict; the stage persists it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import torch

LEDGER_VERSION = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_fingerprint(state_dict: Mapping[str, torch.Tensor], arch: str, class_to_idx: Mapping[str, int]) -> str:
    """A hash of what makes predictions: architecture, class order and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    digest.update(arch.encode())
    digest.update(repr(sorted(class_to_idx.items(), key=lambda item: item[1])).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        # Viewing as bytes works for every dtype numpy cannot represent (bfloat16) too.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def empty_ledger() -> dict[str, Any]:
    return {"version": LEDGER_VERSION, "splits": {}}


def record_look(
    ledger: Mapping[str, Any], split_hash: str, model_hash: str, when: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """A new ledger with this model's look at this split recorded (a repeat look only bumps its `looks`)."""
    updated = copy.deepcopy(dict(ledger)) if ledger else empty_ledger()
    updated.setdefault("version", LEDGER_VERSION)
    split = updated.setdefault("splits", {}).setdefault(split_hash, {"first_scored": when, "models": {}})
    entry = split["models"].get(model_hash)
    if entry is None:
        split["models"][model_hash] = {"first_scored": when, "last_scored": when, "looks": 1, **details}
    else:
        entry.update(last_scored=when, looks=int(entry.get("looks", 0)) + 1)
    return updated


def distinct_models(ledger: Mapping[str, Any], split_hash: str) -> int:
    """How many different models have been scored on the split with this hash."""
    return len(ledger.get("splits", {}).get(split_hash, {}).get("models", {}))


def ledger_summary(ledger: Mapping[str, Any], split_hash: str, warn_after: int) -> dict[str, Any]:
    """What metrics.json reports: the count, the threshold and a warning once the count passes it."""
    count = distinct_models(ledger, split_hash)
    warning = None
    if count > warn_after:
        warning = (
            f"{count} distinct models have been scored on this test split (threshold {warn_after}); decisions "
            "taken on it make its figures optimistic. Collect fresh test data or treat these figures as validation."
        )
    return {
        "test_split_sha256": split_hash,
        "distinct_models_scored": count,
        "warn_after": warn_after,
        "warning": warning,
    }
