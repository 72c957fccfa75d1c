"""The split stage on tmp_path: files and columns, sticky second run, reshuffle, clear input errors, leak failure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import finetuner.split.stage as stage
from finetuner.common.stage import InputError
from finetuner.config import parse_params
from finetuner.split.assign import SplitAssignment
from finetuner.split.stage import LeakError, split_dataset


def write_inputs(root: Path, n_groups: int = 30, prefix: str = "", start: int = 0) -> None:
    """A manifest (one quarantined file) and units.csv where pairs of groups share a unit (near-duplicates)."""
    interim = root / "data/interim"
    interim.mkdir(parents=True, exist_ok=True)
    manifest, units, pairs = [], [], []
    for g in range(start, start + n_groups):
        label = f"c{g % 3}"
        for i in range(1 + g % 4):
            path = f"{label}/{prefix}g{g}/{i}.png"
            manifest.append(
                {
                    "path": path,
                    "label": label,
                    "group": f"{prefix}g{g}",
                    "status": "ok",
                    "reason": "",
                    "sha256": "0" * 8,
                    "width": 32,
                    "height": 32,
                }
            )
            units.append({"path": path, "unit": f"{prefix}u{g // 2}"})
        if g % 2:
            pairs.append(
                {
                    "path_a": units[-1]["path"],
                    "path_b": f"{label}/{prefix}g{g - 1}/0.png",
                    "method": "phash",
                    "distance": 3,
                }
            )
    manifest.append(
        {
            "path": "c0/broken.png",
            "label": "c0",
            "group": "",
            "status": "quarantined",
            "reason": "cannot decode",
            "sha256": "",
            "width": "",
            "height": "",
        }
    )
    old = lambda name: pd.read_csv(interim / name, dtype=str, keep_default_na=False) if start else None  # noqa: E731
    for name, rows in (("manifest.csv", manifest), ("units.csv", units), ("near_duplicates.csv", pairs)):
        frame = pd.DataFrame(rows)
        pd.concat([old(name), frame], ignore_index=True).to_csv(interim / name, index=False)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    return tmp_path


def params(**split):
    return parse_params({"seed": 0, "split": {"max_unit_share": 1.0, **split}})


def read_splits(root: Path) -> pd.DataFrame:
    return pd.concat(
        [
            pd.read_csv(root / f"data/splits/{name}.csv", dtype=str, keep_default_na=False).assign(split=name)
            for name in ("train", "val", "test")
        ],
        ignore_index=True,
    )


def test_writes_splits_registry_and_report(root):
    report = split_dataset(params())
    splits = read_splits(root)
    assert list(splits.columns[:4]) == ["path", "label", "group", "unit"]
    assert "c0/broken.png" not in set(splits["path"])
    assert len(splits) == 30 + sum(1 + g % 4 for g in range(30)) - 30
    assert splits.groupby("unit")["split"].nunique().max() == 1
    saved = json.loads((root / "reports/split.json").read_text())
    assert saved["leak_check"] == {"passed": True, "problems": []}
    assert saved["reshuffle"] is False and saved["registry"]["run"] == 1
    assert saved["our_split_audit"]["test_images_with_same_unit_in_train"] == 0
    assert saved["leak_audit"]["test_images_with_same_unit_in_train"] > 0
    assert set(saved["per_class"]) == {"c0", "c1", "c2"} and report["images"]["usable"] == len(splits)
    registry = pd.read_csv(root / "data/splits/registry.csv", dtype=str)
    assert list(registry.columns) == ["path", "unit", "group", "label", "split", "assigned_at_run"]
    assert set(registry["assigned_at_run"]) == {"1"}


def test_second_run_with_more_data_is_sticky_and_reshuffle_is_reported(root):
    split_dataset(params())
    first = read_splits(root).set_index("path")["split"]
    write_inputs(root, n_groups=20, prefix="later", start=30)
    report = split_dataset(params())
    second = read_splits(root).set_index("path")["split"]
    assert (second[first.index] == first).all()
    assert report["images"]["new"] > 0 and report["registry"]["run"] == 2
    registry = pd.read_csv(root / "data/splits/registry.csv", dtype=str)
    assert set(registry["assigned_at_run"]) == {"1", "2"}
    report = split_dataset(params(reshuffle=True, fractions={"train": 0.5, "val": 0.25, "test": 0.25}))
    assert report["reshuffle"] is True and report["registry"]["changed_by_reshuffle"] > 0
    assert set(pd.read_csv(root / "data/splits/registry.csv", dtype=str)["assigned_at_run"]) == {"3"}


def test_usable_image_without_unit_is_a_clear_error(root):
    units = pd.read_csv(root / "data/interim/units.csv")
    units.iloc[1:].to_csv(root / "data/interim/units.csv", index=False)
    with pytest.raises(InputError, match="1 usable image\\(s\\) .* have no unit"):
        split_dataset(params())


def test_impossible_split_exits_2_with_the_class_named(root, capsys, repo_root):
    (root / "params.yaml").write_text("split:\n  fractions: {train: 0.7, val: 0.15, test: 0.15}\n")
    manifest = pd.read_csv(root / "data/interim/manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest["label"] == "c2", "label"] = "c0"
    manifest.loc[manifest["path"] == "c0/g0/0.png", "label"] = "rare"
    manifest.to_csv(root / "data/interim/manifest.csv", index=False)
    assert stage.main([]) == 2
    err = capsys.readouterr().err
    assert "class 'rare' has 1 unit(s) (1 images)" in err
    assert not (root / "data/splits/train.csv").exists()


def test_a_leaking_assignment_fails_and_removes_the_split_files(root, monkeypatch):
    def leaky(images, *args, **kwargs):
        names = pd.Series(["train", "test"] * (len(images) // 2 + 1)).iloc[: len(images)]
        code = names.map({"train": 0, "test": 2}).to_numpy()
        return SplitAssignment(names.set_axis(images.index), pd.Series("new", index=images.index), (), code)

    monkeypatch.setattr(stage, "assign_splits", leaky)
    with pytest.raises(LeakError, match="unit\\(s\\) in several splits"):
        split_dataset(params())
    assert not (root / "data/splits/train.csv").exists()
    assert json.loads((root / "reports/split.json").read_text())["leak_check"]["passed"] is False


def test_audit_command_prints_the_naive_leak(root, capsys):
    (root / "params.yaml").write_text("seed: 0\n")
    assert stage.main(["audit"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["test_images_with_same_unit_in_train"] > 0
    assert not (root / "data/splits").exists()


def test_dataset_without_group_metadata(root):
    """No metadata: empty groups; units are single images or near-duplicate clusters, which still stay together."""
    manifest = pd.read_csv(root / "data/interim/manifest.csv", dtype=str, keep_default_na=False)
    manifest["group"] = ""
    manifest.to_csv(root / "data/interim/manifest.csv", index=False)
    pairs = pd.read_csv(root / "data/interim/near_duplicates.csv", dtype=str)
    units = pd.read_csv(root / "data/interim/units.csv", dtype=str)
    cluster = {path: f"dup{i}" for i, row in pairs.iterrows() for path in (row["path_a"], row["path_b"])}
    units["unit"] = [cluster.get(path, path) for path in units["path"]]
    units.to_csv(root / "data/interim/units.csv", index=False)
    report = split_dataset(params())
    splits = read_splits(root)
    assert report["leak_check"]["passed"] and splits.groupby("unit")["split"].nunique().max() == 1
    assert report["leak_audit"]["test_images_with_same_group_in_train"] == 0
    assert report["our_split_audit"]["test_images_with_near_duplicate_in_train"] == 0
    assert report["max_class_fraction_error"] < 0.1
