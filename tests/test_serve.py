"""Deployments on a real local Prefect server: `flows.serve` registers finetune/default and retrain/nightly, the
server's scheduler creates nightly runs that the served runner completes, and `prefect deployment run
'finetune/default' --watch` completes, all against a toy DVC project."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from prefect_server import BIN, background, prefect_server, wait_for
from toy_dvc import make_toy_project, stage_runs

from flows.serve import build_deployments


def _nightly_runs(api: str) -> list[dict]:
    response = httpx.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"name": {"any_": ["nightly"]}}, "sort": "EXPECTED_START_TIME_ASC"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def _wait_for_completed_nightly(api: str, serving: subprocess.Popen, logs: Path, timeout_s: float) -> list[dict]:
    """Poll until a nightly run has completed; fail at once when the server logs a traceback or serve dies."""
    deadline = time.monotonic() + timeout_s
    runs = _nightly_runs(api)
    while time.monotonic() < deadline and not any(r["state_type"] == "COMPLETED" for r in runs):
        assert serving.poll() is None, (logs / "serve.log").read_text()[-3000:]
        assert "Traceback" not in (logs / "server.log").read_text(), (logs / "server.log").read_text()[-3000:]
        time.sleep(2)
        runs = _nightly_runs(api)
    return runs


def test_scheduler_runs_nightly_and_manual_runs_complete(tmp_path):
    """The server's own scheduler (not a manual `deployment run`) creates retrain runs and the runner completes
    one, with no traceback in the server log (sqlalchemy 2.1 broke the scheduler's insert under prefect 3.8.8)."""
    project = make_toy_project(tmp_path / "toy")
    with prefect_server(tmp_path) as server:
        command = [sys.executable, "-m", "flows.serve", "--project-dir", str(project), "--interval", "15"]
        with background(command, server.env, tmp_path / "serve.log") as serving:
            wait_for(f"{server.api}/deployments/name/finetune/default", serving, 180)
            nightly = wait_for(f"{server.api}/deployments/name/retrain/nightly", serving, 60).json()
            assert nightly["global_concurrency_limit"]["limit"] == 1
            assert nightly["parameters"]["project_dir"] == str(project.resolve())
            listed = subprocess.run([BIN / "prefect", "deployment", "ls"], env=server.env, capture_output=True, text=True)
            assert "finetune/default" in listed.stdout and "retrain/nightly" in listed.stdout

            runs = _wait_for_completed_nightly(server.api, serving, tmp_path, timeout_s=240)
            scheduled = [r for r in runs if r["auto_scheduled"]]
            assert len(scheduled) >= 2, f"the scheduler created {len(scheduled)} runs of retrain/nightly"
            assert [r for r in scheduled if r["state_type"] == "COMPLETED"], [(r["name"], r["state_type"]) for r in runs]
            assert stage_runs(project)[:1] == ["ingest"]  # the scheduled retrain really ran the pipeline

            run = subprocess.run(
                [BIN / "prefect", "deployment", "run", "finetune/default", "--watch", "--watch-timeout", "300"],
                env=server.env, capture_output=True, text=True, timeout=360,
            )
            assert run.returncode == 0, run.stdout + run.stderr
            assert "Completed" in run.stdout
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_nightly_deployment_takes_the_cron_of_params_yaml(tmp_path):
    finetune, nightly = build_deployments(str(tmp_path), cron="30 2 * * *")
    assert [schedule.schedule.cron for schedule in nightly.schedules] == ["30 2 * * *"]
    assert nightly.concurrency_limit == 1 and not finetune.schedules
