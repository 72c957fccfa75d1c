"""The `finetune` flow on a toy DVC project: every stage through DVC, the same dvc.lock as DVC's own runs,
overrides recorded by DVC, output streamed into the run logs, artifacts, retries only where they are safe."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
import yaml
from toy_dvc import STAGES, dvc, make_toy_project, stage_runs

from finetuner.config import ConfigError
from flows.dvc_cli import CommandFailed, stream_command
from flows.finetune import STAGE_TASKS, finetune
from flows.reports import best_stage_metrics
from flows.workspace import apply_overrides

ALL_RUNS = [*STAGES[:-1], "evaluate models/best.pt"]


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())


def test_flow_runs_stages_through_dvc_like_dvc_exp_run(prefect_harness, tmp_path):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    by_flow = make_toy_project(tmp_path / "flow")
    by_dvc = make_toy_project(tmp_path / "dvc")

    state = finetune(project_dir=str(by_flow), overrides={"stages.head.epochs": 3}, return_state=True)
    dvc(by_dvc, "exp", "run", "-S", "stages.head.epochs=3")

    assert state.is_completed()
    assert state.result()["macro_f1"] == pytest.approx(0.7)
    assert stage_runs(by_flow) == ALL_RUNS
    assert _lock(by_flow) == _lock(by_dvc)  # the same stages, deps, params and outs, byte for byte hashes
    assert _lock(by_flow)["stages"]["train_head"]["params"]["params.yaml"]["stages.head"]["epochs"] == 3
    assert "Data and pipelines are up to date" in dvc(by_flow, "status").stdout

    APILogWorker.drain_all(timeout=10)  # logs reach the server in batches
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    messages = [log.message for log in logs]
    assert "toy train_partial: done" in messages  # a stage script's own output line, streamed into Prefect

    table = Artifact.get("finetune-test-metrics")
    assert table is not None and table.flow_run_id == flow_run_id and "macro_f1" in str(table.data)
    best = Artifact.get("finetune-stage-best")
    assert best is not None and "train_head" in str(best.data)


def test_data_stages_retry_training_does_not(prefect_harness, tmp_path, monkeypatch):
    project = make_toy_project(tmp_path / "toy")
    for marker in ("fail_ingest", "fail_ingest_once", "fail_train_head"):
        (project / marker).touch()
    monkeypatch.setitem(STAGE_TASKS, "ingest", STAGE_TASKS["ingest"].with_options(retry_delay_seconds=0))

    state = finetune(project_dir=str(project), return_state=True)

    assert state.is_failed()
    assert stage_runs(project) == ["ingest failed", "ingest", "dedup", "split", "train_head failed"]


def test_bad_override_fails_before_any_work(prefect_harness, tmp_path):
    project = make_toy_project(tmp_path / "toy")
    before = (project / "params.yaml").read_text()

    state = finetune(project_dir=str(project), overrides={"stages.head.epochs": -1}, return_state=True)

    assert state.is_failed()
    with pytest.raises(ConfigError, match=r"stages\.head\.epochs"):
        state.result()
    assert (project / "params.yaml").read_text() == before
    assert stage_runs(project) == []


def test_overrides_keep_comments_and_refuse_unknown_keys(tmp_path, repo_root):
    (tmp_path / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "demo_backbone.pt").touch()  # overrides are validated with the weights file existing
    params = apply_overrides(tmp_path, {"stages.head.epochs": 2, "train.batch_size": 8})
    text = (tmp_path / "params.yaml").read_text()
    assert params.stages.head.epochs == 2 and params.train.batch_size == 8
    assert "# Hamming distance on 64-bit hashes, inclusive" in text and "group_pattern: null" in text
    assert yaml.safe_load(text)["stages"]["head"]["epochs"] == 2
    with pytest.raises(ConfigError, match=r"train\.batchsize"):
        apply_overrides(tmp_path, {"train.batchsize": 8})
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(tmp_path, {"seed.value": 1})
    assert (tmp_path / "params.yaml").read_text() == text


def test_stream_command_logs_lines_and_stops_at_deadline(tmp_path, caplog):
    logger = logging.getLogger("test.stream")
    script = "import time; print('first', flush=True); print('second\\rthird', flush=True); time.sleep(60)"
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="test.stream"), pytest.raises(CommandFailed, match="1 s limit"):
        stream_command([sys.executable, "-c", script], tmp_path, logger, timeout_s=1)
    assert time.monotonic() - started < 20
    assert [m for m in caplog.messages if not m.startswith("$")] == ["first", "second", "third"]
    with pytest.raises(CommandFailed, match="exited with code 3"):
        stream_command([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path, logger, None)


def test_best_stage_metrics_maximise_scores_minimise_losses(tmp_path):
    metrics = tmp_path / "train" / "train_head" / "plots" / "metrics"
    (metrics / "val").mkdir(parents=True)
    (metrics / "val" / "macro_f1.tsv").write_text("timestamp\tstep\tmacro_f1\n1\t0\t0.5\n2\t1\t0.8\n3\t2\t0.7\n")
    (metrics / "train_loss.tsv").write_text("timestamp\tstep\ttrain_loss\n1\t0\t2.0\n2\t1\t1.5\n3\t2\t1.7\n")
    rows = {row["metric"]: row for row in best_stage_metrics(tmp_path)}
    assert rows["val/macro_f1"]["best"] == pytest.approx(0.8) and rows["val/macro_f1"]["step"] == "1"
    assert rows["train_loss"]["best"] == pytest.approx(1.5)
