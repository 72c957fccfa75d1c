"""The learning-rate range test behind `lr: auto` (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`).

`range_test` trains a throwaway copy of the stage's parameter groups for a fixed number of steps while the rate
grows exponentially from `start` to `end`, then puts the weights back exactly as they were. Every group is scaled
by the same factor, so the discriminative ratios between blocks stay. The rate is picked from the loss curve,
smoothed by a bias-corrected exponential moving average, by the rule of `pick_factor`:

    the factor at the minimum of the smoothed loss, divided by 10

The minimum is where the loss still falls fastest before it blows up; a tenth of it sits safely inside the stable
region for the whole schedule (the rule fastai and Smith recommend; robust to the noise of a short curve, unlike
the point of steepest slope). The batches are seeded, so the same seed and data pick the same rate.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from finetuner.train.data import epoch_indices
from finetuner.train.engine import FitConfig, Runtime, Split, Trainee, backward_step


@dataclass(frozen=True)
class RangeTest:
    """The curve (factor per step, raw and smoothed loss) and the chosen factor of the base rates."""

    factors: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    chosen: float = 1.0
    rule: str = "factor at the minimum smoothed loss / 10"

    def to_dict(self) -> dict[str, object]:
        return {"factors": self.factors, "losses": self.losses, "smoothed": self.smoothed, "chosen": self.chosen,
                "rule": self.rule}


def pick_factor(factors: list[float], smoothed: list[float], divisor: float = 10.0) -> float:
    """The factor at the minimum of the smoothed loss, divided by `divisor` (the first step when nothing is finite)."""
    finite = [(loss, i) for i, loss in enumerate(smoothed) if math.isfinite(loss)]
    if not finite:
        return factors[0]
    _, best = min(finite)
    return factors[best] / divisor


def range_test(
    trainee: Trainee, data: Split, optimizer: torch.optim.Optimizer, config: FitConfig, runtime: Runtime,
    steps: int = 100, start: float = 1e-7, end: float = 10.0, beta: float = 0.98, diverge: float = 4.0,
) -> RangeTest:
    """Run the range test with `optimizer` (its group rates are the base rates), then restore weights and optimizer.

    The factor of step i is start * (end/start) ** (i / (steps - 1)); the test stops early once the smoothed loss
    exceeds `diverge` times its minimum or is not finite.
    """
    module = trainee.module
    saved_weights = copy.deepcopy(module.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    base = [group["lr"] for group in optimizer.param_groups]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    result = RangeTest()
    average, lowest = 0.0, math.inf
    try:
        trainee.set_train_mode()
        for step, index in enumerate(_batches(len(data.labels), config, runtime, steps)):
            factor = start * (end / start) ** (step / max(1, steps - 1))
            for group, rate in zip(optimizer.param_groups, base):
                group["lr"] = rate * factor
            inputs = trainee.prepare(data.inputs[index])
            labels = data.labels[index].to(runtime.device)
            with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype, enabled=runtime.amp_dtype is not None):
                loss = loss_fn(module(inputs).float(), labels)
            value = float(loss.detach())
            average = beta * average + (1 - beta) * value
            smooth = average / (1 - beta ** (step + 1))
            result.factors.append(factor)
            result.losses.append(value)
            result.smoothed.append(smooth)
            if not math.isfinite(smooth) or smooth > diverge * lowest:
                break
            lowest = min(lowest, smooth)
            optimizer.zero_grad(set_to_none=True)
            backward_step(module, loss, optimizer, config.clip_grad_norm, None)
    finally:
        module.load_state_dict(saved_weights)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.zero_grad(set_to_none=True)
    chosen = pick_factor(result.factors, result.smoothed)
    return RangeTest(result.factors, result.losses, result.smoothed, chosen)


def _batches(n: int, config: FitConfig, runtime: Runtime, steps: int) -> list[torch.Tensor]:
    """`steps` seeded training batches, cycling through epochs of a small split (an offset keeps them apart
    from the training epochs' own draws)."""
    batches: list[torch.Tensor] = []
    epoch = 0
    while len(batches) < steps:
        drawn = epoch_indices(n, config.batch_size, config.seed + 7_777, epoch, True, runtime.rank,
                              runtime.world_size, drop_last=True)
        if not drawn:
            break
        batches += drawn
        epoch += 1
    return batches[:steps]
