"""The `finetune` Prefect flow: every DVC stage as one task of the same name, run through `dvc repro`.

Prefect orders, retries, times out, logs and shows; DVC decides what is stale and records what ran in dvc.lock.
Run locally (a temporary Prefect server is started when no PREFECT_API_URL is set) with

    python -m flows.finetune [--project-dir DIR] [--set stages.head.epochs=3 ...]

which is what `make demo` does; it prints the test metrics at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from finetuner.config import ConfigError
from finetuner.evaluate.leakage import format_table
from flows.connect import prefect_backend
from flows.dvc_cli import StageRefused, dvc_command, stream_command
from flows.experiment import one_run_experiment
from flows.reports import SUMMARY_KEYS, publish_finetune_artifacts, read_leakage
from flows.workspace import NoImages, require_images, workspace_lock

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROJECT = str(REPO_ROOT)

HOUR = 3600
# (retries, timeout in seconds) per stage. Data stages and evaluate are idempotent, so a transient failure (a full
# disk, a flaky network mount) is worth a retry; a failed training stage is a real problem that retrying would hide
# while burning hours of compute, so it fails at once.
STAGE_POLICY: dict[str, tuple[int, int]] = {
    "ingest": (2, 2 * HOUR),
    "dedup": (2, 2 * HOUR),
    "split": (2, HOUR // 2),
    "train_head": (0, 12 * HOUR),
    "train_partial": (0, 12 * HOUR),
    "train_full": (0, 24 * HOUR),
    "evaluate": (2, 2 * HOUR),
}
STAGES = tuple(STAGE_POLICY)


def _dvc_stage(stage: str, project_dir: str) -> None:
    logger = get_run_logger()
    began = time.perf_counter()
    stream_command(dvc_command("repro", "--single-item", stage), project_dir, logger, STAGE_POLICY[stage][1])
    # A newcomer watching `make demo` sees how long each stage took and how far along the run is.
    logger.info(
        "%s: done in %.0f s (%.0f s since the flow started)",
        stage,
        time.perf_counter() - began,
        time.perf_counter() - _STARTED[0],
    )


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry a failure that may pass (I/O, a killed process), never a refusal of bad
    params or input data, and say so in the run log."""
    try:
        state.result()
    except StageRefused as exc:
        get_run_logger().error("not retried: bad params or input data fail the same way every time\n%s", exc)
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient; that is what retries are for
        return True
    return False


def _stage_task(stage: str) -> Any:
    retries, timeout_s = STAGE_POLICY[stage]
    return task(
        _dvc_stage,
        name=stage,
        task_run_name=stage,
        retries=retries,
        retry_delay_seconds=10,
        retry_condition_fn=retry_if_transient,
        timeout_seconds=timeout_s,
        cache_policy=NO_CACHE,  # DVC is the cache: it skips a stage whose deps, params and outs are unchanged
    )


STAGE_TASKS = {stage: _stage_task(stage) for stage in STAGES}
_STARTED = [time.perf_counter()]  # reset when a flow run starts


def run_pipeline(project_dir: str) -> None:
    """Run the stages in dvc.yaml order inside the current flow; the first failure stops the rest."""
    for stage in STAGES:
        STAGE_TASKS[stage](stage, project_dir)


@flow(name="finetune", description="Every DVC stage of the pipeline in order, each through `dvc repro --single-item`.")
def finetune(project_dir: str = DEFAULT_PROJECT, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the pipeline and publish its reports; with `overrides` (dotted params.yaml keys), as a DVC experiment
    named after this flow run that leaves params.yaml and the workspace's outputs as they were."""
    project = Path(project_dir).resolve()
    _STARTED[0] = time.perf_counter()
    select = require_images(project).train.select_metric
    with workspace_lock(project):
        if not overrides:
            run_pipeline(str(project))
            return publish_finetune_artifacts(project, select)
        with one_run_experiment(project, overrides, experiment_name(), get_run_logger()):
            run_pipeline(str(project))
            return publish_finetune_artifacts(project, select, experiment=experiment_name())


def experiment_name() -> str:
    """The DVC experiment's name: this flow run's name (e.g. `savvy-frog`), so UI and `dvc exp show` agree."""
    from prefect.runtime import flow_run

    return str(flow_run.name or "finetune")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as given to `dvc exp run -S`; values are read as YAML (3 -> int, null -> None)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected key=value, e.g. stages.head.epochs=3")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def format_metrics(metrics: Mapping[str, Any]) -> str:
    lines = [f"{key:>18}: {metrics[key]}" for key in SUMMARY_KEYS if key in metrics]
    return "\n".join(lines) if lines else "no test metrics (reports/metrics.json missing)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT, help="the DVC project (default: this repository)")
    parser.add_argument("--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.pairs)
    try:  # a user error is said in one line, before a Prefect server is even started
        require_images(args.project_dir)
    except (NoImages, ConfigError) as exc:
        print(f"finetune: {exc}", file=sys.stderr)
        return 2
    with prefect_backend() as backend:
        print(
            f"Starting the flow `finetune` on {backend} (a temporary one takes 10-60 s to start on a small machine)...",
            flush=True,
        )
        metrics = finetune(project_dir=str(Path(args.project_dir).resolve()), overrides=overrides)
    print("Test metrics (reports/metrics.json):")
    print(format_metrics(metrics))
    leakage = read_leakage(Path(args.project_dir) / "reports")
    if leakage:
        print("What a careless split would have reported (reports/leakage.json; never used to select):")
        print(format_table(leakage))
    print(json.dumps({key: metrics[key] for key in SUMMARY_KEYS if key in metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
