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


def test_pick_factor_is_a_tenth_of_the_minimum_of_the_smoothed_loss() -> None:
    assert pick_factor([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, 3.0]) == 1e-1 / 10
    assert pick_factor([1e-3, 1e-2], [float("nan"), float("inf")]) == 1e-3
