"""The `evaluate` stage on tmp_path: every report written, figures that agree with the predictions, the ledger
through the stage and through champion/challenger mode, and clear failures."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from evaluate_world import CLASSES, RunsCode, fit_head, make_checkpoint, make_split, write_params
from tasks.evaluate import main, score_checkpoint

REPORTS = ("metrics.json", "predictions.csv", "confusion_matrix.png", "reliability.png", "summary.md",
           "model_card.md", "test_ledger.json")


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


def test_stage_writes_every_report_consistently(world: Path) -> None:
    (world / "data/interim").mkdir(parents=True)
    (world / "data/interim/manifest.csv").write_text(
        "path,label,group,status,reason,sha256,width,height\n"
        "cat/x.png,cat,g,ok,,h,40,40\ndog/y.png,dog,g,quarantined,truncated file,h,0,0\n")
    (world / "reports").mkdir()
    (world / "reports/split.json").write_text(json.dumps({"leak_check": "passed", "leak_bridges": []}))
    (world / "dvc.lock").write_text("schema: '2.0'\nstages:\n  ingest:\n    cmd: x\n    deps:\n"
                                    "    - path: data/raw\n      hash: md5\n      md5: 0123abc.dir\n")
    make_checkpoint(world / "models/train_head/best.pt")
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
    assert "| 2 | 1 | 1 |" in summary  # files, usable, quarantined from the manifest
    assert "| truncated file | 1 |" in summary and "| leak check | passed |" in summary
    assert "| train_head | macro_f1 | 0.5000 | 2 | models/train_head/best.pt |" in summary
    assert "| accuracy | 1.0000 |" in summary and "![confusion matrix](confusion_matrix.png)" in summary
    assert "- near-duplicate review page: not available" in summary
    card = (world / "reports/model_card.md").read_text()
    assert "`0123abc.dir`" in card and "| 2 | fox |" in card


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

    from tasks.evaluate import record_in_ledger

    def look(i: int) -> None:
        metrics = {"model_sha256": f"model{i}", "checkpoint": {"arch": "resnet18", "stage": "head", "epoch": i}}
        record_in_ledger(tmp_path / "reports/test_ledger.json", "split", metrics, warn_after=5, source="t")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(look, range(16)))
    ledger = json.loads((tmp_path / "reports/test_ledger.json").read_text())
    assert len(ledger["splits"]["split"]["models"]) == 16
