"""The one rule for split fractions, shared by params.yaml validation (finetuner/config.py) and the split core.

Pure and import-light (no numpy, no pandas): config.py, which every stage imports first, uses it.
"""

from __future__ import annotations

import math


def fraction_problem(train: float, val: float, test: float) -> str | None:
    """What is wrong with these fractions, or None: each >= 0, summing to 1, train and test > 0 (val may be 0)."""
    total = train + val + test
    if min(train, val, test) < 0:
        return f"fractions must be >= 0 (got train {train:g}, val {val:g}, test {test:g})"
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        return f"train + val + test must sum to 1 (got {total:g})"
    if train <= 0 or test <= 0:
        return "train and test fractions must be > 0 (val may be 0)"
    return None
