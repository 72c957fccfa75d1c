"""Building the model: torchvision weights from the hub cache, checkpoint paths, refusals, freezing, BN policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from finetuner.train.families import block_names
from finetuner.train.models import WeightsError, build_model, expand_blocks, freeze_except, set_train_mode
from finetuner.train.preprocessing import IMAGENET_MEAN


@pytest.fixture
def hub_resnet18(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """A random resnet18 state dict where torchvision expects the IMAGENET1K_V1 file in the hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = get_model("resnet18", weights=None).state_dict()
    target = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    return state


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT"])
def test_torchvision_weights_come_from_the_hub_cache(hub_resnet18: dict, name: str) -> None:
    built = build_model("resnet18", 3, name, image_size=32)
    own = built.model.state_dict()
    assert torch.equal(own["layer3.0.conv1.weight"], hub_resnet18["layer3.0.conv1.weight"])
    assert torch.equal(own["bn1.running_var"], hub_resnet18["bn1.running_var"])
    assert own["fc.weight"].shape == (3, 512)
    assert built.preprocessing.mean == IMAGENET_MEAN and built.preprocessing.resize_size == round(32 * 256 / 224)
    assert built.origin["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert os.environ["TORCH_HOME"] in built.origin["file"]


def test_missing_cache_file_is_reported_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):
        build_model("resnet18", 3, "IMAGENET1K_V1", 32)
    with pytest.raises(WeightsError, match="allowed: DEFAULT, IMAGENET1K_V1"):
        build_model("resnet18", 3, "IMAGENET21K", 32)


def test_plain_state_dict_loads_the_backbone_and_reports_mismatches(tmp_path: Path) -> None:
    state = get_model("resnet18", weights=None, num_classes=7).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)  # wrong shape: reported, kept at init
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "backbone.pt"
    torch.save(state, path)
    built = build_model("resnet18", 3, str(path), 32)
    assert torch.equal(built.model.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert built.model.fc.out_features == 3
    assert built.origin["mismatched"] == ["layer1.0.conv1.weight (1, 1, 1, 1) -> (64, 64, 3, 3)"]
    assert built.origin["unexpected"] == ["extra.weight"]
    assert built.origin["missing"] == ["layer1.0.conv1.weight"]


class Payload:
    """Anything that is not tensors and plain containers needs code to unpickle."""


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hook": Payload()}, path)
    with pytest.raises(WeightsError, match="refused"):
        build_model("resnet18", 3, str(path), 32)


def test_pipeline_checkpoint_of_another_arch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "arch": "resnet34"}, path)
    with pytest.raises(WeightsError, match="resnet34 model, but model.arch is resnet18"):
        build_model("resnet18", 3, str(path), 32)


def test_null_weights_is_random_init_of_the_contract_architecture() -> None:
    built = build_model("resnet18", 4, None, 32)
    assert set(built.model.state_dict()) == set(get_model("resnet18", num_classes=4).state_dict())


def test_freezing_and_bn_policy() -> None:
    model = get_model("resnet18", weights=None, num_classes=3)
    trained = expand_blocks("resnet18", ["layer4", "head"])
    assert trained == ["layer4", "head"] and expand_blocks("resnet18", ["all"]) == block_names("resnet18")
    freeze_except(model, "resnet18", trained)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"layer4", "fc"}
    set_train_mode(model, "resnet18", trained, "frozen")
    assert not model.bn1.training and not model.layer3[1].bn2.training and model.layer4[0].bn1.training
    assert model.training and model.layer4.training
    set_train_mode(model, "resnet18", trained, "train")
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    set_train_mode(model, "resnet18", trained, "eval")  # pretrained statistics everywhere, trained blocks too
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.training and model.layer4.training
    before = model.layer4[0].bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32)).sum().backward()  # a training forward leaves the statistics alone
    assert torch.equal(model.layer4[0].bn1.running_mean, before)
    assert model.layer4[0].bn1.weight.grad is not None  # while BatchNorm's scale still learns
