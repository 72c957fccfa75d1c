"""params.yaml keys the ingest stage reads: present in the committed file, bad values named with their key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finetuner.config import ConfigError, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_ingest_keys_are_in_the_committed_params():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    assert {"raw_dir", "workers", "max_image_pixels", "min_images_per_class"} <= set(data)


@pytest.mark.parametrize(("key", "value"), [("max_image_pixels", 0), ("min_images_per_class", 0), ("workers", -1)])
def test_bad_ingest_values_name_their_key(key, value):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"][key] = value
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert f"data.{key}" in str(caught.value)
