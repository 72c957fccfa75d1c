"""The `evaluate` stage on tmp_path: every report written, figures that agree with the predictions, the ledger
through the stage and through champion/challenger mode, and clear failures."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from finetuner.evaluate.stage import main, score_checkpoint
from tests.evaluate_world import CLASSES, RunsCode, fit_head, make_checkpoint, make_split, write_params

REPORTS = (
    "metrics.json",
    "predictions.csv",
    "confusion_matrix.png",
    "reliability.png",
    "summary.md",
    "model_card.md",
    "test_ledger.json",
)


@pytest.fixture(scope="module")
def built_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images, splits, params.yaml and a models/best.pt that learned the colours (built once: fitting costs)."""
    root = tmp_path_factory.mktemp("world")
    test_rows = make_split(root)
    assert len(test_rows) == 9
    best = make_checkpoint(root / "models/best.pt")
    with (root / "data/splits/train.csv").open(newline="") as handle:
        fit_head(best, list(csv.DictReader(handle)), root / "data/raw/images")
    write_params(root)
    return root


@pytest.fixture
def world(built_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the world per test, as the working directory (stages run from the repository root)."""
    root = tmp_path / "repo"
    shutil.copytree(built_world, root)
    monkeypatch.chdir(root)
    return root


def _metrics(root: Path) -> dict:
    return json.loads((root / "reports/metrics.json").read_text())


def _write_stage_reports(root: Path) -> None:
    """reports/ingest.json, dedup.json and split.json shaped like the earlier stages write them (trimmed), and the
    training stages' folders: head with its own best, partial holding only head's best (it never beat it), full
    skipped with `epochs: 0`."""
    reports = root / "reports"
    reports.mkdir()
    (reports / "ingest.json").write_text(
        json.dumps(
            {
                "n_files": 2,
                "by_status": {"ok": 1, "quarantined": 1},
                "by_reason": {"truncated file": 1},
                "by_class": {"cat": {"ok": 1, "quarantined": 0}, "dog": {"ok": 0, "quarantined": 1}},
                "by_group_source": {"image": 1},
                "n_groups": 1,
                "classes_too_small": [],
                "metadata": {"file": None, "rows": 0, "extra_columns": [], "problems": []},
            }
        )
    )
    (reports / "dedup.json").write_text(
        json.dumps(
            {
                "settings": {"max_cluster_size": 50},
                "counts": {
                    "images": 9,
                    "pairs": 2,
                    "pairs_by_method": {"exact": 2},
                    "pairs_cut_by_size_guard": 0,
                    "cross_group_pairs": 1,
                    "clusters": 1,
                    "units": 8,
                    "unreadable": 0,
                },
                "units_by_size": {"1": 7, "2": 1},
                "largest_cluster_size": 3,
            }
        )
    )
    (reports / "split.json").write_text(
        json.dumps(
            {
                "images": {"placed": 27},
                "per_split": {
                    name: {"images": 9, "units": 9, "fraction": 0.3333, "target": 0.3}
                    for name in ("train", "val", "test")
                },
                "per_class": {
                    label: {"images": 9, **{name: {"images": 3} for name in ("train", "val", "test")}}
                    for label in CLASSES
                },
                "leak_bridges": {"count": 0, "images": []},
                "leak_check": {"passed": True, "problems": []},
                "leak_audit": {
                    "test_images": 9,
                    "test_images_with_same_unit_in_train": 4,
                    "share_of_test_leaking": 0.4444,
                    "split": "naive per-image random split",
                },
            }
        )
    )
    (reports / "dedup.html").write_text("<html></html>")
    make_checkpoint(root / "models/train_head/stage_best.pt", stage="train_head", epoch=4, value=0.75)
    make_checkpoint(root / "models/train_partial/best.pt", stage="train_head", epoch=4, value=0.75)
    (reports / "train/train_full").mkdir(parents=True)
    (reports / "train/train_full/metrics.json").write_text(
        json.dumps({"epochs": 0, "passed_through": "models/train_partial/best.pt"})
    )


def test_stage_writes_every_report_consistently(world: Path) -> None:
    _write_stage_reports(world)
    (world / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  ingest:\n    cmd: x\n    deps:\n"
        "    - path: data/raw\n      hash: md5\n      md5: 0123abc.dir\n"
    )
    assert main([]) == 0
    for name in REPORTS:
        assert (world / "reports" / name).stat().st_size > 0, name
    metrics = _metrics(world)
    assert metrics["n_test"] == 9
    assert metrics["accuracy"] == 1.0  # the fitted head separates the colours: preprocessing matches training
    assert set(metrics["per_class"]) == set(CLASSES) and metrics["per_class"]["cat"]["support"] == 3
    assert 0 <= metrics["ece"] <= 1
    assert metrics["checkpoint"]["stage"] == "head" and metrics["checkpoint"]["epoch"] == 2
    assert metrics["test_ledger"]["distinct_models_scored"] == 1 and metrics["test_ledger"]["warning"] is None
    with (world / "reports/predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9
    for row in rows:
        probs = [float(row[f"prob_{name}"]) for name in CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted"] == CLASSES[probs.index(max(probs))]
    accuracy = sum(row["predicted"] == row["label"] for row in rows) / len(rows)
    assert accuracy == metrics["accuracy"]
    summary = (world / "reports/summary.md").read_text()
    assert "- Files: 2; usable: 1; quarantined: 1 (truncated file: 1)" in summary
    assert "| dog | 0 | 1 |" in summary and "- Metadata problems: 0" in summary
    assert "- Pairs: 2 (exact: 2) among 9 usable images" in summary
    assert (
        "- Pairs joining different declared groups: 1 (their groups become one unit; see [dedup.html](dedup.html))"
        in summary
    )
    assert "| val | 9 | 9 | 0.333 (0.30) | 3 | 3 | 3 |" in summary and "| **all** | 27 | 27 |  | 9 | 9 | 9 |" in summary
    assert "two splits): passed" in summary and "would have leaked 4 of the 9 test images it draws (44%)" in summary
    # Each stage's own best: partial's best.pt is head's (partial never beat it), so partial has no figure.
    assert "| train_head | macro_f1 | 0.7500 | 4 | models/train_head/stage_best.pt |" in summary
    assert "| train_partial |  | not available |  |  |" in summary
    assert "| train_full |  | skipped (epochs: 0) |  | passes through models/train_partial/best.pt |" in summary
    assert "| accuracy | 1.0000 |" in summary and "![confusion matrix](confusion_matrix.png)" in summary
    assert "![reliability diagram](reliability.png)" in summary
    assert f"expected calibration error (ECE) {metrics['ece']:.4f}" in summary
    card = (world / "reports/model_card.md").read_text()
    assert "`0123abc.dir`" in card and "| 2 | fox |" in card


def test_summary_without_the_other_stages_reports(world: Path) -> None:
    assert main([]) == 0
    summary = (world / "reports/summary.md").read_text()
    for missing in (
        "Ingest report (reports/ingest.json): not available.",
        "Split report (reports/split.json): not",
        "| train_head |  | not available |  |  |",
        "- near-duplicate review page: not available",
    ):
        assert missing in summary
    assert "| accuracy | 1.0000 |" in summary


def test_ledger_counts_distinct_models_on_this_split(world: Path) -> None:
    write_params(world, ledger_warn_after=1)
    assert main([]) == 0
    # The same model again (scored in champion/challenger mode, which writes only its JSON): still one.
    assert main(["--checkpoint", "models/best.pt", "--out", "out/same.json"]) == 0
    assert json.loads((world / "out/same.json").read_text())["test_ledger"]["distinct_models_scored"] == 1
    before = {name: (world / "reports" / name).read_bytes() for name in ("metrics.json", "predictions.csv")}
    make_checkpoint(world / "challenger.pt", seed=1)
    assert main(["--checkpoint", "challenger.pt", "--out", "out/challenger.json"]) == 0
    scored = json.loads((world / "out/challenger.json").read_text())
    assert scored["test_ledger"]["distinct_models_scored"] == 2
    assert "2 distinct models" in scored["test_ledger"]["warning"]
    assert scored["n_test"] == 9 and scored["model_sha256"] != _metrics(world)["model_sha256"]
    assert {name: (world / "reports" / name).read_bytes() for name in before} == before
    # A re-saved copy of the same weights under another name is the same model.
    (world / "copy.pt").write_bytes((world / "models/best.pt").read_bytes())
    assert main(["--checkpoint", "copy.pt", "--out", "out/copy.json"]) == 0
    assert json.loads((world / "out/copy.json").read_text())["test_ledger"]["distinct_models_scored"] == 2
    # The stage itself now warns in metrics.json.
    assert main([]) == 0
    assert "2 distinct models" in _metrics(world)["test_ledger"]["warning"]
    # A different test split starts a fresh count.
    test_csv = world / "data/splits/test.csv"
    test_csv.write_text("".join(test_csv.read_text().splitlines(keepends=True)[:-1]))
    assert main(["--checkpoint", "challenger.pt", "--out", "out/new_split.json"]) == 0
    rescored = json.loads((world / "out/new_split.json").read_text())
    assert rescored["test_ledger"]["distinct_models_scored"] == 1 and rescored["n_test"] == 8


def test_score_checkpoint_is_importable_for_the_retrain_flow(world: Path) -> None:
    with (world / "data/splits/test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = score_checkpoint(world / "models/best.pt", rows, world / "data/raw/images", batch_size=4)
    assert metrics["accuracy"] == 1.0 and metrics["n_test"] == 9
    assert not (world / "reports").exists()  # scoring alone writes nothing


def test_clear_failures(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = world / "code-ran"
    make_checkpoint(world / "models/best.pt", payload=RunsCode(marker))
    assert main([]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()
    make_checkpoint(world / "models/best.pt", classes=("cat", "dog"))
    assert main([]) == 2
    assert "['fox'] are not classes" in capsys.readouterr().err
    make_checkpoint(world / "models/best.pt")
    (world / "data/raw/images/cat/test_0.png").write_bytes(b"garbage")
    assert main([]) == 2
    assert "cat/test_0.png" in capsys.readouterr().err
    assert not (world / "reports/metrics.json").exists()
    with pytest.raises(SystemExit):
        main(["--checkpoint", "models/best.pt"])  # --out is required with --checkpoint


def test_concurrent_scoring_loses_no_look(tmp_path: Path) -> None:
    """Champion and challenger may be scored at once; every distinct model must end up in the ledger."""
    from concurrent.futures import ThreadPoolExecutor

    from finetuner.evaluate.stage import record_in_ledger

    def look(i: int) -> None:
        metrics = {"model_sha256": f"model{i}", "checkpoint": {"arch": "resnet18", "stage": "head", "epoch": i}}
        record_in_ledger(tmp_path / "reports/test_ledger.json", "split", metrics, warn_after=5, source="t")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(look, range(16)))
    ledger = json.loads((tmp_path / "reports/test_ledger.json").read_text())
    assert len(ledger["splits"]["split"]["models"]) == 16
