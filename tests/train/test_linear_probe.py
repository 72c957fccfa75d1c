"""The head stage's L-BFGS probe: scikit-learn's LogisticRegression objective, solved to convergence, with its
strength chosen on validation; on cached features it reaches LogisticRegression's validation macro-F1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from finetuner.common.stage import read_csv
from finetuner.train.checkpoint import load_pipeline_checkpoint, model_from_checkpoint
from finetuner.train.engine import Runtime
from finetuner.train.features import extract_features
from finetuner.train.image_cache import cached_images
from finetuner.train.linear_probe import fit_logistic, fit_probes
from finetuner.train.preprocessing import Preprocessing
from finetuner.train.stage import run_training_stage
from tests.train_fixtures import make_splits, tiny_params


def features(seed: int, n: int, classes: int = 3, dims: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping classes (val macro-F1 well below 1), non-negative like pooled ReLU features."""
    centres = torch.rand(classes, dims, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(n) % classes
    noise = torch.rand(n, dims, generator=torch.Generator().manual_seed(seed)) * 2.0
    return centres[labels] + noise, labels


def macro_f1(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    return f1_score(y.numpy(), (x @ weight.T + bias).argmax(1).numpy(), average="macro")


def test_probe_solves_the_logistic_regression_objective_of_sklearn() -> None:
    x, y = features(1, 300)
    fit = fit_logistic(x, y, 3, c=1.0)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    # The unpenalised bias is poorly conditioned; the fitted probabilities are what the objective pins down.
    ours = torch.softmax(x @ fit.weight.T + fit.bias, 1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(x.numpy()), atol=5e-3)


def test_probe_chosen_on_validation_reaches_sklearn() -> None:
    (x, y), (vx, vy) = features(1, 300), features(2, 150)
    sklearn_f1 = f1_score(
        vy.numpy(), LogisticRegression(max_iter=5000).fit(x.numpy(), y.numpy()).predict(vx.numpy()), average="macro"
    )
    assert 0.4 < sklearn_f1 < 0.95  # a problem where the strength matters, not a separable one
    best = max(macro_f1(fit.weight, fit.bias, vx, vy) for fit in fit_probes(x, y, 3))
    assert best >= sklearn_f1 - 0.01


@pytest.mark.timeout(300)
def test_head_stage_reaches_logistic_regression_on_cached_features(tmp_path: Path) -> None:
    make_splits(tmp_path, per_class=9)
    params = tiny_params(**{"stages.head": {"epochs": 100, "train": ["head"], "lr": {"head": 1e-3}, "solver": "lbfgs"}})
    run_training_stage("train_head", params, tmp_path)
    recipe = json.loads((tmp_path / "models/train_head/recipe.json").read_text())
    best = load_pipeline_checkpoint(tmp_path / "models/train_head/best.pt")
    assert recipe["solver"] == "lbfgs" and recipe["best_value"] == best["value"]
    model, prep = model_from_checkpoint(best), Preprocessing.from_dict(best["preprocessing"])
    cached = {}
    for name in ("train", "val"):
        rows = read_csv(tmp_path / "data/splits" / f"{name}.csv")
        images = cached_images([tmp_path / "data/raw/images" / r["path"] for r in rows], prep, None, 1)
        cached[name] = (
            extract_features(model, "resnet18", torch.from_numpy(images), prep, Runtime(), 64).numpy(),
            [r["label"] for r in rows],
        )
    reference = LogisticRegression(max_iter=5000).fit(*cached["train"])
    sklearn_f1 = f1_score(cached["val"][1], reference.predict(cached["val"][0]), average="macro")
    assert best["value"] >= sklearn_f1 - 0.01
