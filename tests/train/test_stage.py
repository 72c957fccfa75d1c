"""The training stages end to end on tiny generated data in tmp_path: outputs, pass-through, resume, NaN loss."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from finetuner.common.stage import InputError
from finetuner.train.checkpoint import REQUIRED_KEYS, load_pipeline_checkpoint, model_from_checkpoint
from finetuner.train.stage import run_training_stage
from tests.train_fixtures import kill_after_first_epoch, make_splits, tiny_params

FROZEN_IN_PARTIAL = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")


def test_three_stages_write_the_contract(project: Path) -> None:
    params = tiny_params(**{"stages.partial.epochs": 1})
    head = load_pipeline_checkpoint(project / "models/train_head/best.pt")
    assert (
        head["stage"] == "train_head"
        and head["epoch"] == 1
        and head["class_to_idx"] == {"blue": 0, "green": 1, "red": 2}
    )
    run_training_stage("train_partial", params, project)
    result = run_training_stage("train_full", params, project)  # epochs 0: passes the input through
    best = load_pipeline_checkpoint(project / "models/best.pt")
    assert set(REQUIRED_KEYS) <= set(best) and result["value"] == best["value"]
    assert best["value"] >= head["value"] and best["metric"] == "macro_f1"
    assert (project / "models/train_full/best.pt").read_bytes() == (project / "models/best.pt").read_bytes()
    assert (project / "models/train_partial/best.pt").read_bytes() == (project / "models/best.pt").read_bytes()
    # The skipped stage's curves exist, empty, so `dvc plots show` does not warn about missing plots.
    curve = project / "reports/train/train_full/plots/metrics/val/macro_f1.tsv"
    assert curve.read_text() == "step\tmacro_f1\n"
    model_from_checkpoint(best)  # the contract architecture loads it
    partial = load_pipeline_checkpoint(project / "models/train_partial/last.pt")["state_dict"]
    for name, tensor in head["state_dict"].items():
        same = torch.equal(tensor, partial[name])
        assert same == name.startswith(FROZEN_IN_PARTIAL), name  # BN running stats of frozen blocks included
    assert (project / "reports/train/train_partial/plots/metrics/val/macro_f1.tsv").read_text().count("\n") == 2
    assert (project / "reports/train/train_full/metrics.json").is_file()
    assert not (project / "checkpoints/train_partial").exists()


def test_interrupted_stage_resumes_to_the_same_result(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    params = tiny_params()  # partial: 2 epochs
    run_training_stage("train_partial", params, project)
    reference = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    shutil.rmtree(project / "models/train_partial")

    kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_training_stage("train_partial", params, project)
    assert (project / "checkpoints/train_partial/resume.pt").is_file()
    with caplog.at_level(logging.INFO, logger="finetuner.train"):
        run_training_stage("train_partial", params, project)
    assert "resuming after epoch 1" in caplog.text
    resumed = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    for name, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name
    assert resumed["value"] == reference["value"]


def test_resume_state_of_other_params_is_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (project / "checkpoints/train_partial").mkdir(parents=True)
    torch.save({"fingerprint": "stale", "history": []}, project / "checkpoints/train_partial/resume.pt")
    with caplog.at_level(logging.INFO, logger="finetuner.train"):
        run_training_stage("train_partial", tiny_params(**{"stages.partial.epochs": 1}), project)
    assert "resuming" not in caplog.text


def test_non_finite_loss_stops_the_stage_and_keeps_the_best(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.nn.CrossEntropyLoss
    calls = {"n": 0}

    class NanAfterFirstEpoch(real):
        def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            loss = super().forward(logits, labels)
            return loss * float("nan") if calls["n"] > 3 else loss  # 2 steps per epoch: one step of epoch 2 taken

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", NanAfterFirstEpoch)
    with pytest.raises(InputError, match="train_partial stopped: loss is nan at epoch 2"):
        run_training_stage("train_partial", tiny_params(), project)
    best = load_pipeline_checkpoint(project / "models/train_partial/best.pt")
    assert best["stage"] in ("train_head", "train_partial") and best["epoch"] == 1
    assert (project / "models/train_partial/stage_best.pt").is_file()
    last = load_pipeline_checkpoint(project / "models/train_partial/last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(t.float()).all() for t in last["state_dict"].values())
    # the weights of the last completed epoch, not those after the step epoch 2 took before its loss broke
    epoch_1 = load_pipeline_checkpoint(project / "models/train_partial/stage_best.pt")["state_dict"]
    assert all(torch.equal(last["state_dict"][k], epoch_1[k]) for k in epoch_1)
    assert not (project / "checkpoints/train_partial").exists()


def test_head_stage_with_zero_epochs_evaluates_the_starting_weights(tmp_path: Path) -> None:
    make_splits(tmp_path)
    result = run_training_stage("train_head", tiny_params(**{"stages.head.epochs": 0}), tmp_path)
    assert result["epoch"] == 0 and 0 <= result["value"] <= 1
    assert load_pipeline_checkpoint(tmp_path / "models/train_head/best.pt")["stage"] == "train_head"


def test_the_train_entry_refuses_an_unknown_stage_name_with_the_allowed_ones(capsys):
    from tasks.train import main

    assert main(["train_everything"]) == 2
    message = capsys.readouterr().err
    assert "train_everything" in message and "train_head,train_partial,train_full" in message
