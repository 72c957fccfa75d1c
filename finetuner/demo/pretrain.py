"""Pretrain the demo backbone: random init, every block trained with the stage engine, on the demo source task.

Run `python -m finetuner.demo.pretrain` (called by `make demo-data`): reads `data/source/images/<label>/...` (written by
`python -m finetuner.demo.data`: twelve shape classes, none of them a demo class, one photo per specimen), trains
`model.arch` at `data.image_size` for a fixed number of epochs (deterministic for params.yaml's `seed`: the same
backbone on every machine, however busy), and writes `models/demo_backbone.pt`, a plain pipeline checkpoint that
`model.weights` can point at (its head is replaced when fine-tuning). Not a DVC stage: it stands in for the ImageNet
weights an offline demo cannot download. `benchmarks/bench_demo_probe.py` checks that its features transfer.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from finetuner import layout
from finetuner.common.stage import InputError, load_params, setup_logging
from finetuner.config import Params
from finetuner.train import stage_files as train_io
from finetuner.train.engine import FitConfig, Split, fit, pick_runtime, steps_per_epoch
from finetuner.train.features import image_trainee
from finetuner.train.image_cache import cached_images
from finetuner.train.models import build_model, expand_blocks, freeze_except, set_train_mode
from finetuner.train.param_groups import block_learning_rates, build_optimizer, build_param_groups
from finetuner.train.preprocessing import Preprocessing
from finetuner.train.records import pipeline_record
from finetuner.train.schedules import build_scheduler

log = logging.getLogger("finetuner.pretrain")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def list_source(source: Path) -> list[tuple[Path, str]]:
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{source}: no images (generate the demo world first: `python -m finetuner.demo.data`)")
    return [(path, path.relative_to(source).parts[0]) for path in files]


def held_out(path: Path) -> bool:
    """About 1 in 10 images validates the pretraining, chosen by a hash so the choice never changes."""
    return hashlib.sha256(path.as_posix().encode()).digest()[0] % 10 == 0


def pretrain(
    params: Params,
    source: Path,
    out: Path,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    max_steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Train every block on the source task for `epochs` (warmup + cosine); returns the checkpoint minus weights."""
    files = list_source(source)
    class_to_idx = {label: i for i, label in enumerate(sorted({label for _, label in files}))}
    arch, runtime = params.model.arch, pick_runtime(params.train.device)
    torch.manual_seed(params.seed)  # the random initialisation is part of what makes the backbone reproducible
    built = build_model(arch, len(class_to_idx), None, params.data.image_size)
    model, preprocessing = built.model.to(runtime.device), built.preprocessing
    splits = source_splits(files, class_to_idx, preprocessing, params.data.workers)
    trained = expand_blocks(arch, ["all"])
    freeze_except(model, arch, trained)
    config = FitConfig(
        epochs=epochs,
        batch_size=batch_size,
        seed=params.seed,
        clip_grad_norm=1.0,
        augment=True,
        max_steps_per_epoch=max_steps_per_epoch,
    )
    steps = steps_per_epoch(len(splits["train"].labels), config)
    rates = block_learning_rates(trained, trained, {block: lr for block in trained}, None)
    optimizer = build_optimizer(build_param_groups(model, arch, rates, 0.05), "adamw")
    scheduler = build_scheduler(optimizer, steps * epochs, max(1, steps * epochs // 10))
    trainee = image_trainee(model, preprocessing, runtime, lambda: set_train_mode(model, arch, trained, "train"))
    log.info(
        "pretraining %s at %d px on %d source images of %d classes: %d epochs of %d steps",
        arch,
        params.data.image_size,
        len(splits["train"].labels),
        len(class_to_idx),
        epochs,
        steps,
    )
    history = fit(
        trainee,
        splits["train"],
        splits["val"],
        optimizer,
        scheduler,
        config,
        runtime,
        len(class_to_idx),
        _progress(epochs),
    )
    record = pipeline_record(
        model,
        "pretrain",
        len(history),
        history[-1][f"val_{params.train.select_metric}"],
        params,
        class_to_idx,
        preprocessing,
        {"weights": None, "source": str(source)},
    )
    train_io.save_torch(out, record)
    return {k: v for k, v in record.items() if k != "state_dict"}


def source_splits(
    files: list[tuple[Path, str]], class_to_idx: dict[str, int], preprocessing: Preprocessing, workers: int
) -> dict[str, Split]:
    """The source task's train and val splits (val: the held-out share of its files), decoded through the image
    cache."""
    splits = {}
    for name, keep in (("train", lambda p: not held_out(p)), ("val", held_out)):
        chosen = [(p, label) for p, label in files if keep(p)]
        pixels = cached_images([p for p, _ in chosen], preprocessing, layout.IMAGE_CACHE, workers)
        labels = torch.tensor([class_to_idx[lab] for _, lab in chosen], dtype=torch.int64)  # int64 even when empty
        splits[name] = Split(torch.from_numpy(pixels), labels)
    return splits


def _progress(epochs: int) -> Callable[[list[dict[str, Any]], bool], None]:
    """The engine's per-epoch callback: a log line with the source val accuracy and the time since the start."""
    began = time.perf_counter()

    def progress(history: list[dict[str, Any]], improved: bool) -> None:
        record = history[-1]
        log.info(
            "pretrain epoch %d/%d: source val accuracy %.3f (%.0f s)",
            record["epoch"],
            epochs,
            record["val_accuracy"],
            time.perf_counter() - began,
        )

    return progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=layout.DEMO_SOURCE_IMAGES)
    parser.add_argument("--out", type=Path, default=layout.DEMO_BACKBONE)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--force", action="store_true", help="retrain even if --out exists")
    args = parser.parse_args(argv)
    setup_logging()
    if args.out.exists() and not args.force:
        log.info("%s exists; nothing to do (--force retrains)", args.out)
        return 0
    try:
        began = time.perf_counter()
        result = pretrain(load_params(), args.source, args.out, args.epochs, args.lr, args.batch_size)
    except (InputError, ValueError) as exc:
        print(f"pretrain: {exc}", file=sys.stderr)
        return 2
    log.info(
        "wrote %s (%s, source val macro F1 %.3f) in %.0f s",
        args.out,
        result["arch"],
        result["value"],
        time.perf_counter() - began,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
