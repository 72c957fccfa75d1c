"""Fixtures shared by the training tests: a tiny project after its train_head stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from finetuner.train.stage import run_training_stage
from tests.train_fixtures import make_splits, tiny_params


@pytest.fixture(scope="module")
def after_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project whose train_head stage has run (1 epoch, cached features)."""
    root = tmp_path_factory.mktemp("project")
    make_splits(root)
    run_training_stage("train_head", tiny_params(**{"stages.head.epochs": 1}), root)
    return root


@pytest.fixture
def project(after_head: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(after_head, root)
    return root
