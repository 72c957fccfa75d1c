"""The dedup section of params.yaml: defaults, and clear messages naming the key for bad values."""

from __future__ import annotations

import pytest
import yaml

from finetuner.config import ConfigError, parse_params


def test_defaults_guard_against_chaining() -> None:
    dedup = parse_params({}).dedup
    assert dedup.require_agreement is True
    assert dedup.low_info_max_distance <= dedup.max_distance
    assert dedup.max_cluster_size > 0


def test_repository_params_parse(repo_root) -> None:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    dedup = parse_params(raw).dedup
    assert dedup.methods == ("phash", "dhash")
    assert dedup.max_cluster_size == raw["dedup"]["max_cluster_size"]
    assert (dedup.min_design_share, dedup.max_design_chance) == (0.5, 0.001)  # the design guard, as documented


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("low_info_max_distance", 65),
        ("low_info_std", -1),
        ("max_cluster_size", -2),
        ("require_agreement", "sometimes"),
        ("max_distance", 99),
        ("min_design_share", 1.5),
        ("max_design_chance", -0.1),
    ],
)
def test_bad_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"dedup\.{key}"):
        parse_params({"dedup": {key: value}})


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"dedup\.max_cluster: unknown key"):
        parse_params({"dedup": {"max_cluster": 3}})
