"""The backbone family registry: every parameter of every family lies in exactly one named block."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from finetuner.train.families import HEAD, block_names, block_prefixes, families, family_for, register_family
from finetuner.train.models import parameters_by_block

# One architecture per distinct block layout; construction on the meta device skips weight initialisation
# (regnet cannot be built there, and is small anyway).
ARCHS = [
    "resnet18", "resnext50_32x4d", "wide_resnet50_2", "regnet_x_400mf", "efficientnet_b0", "efficientnet_v2_s",
    "efficientnet_v2_m", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "convnext_tiny", "swin_t",
    "swin_v2_t", "densenet121", "vit_b_16", "vit_l_16",
]


def build(arch: str) -> nn.Module:
    if arch.startswith("regnet"):
        return get_model(arch, weights=None)
    with torch.device("meta"):
        return get_model(arch, weights=None)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_lies_in_exactly_one_nonempty_block(arch: str) -> None:
    model = build(arch)
    grouped = parameters_by_block(model, arch)  # raises for a parameter in no block
    assert list(grouped) == block_names(arch) and block_names(arch)[-1] == HEAD
    assert all(grouped[block] for block in grouped), [block for block in grouped if not grouped[block]]
    names = [name for params in grouped.values() for name, _ in params]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())
    assert isinstance(model.get_submodule(block_prefixes(arch)[HEAD][0]), nn.Linear)


def test_blocks_are_ordered_input_side_first() -> None:
    assert block_names("resnet50") == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert block_names("convnext_tiny")[-2:] == ["stage4", "head"]
    assert block_names("vit_b_16")[:2] == ["embed", "layer1"] and block_names("vit_b_16")[-2] == "layer12"
    assert block_names("efficientnet_v2_s")[-3:] == ["stage6", "top", "head"]


def test_registering_a_family_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_family("resnet", r"resnet\d+", head="fc")(lambda arch: {})
    assert set(families()) >= {"resnet", "efficientnet", "mobilenet_v3", "convnext", "regnet", "densenet", "vit",
                               "swin"}


def test_unknown_architecture_names_the_known_families() -> None:
    with pytest.raises(ValueError, match="known families: .*convnext"):
        family_for("alexnet")
