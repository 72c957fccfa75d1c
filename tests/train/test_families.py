"""The backbone family registry: every parameter of every family lies in exactly one named block."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import get_model

from finetuner.train.families import HEAD, block_names, block_prefixes, families, family_for, register_family
from finetuner.train.models import parameters_by_block

# Every torchvision classifier either belongs to a family or is declared unsupported here, so a torchvision upgrade
# that adds a name (or a pattern that misses one, as regnet_x_1_6gf once was) fails a test instead of a user's run.
UNSUPPORTED = r"alexnet|vgg\d+(_bn)?|googlenet|inception_v3|maxvit_t|mnasnet\d_\d+|shufflenet_v2_x\d_\d|squeezenet1_\d"
ALL_NAMES = torchvision.models.list_models(module=torchvision.models)
ARCHS = [arch for arch in ALL_NAMES if not re.fullmatch(UNSUPPORTED, arch)]
# regnet cannot be built on the meta device; beyond 3.2 GFLOPs its (identical) layout is not worth the CPU time.
BIG_REGNET = r"regnet_[xy]_(8|16|32|128)gf"


def build(arch: str) -> nn.Module:
    """The model without weights, on the meta device where it can be (nothing allocated or initialised)."""
    if arch.startswith("regnet"):
        return get_model(arch, weights=None)
    with torch.device("meta"):
        return get_model(arch, weights=None)


def test_every_torchvision_classifier_has_a_family_or_is_declared_unsupported() -> None:
    assert {"regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_y_1_6gf", "regnet_y_3_2gf", "vit_h_14"} <= set(ARCHS)
    for arch in ARCHS:
        assert family_for(arch).matches(arch)
    for arch in set(ALL_NAMES) - set(ARCHS):
        with pytest.raises(ValueError, match="belongs to no registered family"):
            family_for(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_lies_in_exactly_one_nonempty_block(arch: str) -> None:
    if re.fullmatch(BIG_REGNET, arch):
        pytest.skip("the layout of the regnets up to 3.2 GFLOPs, which are built; too big to build in a test")
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
    assert set(families()) >= {
        "resnet",
        "efficientnet",
        "mobilenet_v3",
        "convnext",
        "regnet",
        "densenet",
        "vit",
        "swin",
    }


def test_unknown_architecture_names_the_known_families() -> None:
    with pytest.raises(ValueError, match="known families: .*convnext"):
        family_for("alexnet")
