"""The real pipeline, end to end: `dvc repro` runs all seven stages on a small demo world in a temp git repo.

This is the one test that exercises every stage's real code together through DVC, exactly as `make demo` does
(minus Prefect, which tests/flows/ covers); tests/ mirrors the package tree.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from finetuner.demo.data import write_first_batch
from finetuner.demo.world import WorldSpec
from tests.dvc_project import init_repo, run

STAGES = ("ingest", "dedup", "split", "train_head", "train_partial", "train_full", "evaluate")


def _small_params(repo_root: Path) -> dict:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["data"]["image_size"] = 32
    params["model"]["weights"] = None
    params["train"]["batch_size"] = 16
    params["train"]["lr_find_steps"] = 10  # `lr: auto` stages: a short range test
    for stage in ("head", "partial", "full"):
        params["stages"][stage]["epochs"] = 1
        params["stages"][stage]["warmup_epochs"] = 0
    return params


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_leak_free(tmp_path: Path, repo_root: Path) -> None:
    repo = tmp_path / "project"
    for package in ("finetuner", "tasks"):
        shutil.copytree(repo_root / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "dvc.yaml", repo / "dvc.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(_small_params(repo_root), sort_keys=False))
    spec = WorldSpec(specimens=30, views=(3, 4), image_size=32, planted=(1, 1, 1, 1))
    write_first_batch(seed=0, root=repo / "data", spec=spec)
    init_repo(repo)

    result = run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in result.stdout, stage

    # every input file accounted for, broken ones quarantined with a reason
    with (repo / "data/interim/manifest.csv").open(newline="") as handle:
        manifest = list(csv.DictReader(handle))
    on_disk = [p for p in (repo / "data/raw/images").rglob("*") if p.is_file()]
    assert len(manifest) == len(on_disk)
    quarantined = [row for row in manifest if row["status"] == "quarantined"]
    assert len(quarantined) == 3 and all(row["reason"] for row in quarantined)

    # no unit and no declared group spans two splits
    owner: dict[str, str] = {}
    for split in ("train", "val", "test"):
        with (repo / f"data/splits/{split}.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                for key in ("unit:" + row["unit"], "group:" + row["group"]):
                    assert owner.setdefault(key, split) == split, (key, split, owner[key])

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert {"accuracy", "macro_f1", "balanced_accuracy", "per_class", "n_test"} <= set(metrics)
    for name in (
        "confusion_matrix.png",
        "predictions.csv",
        "dedup.json",
        "split.json",
        "summary.md",
        "test_samples.png",
        "training_curves.png",
    ):
        assert (repo / "reports" / name).is_file(), name
    leakage = json.loads((repo / "reports/leakage.json").read_text())  # on in the repository's params.yaml
    assert set(leakage["models"]) == {"leak_free", "naive", "scratch"} and not leakage["used_for_selection"]
    assert (repo / "models/best.pt").is_file()

    status = run(["dvc", "status"], repo)
    assert "up to date" in status.stdout, status.stdout
    shown = run(["dvc", "metrics", "show"], repo)
    assert shown.returncode == 0 and "macro_f1" in shown.stdout, shown.stdout + shown.stderr

    # The optional embedding signal through DVC: turning it on makes only dedup (and what follows) stale, and
    # `dvc repro dedup` runs it with the real backbone loading, here from the checkpoint the pipeline just wrote.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["model"]["weights"] = "models/best.pt"
    params["dedup"]["embedding"] = {**params["dedup"]["embedding"], "enabled": True}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["dvc", "repro", "dedup"], repo)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Running stage 'dedup'" in result.stdout and "Running stage 'ingest'" not in result.stdout
    report = json.loads((repo / "reports/dedup.json").read_text())
    embedding = report["embedding"]
    run_facts = json.loads((repo / "logs/dedup.jsonl").read_text().splitlines()[-1])  # untracked: not a report
    assert embedding["enabled"] and embedding["weights"] == "models/best.pt"
    assert run_facts["embedding.newly_embedded"] > 0
    assert report["counts"]["pairs_by_method"].get("embedding", 0) == embedding["pairs"]
