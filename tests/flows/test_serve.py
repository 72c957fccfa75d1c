"""Deployments on a real local Prefect server: `flows.serve` registers finetune/default and retrain/nightly, the
server's scheduler creates nightly runs that the served runner completes, and `prefect deployment run
'finetune/default' --watch` completes, all against a toy DVC project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from flows.serve import build_deployments
from tests.prefect_server import BIN, background, prefect_server, wait_for
from tests.toy_dvc import REPO_ROOT, make_toy_project, stage_runs


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
        command = [sys.executable, "-m", "flows.serve", "--project-dir", str(project), "--interval", "60"]
        with background(command, server.env, tmp_path / "serve.log") as serving:
            wait_for(f"{server.api}/deployments/name/finetune/default", serving, 180)
            nightly = wait_for(f"{server.api}/deployments/name/retrain/nightly", serving, 60).json()
            assert nightly["global_concurrency_limit"]["limit"] == 1
            assert nightly["parameters"]["project_dir"] == str(project.resolve())
            listed = _prefect_typed_in_project_root(server.api, tmp_path / "root", "deployment", "ls")
            assert "finetune/default" in listed.stdout and "retrain/nightly" in listed.stdout, listed.stderr

            runs = _wait_for_completed_nightly(server.api, serving, tmp_path, timeout_s=240)
            scheduled = [r for r in runs if r["auto_scheduled"]]
            assert len(scheduled) >= 2, f"the scheduler created {len(scheduled)} runs of retrain/nightly"
            assert [r for r in scheduled if r["state_type"] == "COMPLETED"], [
                (r["name"], r["state_type"]) for r in runs
            ]
            assert stage_runs(project)[:1] == ["ingest"]  # the scheduled retrain really ran the pipeline
            # Paused, so later nightly runs do not queue for the workspace ahead of the manual run below.
            httpx.post(f"{server.api}/deployments/{nightly['id']}/pause_deployment", timeout=10).raise_for_status()

            params = (project / "params.yaml").read_text()
            run = _prefect_typed_in_project_root(  # the README's example, with its quoting
                server.api,
                tmp_path / "root",
                "deployment",
                "run",
                "finetune/default",
                "--param",
                'overrides={"stages.head.epochs": 3}',
                "--watch",
                "--watch-timeout",
                "300",
            )
            assert run.returncode == 0, run.stdout + run.stderr
            assert "Completed" in run.stdout
            assert (project / "params.yaml").read_text() == params  # for one run: a DVC experiment instead
            assert (
                '"epochs": 3'
                in subprocess.run(
                    [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=project, capture_output=True, text=True
                ).stdout
            )

            if shutil.which("chromium"):  # the artifacts as a person sees them in the UI
                check = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "flows.check_ui",
                        "--project-dir",
                        str(project),
                        "--out",
                        str(tmp_path / "shots"),
                        "--no-screenshots",
                    ],
                    env=server.env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert check.returncode == 0, check.stdout + check.stderr
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _prefect_typed_in_project_root(api: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`prefect ...` as typed in the project root: settings from its prefect.toml (pointed at the test server),
    nothing from PREFECT_* variables."""
    root.mkdir(exist_ok=True)
    toml = (REPO_ROOT / "prefect.toml").read_text()
    (root / "prefect.toml").write_text(toml.replace("http://127.0.0.1:4200/api", api))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    return subprocess.run([BIN / "prefect", *args], cwd=root, env=env, capture_output=True, text=True, timeout=400)


def test_nightly_deployment_takes_the_cron_of_params_yaml(tmp_path):
    finetune, nightly = build_deployments(str(tmp_path), cron="30 2 * * *")
    assert [schedule.schedule.cron for schedule in nightly.schedules] == ["30 2 * * *"]
    assert nightly.concurrency_limit == 1 and not finetune.schedules
