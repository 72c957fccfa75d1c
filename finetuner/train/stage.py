"""The one body shared by the `train_head`, `train_partial` and `train_full` stages.

`run_training_stage(stage, params, root)`: read the train/val splits and the starting weights (model.weights for
train_head, the previous stage's best.pt otherwise), then one of: pass the input through (`epochs: 0`, or the recipe's
gate says the stage would not pay), fit linear probes (`solver: lbfgs`), or train exactly the stage's blocks by
gradient (finetuner/train/gradient.py); and write `models/<stage>/` (finetuner/train/records.py; plus
`models/best.pt` for train_full). Each stage is `python -m tasks.<stage>`.

Under torchrun (finetuner/train/distributed.py) every rank runs this body: gradient-trained stages train in DDP, and
only rank 0 writes (checkpoints, resume state, reports, the range test). What is faster in one process (linear
probes, the head on cached features, a skipped or gated stage) rank 0 does alone, and the other ranks exit.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from finetuner import layout
from finetuner.common.seeding import seed_torch
from finetuner.common.stage import InputError
from finetuner.config import Params, StageConfig
from finetuner.train import distributed, gradient
from finetuner.train import recipe_files as train_recipe
from finetuner.train import stage_files as train_io
from finetuner.train.checkpoint import model_from_checkpoint
from finetuner.train.engine import Runtime, Split
from finetuner.train.engine import evaluate as evaluate_split
from finetuner.train.features import image_trainee
from finetuner.train.image_cache import stored_images
from finetuner.train.models import BuiltModel, WeightsError, build_model, expand_blocks
from finetuner.train.plan import augments, uses_cache
from finetuner.train.preprocessing import Preprocessing
from finetuner.train.probe import probe_head
from finetuner.train.recipe import gate_stage
from finetuner.train.records import Start, pipeline_record, publish, write_outputs

log = logging.getLogger("finetuner.train")

STAGES = {
    "train_head": ("head", None),
    "train_partial": ("partial", "train_head"),
    "train_full": ("full", "train_partial"),
}


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
    return gradient.train(paths, config, params, start, data, class_to_idx, runtime, decision.reason)


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
    publish(paths)
    log.info("%s: passed %s through", paths.stage, start.best_file or params.model.weights)
    return {k: v for k, v in record.items() if k != "state_dict"}


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
    outputs = write_outputs(paths, start, record)
    train_io.clear_resume(paths)
    return outputs
