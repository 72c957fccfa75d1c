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
import hashlib
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from finetuner.champion import (KEPT, NO_NEW_DATA, PROMOTED, decide, last_line, metric_value, parse_registry,
                                registry_line, render_card)
from finetuner.config import ConfigError, Params
from flows.connect import prefect_backend
from flows.dvc_cli import locked_dep_hash, raw_data_status, stream_command
from flows.finetune import DEFAULT_PROJECT, HOUR, retry_if_transient, run_pipeline
from flows.workspace import NoImages, read_params, require_images, workspace_lock
from tasks.common import atomic_path, write_text

REGISTRY = Path("reports/retrain_registry.jsonl")
CHAMPION = Path("models/champion.pt")
CARD = Path("models/champion.md")
CHALLENGER = Path("models/best.pt")
PENDING = Path("models/champion.pending.pt")  # the promoted challenger, until models/champion.pt is replaced
SCORES_DIR = Path("reports/retrain")


Detected = tuple[bool, str, str | None]  # detect_new_data's (anything new?, why, data version)


class RegistryError(RuntimeError):
    """The champion registry is damaged; the message names the file, the line and what to do."""


def read_registry(project: Path) -> list[dict[str, Any]]:
    """Every decision so far; a damaged registry stops the flow (its decisions must not be silently lost)."""
    path = project / REGISTRY
    if not path.exists():
        return []
    try:
        return parse_registry(path.read_text(encoding="utf-8"), str(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{exc}. Restore {path} from a backup or git, or move it aside to start a new "
                            "record (the next run then promotes its challenger as the first champion)") from None


def append_record(project: Path, record: dict[str, Any]) -> None:
    """Add one decision to the registry; the file is rewritten atomically, so it is never half a line long."""
    path = project / REGISTRY
    read_registry(project)  # never append to a damaged record
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, existing + registry_line(record, last_line(existing)) + "\n")


@task(name="detect_new_data", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
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


@task(name="score", task_run_name="score-{role}", retries=2, retry_delay_seconds=10,
      retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def score(project_dir: str, checkpoint: str, role: str, metric: str) -> float:
    """Score one checkpoint on the current test split with the evaluate stage's own code."""
    out = SCORES_DIR / f"{role}.json"
    command = [sys.executable, "-m", "tasks.evaluate", "--checkpoint", checkpoint, "--out", str(out)]
    stream_command(command, project_dir, get_run_logger(), 2 * HOUR)
    scores = json.loads((Path(project_dir) / out).read_text(encoding="utf-8"))
    return metric_value(scores, metric, str(out))


@task(name="promote", cache_policy=NO_CACHE)
def stage_promotion(project_dir: str) -> str:
    """Copy the challenger to models/champion.pending.pt (atomically); returns the copy's sha256 for the registry."""
    project = Path(project_dir)
    with atomic_path(project / PENDING) as tmp:
        shutil.copyfile(project / CHALLENGER, tmp)
    return _sha256(project / PENDING)


def install_champion(project: Path, record: dict[str, Any]) -> None:
    """Make the recorded promotion real: the card, then models/champion.pt from the pending copy, each atomically.

    The card goes first: until the champion file is replaced, the next run sees the decision as unfinished and
    redoes both, so a card never describes a champion that is not the one installed after a completed run."""
    write_text(project / CARD, render_card(record, _checkpoint_info(project / PENDING)))
    with atomic_path(project / CHAMPION) as tmp:
        shutil.copyfile(project / PENDING, tmp)
    (project / PENDING).unlink()


def finish_interrupted_promotion(project: Path, history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Install the champion the registry's last promotion chose when a killed run did not get to it; returns that
    decision if it had to be finished. Raises RegistryError when the chosen champion can be found nowhere."""
    promoted = [record for record in history if record["decision"] == PROMOTED]
    expected = promoted[-1].get("champion_sha256") if promoted else None  # records from before it was kept: none
    pending = project / PENDING
    if expected is None or ((project / CHAMPION).exists() and _sha256(project / CHAMPION) == expected):
        pending.unlink(missing_ok=True)  # staged by a run killed before it recorded its decision: decided again
        return None
    if not pending.exists() or _sha256(pending) != expected:
        raise RegistryError(f"{project / REGISTRY}: its last promotion chose a champion with sha256 {expected}, but "
                            f"neither {project / CHAMPION} nor {pending} is that file. Restore models/champion.pt "
                            "from a backup, or move the registry aside to start a new record")
    get_run_logger().warning("finishing the promotion of %s recorded by an interrupted run", promoted[-1]["time"])
    install_champion(project, promoted[-1])
    return promoted[-1]


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checkpoint_info(path: Path) -> dict[str, Any] | None:
    from finetuner.checkpoint import CheckpointError, load_pipeline_checkpoint  # torch is slow to import

    try:
        checkpoint = load_pipeline_checkpoint(path)
    except CheckpointError as exc:
        get_run_logger().warning("the champion card lacks checkpoint details: %s", exc)
        return None
    return {key: value for key, value in checkpoint.items() if key not in ("state_dict", "optimizer", "scheduler")}


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
    create_markdown_artifact(_decision_markdown(record), key="retrain-decision", description="this run's decision")
    return record


def _compare(project: Path, params: Params, raw: dict[str, Any], detected: Detected) -> dict[str, Any]:
    """Train on new data and score champion and challenger; the decision record, the promotion staged if any."""
    new, why, version = detected
    metric, min_gain = params.train.select_metric, params.retrain.min_gain
    record: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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


def _decision_markdown(record: dict[str, Any]) -> str:
    title = {PROMOTED: "challenger promoted", KEPT: "champion kept", NO_NEW_DATA: "no new data: training skipped"}
    rows = [
        ("decision", record["decision"]),
        ("reason", record["reason"]),
        ("data version", f"`{record['data_version']}`"),
        (f"champion {record['metric']}", record["champion_score"]),
        (f"challenger {record['metric']}", record["challenger_score"]),
        ("min_gain", record["min_gain"]),
        ("registry", f"`{REGISTRY}`"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# retrain: {title[record['decision']]}\n\n| | |\n|---|---|\n{table}\n"


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
