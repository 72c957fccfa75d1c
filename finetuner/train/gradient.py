"""A stage trained by gradient: the blocks its section names, with the engine (finetuner/train/engine.py), resumable.

`train` plans the stage (finetuner/train/plan.py: optimizer, schedule, learning rates, the range test), goes on from
the resume state a killed run left with the same fingerprint (inputs and params), runs the epochs, and writes the
recipe record and the checkpoints. After each epoch rank 0 keeps the stage's best checkpoint and the resume state, so a
non-finite loss or a kill loses at most the epoch under way. Called by finetuner/train/stage.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.common.stage import InputError
from finetuner.config import Params, StageConfig
from finetuner.train import distributed
from finetuner.train import recipe_files as train_recipe
from finetuner.train import stage_files as train_io
from finetuner.train.engine import NonFiniteLossError, Runtime, Split, fit
from finetuner.train.engine import evaluate as evaluate_split
from finetuner.train.models import expand_blocks
from finetuner.train.plan import Plan, plan_stage, uses_cache
from finetuner.train.records import Start, pipeline_record, write_outputs

log = logging.getLogger("finetuner.train")


def train(
    paths: train_io.StagePaths,
    config: StageConfig,
    params: Params,
    start: Start,
    data: dict[str, Split],
    class_to_idx: dict[str, int],
    runtime: Runtime,
    reason: str,
) -> dict[str, Any]:
    """Train the stage's blocks by gradient (going on from the resume state of a killed run with the same
    fingerprint), then write the recipe record and the stage's checkpoints; a non-finite loss stops it with the best
    checkpoint so far kept."""
    model = start.built.model
    expected = _fingerprint(paths, config, params, start)
    state = train_io.load_resume(paths, expected)
    runtime.barrier()  # every rank has read the resume state before rank 0 may clear it
    if state is None and runtime.is_main:
        _clear_resume_but_range_test(paths, expected)
    plan = plan_stage(paths, config, params, start.built, data, runtime, expected)
    metric = params.train.select_metric
    start_value = start.best_value
    if start_value is None:  # head stage: the untrained head is the baseline its gain is measured from
        start_value = evaluate_split(
            plan.trainee, plan.data["val"], len(class_to_idx), runtime, params.train.batch_size
        )[metric]
    history = _resume(paths, state, model, plan.optimizer, plan.scheduler, plan.scaler)
    plan.trainee.module = distributed.wrap(plan.trainee.module, runtime)
    live = train_io.LiveLog(paths.reports, history, runtime.is_main)
    on_epoch_end = _epoch_end(paths, params, start, plan, class_to_idx, expected, live, runtime)
    began = time.perf_counter()
    history, failure = _fit(paths, plan, model, len(class_to_idx), runtime, on_epoch_end, history, expected)
    live.end()
    log.info("%s: trained %s in %.1f s", paths.stage, plan.trained, time.perf_counter() - began)
    value = history[-1][f"val_{metric}"] if history else float("nan")
    built = start.built
    last = pipeline_record(
        model, paths.stage, len(history), value, params, class_to_idx, built.preprocessing, start.origin, plan.rates
    )
    result = {k: v for k, v in last.items() if k != "state_dict"}
    if runtime.is_main:  # under torchrun only rank 0 writes
        _write_recipe(paths, plan, reason, start_value, history, metric, stopped=failure is not None)
        result = write_outputs(paths, start, last)
        train_io.clear_resume(paths)
    if failure is not None:
        raise InputError(
            f"{paths.stage} stopped: {failure}. Kept the best checkpoint so far in {paths.out}/best.pt; "
            "lower the learning rates or enable train.clip_grad_norm"
        )
    return result


def _fit(
    paths: train_io.StagePaths,
    plan: Plan,
    model: nn.Module,
    n_classes: int,
    runtime: Runtime,
    on_epoch_end: Callable[[list[dict[str, Any]], bool], None],
    history: list[dict[str, Any]],
    expected: str,
) -> tuple[list[dict[str, Any]], NonFiniteLossError | None]:
    """(history, None) after the planned epochs; on a non-finite loss, the model and history of the last completed
    epoch (read back from the resume state, not the broken one) and the error."""
    try:
        return fit(
            plan.trainee,
            plan.data["train"],
            plan.data["val"],
            plan.optimizer,
            plan.scheduler,
            plan.fit_config,
            runtime,
            n_classes,
            on_epoch_end,
            history,
            plan.scaler,
        ), None
    except NonFiniteLossError as exc:
        finished = train_io.load_resume(paths, expected)
        if finished is None:
            return history, exc
        model.load_state_dict(finished["model"])
        return list(finished["history"]), exc


def _epoch_end(
    paths: train_io.StagePaths,
    params: Params,
    start: Start,
    plan: Plan,
    class_to_idx: dict[str, int],
    expected: str,
    live: train_io.LiveLog,
    runtime: Runtime,
) -> Callable[[list[dict[str, Any]], bool], None]:
    """What the engine calls after each epoch: log it; on rank 0, keep the stage's best checkpoint when it improved
    and the resume state (a killed stage goes on from its last completed epoch)."""
    model, metric = start.built.model, params.train.select_metric

    def on_epoch_end(done: list[dict[str, Any]], improved: bool) -> None:
        record = done[-1]
        live.log(record)
        if not runtime.is_main:
            return
        if improved:
            train_io.save_torch(
                paths.resume_dir / "stage_best.pt",
                pipeline_record(
                    model,
                    paths.stage,
                    record["epoch"],
                    record[f"val_{metric}"],
                    params,
                    class_to_idx,
                    start.built.preprocessing,
                    start.origin,
                    plan.rates,
                ),
            )
        train_io.save_resume(
            paths,
            {
                "fingerprint": expected,
                "history": done,
                "model": model.state_dict(),
                "optimizer": plan.optimizer.state_dict(),
                "scheduler": plan.scheduler.state_dict(),
                "scaler": plan.scaler.state_dict() if plan.scaler else None,
                "torch_rng": torch.get_rng_state(),
            },
        )

    return on_epoch_end


def _write_recipe(
    paths: train_io.StagePaths,
    plan: Plan,
    reason: str,
    start_value: float,
    history: list[dict[str, Any]],
    metric: str,
    stopped: bool,
) -> None:
    """The stage's recipe record (and its learning-rate range test, when it ran one) in reports/train/<stage>/."""
    if plan.range_test is not None:
        train_recipe.write_range_test(paths, plan.range_test, plan.rates)
    train_recipe.write_recipe(
        paths,
        train_recipe.trained_record(
            paths.stage,
            reason,
            start_value,
            history,
            metric,
            solver="gradient",
            trained=plan.trained,
            lr=plan.rates,
            lr_source="auto" if plan.range_test else "explicit",
            lr_factor=plan.range_test.chosen if plan.range_test else None,
            epochs_planned=plan.fit_config.epochs,
            stopped_early=len(history) < plan.fit_config.epochs and not stopped,
        ),
    )


