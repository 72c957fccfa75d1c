"""The one body shared by the `train_head`, `train_partial` and `train_full` stages.

`run_training_stage(stage, params, root)`: read the train/val splits and the starting weights (model.weights for
train_head, the previous stage's best.pt otherwise), train exactly the stage's blocks with the engine, and write
`models/<stage>/` (plus `models/best.pt` for train_full). Each stage is `python -m tasks.<stage>`.

Under torchrun (finetuner/train/distributed.py) every rank runs this body: gradient-trained stages train in DDP, and
only rank 0 writes (checkpoints, resume state, reports, the range test). What is faster in one process (linear
probes, the head on cached features, a skipped or gated stage) rank 0 does alone, and the other ranks exit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner import layout
from finetuner.common.seeding import seed_torch
from finetuner.common.stage import InputError
from finetuner.config import Params, StageConfig
from finetuner.train import distributed
from finetuner.train import recipe_files as train_recipe
from finetuner.train import stage_files as train_io
from finetuner.train.checkpoint import model_from_checkpoint
from finetuner.train.engine import NonFiniteLossError, Runtime, Split, fit
from finetuner.train.engine import evaluate as evaluate_split
from finetuner.train.features import image_trainee
from finetuner.train.image_cache import stored_images
from finetuner.train.models import BuiltModel, WeightsError, build_model, expand_blocks
from finetuner.train.plan import Plan, augments, plan_stage, uses_cache
from finetuner.train.preprocessing import Preprocessing
from finetuner.train.probe import probe_head
from finetuner.train.recipe import gate_stage

log = logging.getLogger("finetuner.train")

STAGES = {
    "train_head": ("head", None),
    "train_partial": ("partial", "train_head"),
    "train_full": ("full", "train_partial"),
}


@dataclass
class Start:
    """The weights a stage starts from and the best result so far (over earlier stages)."""

    built: BuiltModel
    best_value: float | None
    best_file: Path | None
    origin: dict[str, Any]


def run_training_stage(stage: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Run one training stage end to end; returns the record written to `models/<stage>/best.pt` (minus weights)."""
    with distributed.process_group(params.train.device) as runtime:
        return _run_stage(stage, params, root, runtime)


def _run_stage(stage: str, params: Params, root: Path, runtime: Runtime) -> dict[str, Any]:
    section, previous = STAGES[stage]
    config: StageConfig = getattr(params.stages, section)
    paths = train_io.StagePaths(root, stage, previous)
    train_rows, val_rows = train_io.read_split(paths, "train"), train_io.read_split(paths, "val")
    if not train_rows or not val_rows:
        raise InputError(
            f"{paths.splits}: train and val must both hold images (train {len(train_rows)}, val {len(val_rows)})"
        )
    class_to_idx = {label: i for i, label in enumerate(sorted({r["label"] for r in train_rows + val_rows}))}
    start = _starting_point(paths, params, class_to_idx)
    decision = gate_stage(section, config.min_gain, train_recipe.read_recipe(paths))
    runtime = distributed.one_process_if(runtime, one_process_work(config, params, decision.run), paths.stage)
    if runtime is None:  # rank 0 does it alone
        return {}
    if config.epochs == 0:
        return _pass_through(paths, start, params, class_to_idx, runtime, f"{section}: skipped, epochs: 0")
    if not decision.run:
        return _pass_through(paths, start, params, class_to_idx, runtime, decision.reason)
    if len(train_rows) < runtime.world_size:
        raise InputError(
            f"{paths.splits / 'train.csv'}: {len(train_rows)} image(s) for {runtime.world_size} "
            "processes; lower train.nproc"
        )
    images_root = root / params.data.raw_dir / layout.RAW_IMAGES
    augment = augments(expand_blocks(params.model.arch, config.train), params)
    # Rank 0 fills the image store first; the other ranks then find every image stored (no concurrent writers).
    data = runtime.main_first(
        lambda: {
            name: _split(
                rows,
                images_root,
                start.built.preprocessing,
                paths,
                params,
                class_to_idx,
                augment=augment and name == "train",
            )
            for name, rows in (("train", train_rows), ("val", val_rows))
        }
    )
    if config.solver == "lbfgs":
        return _probe(paths, params, start, data, class_to_idx, runtime, decision.reason)
    return _train(paths, config, params, start, data, class_to_idx, runtime, decision.reason)


