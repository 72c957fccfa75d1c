"""Parameter groups: one learning rate per trained block, frozen parameters left out, no decay on norm/bias."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from finetuner.train.families import block_names
from finetuner.train.models import expand_blocks, freeze_except
from finetuner.train.param_groups import block_learning_rates, build_optimizer, build_param_groups

RESNET = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def test_explicit_rates_and_layerwise_decay_downwards() -> None:
    rates = block_learning_rates(RESNET, RESNET, {"head": 3e-4, "layer4": 3e-5}, 0.33)
    assert rates["head"] == 3e-4 and rates["layer4"] == 3e-5
    assert rates["layer3"] == pytest.approx(3e-5 * 0.33)
    assert rates["stem"] == pytest.approx(3e-5 * 0.33**4)
    assert block_learning_rates(RESNET, ["layer4", "head"], {"layer4": 1e-5, "head": 1e-4}, None) == {
        "layer4": 1e-5,
        "head": 1e-4,
    }
    # A block above every named one is scaled up from the nearest named block below it.
    assert block_learning_rates(RESNET, ["layer4", "head"], {"layer4": 1e-4}, 0.5)["head"] == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="no learning rate for block 'layer3'"):
        block_learning_rates(RESNET, ["layer3", "head"], {"head": 1e-3}, None)


def _groups(arch: str, train: list[str], lr: dict[str, float], lr_decay: float | None, meta: bool = True):
    if meta:
        with torch.device("meta"):
            model = get_model(arch, weights=None, num_classes=3)
    else:
        model = get_model(arch, weights=None, num_classes=3)
    trained = expand_blocks(arch, train)
    freeze_except(model, arch, trained)
    rates = block_learning_rates(block_names(arch), trained, lr, lr_decay)
    return model, build_param_groups(model, arch, rates, weight_decay=0.05)


def test_resnet_partial_groups_hold_exactly_the_trainable_parameters() -> None:
    model, groups = _groups("resnet18", ["layer4", "head"], {"layer4": 1e-5, "head": 1e-4}, None)
    grouped = {name for g in groups for name in g["param_names"]}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert grouped == trainable and all(n.startswith(("layer4.", "fc.")) for n in grouped)
    assert {g["name"]: g["lr"] for g in groups} == {
        "layer4/decay": 1e-5,
        "layer4/no_decay": 1e-5,
        "head/decay": 1e-4,
        "head/no_decay": 1e-4,
    }
    by_name = {g["name"]: g for g in groups}
    assert by_name["head/decay"]["param_names"] == ["fc.weight"]
    assert by_name["head/no_decay"]["param_names"] == ["fc.bias"]
    assert by_name["layer4/no_decay"]["weight_decay"] == 0.0 and by_name["layer4/decay"]["weight_decay"] == 0.05
    modules = dict(model.named_modules())
    for name in by_name["layer4/no_decay"]["param_names"]:  # biases and every BatchNorm weight
        owner = modules[name.rsplit(".", 1)[0]]
        assert name.endswith("bias") or isinstance(owner, nn.BatchNorm2d), name
    for name in by_name["layer4/decay"]["param_names"]:
        assert isinstance(modules[name.rsplit(".", 1)[0]], nn.Conv2d), name


@pytest.mark.parametrize(
    "arch",
    ["mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "densenet121", "convnext_tiny", "swin_t", "vit_b_16"],
)
def test_every_family_gets_one_rate_per_block_and_no_decay_on_norms(arch: str) -> None:
    model, groups = _groups(arch, ["all"], {"head": 1e-3}, 0.5, meta=not arch.startswith("regnet"))
    order = block_names(arch)
    for group in groups:
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (len(order) - 1 - order.index(group["block"])))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    modules = dict(model.named_modules())
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    for name, module in modules.items():
        for pname, param in module.named_parameters(recurse=False):
            full = f"{name}.{pname}" if name else pname
            if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)) or pname == "bias":
                assert full in no_decay, full
            elif param.ndim >= 2 and pname == "weight":
                assert full not in no_decay, full
    if arch == "vit_b_16":
        assert {"class_token", "encoder.pos_embedding"} <= no_decay


def test_optimizers_keep_the_groups() -> None:
    _, groups = _groups("resnet18", ["head"], {"head": 1e-3}, None, meta=False)
    sgd = build_optimizer(groups, "sgd", momentum=0.9)
    assert sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["nesterov"]
    adamw = build_optimizer(groups, "adamw")
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0]
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(groups, "adam")
