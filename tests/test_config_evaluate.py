"""The `evaluate` section of params.yaml: defaults, validation messages naming the key, and the repo's file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finetuner.config import ConfigError, EvaluateConfig, parse_params


def test_defaults() -> None:
    cfg = parse_params({}).evaluate
    assert cfg == EvaluateConfig(batch_size=64, ledger_warn_after=5, calibration_bins=15, device="auto")


def test_repository_params_parse(repo_root: Path) -> None:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert parse_params(raw).evaluate.calibration_bins == raw["evaluate"]["calibration_bins"]


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"batch_size": 0}, "evaluate.batch_size"),
        ({"ledger_warn_after": 0}, "evaluate.ledger_warn_after"),
        ({"calibration_bins": 1}, "evaluate.calibration_bins"),
        ({"device": "tpu"}, "evaluate.device"),
        ({"bins": 10}, "evaluate.bins"),
    ],
)
def test_bad_values_name_the_key(section: dict, key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_params({"evaluate": section})
    assert key in str(excinfo.value)
