"""The head stage with `solver: lbfgs`: a converged linear probe on cached backbone features (see
finetuner/train/linear_probe.py), one fit per regularisation strength, the best on validation kept in the head.

Called by finetuner/train/stage.py; returns the per-fit history in the engine's record format (one record per C, so
DVCLive and the stage reports show the validation curve over C) and leaves the chosen weights in the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from finetuner.common.stage import InputError
from finetuner.train.engine import Runtime, Split
from finetuner.train.engine import evaluate as evaluate_split
from finetuner.train.features import feature_trainee
from finetuner.train.linear_probe import fit_probes, load_probe, single_linear
from finetuner.train.models import freeze_except, head_module
from finetuner.train.preprocessing import Preprocessing

log = logging.getLogger("finetuner.train")


@dataclass
class ProbeResult:
    history: list[dict[str, Any]]
    best_epoch: int  # 1-based index of the chosen fit in history
    start_value: float  # validation metric of the untrained head


def probe_head(
    model: nn.Module,
    arch: str,
    data: dict[str, Split],
    preprocessing: Preprocessing,
    runtime: Runtime,
    batch_size: int,
    num_classes: int,
    metric: str,
) -> ProbeResult:
    linear = single_linear(head_module(model, arch))
    if linear is None:
        raise InputError(
            f"stages.head.solver: lbfgs needs a head that is one linear layer, and the head of {arch} "
            "is not; set stages.head.solver: gradient"
        )
    freeze_except(model, arch, ["head"])
    model.to(runtime.device)
    trainee, features = feature_trainee(model, arch, data, preprocessing, runtime, batch_size)
    start = evaluate_split(trainee, features["val"], num_classes, runtime, batch_size)[metric]
    train = features["train"]
    fits = fit_probes(train.inputs, train.labels, num_classes)
    history = []
    for index, fit in enumerate(fits):
        load_probe(linear, fit)
        metrics = evaluate_split(trainee, features["val"], num_classes, runtime, batch_size)
        history.append(
            {
                "epoch": index + 1,
                "train_loss": fit.train_loss,
                **{f"val_{k}": v for k, v in metrics.items()},
                "lr": {},
                "C": fit.c,
            }
        )
        log.info(
            "linear probe C=%g: train loss %.4f, val loss %.4f, val %s %.4f",
            fit.c,
            fit.train_loss,
            metrics["loss"],
            metric,
            metrics[metric],
        )
    # Ties on the metric go to the lower validation loss, then to the stronger regularisation (earlier C).
    best = max(range(len(history)), key=lambda i: (history[i][f"val_{metric}"], -history[i]["val_loss"], -i))
    load_probe(linear, fits[best])
    return ProbeResult(history, best + 1, start)
