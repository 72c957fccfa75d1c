"""The head stage's default solver: multinomial logistic regression on frozen features, fitted to convergence.

Kumar et al. 2022 ("Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution"): fine-tuning
from a converged linear probe (LP-FT) changes the features less than fine-tuning from a half-trained head, whose
large early gradients flow into the backbone. On cached features the probe is a small convex problem, so it is
solved outright: full-batch L-BFGS with a strong-Wolfe line search, the objective of scikit-learn's
`LogisticRegression` (mean cross-entropy + l2/2 * |W|^2, bias not penalised, l2 = 1 / (C * n)). The strength is
chosen on validation over a fixed grid of C (warm-started from the previous, more regularised fit), because the
right amount of regularisation depends on the data set and the backbone, not on a number tuned once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Inverse regularisation strengths tried, most regularised first (scikit-learn's C; its default is 1.0).
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@dataclass(frozen=True)
class ProbeFit:
    c: float
    weight: torch.Tensor  # (classes, features)
    bias: torch.Tensor  # (classes,)
    train_loss: float  # mean cross-entropy on the training features (without the penalty)


def single_linear(head: nn.Module) -> nn.Linear | None:
    """The head's one linear layer when everything else in it is the identity at eval time (dropout, flatten)."""
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    passive = (nn.Dropout, nn.Flatten, nn.Identity, nn.Sequential, nn.Linear)
    if len(linears) == 1 and all(isinstance(m, passive) for m in head.modules()):
        return linears[0]
    return None


def fit_logistic(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    c: float,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 200,
) -> ProbeFit:
    """Minimise mean CE + l2/2 |W|^2 with l2 = 1 / (c * n), in float64 (L-BFGS needs exact line searches).

    Stops when the largest gradient entry is below 1e-6 or after `max_iter` iterations (scikit-learn: 1e-4, 100).
    """
    x, y = features.double(), labels
    n, dims = x.shape
    weight = init[0].double().clone() if init else torch.zeros(num_classes, dims, dtype=torch.float64)
    bias = init[1].double().clone() if init else torch.zeros(num_classes, dtype=torch.float64)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    l2 = 1.0 / (c * n)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_loss = float(nn.functional.cross_entropy(x @ weight.T + bias, y))
    return ProbeFit(c, weight.detach().float(), bias.detach().float(), train_loss)


def fit_probes(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, grid: tuple[float, ...] = C_GRID
) -> list[ProbeFit]:
    """One converged probe per C of `grid`, in order, each warm-started from the previous one."""
    fits: list[ProbeFit] = []
    for c in grid:
        previous = (fits[-1].weight, fits[-1].bias) if fits else None
        fits.append(fit_logistic(features, labels, num_classes, c, previous))
    return fits


def load_probe(linear: nn.Linear, fit: ProbeFit) -> None:
    with torch.no_grad():
        linear.weight.copy_(fit.weight.to(linear.weight))
        linear.bias.copy_(fit.bias.to(linear.bias))
