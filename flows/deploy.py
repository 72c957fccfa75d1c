"""Deploy `finetune/default` and `retrain/nightly` to a Prefect work pool, where a worker runs them.

    make server                      # a Prefect server (or point PREFECT_API_URL at a shared one)
    make worker                      # this module (pool `finetuner`, type process) + `prefect worker start`
    prefect deployment run 'finetune/default' --watch

`flows.serve` runs the deployments inside its own process; a work pool decouples the two: the deployments live on
the server, and any number of workers (`prefect worker start --pool <pool>`, on this machine or on a GPU node)
poll the pool and run each flow run in a fresh process. The deployments are the same objects `flows.serve` builds
(same parameters, schedule and one-at-a-time concurrency limit for the nightly retrain); for a `process` pool the
code is this checkout, found through the `working_dir` job variable, so no image or code upload is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import deploy
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound

from flows.finetune import DEFAULT_PROJECT, REPO_ROOT
from flows.serve import build_deployments
from flows.workspace import read_params

log = logging.getLogger("finetuner.flows")

DEFAULT_POOL = "finetuner"


async def _pool_type(name: str) -> str:
    """The type of work pool `name`, creating it as a process pool when it does not exist."""
    async with get_client() as client:
        try:
            return (await client.read_work_pool(name)).type
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created work pool %r (type process)", name)
            return "process"


def deploy_to_pool(
    project_dir: str, pool: str, cron: str, job_variables: dict[str, Any] | None = None, working_dir: Path = REPO_ROOT
) -> list[UUID]:
    """Register both deployments on `pool` (created as a process pool if missing); returns their ids.

    A process pool runs the flows from this checkout (`working_dir`); a docker or kubernetes pool (created
    beforehand with `prefect work-pool create --type ...`) needs `job_variables` naming an image of this repository.
    """
    pool_type = asyncio.run(_pool_type(pool))
    variables = dict(job_variables or {})
    if pool_type == "process":
        # The worker starts each run in this checkout, so `python -m prefect.engine` imports `flows.*` from here.
        variables.setdefault("working_dir", str(working_dir.resolve()))
    elif "image" not in variables:
        raise ValueError(
            f'work pool {pool!r} is a {pool_type} pool: give --job-variables with an "image" that '
            "holds this repository (see README, Orchestration)"
        )
    deployments = build_deployments(project_dir, cron)
    for deployment in deployments:
        deployment.job_variables = variables
    return deploy(
        *deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False, ignore_warnings=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy finetune/default and retrain/nightly to a work pool.")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="work pool name (created as a process pool if missing)")
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT, help="the DVC project the flows act on")
    parser.add_argument("--cron", default=None, help="override retrain.schedule from params.yaml, e.g. '0 3 * * *'")
    parser.add_argument("--job-variables", default="{}", help='JSON, e.g. \'{"image": "registry/finetuner:1"}\'')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        job_variables = json.loads(args.job_variables)
        if not isinstance(job_variables, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        print(f"deploy: --job-variables {args.job_variables!r} is not a JSON object ({exc})", file=sys.stderr)
        return 2
    cron = args.cron or read_params(args.project_dir)[0].retrain.schedule
    try:
        ids = deploy_to_pool(args.project_dir, args.pool, cron, job_variables)
    except ValueError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    log.info(
        "deployed finetune/default and retrain/nightly (cron %r) to pool %r: %s",
        cron,
        args.pool,
        ", ".join(map(str, ids)),
    )
    print(f"start a worker: prefect worker start --pool {args.pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