def one_process_work(config: StageConfig, params: Params, runs: bool) -> str | None:
    """What this stage does that one process does faster than several (None: gradient training, DDP-able)."""
    if config.epochs == 0 or not runs:
        return "passes its input through"
    if config.solver == "lbfgs":
        return "fits linear probes"
    if uses_cache(expand_blocks(params.model.arch, config.train), params):
        return "trains the head on cached features"
    return None


def _starting_point(paths: train_io.StagePaths, params: Params, class_to_idx: dict[str, int]) -> Start:
    # The new head's initial weights are random draws: fix them by the seed and stage, or reruns on identical
    # inputs diverge (and so does everything downstream).
    seed_torch(params.seed, paths.stage)
    if paths.input_best is None:
        try:
            built = build_model(params.model.arch, len(class_to_idx), params.model.weights, params.data.image_size)
        except WeightsError as exc:
            raise InputError(str(exc)) from None
        return Start(built, None, None, built.origin)
    checkpoint = train_io.load_input_checkpoint(paths.input_best)
    if checkpoint["class_to_idx"] != class_to_idx or checkpoint["arch"] != params.model.arch:
        raise InputError(f"{paths.input_best}: trained for other classes or another arch; rerun the earlier stages")
    built = BuiltModel(model_from_checkpoint(checkpoint), Preprocessing.from_dict(checkpoint["preprocessing"]))
    return Start(built, float(checkpoint["value"]), paths.input_best, checkpoint.get("origin", {}))


def _split(
    rows: list[dict[str, str]],
    images_root: Path,
    preprocessing: Preprocessing,
    paths: train_io.StagePaths,
    params: Params,
    class_to_idx: dict[str, int],
    augment: bool = False,
) -> Split:
    files = [images_root / row["path"] for row in rows]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise InputError(f"{len(absent)} image(s) listed in the splits are missing, e.g. {absent[:3]}")
    images = stored_images(files, preprocessing, paths.image_cache, params.data.workers, augment=augment)
    labels = torch.tensor([class_to_idx[row["label"]] for row in rows], dtype=torch.int64)
    return Split(images, labels)  # type: ignore[arg-type]  # a lazy StoreView, indexed like a uint8 tensor


