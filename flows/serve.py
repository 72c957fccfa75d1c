"""Register and serve the deployments `finetune/default` (manual) and `retrain/nightly` (cron, one at a time).

    make server   # in one terminal: a local Prefect server on 127.0.0.1:4200
    make serve    # in another: this module, against PREFECT_API_URL
    prefect deployment run 'finetune/default' --watch

Runs are executed by this process (Prefect's `serve`); they happen in this repository's absolute directory and
act on `--project-dir` (default: this repository), so nothing depends on where `make serve` was started.
The nightly schedule is `retrain.schedule` in the project's params.yaml unless `--cron` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from flows.finetune import DEFAULT_PROJECT, REPO_ROOT, finetune
from flows.retrain import retrain
from flows.workspace import read_params

log = logging.getLogger("finetuner.flows")


def build_deployments(project_dir: str, cron: str, interval_s: float | None = None) -> list[RunnerDeployment]:
    """The two deployments; parameters stay overridable per run (`prefect deployment run --param ...`).

    `interval_s` replaces the nightly cron by a run every so many seconds (to watch the scheduler at work).
    """
    project = str(Path(project_dir).resolve())
    schedule = {"interval": interval_s} if interval_s else {"cron": cron}
    return [
        finetune.to_deployment(
            name="default",
            parameters={"project_dir": project, "overrides": {}},
            description="The whole pipeline through DVC, on demand. Override params with the `overrides` parameter.",
            tags=["finetuner"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        retrain.to_deployment(
            name="nightly",
            **schedule,
            parameters={"project_dir": project},
            # One retrain at a time: a late run waits (ENQUEUE) rather than sharing the workspace or being dropped.
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            description="Retrain on new data; promote the challenger only if it beats the champion by min_gain.",
            tags=["finetuner"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Register and serve finetune/default and retrain/nightly.")
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT, help="the DVC project the flows act on")
    parser.add_argument("--cron", default=None, help="override retrain.schedule from params.yaml, e.g. '0 3 * * *'")
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run retrain every SECONDS instead of on the cron (e.g. to watch the scheduler)",
    )
    args = parser.parse_args(argv)
    cron = args.cron or read_params(args.project_dir)[0].retrain.schedule
    os.chdir(REPO_ROOT)  # the runs' working directory: this repository, an absolute path, wherever serve started
    logging.basicConfig(level=logging.INFO)
    when = f"every {args.interval:g} s" if args.interval else f"cron {cron!r}"
    log.info("serving finetune/default and retrain/nightly (%s) for %s", when, args.project_dir)
    serve(*build_deployments(args.project_dir, cron, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
