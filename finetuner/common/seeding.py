"""Seeds derived from params.yaml's `seed` and a name, so every random draw of a stage is fixed by its inputs.

A stage that seeds the global RNG from `seed` alone would draw the same numbers as every other stage; one that
does not seed at all draws whatever the process happened to start with, so two runs on identical inputs differ.
`derived_seed(seed, "train_head")` is stable across processes, Python versions and platforms (a hash, not
Python's salted `hash()`). Pure: nothing here touches a file.
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(seed: int, name: str) -> int:
    """A 63-bit seed from the project seed and a stage (or purpose) name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seed_torch(seed: int, name: str) -> int:
    """Seed torch's global RNG (CPU and every CUDA device) from `seed` and `name`; returns the seed used."""
    value = derived_seed(seed, name)
    torch.manual_seed(value)
    return value
