"""The demo backbone: pretrained with the engine from random init, usable as model.weights for fine-tuning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from finetuner.demo.pretrain import pretrain
from finetuner.train.checkpoint import load_pipeline_checkpoint
from finetuner.train.models import build_model
from tests.train_fixtures import make_images, tiny_params


def test_pretrained_backbone_is_a_pipeline_checkpoint_that_fine_tuning_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_images(tmp_path, per_class=5)
    shutil.move(tmp_path / "data/raw/images", tmp_path / "source")
    params = tiny_params()
    result = pretrain(
        params,
        tmp_path / "source",
        tmp_path / "models/demo_backbone.pt",
        epochs=1,
        lr=1e-3,
        batch_size=4,
        max_steps_per_epoch=2,
    )
    assert result["stage"] == "pretrain" and result["epoch"] == 1
    backbone = load_pipeline_checkpoint(tmp_path / "models/demo_backbone.pt")
    assert backbone["class_to_idx"] == {"blue": 0, "green": 1, "red": 2}
    built = build_model("resnet18", 5, "models/demo_backbone.pt", 32)
    state = built.model.state_dict()
    assert torch.equal(state["layer2.0.conv1.weight"], backbone["state_dict"]["layer2.0.conv1.weight"])
    assert state["fc.weight"].shape == (5, 512) and built.origin["missing"] == []


def test_pretraining_is_deterministic_for_a_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No time budget decides the steps: the same source and seed give the same backbone on any machine."""
    monkeypatch.chdir(tmp_path)
    make_images(tmp_path, per_class=5)
    shutil.move(tmp_path / "data/raw/images", tmp_path / "source")
    weights = []
    for name in ("a.pt", "b.pt"):
        pretrain(
            tiny_params(), tmp_path / "source", tmp_path / name, epochs=1, lr=1e-3, batch_size=4, max_steps_per_epoch=2
        )
        weights.append(load_pipeline_checkpoint(tmp_path / name)["state_dict"])
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
