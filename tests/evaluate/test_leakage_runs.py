"""The evaluate stage's leakage comparisons (finetuner/evaluate/leakage_runs.py): scored after best.pt is fixed,
never used to select.

One tiny world (three colours, 32 px, two optimizer steps per epoch) evaluated with the comparisons off and on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from finetuner.common.stage import read_csv
from finetuner.evaluate.stage import _compare, evaluate, score_checkpoint
from tests.evaluate_world import make_checkpoint
from tests.train_fixtures import COLOURS, make_images, tiny_params, write_splits

FIGURES = ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "n_test", "model_sha256", "checkpoint")


def _world(root: Path) -> None:
    rows = make_images(root, per_class=6)
    index = {"test": {0}, "val": {3}}
    splits = {name: [r for r in rows if int(r["path"][-5]) in chosen] for name, chosen in index.items()}
    splits["train"] = [r for r in rows if int(r["path"][-5]) not in {0, 3}]
    write_splits(root, splits)
    make_checkpoint(root / "models" / "best.pt", classes=tuple(sorted(COLOURS)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world evaluated once with both comparisons on; best.pt's hash taken before."""
    root = tmp_path_factory.mktemp("leakage")
    _world(root)
    (root / "best.sha256").write_text(hashlib.sha256((root / "models/best.pt").read_bytes()).hexdigest())
    evaluate(
        tiny_params(**{"evaluate.device": "cpu", "evaluate.leakage.naive": True, "evaluate.leakage.scratch": True}),
        root,
    )
    return root


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_comparisons_change_nothing_that_selects_or_reports_the_model(world):
    metrics = _json(world / "reports/metrics.json")
    rows = read_csv(world / "data/splits/test.csv")
    alone = score_checkpoint(world / "models/best.pt", rows, world / "data/raw/images", 64)
    assert {k: metrics[k] for k in FIGURES} == {k: alone[k] for k in FIGURES}
    assert hashlib.sha256((world / "models/best.pt").read_bytes()).hexdigest() == (world / "best.sha256").read_text()
    assert sorted(p.name for p in (world / "models").iterdir()) == ["best.pt"]  # the others trained in a sandbox
    assert not (world / "reports" / "train").exists() and not (world / "checkpoints").exists()


def test_leakage_report_schema_and_every_look_is_in_the_ledger(world):
    report = _json(world / "reports/leakage.json")
    assert report["schema"] == "finetuner.leakage/1" and report["used_for_selection"] is False
    assert set(report["models"]) == {"leak_free", "naive", "scratch"}
    naive, ours = report["models"]["naive"], report["models"]["leak_free"]
    # the naive split re-splits the train + val images only: the leak-aware test split stays unseen
    assert sum(naive["images"].values()) == ours["images"]["train"] + ours["images"]["val"]
    assert naive["leaks"]["test_images"] == naive["images"]["test"]
    assert ours["leak_free_test"]["macro_f1"] == pytest.approx(
        _json(world / "reports/metrics.json")["macro_f1"], abs=1e-4
    )
    assert report["inflation"]["macro_f1"] == pytest.approx(
        naive["own_test"]["macro_f1"] - naive["leak_free_test"]["macro_f1"], abs=1e-3
    )
    ledger = _json(world / "reports/test_ledger.json")
    (split,) = ledger["splits"].values()
    sources = sorted(model["source"] for model in split["models"].values())
    assert sources == sorted(["evaluate", "leakage: naive", "leakage: scratch"]) or (
        # two comparison models may coincide in weights only if training did nothing; it must have
        pytest.fail(f"ledger sources {sources}")
    )
    assert naive["model_sha256"] in split["models"] and report["models"]["scratch"]["model_sha256"] in split["models"]


def test_off_writes_a_report_saying_so(world):
    off = _compare(tiny_params(), world, [], "unused", world / "data/raw/images", {})
    assert off["enabled"] is False and off["used_for_selection"] is False and "models" not in off


def test_summary_shows_the_comparison_and_the_pictures(world):
    summary = (world / "reports/summary.md").read_text()
    assert "What a careless split would have reported" in summary and "inflated by" in summary
    assert "(test_samples.png)" in summary and "(training_curves.png)" not in summary  # no stage logs in this world
    for name in ("test_samples.png", "training_curves.png", "separated_pairs.png"):
        assert (world / "reports" / name).read_bytes().startswith(b"\x89PNG")


def test_naive_model_reuses_the_leak_free_rates_and_scratch_trains_every_block(tmp_path):
    from finetuner.config import parse_params
    from finetuner.evaluate.leakage_runs import _scratch, _with_rates

    params = parse_params(
        {
            "stages": {
                "head": {"epochs": 10, "train": ["head"], "lr": {"head": 1e-3}, "solver": "lbfgs"},
                "partial": {"epochs": 5, "train": ["layer4", "head"], "lr": "auto", "lr_decay": 0.5},
                "full": {"epochs": 5, "train": ["all"], "lr": "auto", "lr_decay": 0.5, "min_gain": 0.01},
            }
        }
    )
    recorded = {"layer4": 2e-4, "head": 4e-4}
    (tmp_path / "models" / "train_partial").mkdir(parents=True)
    (tmp_path / "models" / "train_partial" / "recipe.json").write_text(
        json.dumps({"stage": "partial", "ran": True, "lr": recorded, "lr_source": "auto"})
    )
    naive = _with_rates(params, tmp_path)
    assert naive.stages.partial.lr == recorded  # the leak-free run's range test, not a second one
    assert naive.stages.full.lr == "auto"  # the leak-free run recorded nothing for it
    scratch = _scratch(params)
    assert scratch.stages.head.epochs == 0 and scratch.stages.partial.epochs == 0
    assert scratch.stages.full.train == ("all",) and scratch.stages.full.min_gain is None
    explicit = parse_params(
        {
            "stages": {
                **params.model_dump()["stages"],
                "full": {"epochs": 5, "train": ["all"], "lr": {"head": 1e-3}, "lr_decay": 0.5},
            }
        }
    )
    assert _scratch(explicit).stages.full.lr == {"head": 1e-3} and _scratch(explicit).stages.full.lr_decay == 1.0
