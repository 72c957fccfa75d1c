"""The `retrain` flow on a toy DVC project: skip without new data, promote or keep by the min_gain rule, record
every decision, and never let two runs share the workspace."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from finetuner.retrain.registry import CARD, CHAMPION, read_registry
from flows.retrain import retrain
from tests.toy_dvc import STAGES, add_data, make_toy_project, stage_intervals, stage_runs


def _champion_quality(project: Path) -> float:
    return json.loads((project / CHAMPION).read_text())["quality"]


def test_retrain_promotes_first_then_skips_keeps_and_promotes_by_the_rule(prefect_harness, tmp_path):
    project = make_toy_project(tmp_path / "toy", quality=0.70)  # params.yaml: min_gain 0.01, select macro_f1

    first = retrain(project_dir=str(project))
    assert first["decision"] == "promoted" and first["champion_score"] is None
    assert _champion_quality(project) == pytest.approx(0.70)
    assert "0.7000" in (project / CARD).read_text()
    runs_after_first = stage_runs(project)
    assert runs_after_first[: len(STAGES) - 1] == list(STAGES[:-1])

    unchanged = retrain(project_dir=str(project))
    assert unchanged["decision"] == "no_new_data"
    assert stage_runs(project) == runs_after_first  # no stage and no scoring ran

    add_data(project, quality=0.705, numbers=range(3, 4))  # better, but by less than min_gain
    kept = retrain(project_dir=str(project))
    assert kept["decision"] == "kept"
    assert kept["champion_score"] == pytest.approx(0.70) and kept["challenger_score"] == pytest.approx(0.705)
    assert _champion_quality(project) == pytest.approx(0.70)
    assert "evaluate models/champion.pt" in stage_runs(project)  # both scored by the evaluate code

    add_data(project, quality=0.75, numbers=range(4, 5))
    promoted = retrain(project_dir=str(project))
    assert promoted["decision"] == "promoted" and promoted["champion_score"] == pytest.approx(0.70)
    assert _champion_quality(project) == pytest.approx(0.75)

    registry = read_registry(project)
    assert [r["decision"] for r in registry] == ["promoted", "no_new_data", "kept", "promoted"]
    assert registry[2]["data_version"] != registry[0]["data_version"] != registry[3]["data_version"]
    assert registry[1]["data_version"] == registry[0]["data_version"]
    for record in registry:
        assert {"time", "data_version", "params", "champion_score", "challenger_score", "decision"} <= set(record)
        assert record["params"]["train"]["select_metric"] == "macro_f1"


def test_overlapping_retrains_never_run_at_once(prefect_harness, tmp_path):
    project = make_toy_project(tmp_path / "toy", quality=0.6)
    results: list[dict] = []

    def run() -> None:
        results.append(retrain(project_dir=str(project)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    # The second run waited for the first, then found its data already compared.
    assert sorted(r["decision"] for r in results) == ["no_new_data", "promoted"]
    intervals = sorted(stage_intervals(project))
    assert len(intervals) == len(STAGES) + 1  # one pipeline run and one scoring, never two
    assert all(later[0] >= earlier[1] for earlier, later in zip(intervals, intervals[1:]))
