"""A work pool and a real worker: `flows.deploy` registers the deployments on a process pool, a
`prefect worker start` subprocess picks up a `finetune/default` run and completes it against a toy DVC project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toy_dvc import STAGES, make_toy_project, stage_runs

BIN = Path(sys.executable).parent


def test_worker_runs_a_deployment_from_the_process_pool(prefect_harness, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL
    from prefect.utilities.asyncutils import run_coro_as_sync

    from flows.deploy import deploy_to_pool

    project = make_toy_project(tmp_path / "toy")
    ids = deploy_to_pool(str(project), "test-pool", "30 2 * * *")
    assert len(ids) == 2

    async def read_pool_and_deployment():
        async with get_client() as client:
            pool = await client.read_work_pool("test-pool")
            return pool, await client.read_deployment_by_name("finetune/default")

    pool, deployment = run_coro_as_sync(read_pool_and_deployment())
    assert pool.type == "process" and deployment.work_pool_name == "test-pool"
    assert deployment.job_variables["working_dir"] == str(Path(__file__).resolve().parents[2])

    async def create_docker_pool():
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name="test-docker", type="docker"))

    run_coro_as_sync(create_docker_pool())
    with pytest.raises(ValueError, match="docker pool.*image"):  # code must come in an image there
        deploy_to_pool(str(project), "test-docker", "30 2 * * *")

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "test-pool", "--limit", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run = run_deployment("finetune/default", timeout=240, poll_interval=1)
        assert run.state is not None and run.state.is_completed(), (run.state, (tmp_path / "worker.log").read_text())
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker slow to stop on a loaded machine: cleanup, not the verdict
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
        log.close()
    assert stage_runs(project) == [*STAGES[:-1], "evaluate models/best.pt"]
    assert "test-pool" in (tmp_path / "worker.log").read_text()
