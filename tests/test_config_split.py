"""params.yaml `split` section: the keys the split stage adds are validated with their dotted names."""

from __future__ import annotations

import pytest

from finetuner.config import ConfigError, parse_params


def _error(split: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params({"split": split})
    return str(info.value)


def test_defaults():
    split = parse_params({}).split
    assert split.reshuffle is False
    assert split.max_unit_share == 0.5
    assert split.fractions.model_dump() == {"train": 0.7, "val": 0.15, "test": 0.15}


def test_zero_val_is_allowed():
    assert parse_params({"split": {"fractions": {"train": 0.8, "val": 0.0, "test": 0.2}}}).split.fractions.val == 0


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "most"])
def test_max_unit_share_out_of_range(value):
    assert "split.max_unit_share" in _error({"max_unit_share": value})


def test_reshuffle_must_be_a_bool():
    assert "split.reshuffle" in _error({"reshuffle": "sometimes"})


def test_fractions_must_sum_to_one():
    message = _error({"fractions": {"train": 0.7, "val": 0.2, "test": 0.2}})
    assert "split.fractions" in message and "sum to 1 (got 1.1)" in message


def test_unknown_split_key_is_named():
    assert "split.reshufle" in _error({"reshufle": True})


def test_committed_params_name_the_split_keys(repo_root):
    from finetuner.common.stage import load_params

    split = load_params(repo_root / "params.yaml").split
    assert split.reshuffle is False and split.max_unit_share == 0.5
