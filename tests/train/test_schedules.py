"""Warmup + cosine learning-rate schedule, stepped per iteration."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from finetuner.train.schedules import build_scheduler, warmup_cosine_factor


def test_known_values() -> None:
    assert [warmup_cosine_factor(s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine_factor(4, 10, 4) == 1.0
    assert warmup_cosine_factor(7, 10, 4) == pytest.approx(0.5)  # half way through the 6 decay steps
    assert warmup_cosine_factor(10, 10, 4) == pytest.approx(0.0)
    assert warmup_cosine_factor(10, 10, 4, min_factor=0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(0, 4, 0) == 1.0


@given(total=st.integers(1, 200), warmup=st.integers(0, 50), min_factor=st.floats(0, 0.5))
def test_factor_rises_then_falls_within_bounds(total: int, warmup: int, min_factor: float) -> None:
    factors = [warmup_cosine_factor(s, total, warmup, min_factor) for s in range(total + 1)]
    assert all(min_factor - 1e-12 <= f <= 1.0 + 1e-12 for f in factors[warmup:])
    assert all(a < b for a, b in zip(factors[:warmup], factors[1:warmup]))
    assert all(a >= b - 1e-12 for a, b in zip(factors[warmup:], factors[warmup + 1 :]))


def test_scheduler_scales_every_group_per_step() -> None:
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "lr": 1.0}, {"params": [weights[1]], "lr": 0.1}])
    scheduler = build_scheduler(optimizer, total_steps=6, warmup_steps=2)
    seen = []
    for _ in range(6):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx([0.5, 0.05]) and seen[1] == pytest.approx([1.0, 0.1])
    expected = 0.5 * (1 + math.cos(math.pi * 1 / 4))  # step 3 = 1 of 4 decay steps
    assert seen[3] == pytest.approx([expected, 0.1 * expected])
