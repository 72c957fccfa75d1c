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
import logging
import sys
from pathlib import Path
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


async def _ensure_pool(name: str, pool_type: str) -> None:
    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))
            log.info("created work pool %r (type %s)", name, pool_type)
            return
    if pool.type != pool_type:
        raise SystemExit(f"work pool {name!r} exists with type {pool.type!r}, not {pool_type!r}; choose another --pool")


def deploy_to_pool(project_dir: str, pool: str, cron: str, working_dir: Path = REPO_ROOT) -> list[UUID]:
    """Create the process pool if missing and register both deployments on it; returns their ids."""
    asyncio.run(_ensure_pool(pool, "process"))
    deployments = build_deployments(project_dir, cron)
    for deployment in deployments:
        # The worker starts each run in this checkout, so `python -m prefect.engine` imports `flows.*` from here.
        deployment.job_variables = {"working_dir": str(working_dir.resolve())}
    return deploy(*deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False,
                  ignore_warnings=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy finetune/default and retrain/nightly to a work pool.")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="work pool name (created as a process pool if missing)")
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT, help="the DVC project the flows act on")
    parser.add_argument("--cron", default=None, help="override retrain.schedule from params.yaml, e.g. '0 3 * * *'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    cron = args.cron or read_params(args.project_dir)[0].retrain.schedule
    ids = deploy_to_pool(args.project_dir, args.pool, cron)
    log.info("deployed finetune/default and retrain/nightly (cron %r) to pool %r: %s", cron, args.pool,
             ", ".join(map(str, ids)))
    print(f"start a worker: prefect worker start --pool {args.pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
