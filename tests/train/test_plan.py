"""The recipe in the training stages: early stopping keeps the best epoch, the validation gate skips a deeper stage
(passing its input through), and `lr: auto` survives a kill: the rates are found once and a resume is bit-exact."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from finetuner.train import plan as train_plan
from finetuner.train.checkpoint import load_pipeline_checkpoint
from finetuner.train.stage import run_training_stage
from tests.train_fixtures import kill_after_first_epoch, tiny_params

AUTO = {"epochs": 2, "train": ["layer4", "head"], "lr": "auto", "lr_decay": 0.5, "warmup_epochs": 1}


def test_early_stopping_keeps_the_best_epoch(project: Path) -> None:
    # Validation labels rotated against training: the more the stage learns, the worse validation gets.
    val = project / "data/splits/val.csv"
    rows = list(csv.DictReader(val.open()))
    rotate = {"red": "green", "green": "blue", "blue": "red"}
    with val.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "label": rotate[row["label"]]} for row in rows)
    params = tiny_params(**{"stages.partial.epochs": 10, "train.patience": 2, "train.max_steps_per_epoch": 3})
    run_training_stage("train_partial", params, project)
    recipe = json.loads((project / "models/train_partial/recipe.json").read_text())
    stage_best = load_pipeline_checkpoint(project / "models/train_partial/stage_best.pt")
    last = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    assert recipe["stopped_early"] and recipe["epochs_run"] == stage_best["epoch"] + 2 < 10
    assert stage_best["value"] >= last["value"]
    assert any(not torch.equal(t, last["state_dict"][k]) for k, t in stage_best["state_dict"].items())


def test_gate_skips_the_deeper_stage_and_passes_its_input_through(project: Path) -> None:
    params = tiny_params(
        **{
            "stages.partial.epochs": 1,
            "stages.full": {"epochs": 2, "train": ["all"], "lr": {"head": 1e-3}, "lr_decay": 0.5, "min_gain": 1.0},
        }
    )
    run_training_stage("train_partial", params, project)
    run_training_stage("train_full", params, project)
    partial = json.loads((project / "models/train_partial/recipe.json").read_text())
    full = json.loads((project / "reports/train/train_full/recipe.json").read_text())
    assert not full["ran"] and full["reason"] in (
        f"full: skipped, train_partial gained {partial['gain']:.3f} over its start (< 1)",
        "full: skipped, validation is already perfect after train_partial",
    )  # tiny data: either stops it
    assert (project / "models/best.pt").read_bytes() == (project / "models/train_partial/best.pt").read_bytes()
    assert not (project / "models/train_full/last.pt").exists()  # nothing was trained


def test_resume_after_a_kill_is_bit_exact_with_lr_auto(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    params = tiny_params(**{"stages.partial": AUTO, "train.lr_find_steps": 10})
    calls = []
    real_range_test = train_plan.range_test
    monkeypatch.setattr(train_plan, "range_test", lambda *a, **k: calls.append(1) or real_range_test(*a, **k))
    run_training_stage("train_partial", params, project)
    reference = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    assert (
        calls == [1]
        and reference["lr"] == json.loads((project / "reports/train/train_partial/lr_find.json").read_text())["rates"]
    )
    for name in ("models/train_partial", "reports/train/train_partial"):
        for path in sorted((project / name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()

    kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_training_stage("train_partial", params, project)
    with caplog.at_level(logging.INFO, logger="finetuner.train"):
        run_training_stage("train_partial", params, project)
    assert calls == [1, 1]  # the killed run found the rates; the resumed run reused them
    assert "resuming after epoch 1" in caplog.text and "reusing the recorded range test" in caplog.text
    resumed = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    assert resumed["lr"] == reference["lr"]
    for name, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def test_bn_policy_eval_means_train_for_a_model_without_pretrained_weights() -> None:
    pretrained = tiny_params(**{"train.bn_policy": "eval", "model.weights": "DEFAULT"})
    scratch = tiny_params(**{"train.bn_policy": "eval", "model.weights": None})
    assert train_plan.bn_policy(pretrained) == "eval" and train_plan.bn_policy(scratch) == "train"
    assert train_plan.uses_cache(["head"], pretrained)  # head-only on a fixed backbone: features cached either way


def test_augment_applies_to_backbone_stages_and_keeps_the_head_on_cached_features() -> None:
    params = tiny_params(**{"train.augment": True, "model.weights": "DEFAULT"})
    assert train_plan.uses_cache(["head"], params) and not train_plan.augments(["head"], params)
    assert train_plan.augments(["layer4", "head"], params)
    assert not train_plan.augments(["layer4", "head"], tiny_params(**{"model.weights": "DEFAULT"}))