def pipeline_record(
    model: nn.Module,
    stage: str,
    epoch: int,
    value: float,
    params: Params,
    class_to_idx: dict[str, int],
    preprocessing: Preprocessing,
    origin: dict[str, Any],
    lr: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A pipeline checkpoint: the contract's keys plus where the weights came from, the params and rates used."""
    return {
        "lr": dict(lr or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": params.model.arch,
        "class_to_idx": class_to_idx,
        "stage": stage,
        "epoch": epoch,
        "metric": params.train.select_metric,
        "value": float(value),
        "preprocessing": preprocessing.to_dict(),
        "origin": origin,
        "params": recorded_params(params),
    }


def recorded_params(params: Params) -> dict[str, Any]:
    """The params every training stage depends on (dvc.yaml), kept in its checkpoints; the stage's own section is in
    its recipe.json. Not the whole file: a checkpoint must not change when an unrelated key (retrain, dedup) does."""
    return {
        "seed": params.seed,
        "data": {"image_size": params.data.image_size},
        "model": params.model.model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
    }


def _pass_through(
    paths: train_io.StagePaths,
    start: Start,
    params: Params,
    class_to_idx: dict[str, int],
    runtime: Runtime,
    reason: str,
) -> dict[str, Any]:
    """`epochs: 0` or gated off: the input checkpoint becomes this stage's best unchanged (head: evaluated once)."""
    if start.best_file is not None:
        train_io.copy_file(start.best_file, paths.out / "best.pt")
        record = train_io.load_input_checkpoint(paths.out / "best.pt")
    else:
        model = start.built.model.to(runtime.device)
        val = _split(
            train_io.read_split(paths, "val"),
            paths.root / params.data.raw_dir / layout.RAW_IMAGES,
            start.built.preprocessing,
            paths,
            params,
            class_to_idx,
        )
        trainee = image_trainee(model, start.built.preprocessing, runtime, lambda: model.eval())
        metrics = evaluate_split(trainee, val, len(class_to_idx), runtime, params.train.batch_size)
        record = pipeline_record(
            model,
            paths.stage,
            0,
            metrics[params.train.select_metric],
            params,
            class_to_idx,
            start.built.preprocessing,
            start.origin,
        )
        train_io.save_torch(paths.out / "best.pt", record)
    train_io.write_skipped_report(paths.reports, start.best_file)
    train_recipe.write_recipe(paths, train_recipe.skipped_record(paths.stage, reason, start.best_value))
    _publish(paths)
    log.info("%s: passed %s through", paths.stage, start.best_file or params.model.weights)
    return {k: v for k, v in record.items() if k != "state_dict"}


def _publish(paths: train_io.StagePaths) -> None:
    if paths.stage == "train_full":
        train_io.copy_file(paths.out / "best.pt", paths.root / layout.BEST_MODEL)


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


def _train(
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
        result = _write_outputs(paths, start, last)
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


def _probe(
    paths: train_io.StagePaths,
    params: Params,
    start: Start,
    data: dict[str, Split],
    class_to_idx: dict[str, int],
    runtime: Runtime,
    reason: str,
) -> dict[str, Any]:
    """`solver: lbfgs`: converged linear probes on cached features; the best on validation is the stage's best."""
    model, metric = start.built.model, params.train.select_metric
    began = time.perf_counter()
    result = probe_head(
        model,
        params.model.arch,
        data,
        start.built.preprocessing,
        runtime,
        params.train.batch_size,
        len(class_to_idx),
        metric,
    )
    log.info("%s: linear probes fitted in %.1f s", paths.stage, time.perf_counter() - began)
    live = train_io.LiveLog(paths.reports, result.history, runtime.is_main)
    live.end()
    chosen = result.history[result.best_epoch - 1]
    record = pipeline_record(
        model,
        paths.stage,
        result.best_epoch,
        chosen[f"val_{metric}"],
        params,
        class_to_idx,
        start.built.preprocessing,
        start.origin,
    )
    if not runtime.is_main:
        return {k: v for k, v in record.items() if k != "state_dict"}
    train_io.save_torch(paths.resume_dir / "stage_best.pt", record)
    train_recipe.write_recipe(
        paths,
        train_recipe.trained_record(
            paths.stage,
            reason,
            result.start_value,
            result.history,
            metric,
            solver="lbfgs",
            trained=["head"],
            C=chosen["C"],
            epochs_planned=len(result.history),
            stopped_early=False,
        ),
    )
    outputs = _write_outputs(paths, start, record)
    train_io.clear_resume(paths)
    return outputs


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


def _write_outputs(paths: train_io.StagePaths, start: Start, last: dict[str, Any]) -> dict[str, Any]:
    """stage_best.pt, last.pt, and best.pt = the better of this stage's best and the best of earlier stages."""
    stage_best_file = paths.resume_dir / "stage_best.pt"
    train_io.save_torch(paths.out / "last.pt", last)
    stage_best = train_io.load_input_checkpoint(stage_best_file) if stage_best_file.is_file() else None
    if stage_best is not None:
        train_io.copy_file(stage_best_file, paths.out / "stage_best.pt")
    if stage_best is not None and (start.best_value is None or stage_best["value"] > start.best_value):
        train_io.copy_file(stage_best_file, paths.out / "best.pt")
        best = stage_best
    elif start.best_file is not None:
        train_io.copy_file(start.best_file, paths.out / "best.pt")
        best = train_io.load_input_checkpoint(paths.out / "best.pt")
    else:  # head stage that failed before its first epoch ended: the last weights are all there is
        train_io.save_torch(paths.out / "best.pt", last)
        best = last
    _publish(paths)
    log.info(
        "%s: best so far %s=%.4f (stage %s, epoch %d)",
        paths.stage,
        best["metric"],
        best["value"],
        best["stage"],
        best["epoch"],
    )
    return {k: v for k, v in best.items() if k != "state_dict"}
