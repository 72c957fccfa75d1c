"""Deployments on a real local Prefect server: `flows.serve` registers finetune/default and retrain/nightly, and
`prefect deployment run 'finetune/default' --watch` completes against a toy DVC project."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from toy_dvc import STAGES, make_toy_project, stage_runs

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited early with {process.returncode}"
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not ready within {timeout_s} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_for(f"{api}/health", process, 180)
        yield api, env
    finally:
        _stop(process)
        log.close()


def test_served_deployment_run_completes(server, tmp_path):
    api, env = server
    project = make_toy_project(tmp_path / "toy")
    log = (tmp_path / "serve.log").open("w")
    serving = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--project-dir", str(project), "--cron", "30 2 * * *"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_for(f"{api}/deployments/name/finetune/default", serving, 180)
        nightly = _wait_for(f"{api}/deployments/name/retrain/nightly", serving, 60).json()
        assert nightly["global_concurrency_limit"]["limit"] == 1
        assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["30 2 * * *"]
        assert nightly["parameters"]["project_dir"] == str(project.resolve())

        listed = subprocess.run([str(BIN / "prefect"), "deployment", "ls"], env=env, capture_output=True, text=True)
        assert "finetune/default" in listed.stdout and "retrain/nightly" in listed.stdout

        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "finetune/default", "--watch", "--watch-timeout", "400"],
            env=env, capture_output=True, text=True, timeout=450,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Completed" in run.stdout
        assert stage_runs(project) == [*STAGES[:-1], "evaluate models/best.pt"]
    finally:
        _stop(serving)
        log.close()
