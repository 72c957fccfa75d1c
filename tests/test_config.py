"""params.yaml validation: the committed file is valid; every kind of mistake names its key and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from finetuner.common.stage import load_params
from finetuner.config import ConfigError, parse_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    return str(info.value)


def test_committed_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.model.arch == "resnet18"
    assert {"layer4", "head"} <= set(params.stages.partial.train)
    assert params.dedup.max_distance == 8


def test_contract_keys_present(raw):
    assert {"seed", "data", "dedup", "split", "model", "train", "stages"} <= set(raw)
    assert set(raw["stages"]) == {"head", "partial", "full"}
    for key in ("batch_size", "weight_decay", "clip_grad_norm", "bn_policy", "select_metric", "device"):
        assert key in raw["train"]


def test_unknown_key_is_named(raw):
    raw["train"]["batchsize"] = 32
    message = _error(raw)
    assert "train.batchsize" in message and "unknown key" in message


def test_unknown_section_is_named(raw):
    raw["trian"] = {}
    assert "trian" in _error(raw)


def test_fractions_must_sum_to_one(raw):
    raw["split"]["fractions"] = {"train": 0.8, "val": 0.15, "test": 0.15}
    message = _error(raw)
    assert "split.fractions" in message and "sum to 1" in message and "1.1" in message


def test_negative_learning_rate(raw):
    raw["stages"]["head"]["lr"]["head"] = -1e-3
    message = _error(raw)
    assert "stages.head.lr" in message and "> 0" in message


def test_unknown_block_lists_the_known_ones(raw):
    raw["stages"]["partial"]["train"] = ["layer5", "head"]
    message = _error(raw)
    assert "stages.partial.train" in message and "'layer5'" in message and "layer4" in message


def test_wrong_type(raw):
    raw["train"]["batch_size"] = "many"
    message = _error(raw)
    assert "train.batch_size" in message and "'many'" in message


def test_bad_choice_lists_allowed_values(raw):
    raw["train"]["bn_policy"] = "sometimes"
    message = _error(raw)
    assert "train.bn_policy" in message and "'frozen'" in message and "'train'" in message


def test_unknown_architecture(raw):
    raw["model"]["arch"] = "lenet"
    message = _error(raw)
    assert "model.arch" in message and "resnet" in message


def test_trained_block_without_lr_needs_decay(raw):
    raw["stages"]["partial"].update(
        train=["layer3", "layer4", "head"], lr={"layer4": 1e-5, "head": 1e-4}, lr_decay=None
    )
    message = _error(raw)
    assert "stages.partial" in message and "layer3" in message and "lr_decay" in message
    ok = copy.deepcopy(raw)
    ok["stages"]["partial"]["lr_decay"] = 0.5
    parse_params(ok)


def test_group_pattern_needs_named_group(raw):
    raw["split"]["group_pattern"] = r"(patient_\d+)"
    assert "split.group_pattern" in _error(raw)
    raw["split"]["group_pattern"] = r"(?P<group>patient_\d+"
    assert "not a valid regular expression" in _error(raw)


def test_yaml_float_without_dot_is_accepted(raw, tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("weight_decay: 1.0e-4", "weight_decay: 1e-4")
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").train.weight_decay == pytest.approx(1e-4)


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_stage_cli_stops_on_bad_params_before_work(tmp_path, monkeypatch, capsys):
    from tasks import ingest

    (tmp_path / "params.yaml").write_text("seed: 0\nsplit: {fractions: {train: 0.9, val: 0.2, test: 0.1}}\n")
    monkeypatch.chdir(tmp_path)
    assert ingest.main() == 2
    assert "split.fractions" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from finetuner.common.stage import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").read_text() == "hello"
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temp file left behind


def test_committed_recipe_rates_are_the_documented_ones():
    """README "The training recipe": the partial stage halves the rate per block below the head, the full stage
    trains every block at the head's rate; a params.yaml without `stages` gets this same recipe."""
    from finetuner.config import DEFAULT_STAGES
    from finetuner.train.families import block_names
    from finetuner.train.models import expand_blocks
    from finetuner.train.param_groups import block_learning_rates

    stages = load_params(ROOT / "params.yaml").stages
    order = block_names("resnet18")

    def rates(stage):
        return block_learning_rates(order, expand_blocks("resnet18", stage.train), stage.lr, stage.lr_decay)

    assert rates(stages.partial) == pytest.approx({"layer3": 2.5e-4, "layer4": 5e-4, "head": 1e-3})
    assert rates(stages.full) == pytest.approx(dict.fromkeys(order, 1e-3))
    assert stages == DEFAULT_STAGES
