"""`lr: auto`: the range test picks a rate near the best one on a toy problem, and leaves the model untouched."""

from __future__ import annotations

import torch
from torch import nn

from finetuner.train.engine import FitConfig, Runtime, Split, Trainee, train_epoch
from finetuner.train.lr_finder import pick_factor, range_test
from finetuner.train.schedules import build_scheduler

CONFIG = FitConfig(epochs=6, batch_size=32, seed=0)


def blobs(seed: int, n: int = 256, classes: int = 4, dims: int = 16) -> Split:
    """Overlapping Gaussian classes: the loss has a floor, so too high a rate shows as a rising loss."""
    centres = torch.randn(classes, dims, generator=torch.Generator().manual_seed(0)) * 0.4
    labels = torch.arange(n) % classes
    return Split(centres[labels] + torch.randn(n, dims, generator=torch.Generator().manual_seed(seed)), labels)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def held_out_loss(lr: float) -> float:
    """Train for 48 steps with warmup + cosine at base rate `lr`; the loss on other samples of the same classes."""
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0)
    scheduler = build_scheduler(optimizer, 8 * CONFIG.epochs, 8)
    trainee = Trainee(model, model.train, lambda batch: batch)
    for epoch in range(CONFIG.epochs):
        train_epoch(trainee, blobs(1), optimizer, scheduler, CONFIG, Runtime(), epoch)
    val = blobs(2)
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(val.inputs), val.labels))


def test_range_test_picks_a_rate_near_the_best_and_restores_the_weights() -> None:
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    losses = {lr: held_out_loss(lr) for lr in grid}
    best = min(losses, key=losses.get)
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0, weight_decay=0)  # base rate 1: factor = rate
    test = range_test(Trainee(model, model.train, lambda batch: batch), blobs(1), optimizer, CONFIG, Runtime())
    assert best / 3 <= test.chosen <= best * 3, (test.chosen, losses)
    assert held_out_loss(test.chosen) <= losses[best] * 1.1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state and optimizer.param_groups[0]["lr"] == 1.0
    again = range_test(Trainee(model, model.train, lambda batch: batch), blobs(1), optimizer, CONFIG, Runtime())
    assert again.chosen == test.chosen  # seeded batches: the same seed picks the same rate


def test_pick_factor_from_an_unfitted_model_is_a_tenth_of_the_valley_minimum() -> None:
    factors = [1e-3, 1e-2, 1e-1, 1.0]
    chosen, rule = pick_factor(factors, [1.4, 1.3, 0.5, 3.0], [1.4, 1.0, 0.5, 3.0], classes=4)  # starts at chance
    assert chosen == 1e-1 / 10 and "minimum" in rule
    assert pick_factor([1e-3, 1e-2], [float("nan")] * 2, [float("nan"), float("inf")], classes=4)[0] == 1e-3


def test_pick_factor_from_a_fitted_model_is_a_tenth_of_where_the_loss_starts_to_rise() -> None:
    # A converged head: noisy around 0.2 (its lowest point early, by chance), climbing only past 1e-2.
    factors = [10.0 ** (k / 4 - 7) for k in range(33)]  # 1e-7 .. 10, four per decade
    losses = (
        [0.2, 0.1, 0.3, 0.2, 0.15, 0.25, 0.2, 0.05, 0.3, 0.2] * 2
        + [0.22, 0.18] * 2
        + [0.6, 0.9, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0]
    )
    chosen, rule = pick_factor(factors, losses, losses, classes=13)
    assert abs(chosen - factors[22] / 10) < 1e-12 and "climbs" in rule, chosen  # 1e-7 * 10**5.5 / 10
    # Near zero a rise of 25% is noise: the 0.02-nat floor keeps the edge where the loss really climbs.
    tiny = [0.004, 0.012, 0.003, 0.010, 0.005] * 4 + [0.3] * 13
    assert pick_factor(factors, tiny, tiny, classes=13)[0] == factors[19] / 10


def test_range_test_of_a_fitted_model_runs_until_the_loss_really_climbs() -> None:
    """A model at a training loss near zero: one noisy batch must not end the test and pick the smallest factor."""
    model = mlp()
    labels = blobs(1).labels
    noise = torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(5))
    inputs = nn.functional.one_hot(labels, 16).float() * 4 + 0.3 * noise  # separable: the loss falls near 0...
    data = Split(inputs, torch.where(torch.arange(len(labels)) % 50 == 7, (labels + 1) % 4, labels))  # ...but 6 lie
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0)
    trainee = Trainee(model, model.train, lambda batch: batch)
    for epoch in range(15):
        train_epoch(trainee, data, optimizer, build_scheduler(optimizer, 8, 0), CONFIG, Runtime(), epoch)
    with torch.no_grad():
        assert float(nn.functional.cross_entropy(model(data.inputs), data.labels)) < 0.3
    for group in optimizer.param_groups:
        group["lr"] = 1.0
    test = range_test(trainee, data, optimizer, CONFIG, Runtime())
    assert len(test.factors) > 50 and "climbs" in test.rule
    assert test.chosen > 1e-5, test.chosen
