"""How a gradient-trained stage is set up: frozen blocks, trainee (images or cached features), epochs planned from
the step budget, learning rates (explicit, or `lr: auto` by a range test that is recorded and reused on resume),
a fresh optimizer over exactly the trainable parameters, and a warmup + cosine schedule over the planned steps.

Called by finetuner/train/stage.py (`plan_stage`); the recipe's rules themselves live in finetuner/train/recipe.py and
finetuner/train/lr_finder.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch

from finetuner.config import Params, StageConfig
from finetuner.train import recipe_files as train_recipe
from finetuner.train import stage_files as train_io
from finetuner.train.engine import FitConfig, Runtime, Split, Trainee, steps_per_epoch
from finetuner.train.features import feature_trainee, image_trainee
from finetuner.train.lr_finder import RangeTest, range_test
from finetuner.train.models import BuiltModel, expand_blocks, freeze_except, set_train_mode
from finetuner.train.param_groups import block_learning_rates, build_optimizer, build_param_groups, describe_groups
from finetuner.train.recipe import plan_epochs
from finetuner.train.schedules import build_scheduler

log = logging.getLogger("finetuner.train")


@dataclass
class Plan:
    """Everything one stage optimises with: trainee and its data, optimizer, schedule, loop config, chosen rates."""

    trained: list[str]
    trainee: Trainee
    data: dict[str, Split]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    fit_config: FitConfig
    rates: dict[str, float]
    range_test: RangeTest | None


def uses_cache(trained: list[str], params: Params) -> bool:
    """Head-only training on a frozen eval-mode backbone is training on fixed features (never augmented: see
    `augments`)."""
    return trained == ["head"] and params.train.cache_features and bn_policy(params) in ("frozen", "eval")


def augments(trained: list[str], params: Params) -> bool:
    """`train.augment` applies to stages that train backbone blocks; a head-only stage fits the clean features
    (LP-FT: a converged probe on the pretrained features, then augmented fine-tuning of the blocks)."""
    return params.train.augment and trained != ["head"]


def bn_policy(params: Params) -> str:
    """`train.bn_policy`, except that `eval` means `train` for a model with no pretrained weights: random
    BatchNorm statistics are nothing to keep (they would leave the network unnormalised)."""
    if params.train.bn_policy == "eval" and params.model.weights is None:
        return "train"
    return params.train.bn_policy


def _fit_config(config: StageConfig, params: Params, trained: list[str]) -> FitConfig:
    """The engine's loop settings for a stage (its epochs before `plan_epochs` sets the floor of steps)."""
    train = params.train
    return FitConfig(
        epochs=config.epochs,
        batch_size=train.batch_size,
        seed=params.seed,
        label_smoothing=train.label_smoothing,
        clip_grad_norm=train.clip_grad_norm,
        select_metric=train.select_metric,
        patience=train.patience,
        augment=augments(trained, params),
        max_steps_per_epoch=train.max_steps_per_epoch,
    )


def plan_stage(
    paths: train_io.StagePaths,
    config: StageConfig,
    params: Params,
    built: BuiltModel,
    data: dict[str, Split],
    runtime: Runtime,
    expected: str,
) -> Plan:
    """Freeze, place, find the rates, and build a fresh optimizer and schedule over exactly the trainable params."""
    arch, model = params.model.arch, built.model
    trained = expand_blocks(arch, config.train)
    freeze_except(model, arch, trained)
    model.to(runtime.device, memory_format=torch.channels_last if runtime.channels_last else torch.preserve_format)
    set_mode = lambda: set_train_mode(model, arch, trained, bn_policy(params))  # noqa: E731
    trainee, data = (
        feature_trainee(model, arch, data, built.preprocessing, runtime, params.train.batch_size)
        if uses_cache(trained, params)
        else (image_trainee(model, built.preprocessing, runtime, set_mode), data)
    )
    train = params.train
    fit_config = _fit_config(config, params, trained)
    steps = steps_per_epoch(len(data["train"].labels), fit_config, runtime.world_size)
    fit_config = replace(fit_config, epochs=plan_epochs(config.epochs, config.min_steps, steps))
    order = list(expand_blocks(arch, ["all"]))
    auto = config.lr == "auto"
    # `auto`: ratios from lr_decay (head = 1), then one factor for all of them from the range test.
    rates = block_learning_rates(
        order, trained, {"head": 1.0} if auto else config.lr, (config.lr_decay or 1.0) if auto else config.lr_decay
    )
    test = None
    if auto:

        def find(alone: Runtime) -> RangeTest:  # rank 0 alone, on whole batches; every rank gets its result
            found = train_recipe.recall_range_test(paths, expected)
            if found is None:
                probe = build_optimizer(
                    build_param_groups(model, arch, rates, train.weight_decay), train.optimizer, train.momentum
                )
                found = range_test(trainee, data["train"], probe, fit_config, alone, train.lr_find_steps)
                train_recipe.remember_range_test(paths, expected, found)
            return found

        test = runtime.on_main(find)
        rates = {block: rate * test.chosen for block, rate in rates.items()}
    groups = build_param_groups(model, arch, rates, train.weight_decay)
    optimizer = build_optimizer(groups, train.optimizer, train.momentum)
    scheduler = build_scheduler(optimizer, steps * fit_config.epochs, steps * config.warmup_epochs)
    scaler = torch.amp.GradScaler("cuda") if runtime.amp_dtype == torch.float16 else None
    for line in describe_groups(groups):
        log.info("%s group %s", paths.stage, line)
    log.info(
        "%s: %d epochs of %d steps planned (cap %d, min_steps %d)",
        paths.stage,
        fit_config.epochs,
        steps,
        config.epochs,
        config.min_steps,
    )
    return Plan(trained, trainee, data, optimizer, scheduler, scaler, fit_config, rates, test)
