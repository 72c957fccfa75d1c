"""Learning-rate schedule of a stage: linear warmup, then cosine decay, stepped once per optimizer step.

`warmup_cosine_factor(step, ...)` is the multiplier of each group's base learning rate for the `step`-th update
(0-based); `build_scheduler` wraps it in a `LambdaLR`, whose state_dict resumes exactly.
"""

from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, min_factor: float = 0.0) -> float:
    """Multiplier for update `step`: (step+1)/warmup during warmup, then cosine from 1 down to `min_factor`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_factor: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A fresh per-iteration warmup + cosine schedule over every group of `optimizer`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, min_factor)
    )
