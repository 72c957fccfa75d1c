"""The `retrain` section of params.yaml: defaults, the committed values, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finetuner.config import ConfigError, parse_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_retrain_section(raw):
    params = parse_params(raw)
    assert params.retrain.min_gain == pytest.approx(0.01)
    assert params.retrain.schedule == "0 3 * * *"


def test_section_is_optional(raw):
    del raw["retrain"]
    assert parse_params(raw).retrain.min_gain == pytest.approx(0.01)


@pytest.mark.parametrize("value", [-0.01, 1.5, "a lot"])
def test_bad_min_gain_names_key(raw, value):
    raw["retrain"]["min_gain"] = value
    with pytest.raises(ConfigError, match=r"retrain\.min_gain"):
        parse_params(raw)


@pytest.mark.parametrize("value", ["0 3 * *", "every night", "0 3 * * * *", "0 3 * * $"])
def test_bad_schedule_names_key(raw, value):
    raw["retrain"]["schedule"] = value
    with pytest.raises(ConfigError, match=r"retrain\.schedule.*5 fields"):
        parse_params(raw)


@pytest.mark.parametrize("value", ["*/15 * * * *", "30 2 * * MON-FRI", "0 0 1 */2 *"])
def test_valid_schedules(raw, value):
    raw["retrain"]["schedule"] = value
    assert parse_params(raw).retrain.schedule == value


def test_unknown_retrain_key(raw):
    raw["retrain"]["min_gian"] = 0.1
    with pytest.raises(ConfigError, match=r"retrain\.min_gian.*unknown key"):
        parse_params(raw)
