"""The recipe's rules: step budgets that follow the data size, and the validation gate of deeper stages."""

from __future__ import annotations

from finetuner.train.recipe import gate_stage, plan_epochs


def test_budget_follows_the_data_size() -> None:
    assert plan_epochs(30, 600, 5) == 30  # tiny data: the cap bounds it
    assert plan_epochs(30, 600, 80) == 8  # ceil(600 / 80)
    assert plan_epochs(30, 600, 5000) == 1  # large data: one epoch already has the steps
    assert plan_epochs(7, 0, 80) == 7  # no min_steps: exactly `epochs`
    assert plan_epochs(0, 600, 80) == 0


def test_gate_runs_a_deeper_stage_only_when_the_previous_one_paid_off() -> None:
    gained = {"stage": "train_partial", "ran": True, "gain": 0.05, "best_value": 0.9}
    assert gate_stage("full", 0.01, gained).run
    small = dict(gained, gain=0.003)
    decision = gate_stage("full", 0.01, small)
    assert not decision.run and decision.reason == "full: skipped, train_partial gained 0.003 over its start (< 0.01)"
    assert not gate_stage("full", 0.01, dict(gained, ran=False)).run
    assert not gate_stage("full", 0.0, dict(gained, best_value=1.0)).run  # nothing left to gain
    assert gate_stage("full", None, small).run  # no min_gain: no gate
