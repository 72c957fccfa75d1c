"""The recipe's decisions between and within training stages: how long a stage runs, and whether it runs at all.

Pure functions over numbers; the training stages (finetuner/train/stage.py) call them and write each decision, with its
reason, to `models/<stage>/recipe.json` and `reports/train/<stage>/recipe.json`.

- Budget: a stage plans `ceil(min_steps / steps_per_epoch)` epochs, capped by `epochs`, so a small data set still
  gets enough optimizer steps and a large one is not run for epochs it does not need; early stopping on the
  selection metric may end it sooner (the best epoch's weights are what the stage hands on).
- Gate: a deeper stage runs only when the previous stage still gained at least `min_gain` on validation over its
  own starting point. Unfreezing more blocks fits more parameters to the same validation signal; when the last
  step of depth paid less than `min_gain`, the next one is more likely to overfit than to help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def plan_epochs(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """Epochs a stage plans: `epochs` without `min_steps`, else enough epochs for `min_steps`, at most `epochs`."""
    if not min_steps or epochs == 0:
        return epochs
    return max(1, min(epochs, math.ceil(min_steps / max(1, steps_per_epoch))))


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


def gate_stage(stage: str, min_gain: float | None, previous: dict[str, Any] | None) -> Decision:
    """Whether `stage` runs, from the previous stage's recipe record (`stage`, `ran`, `gain`, `best_value`).

    No `min_gain`: always runs. Otherwise it runs only when the previous stage ran and gained at least `min_gain`
    over its own start, and validation is not already perfect (nothing left to gain).
    """
    if min_gain is None:
        return Decision(True, f"{stage}: runs (no min_gain set)")
    if previous is None:
        return Decision(True, f"{stage}: runs (no record of the previous stage)")
    name = previous.get("stage", "previous stage")
    if not previous.get("ran", False):
        return Decision(False, f"{stage}: skipped, {name} was skipped")
    gain, best = previous.get("gain"), previous.get("best_value")
    if best is not None and best >= 1.0:
        return Decision(False, f"{stage}: skipped, validation is already perfect after {name}")
    if gain is None:
        return Decision(True, f"{stage}: runs ({name} recorded no gain)")
    if gain < min_gain:
        return Decision(False, f"{stage}: skipped, {name} gained {gain:.3f} over its start (< {min_gain:g})")
    return Decision(True, f"{stage}: runs, {name} gained {gain:.3f} over its start (>= {min_gain:g})")
