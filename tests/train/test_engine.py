"""The training engine: metrics, batching, frozen blocks and BN statistics, non-finite loss, cached features."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score
from torchvision.models import get_model

from finetuner.train.data import epoch_indices
from finetuner.train.engine import FitConfig, NonFiniteLossError, Runtime, Split, fit, metrics_from_confusion
from finetuner.train.features import feature_trainee, image_trainee
from finetuner.train.models import expand_blocks, freeze_except, set_train_mode
from finetuner.train.param_groups import block_learning_rates, build_optimizer, build_param_groups
from finetuner.train.preprocessing import Preprocessing
from finetuner.train.schedules import build_scheduler

RUNTIME = Runtime()
PREP = Preprocessing(32, 32)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_metrics_match_sklearn(pairs: list[tuple[int, int]]) -> None:
    truth, predicted = zip(*pairs)
    confusion = torch.zeros(4, 4, dtype=torch.float64)
    for t, p in pairs:
        confusion[t, p] += 1
    metrics = metrics_from_confusion(confusion, loss_sum=2.0 * len(pairs))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    assert metrics["loss"] == pytest.approx(2.0)


def test_epoch_batches_are_seeded_and_ranks_partition_them() -> None:
    first = torch.cat(epoch_indices(10, 3, seed=1, epoch=2, shuffle=True))
    assert torch.equal(first, torch.cat(epoch_indices(10, 3, seed=1, epoch=2, shuffle=True)))
    assert not torch.equal(first, torch.cat(epoch_indices(10, 3, seed=1, epoch=3, shuffle=True)))
    shards = [torch.cat(epoch_indices(10, 3, 1, 2, True, rank, 2)) for rank in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(10))
    assert [len(b) for b in epoch_indices(10, 4, 0, 0, True, drop_last=True)] == [4, 4]


def tiny_data(n: int = 12, classes: int = 3) -> Split:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    images = torch.randint(0, 256, (n, 32, 32, 3), generator=generator, dtype=torch.uint8)
    images[..., 0] = (labels * 100).view(n, 1, 1).to(torch.uint8)  # a learnable signal in the red channel
    return Split(images, labels)


def train_blocks(model, train: list[str], bn_policy: str = "frozen", epochs: int = 2, cached: bool = False):
    trained = expand_blocks("resnet18", train)
    freeze_except(model, "resnet18", trained)
    rates = block_learning_rates(expand_blocks("resnet18", ["all"]), trained, {b: 1e-2 for b in trained}, None)
    optimizer = build_optimizer(build_param_groups(model, "resnet18", rates, 1e-4), "adamw")
    config = FitConfig(epochs=epochs, batch_size=4, seed=0, clip_grad_norm=1.0)
    scheduler = build_scheduler(optimizer, 3 * epochs, 1)
    data = {"train": tiny_data(), "val": tiny_data(6)}
    if cached:
        trainee, data = feature_trainee(model, "resnet18", data, PREP, RUNTIME, 4)
    else:
        trainee = image_trainee(model, PREP, RUNTIME, lambda: set_train_mode(model, "resnet18", trained, bn_policy))
    return fit(trainee, data["train"], data["val"], optimizer, scheduler, config, RUNTIME, 3, lambda h, i: None)


def test_only_named_blocks_change_and_frozen_bn_statistics_stay() -> None:
    torch.manual_seed(0)
    model = get_model("resnet18", weights=None, num_classes=3)
    before = copy.deepcopy(model.state_dict())
    history = train_blocks(model, ["layer4", "head"], epochs=1)
    assert len(history) == 1 and set(history[0]) >= {"train_loss", "val_macro_f1", "lr"}
    after = model.state_dict()
    changed = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"layer4", "fc"}  # running stats of layer1..3 and the stem included: unchanged

    bn_trained = get_model("resnet18", weights=None, num_classes=3)
    bn_trained.load_state_dict(before)
    train_blocks(bn_trained, ["layer4", "head"], bn_policy="train", epochs=1)
    assert not torch.equal(bn_trained.state_dict()["layer1.0.bn1.running_mean"], before["layer1.0.bn1.running_mean"])
    assert torch.equal(bn_trained.state_dict()["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])


def test_cached_features_train_the_same_head_as_running_the_backbone() -> None:
    torch.manual_seed(0)
    model = get_model("resnet18", weights=None, num_classes=3)
    twin = copy.deepcopy(model)
    slow = train_blocks(model, ["head"])
    fast = train_blocks(twin, ["head"], cached=True)
    torch.testing.assert_close(model.fc.weight, twin.fc.weight, rtol=1e-4, atol=1e-5)
    assert [r["val_accuracy"] for r in slow] == [r["val_accuracy"] for r in fast]
    assert np.allclose([r["train_loss"] for r in slow], [r["train_loss"] for r in fast], rtol=1e-4)


def test_non_finite_loss_stops_before_any_update() -> None:
    model = get_model("resnet18", weights=None, num_classes=3)
    with torch.no_grad():
        model.fc.bias.fill_(float("nan"))
    weight = model.fc.weight.detach().clone()
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1, step 1"):
        train_blocks(model, ["head"], epochs=1)
    assert torch.equal(model.fc.weight, weight)
