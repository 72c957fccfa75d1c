"""Broken params.yaml files, generated: each one is refused before any work with the key, the bad value and what is
allowed, without a traceback. Most are validated in process (fast); a few go through the real stage entry points."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetuner.common.stage import load_params
from finetuner.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())
BASE["model"]["weights"] = None  # the committed demo backbone is not there in a clean clone


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix, node


def _wrong_types(value: Any) -> list[Any]:
    """Values of the wrong type for a leaf holding `value` (YAML would never coerce these sensibly)."""
    if isinstance(value, bool):
        return ["maybe", 1]
    if isinstance(value, int):
        return ["sixty-four", True]
    if isinstance(value, float):
        return ["abc", True]
    if isinstance(value, str):
        return [5]
    if isinstance(value, list):
        return ["not-a-list"]
    return [[1, 2]]  # null leaves (optional values): a list is never right


def _set(raw: dict, key: tuple[str, ...], value: Any) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    return raw


def _type_cases() -> list[tuple[str, dict, str, str]]:
    cases = []
    for key, value in _leaves(BASE):
        for bad in _wrong_types(value):
            cases.append((f"type {'.'.join(key)}={bad!r}", _set(BASE, key, bad), ".".join(key), repr(bad)))
    return cases


# (key, bad value, a fragment of the allowed values that the message must show)
RANGES = [
    ("seed", -1, "greater than or equal to 0"),
    ("seed", 2**40, "less than or equal to"),
    ("stages.head.epochs", 2.5, "integer"),
    ("data.image_size", 64.0, "integer"),
    ("train.batch_size", "64", "integer"),
    ("data.image_size", 8, "16"),
    ("data.image_size", 5000, "1024"),
    ("data.workers", -2, "0"),
    ("data.max_image_pixels", 0, "0"),
    ("dedup.max_distance", 65, "64"),
    ("dedup.methods", [], "phash"),
    ("dedup.methods", ["phash", "sha1"], "phash"),
    ("dedup.methods", ["phash", "phash"], "once"),
    ("dedup.embedding.min_similarity", 1.5, "1"),
    ("split.fractions.train", 1.2, "1"),
    ("split.fractions.test", 0.0, "0"),
    ("split.max_unit_share", 0, "0"),
    ("split.group_pattern", "(unclosed", "regular"),
    ("split.group_pattern", "patient_(\\d+)", "named group"),
    ("model.arch", "resnet19", "resnet18"),
    ("model.arch", "vgg16", "families"),
    ("model.weights", "IMAGENET", "IMAGENET1K_V1"),
    ("model.weights", "IMAGENET1K_V2", "IMAGENET1K_V1"),
    ("train.batch_size", 0, "0"),
    ("train.weight_decay", -1.0, "0"),
    ("train.bn_policy", "thawed", "frozen"),
    ("train.select_metric", "f1", "macro_f1"),
    ("train.device", "tpu", "cuda"),
    ("train.optimizer", "adam", "adamw"),
    ("train.momentum", 1.0, "1"),
    ("train.label_smoothing", -0.1, "0"),
    ("stages.head.epochs", -1, "0"),
    ("stages.head.train", [], "head"),
    ("stages.partial.train", ["layer9"], "layer4"),
    ("stages.partial.lr", {"layer4": 1e-5, "head": 0.0}, "> 0"),
    ("stages.partial.lr", {"layer5": 1e-5, "head": 1e-4}, "layer4"),
    ("stages.full.lr_decay", 1.5, "1"),
    ("evaluate.calibration_bins", 1, "2"),
    ("evaluate.ledger_warn_after", 0, "1"),
    ("retrain.min_gain", 2.0, "1"),
    ("retrain.schedule", "61 3 * * *", "0-59"),
    ("retrain.schedule", "0 3 * * 9", "0-7"),
    ("retrain.schedule", "0 3 * *", "5 fields"),
    ("retrain.schedule", "0 25 * * *", "0-23"),
    ("retrain.schedule", "0 3 32 * *", "1-31"),
    ("retrain.schedule", "0 3 * 13 *", "1-12"),
]
NON_FINITE = [
    ("stages.head.lr.head", math.inf),
    ("stages.partial.lr_decay", math.nan),
    ("train.weight_decay", math.inf),
    ("train.clip_grad_norm", math.nan),
    ("split.fractions.val", math.nan),
    ("retrain.min_gain", -math.inf),
    ("dedup.low_info_std", math.inf),
    ("dedup.embedding.max_pairs_per_image", math.inf),
]


def _range_cases() -> list[tuple[str, dict, str, str]]:
    cases = [
        (f"range {key}={bad!r}", _set(BASE, tuple(key.split(".")), bad), key, allowed) for key, bad, allowed in RANGES
    ]
    cases += [
        (f"non-finite {key}={bad}", _set(BASE, tuple(key.split(".")), bad), key, "finite") for key, bad in NON_FINITE
    ]
    return cases


def _structure_cases() -> list[tuple[str, dict, str, str]]:
    def without(key: str) -> dict:
        raw = copy.deepcopy(BASE)
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        del node[last]
        return raw

    cases = [
        (f"missing {key}", without(key), key, "missing")
        for key in (
            "stages.head",
            "stages.partial",
            "stages.full",
            "stages.head.epochs",
            "stages.partial.train",
            "stages.full.lr",
        )
    ]
    for key in (
        "sead",
        "train.batchsize",
        "data.image_sise",
        "stages.head.epoch",
        "dedup.embedding.enable",
        "split.fractions.validation",
        "evaluate.bins",
        "retrain.cron",
        "model.architecture",
    ):
        cases.append((f"unknown {key}", _set(BASE, tuple(key.split(".")), 1), key, "allowed here"))
    nested = [
        ("head at the top level", {"head": BASE["stages"]["head"]}, "head", "allowed here"),
        ("lr under train", {"train": {**BASE["train"], "lr": {"head": 1e-3}}}, "train.lr", "allowed here"),
        ("epochs under stages", {"stages": {**BASE["stages"], "epochs": 3}}, "stages.epochs", "allowed here"),
        ("a section as a value", {"data": 64}, "data", "valid dictionary"),
        ("a stage as a list", {"stages": {**BASE["stages"], "head": [5]}}, "stages.head", "valid dictionary"),
    ]
    cases += [(name, {**copy.deepcopy(BASE), **patch}, key, allowed) for name, patch, key, allowed in nested]
    return cases


CASES = _type_cases() + _range_cases() + _structure_cases()


def test_enough_broken_files_are_generated() -> None:
    assert len(CASES) >= 60 and len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "raw", "key", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_broken_params_file_is_refused_naming_key_value_and_allowed(
    tmp_path: Path, name: str, raw: dict, key: str, allowed: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_params(path, check_files=True)
    message = str(info.value)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith((f"- {key}:", f"- {key}."))), None)
    assert line is not None, message
    assert allowed in line, message
    bad = raw
    for part in key.split("."):
        bad = bad.get(part, None) if isinstance(bad, dict) else None
    if bad is not None and not isinstance(bad, dict) and allowed not in ("allowed here", "missing"):
        shown = [bad, *bad] if isinstance(bad, list) else [bad]  # a list may be named by its bad element
        assert any(repr(item) in line or str(item) in line for item in shown), message


YAML_TEXTS = {
    "unclosed bracket": ("seed: [unclosed\n", "line"),
    "tab indentation": ("train:\n\tbatch_size: 4\n", "line"),
    "duplicate top-level key": ("seed: 0\nseed: 1\n", "'seed' appears twice"),
    "duplicate nested key": ("train:\n  batch_size: 4\n  batch_size: 8\n", "'batch_size' appears twice"),
    "not a mapping": ("- seed\n- data\n", "mapping"),
    "weights file absent": ("model: {arch: resnet18, weights: models/absent.pt}\n", "not found"),
}


@pytest.mark.parametrize("name", list(YAML_TEXTS))
def test_unreadable_yaml_and_absent_files_are_refused_with_the_line_or_key(tmp_path: Path, name: str) -> None:
    text, expected = YAML_TEXTS[name]
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_params(tmp_path / "params.yaml", check_files=True)


def test_the_first_stage_refuses_before_any_work(tmp_path: Path) -> None:
    """Through the real entry point, in a subprocess: exit 2, the key in the message, no traceback, nothing written."""
    raw = _set(BASE, ("stages", "head", "lr", "head"), math.inf)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "data" / "raw" / "images" / "a").mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tasks.ingest"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "stages.head.lr.head" in done.stderr and "finite" in done.stderr and "inf" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_flow_overrides_are_validated_before_params_yaml_is_written(tmp_path: Path) -> None:
    from flows.workspace import apply_overrides

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE))
    before = (tmp_path / "params.yaml").read_bytes()
    for overrides, expected in (
        ({"model.weights": "models/absent.pt"}, "model.weights"),
        ({"stages.head.lr.head": float("nan")}, "finite"),
        ({"retrain.schedule": "0 3 * * 8"}, "retrain.schedule"),
        ({"model.arch": "resnet19"}, "model.arch"),
    ):
        with pytest.raises(ConfigError, match=expected):
            apply_overrides(tmp_path, overrides)
        assert (tmp_path / "params.yaml").read_bytes() == before
