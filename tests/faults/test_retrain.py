"""The retrain flow survives SIGKILL: a run killed from outside while it promotes leaves no champion, card or
registry that the next run trusts half-done, and the next run ends with the outcome an uninterrupted run has (the
champion the rule picks, installed whole, and one decision per data version). Two kills: with the challenger staged
but nothing recorded (the rerun decides again), and with the decision recorded but no champion installed (the
rerun finishes it). The killed run is a subprocess (tests/fault_retrain.py); the rerun runs in this process under
the session's Prefect server. benchmarks/kill_retrain.py kills at every write.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

import flows.retrain as retrain_module
from finetuner.retrain.registry import CARD, CHALLENGER, CHAMPION, PENDING, read_registry
from flows.retrain import retrain
from tests.fault_retrain import killed_retrain
from tests.toy_dvc import add_data, dvc, make_toy_project


def _kill(project: Path, kill_at: str) -> None:
    code, output = killed_retrain(project, kill_at, str(PREFECT_API_URL.value()))
    assert code == -signal.SIGKILL, output[-3000:]


def _champion_is_the_challenger_whole(project: Path, card_score: str) -> None:
    assert (project / CHAMPION).read_bytes() == (project / CHALLENGER).read_bytes()
    assert card_score in (project / CARD).read_text() and not (project / PENDING).exists()


def test_a_killed_promotion_ends_as_an_uninterrupted_one(prefect_harness, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(retrain_module, "run_pipeline", lambda project_dir: None)  # `dvc repro` ran it already
    project = make_toy_project(tmp_path / "toy", quality=0.70)
    dvc(project, "repro")

    _kill(project, "after:2")  # the first decision recorded; neither card nor champion written
    assert [r["decision"] for r in read_registry(project)] == ["promoted"] and not (project / CHAMPION).exists()
    finished = retrain(project_dir=str(project))
    assert finished["decision"] == "promoted" and finished["champion_score"] is None
    _champion_is_the_challenger_whole(project, "0.7000")
    assert len(read_registry(project)) == 1  # one decision for one data version, as without the kill

    add_data(project, quality=0.75, numbers=range(3, 4))
    dvc(project, "repro")  # a challenger trained on the new data, better by more than min_gain
    _kill(project, "after:1")  # the challenger staged, nothing recorded
    assert json.loads((project / CHAMPION).read_text())["quality"] == pytest.approx(0.70)
    decided_again = retrain(project_dir=str(project))
    assert decided_again["decision"] == "promoted" and decided_again["champion_score"] == pytest.approx(0.70)
    _champion_is_the_challenger_whole(project, "0.7500")
    assert [r["decision"] for r in read_registry(project)] == ["promoted", "promoted"]
