"""finetuner/layout.py names every artifact once; dvc.yaml, which cannot import it, must declare exactly those."""

from __future__ import annotations

from pathlib import Path

import yaml

from finetuner import layout

ROOT = Path(__file__).resolve().parents[1]


def declared_outputs(stage: dict) -> set[Path]:
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return {Path(entry if isinstance(entry, str) else next(iter(entry))) for entry in entries}


def test_dvc_yaml_outputs_are_the_layouts_artifacts():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    expected = layout.dvc_outputs()
    assert set(stages) == set(expected), "dvc.yaml's stages and layout.dvc_outputs() name different stages"
    for name, stage in stages.items():
        declared = declared_outputs(stage)
        assert declared == expected[name], (
            f"dvc.yaml stage {name}: outputs not in finetuner/layout.py "
            f"{sorted(map(str, declared - expected[name]))}, in layout but not "
            f"declared {sorted(map(str, expected[name] - declared))}"
        )


def test_the_contracts_columns_lead_each_file():
    # ../shared/design.md fixes these names and their order; more columns may follow.
    assert layout.MANIFEST_COLUMNS == ("path", "label", "group", "status", "reason", "sha256", "width", "height")
    assert layout.PAIR_COLUMNS == ("path_a", "path_b", "method", "distance")
    assert layout.UNIT_COLUMNS == ("path", "unit")
    assert layout.SPLIT_COLUMNS == ("path", "label", "group", "unit")
    assert [layout.split_csv(name).as_posix() for name in layout.SPLIT_NAMES] == [
        "data/splits/train.csv",
        "data/splits/val.csv",
        "data/splits/test.csv",
    ]
