"""The `retrain` Prefect flow: retrain on new data, and replace the champion only when the challenger is better.

    new or changed data in data/raw?  -- no --> Completed, an artifact saying so, no training
        | yes
    run the pipeline (the `finetune` stages through DVC; the sticky split keeps old units where they were)
    score champion (models/champion.pt) and challenger (models/best.pt) on the same current test split
    promote if the challenger beats the champion by retrain.min_gain on train.select_metric (first run promotes)
    append the decision to reports/retrain_registry.jsonl

A promotion survives a kill at any moment: the challenger is first copied to models/champion.pending.pt, then the
decision (with that copy's sha256) is appended to the registry, which is the commit point, then the card and
models/champion.pt are written. A run killed before the registry line leaves the old champion in place and the
next run decides again (same data, same scores, same decision); one killed after it leaves a decision whose
champion is not installed yet, and the next run installs it from the pending copy before anything reads the champion.

Both models are scored by `python -m tasks.evaluate --checkpoint ... --out ...`, the only code that reads the test
split. Served as `retrain/nightly` by flows/serve.py; run once locally with `python -m flows.retrain`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from finetuner.common.dvc_lock import locked_dep_hash
from finetuner.config import ConfigError, Params
from finetuner.retrain.champion import NO_NEW_DATA, PROMOTED, decide, metric_value
from finetuner.retrain.registry import (
    CHALLENGER,
    CHAMPION,
    SCORES_DIR,
    append_record,
    decision_markdown,
    finish_interrupted_promotion,
    install_champion,
    read_registry,
)
from finetuner.retrain.registry import stage_promotion as stage_files
from flows.connect import prefect_backend
from flows.dvc_cli import raw_data_status, stream_command
from flows.finetune import DEFAULT_PROJECT, HOUR, retry_if_transient, run_pipeline
from flows.workspace import NoImages, read_params, require_images, workspace_lock

Detected = tuple[bool, str, str | None]  # detect_new_data's (anything new?, why, data version)


@task(
    name="detect_new_data",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def detect_new_data(project_dir: str, raw_dir: str) -> tuple[bool, str, str | None]:
    """(anything new?, why, the data version DVC recorded) from `dvc status` and the last registry entry."""
    project = Path(project_dir)
    status = raw_data_status(project, raw_dir)
    version = locked_dep_hash(project, "ingest", raw_dir)
    if status is not None:
        return True, f"{raw_dir}: {status} relative to dvc.lock", version
    history = read_registry(project)
    if not history:
        return True, f"{raw_dir}: no retrain decision recorded yet", version
    if history[-1].get("data_version") != version:
        # Someone ran the pipeline by hand on new data: nothing to train, but the comparison is still owed.
        return True, f"{raw_dir}: version {version} has not been compared yet", version
    return False, f"{raw_dir} unchanged since the last retrain decision (data version {version})", version


@task(
    name="score",
    task_run_name="score-{role}",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def score(project_dir: str, checkpoint: str, role: str, metric: str) -> float:
    """Score one checkpoint on the current test split with the evaluate stage's own code."""
    out = SCORES_DIR / f"{role}.json"
    command = [sys.executable, "-m", "tasks.evaluate", "--checkpoint", checkpoint, "--out", str(out)]
    stream_command(command, project_dir, get_run_logger(), 2 * HOUR)
    scores = json.loads((Path(project_dir) / out).read_text(encoding="utf-8"))
    return metric_value(scores, metric, str(out))


@task(name="promote", cache_policy=NO_CACHE)
def stage_promotion(project_dir: str) -> str:
    """Copy the challenger to models/champion.pending.pt; returns the copy's sha256 for the registry."""
    return stage_files(Path(project_dir))


@flow(name="retrain", description="Retrain on new data in data/raw; promote the challenger only if it is better.")
def retrain(project_dir: str = DEFAULT_PROJECT, lock_timeout_s: float = 6 * HOUR) -> dict[str, Any]:
    """One scheduled retraining; returns the decision recorded in reports/retrain_registry.jsonl."""
    project = Path(project_dir).resolve()
    logger = get_run_logger()
    require_images(project)
    with workspace_lock(project, lock_timeout_s):
        params, raw = read_params(project)
        # A damaged champion registry stops the run before any work; a promotion a killed run recorded is finished.
        finished = finish_interrupted_promotion(project, read_registry(project))
        detected = detect_new_data(str(project), params.data.raw_dir)
        if not detected[0] and finished is not None:
            # That run's decision is this run's outcome: recording "no new data" would say the data went unjudged.
            record = finished
        else:
            record = _compare(project, params, raw, detected)
            append_record(project, record)  # the commit point of a promotion
            if record["decision"] == PROMOTED:
                install_champion(project, record)
    logger.info("retrain decision: %s (%s)", record["decision"], record["reason"])
    create_markdown_artifact(decision_markdown(record), key="retrain-decision", description="this run's decision")
    return record


def _compare(project: Path, params: Params, raw: dict[str, Any], detected: Detected) -> dict[str, Any]:
    """Train on new data and score champion and challenger; the decision record, the promotion staged if any."""
    new, why, version = detected
    metric, min_gain = params.train.select_metric, params.retrain.min_gain
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "metric": metric,
        "min_gain": min_gain,
        "params": raw,
    }
    if not new:
        record.update(data_version=version, decision=NO_NEW_DATA, reason=why)
        record.update(champion_score=None, challenger_score=None)
        return record
    get_run_logger().info("new data: %s", why)
    run_pipeline(str(project))
    record["data_version"] = locked_dep_hash(project, "ingest", params.data.raw_dir)
    has_champion = (project / CHAMPION).exists()
    champion = score(str(project), str(CHAMPION), "champion", metric) if has_champion else None
    challenger = score(str(project), str(CHALLENGER), "challenger", metric)
    decision = decide(champion, challenger, min_gain, metric)
    record.update(champion_score=champion, challenger_score=challenger)
    record.update(decision=decision.decision, reason=decision.reason)
    if decision.promote:
        record["champion_sha256"] = stage_promotion(str(project))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the retrain flow once, locally.")
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT)
    args = parser.parse_args(argv)
    try:  # a user error is said in one line, before a Prefect server is even started
        require_images(args.project_dir)
    except (NoImages, ConfigError) as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 2
    with prefect_backend():
        record = retrain(project_dir=str(Path(args.project_dir).resolve()))
    print(json.dumps({key: value for key, value in record.items() if key != "params"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
