"""The learning-rate range test behind `lr: auto` (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`).

`range_test` trains a throwaway copy of the stage's parameter groups for a fixed number of steps while the rate
grows exponentially from `start` to `end`, then puts the weights back exactly as they were. Every group is scaled
by the same factor, so the discriminative ratios between blocks stay. The rate is picked from the loss curve,
smoothed by a bias-corrected exponential moving average, by the rule of `pick_factor`, which depends on where
the test starts:

- from a model that does not fit its data yet (the loss of the first steps above half of chance level,
  ln(classes) / 2: training from scratch, a new head): the factor at the minimum of the smoothed loss, divided by
  10. The curve has a real valley; its minimum is where the loss still falls fastest before it blows up, and a
  tenth of it is safely inside the stable region for a whole schedule (Smith; fastai's `lr_find`).
- from a model that already fits (a converged linear probe before unfreezing blocks): the last factor before the
  loss (a running median) climbs clearly above its starting level (by 25%, and by at least 0.02 nats so that noise
  on a loss near zero does not count), divided by 10: "ten times below where the loss starts to get worse", the rule
  fastai's course gives for unfrozen models. A fitted model sits at a minimum, so the curve is flat until the rate
  becomes destructive, and where its noisy minimum falls says nothing; on glyphs the minimum rule picked rates
  15-60x below the best ones, the edge rule lands among them.

The batches are seeded, so the same seed and data pick the same rate.
"""

from __future__ import annotations

import copy
import math
import statistics
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
    rule: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "factors": self.factors,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "chosen": self.chosen,
            "rule": self.rule,
        }


VALLEY_RULE = "factor at the minimum of the smoothed loss / 10 (the test started above half of chance loss)"
EDGE_RULE = (
    "last factor before the running median of the loss climbs 25% (at least 0.02 nats) above its starting "
    "level / 10 (the test started below half of chance loss)"
)


def pick_factor(
    factors: list[float], losses: list[float], smoothed: list[float], classes: int, divisor: float = 10.0
) -> tuple[float, str]:
    """The chosen factor and the rule that chose it (see the module docstring); the first factor when no loss is
    finite.

    The starting level is the median raw loss of the first fifth of the steps, where the rate is still too small to
    change the model. The edge is judged on a running median over 11 steps: it has no lag (unlike the moving
    average, whose memory of 50 steps would carry a noisy start far into the curve) and one odd batch does not
    move it.
    """
    finite = [(loss, i) for i, loss in enumerate(smoothed) if math.isfinite(loss)]
    if not finite:
        return factors[0], "no finite loss: the smallest factor tried"
    lead = min(len(losses), max(5, len(losses) // 5))
    level = statistics.median(losses[:lead])
    if not math.isfinite(level) or level > 0.5 * math.log(max(2, classes)):
        return factors[min(finite)[1]] / divisor, VALLEY_RULE
    limit = level + max(0.25 * level, 0.02)
    edge = lead - 1
    for i in range(lead, len(factors)):
        window = losses[max(0, i - 5) : i + 6]
        if not all(math.isfinite(loss) for loss in window) or statistics.median(window) > limit:
            break
        edge = i
    return factors[edge] / divisor, EDGE_RULE


def range_test(
    trainee: Trainee,
    data: Split,
    optimizer: torch.optim.Optimizer,
    config: FitConfig,
    runtime: Runtime,
    steps: int = 100,
    start: float = 1e-7,
    end: float = 10.0,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> RangeTest:
    """Run the range test with `optimizer` (its group rates are the base rates), then restore weights and optimizer.

    The factor of step i is start * (end/start) ** (i / (steps - 1)); the test stops early once the smoothed loss
    exceeds `diverge` times its minimum (a minimum below 0.1 nats counts as 0.1, and never in the first tenth of the
    steps: one noisy batch must not end the test of a model whose loss is near zero) or is not finite.
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
            if not math.isfinite(smooth) or (step >= steps // 10 and smooth > diverge * max(lowest, 0.1)):
                break
            lowest = min(lowest, smooth)
            optimizer.zero_grad(set_to_none=True)
            backward_step(module, loss, optimizer, config.clip_grad_norm, None)
    finally:
        module.load_state_dict(saved_weights)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.zero_grad(set_to_none=True)
    chosen, rule = pick_factor(result.factors, result.losses, result.smoothed, int(data.labels.max()) + 1)
    return RangeTest(result.factors, result.losses, result.smoothed, chosen, rule)


def _batches(n: int, config: FitConfig, runtime: Runtime, steps: int) -> list[torch.Tensor]:
    """`steps` seeded training batches, cycling through epochs of a small split (an offset keeps them apart
    from the training epochs' own draws)."""
    batches: list[torch.Tensor] = []
    epoch = 0
    while len(batches) < steps:
        drawn = epoch_indices(
            n, config.batch_size, config.seed + 7_777, epoch, True, runtime.rank, runtime.world_size, drop_last=True
        )
        if not drawn:
            break
        batches += drawn
        epoch += 1
    return batches[:steps]
