"""params.yaml keys of the training stages (train.* and stages.*), validated before any work."""

from __future__ import annotations

import pytest

from finetuner.config import ConfigError, parse_params


def test_train_defaults_and_choices() -> None:
    params = parse_params({"train": {"optimizer": "sgd", "momentum": 0.8, "label_smoothing": 0.1, "patience": 2}})
    assert params.train.optimizer == "sgd" and params.train.patience == 2
    assert params.train.cache_features is True and params.train.max_steps_per_epoch is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optimizer", "adam", "train.optimizer"),
        ("momentum", 1.0, "train.momentum"),
        ("label_smoothing", -0.1, "train.label_smoothing"),
        ("patience", 0, "train.patience"),
        ("max_steps_per_epoch", 0, "train.max_steps_per_epoch"),
    ],
)
def test_bad_train_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params({"train": {key: value}})


def test_blocks_of_other_families_validate() -> None:
    stages = {
        "head": {"epochs": 1, "train": ["head"], "lr": {"head": 1e-3}},
        "partial": {"epochs": 1, "train": ["stage4", "head"], "lr": {"stage4": 1e-4, "head": 1e-3}},
        "full": {"epochs": 1, "train": ["all"], "lr": {"head": 1e-3}, "lr_decay": 0.5},
    }
    assert parse_params({"model": {"arch": "convnext_tiny"}, "stages": stages}).stages.partial.train == (
        "stage4",
        "head",
    )
    with pytest.raises(ConfigError, match="unknown block 'stage4'.*layer4"):
        parse_params({"model": {"arch": "resnet18"}, "stages": stages})