def _fingerprint(paths: train_io.StagePaths, config: StageConfig, params: Params, start: Start) -> str:
    trained = expand_blocks(params.model.arch, config.train)
    stage_params = {
        "section": config.model_dump(mode="json"),
        "seed": params.seed,
        "train": params.train.model_dump(mode="json"),
        "model": params.model.model_dump(mode="json"),
        "image_size": params.data.image_size,
        "cached": uses_cache(trained, params),
    }
    return train_io.fingerprint(
        stage_params, [paths.splits / "train.csv", paths.splits / "val.csv", start.best_file, _weights_file(params)]
    )


def _weights_file(params: Params) -> Path | None:
    weights = params.model.weights
    return Path(weights) if weights and Path(weights).is_file() else None


def _clear_resume_but_range_test(paths: train_io.StagePaths, expected: str) -> None:
    """No usable resume state: start afresh, but keep a matching range test (a kill before the first epoch ended)."""
    test = train_recipe.recall_range_test(paths, expected)
    train_io.clear_resume(paths)
    if test is not None:
        train_recipe.remember_range_test(paths, expected, test)


def _resume(
    paths: train_io.StagePaths,
    state: dict[str, Any] | None,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
) -> list[dict[str, Any]]:
    if state is None:
        return []
    # The groups were rebuilt exactly as at the first start, so the optimizer state maps onto them one to one.
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    log.info("%s: resuming after epoch %d from %s", paths.stage, len(state["history"]), paths.resume_dir)
    return list(state["history"])
