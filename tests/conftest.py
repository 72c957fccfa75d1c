"""Suite-wide setup: isolated Prefect and torch homes, no telemetry, no downloads, CPU only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_RUN_HOME = Path(tempfile.mkdtemp(prefix="finetuner-tests-"))
os.environ["PREFECT_HOME"] = str(_RUN_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["TORCH_HOME"] = str(_RUN_HOME / "torch")  # an empty hub cache: nothing real is ever found or fetched
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU even where a GPU exists, except gpu-marked

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for all flow tests (it takes ~20 s to start); request it explicitly."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
