"""The `finetune` flow on a toy DVC project: every stage through DVC, the same dvc.lock as DVC's own runs,
overrides recorded by DVC, output streamed into the run logs, artifacts, retries only where they are safe."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from finetuner.config import ConfigError
from flows.dvc_cli import CommandFailed, stream_command
from flows.finetune import STAGE_TASKS, finetune
from flows.reports import embed_local_files, stage_table_rows
from flows.workspace import NoImages, apply_overrides
from tests.toy_dvc import STAGES, dvc, make_toy_project, stage_runs

ALL_RUNS = [*STAGES[:-1], "evaluate models/best.pt"]


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())


def test_flow_runs_stages_through_dvc_like_dvc_repro(prefect_harness, tmp_path):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    by_flow = make_toy_project(tmp_path / "flow")
    by_dvc = make_toy_project(tmp_path / "dvc")

    state = finetune(project_dir=str(by_flow), return_state=True)
    dvc(by_dvc, "repro")

    assert state.is_completed()
    assert state.result()["macro_f1"] == pytest.approx(0.7)
    assert stage_runs(by_flow) == ALL_RUNS
    assert _lock(by_flow) == _lock(by_dvc)  # the same stages, deps, params and outs, byte for byte hashes
    assert "Data and pipelines are up to date" in dvc(by_flow, "status").stdout

    APILogWorker.drain_all(timeout=10)  # logs reach the server in batches
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    messages = [log.message for log in logs]
    assert "toy train_partial: done" in messages  # a stage script's own output line, streamed into Prefect

    table = Artifact.get("finetune-test-metrics")
    assert table is not None and table.flow_run_id == flow_run_id and "macro_f1" in str(table.data)
    stages = Artifact.get("finetune-stages")
    assert stages is not None and "train_head" in str(stages.data)


def _snapshot(project: Path) -> dict[str, str]:
    files = ["params.yaml", "dvc.lock", "models/best.pt", "reports/metrics.json", "models/train_head/state.json"]
    return {name: (project / name).read_text() for name in files}


def test_overrides_are_one_dvc_experiment_and_leave_the_workspace(prefect_harness, tmp_path):
    project = make_toy_project(tmp_path / "toy")
    assert finetune(project_dir=str(project), return_state=True).is_completed()
    before = _snapshot(project)

    overrides = {"stages.head.epochs": 3, "stages.full.epochs": 2}
    state = finetune(project_dir=str(project), overrides=overrides, return_state=True)

    assert state.is_completed()
    rerun = ["train_head", "train_partial", "train_full", "evaluate models/best.pt"]
    assert stage_runs(project)[len(ALL_RUNS) :] == rerun
    assert _snapshot(project) == before  # params.yaml, dvc.lock and the outputs are the workspace's own again
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout
    experiments = json.loads(dvc(project, "exp", "show", "--json").stdout)
    runs = [exp for commit in experiments for exp in commit.get("experiments") or []]
    assert len(runs) == 1
    data = runs[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["stages"]["head"]["epochs"] == 3
    assert data["metrics"]["reports/metrics.json"]["data"]["macro_f1"] == pytest.approx(0.7)

    dvc(project, "exp", "apply", runs[0]["name"])
    assert yaml.safe_load((project / "params.yaml").read_text())["stages"]["head"]["epochs"] == 3
    assert json.loads((project / "models/best.pt").read_text())["head_epochs"] == 3
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout


def test_data_stages_retry_training_does_not(prefect_harness, tmp_path, monkeypatch):
    project = make_toy_project(tmp_path / "toy")
    for marker in ("fail_ingest", "fail_ingest_once", "fail_train_head"):
        (project / marker).touch()
    monkeypatch.setitem(STAGE_TASKS, "ingest", STAGE_TASKS["ingest"].with_options(retry_delay_seconds=0))

    state = finetune(project_dir=str(project), return_state=True)

    assert state.is_failed()
    assert stage_runs(project) == ["ingest failed", "ingest", "dedup", "split", "train_head failed"]


def test_bad_input_is_not_retried_and_the_log_says_why(prefect_harness, tmp_path, caplog):
    project = make_toy_project(tmp_path / "toy")
    (project / "refuse_ingest").touch()  # the stage exits 2, as ours do on bad input or params

    state = finetune(project_dir=str(project), return_state=True)

    assert state.is_failed()
    assert stage_runs(project) == ["ingest failed"]  # ingest may retry twice, but not this
    assert "not retried: bad params or input data" in caplog.text and "not an image" in caplog.text


def test_no_images_fails_fast_in_one_line(tmp_path):
    project = make_toy_project(tmp_path / "toy")
    shutil.rmtree(project / "data" / "raw" / "images")

    result = subprocess.run(
        [sys.executable, "-m", "flows.finetune", "--project-dir", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert "put images in" in result.stderr and "make demo-data" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert stage_runs(project) == []
    with pytest.raises(NoImages, match=r"data/raw/images: no such folder"):
        finetune.fn(project_dir=str(project))


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


def test_stage_table_shows_the_best_epoch_1_based_and_the_rates_used(tmp_path):
    metrics = tmp_path / "train" / "train_head" / "plots" / "metrics"
    for name, column, values in (
        ("val/macro_f1", "macro_f1", (0.5, 0.8, 0.7)),
        ("train/loss", "loss", (2, 1.5, 1.7)),
        ("lr/head", "head", (1e-4, 1e-3, 5e-4)),
    ):
        (metrics / name).parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{step}\t{value}\n" for step, value in enumerate(values))
        (metrics / f"{name}.tsv").write_text(f"step\t{column}\n{lines}")
    (tmp_path / "train" / "train_full").mkdir(parents=True)
    (tmp_path / "train" / "train_full" / "metrics.json").write_text('{"epochs": 0}')

    head, partial, full = stage_table_rows(tmp_path)

    assert head["best epoch"] == 2 and head["epochs"] == 3  # step 1 is the second epoch
    assert head["val/macro_f1"] == pytest.approx(0.8) and head["train/loss"] == pytest.approx(1.5)
    assert head["peak lr/head"] == pytest.approx(1e-3)
    assert partial["note"] == "no val/macro_f1 log" and full["note"] == "skipped (epochs: 0)"


def test_summary_pictures_are_embedded_and_links_name_the_file(tmp_path):
    (tmp_path / "confusion_matrix.png").write_bytes(b"\x89PNG fake")
    markdown = "![confusion](confusion_matrix.png) see [dedup](dedup.html) or [site](https://x.org/a.png)"
    out = embed_local_files(markdown, tmp_path)
    assert "](data:image/png;base64," in out and "confusion_matrix.png" not in out
    assert f"dedup (`{tmp_path / 'dedup.html'}`)" in out and "[site](https://x.org/a.png)" in out
