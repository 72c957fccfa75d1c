"""`dvc repro evaluate` in a temporary git repository runs the stage as declared in dvc.yaml, and
`dvc metrics show` prints the test metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.dvc_project import init_repo, run
from tests.evaluate_world import make_checkpoint, make_split


@pytest.mark.slow
def test_dvc_repro_evaluate_and_metrics_show(tmp_path: Path, repo_root: Path) -> None:
    repo = tmp_path / "repo"
    for package in ("finetuner", "tasks"):
        shutil.copytree(repo_root / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    pipeline = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": pipeline["stages"]["evaluate"]}}))
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["evaluate"]["leakage"] = {
        "naive": False,
        "scratch": False,
    }  # no backbone here; tests/evaluate/test_leakage_runs.py
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_split(repo, per_class=2)
    make_checkpoint(repo / "models/best.pt")
    for stage in ("train_head", "train_partial", "train_full"):
        make_checkpoint(repo / "models" / stage / "best.pt", stage=stage.removeprefix("train_"))
    # The other stages' reports evaluate reads for the summary, empty: the summary must still be written.
    (repo / "reports").mkdir()
    for name in ("ingest", "dedup", "split"):
        (repo / "reports" / f"{name}.json").write_text("{}")
    init_repo(repo)

    result = run(["dvc", "repro", "evaluate"], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "metrics.json",
        "predictions.csv",
        "confusion_matrix.png",
        "reliability.png",
        "summary.md",
        "model_card.md",
        "test_ledger.json",
    ):
        assert (repo / "reports" / name).is_file(), name
    shown = run(["dvc", "metrics", "show", "--json"], repo)
    assert shown.returncode == 0, shown.stderr
    metrics = json.loads(shown.stdout)
    figures = next(iter(metrics.values()))["data"]["reports/test_scores.json"]["data"]
    assert figures["n_test"] == 6 and 0 <= figures["accuracy"] <= 1 and "macro_f1" in figures
    # Scalars only: per-class figures stay in metrics.json, so `dvc exp show` keeps a handful of metric columns.
    assert set(figures) == {"accuracy", "macro_f1", "balanced_accuracy", "ece", "n_test"}
    assert json.loads((repo / "reports/metrics.json").read_text())["per_class"]
    summary = (repo / "reports/summary.md").read_text()
    assert "| train_partial | macro_f1 | 0.5000 | 2 | models/train_partial/best.pt |" in summary
    assert "- Files: not available" in summary and "two splits): not available" in summary
    status = run(["dvc", "status", "evaluate"], repo)
    assert "up to date" in status.stdout, status.stdout  # the ledger, not an output, does not make it stale
