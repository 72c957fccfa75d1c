"""Pretrain the demo backbone: random init, every block trained with the stage engine, on the demo source task.

Run `python -m tasks.pretrain` (called by `make demo-data`): reads `data/source/images/<label>/...` (written by
`python -m tasks.demo_data`), trains `model.arch` at `data.image_size` within a time budget (default 100 s), and
writes `models/demo_backbone.pt`, a plain pipeline checkpoint that `model.weights` can point at (its head is
replaced when fine-tuning). Not a DVC stage: it stands in for the ImageNet weights an offline demo cannot download.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

import torch

from finetuner.config import Params
from finetuner.engine import FitConfig, Split, fit, pick_runtime, train_epoch
from finetuner.models import build_model, expand_blocks, freeze_except, set_train_mode
from finetuner.param_groups import block_learning_rates, build_optimizer, build_param_groups
from finetuner.schedules import build_scheduler
from tasks import train_io
from tasks.common import InputError, load_params, setup_logging
from tasks.features import image_trainee
from tasks.image_cache import cached_images
from tasks.training import pipeline_record

log = logging.getLogger("finetuner.pretrain")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def list_source(source: Path) -> list[tuple[Path, str]]:
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{source}: no images (generate the demo world first: `python -m tasks.demo_data`)")
    return [(path, path.relative_to(source).parts[0]) for path in files]


def held_out(path: Path) -> bool:
    """About 1 in 8 images validates the pretraining, chosen by a hash so the choice never changes."""
    return hashlib.sha256(path.as_posix().encode()).digest()[0] % 8 == 0


def pretrain(params: Params, source: Path, out: Path, budget_s: float, epochs: int, lr: float) -> dict:
    files = list_source(source)
    class_to_idx = {label: i for i, label in enumerate(sorted({label for _, label in files}))}
    arch, runtime = params.model.arch, pick_runtime(params.train.device)
    built = build_model(arch, len(class_to_idx), None, params.data.image_size)
    model, preprocessing = built.model.to(runtime.device), built.preprocessing
    splits = {}
    for name, keep in (("train", lambda p: not held_out(p)), ("val", held_out)):
        chosen = [(p, label) for p, label in files if keep(p)]
        pixels = cached_images([p for p, _ in chosen], preprocessing, Path("data/cache/images"), params.data.workers)
        splits[name] = Split(torch.from_numpy(pixels), torch.tensor([class_to_idx[lab] for _, lab in chosen]))
    trained = expand_blocks(arch, ["all"])
    freeze_except(model, arch, trained)
    batch = params.train.batch_size
    probe = FitConfig(epochs=1, batch_size=batch, seed=params.seed, max_steps_per_epoch=2)
    steps = _steps_within_budget(model, arch, trained, splits["train"], preprocessing, runtime, probe, budget_s, epochs)
    config = FitConfig(epochs=epochs, batch_size=batch, seed=params.seed, clip_grad_norm=params.train.clip_grad_norm,
                       augment=True, max_steps_per_epoch=steps)
    rates = block_learning_rates(trained, trained, {block: lr for block in trained}, None)
    optimizer = build_optimizer(build_param_groups(model, arch, rates, 0.05), "adamw")
    scheduler = build_scheduler(optimizer, steps * epochs, steps // 2)
    trainee = image_trainee(model, preprocessing, runtime, lambda: set_train_mode(model, arch, trained, "train"))
    history = fit(trainee, splits["train"], splits["val"], optimizer, scheduler, config, runtime,
                  len(class_to_idx), lambda h, i: None)
    record = pipeline_record(model, "pretrain", len(history), history[-1][f"val_{params.train.select_metric}"], params, class_to_idx,
                             preprocessing, {"weights": None, "source": str(source)})
    train_io.save_torch(out, record)
    return {k: v for k, v in record.items() if k != "state_dict"}


def _steps_within_budget(model, arch, trained, data, preprocessing, runtime, probe, budget_s: float, epochs: int) -> int:
    """Time two optimizer steps on a throwaway copy, then cap steps per epoch so all epochs fit the budget."""
    import copy

    twin = copy.deepcopy(model)
    optimizer = torch.optim.AdamW([p for p in twin.parameters() if p.requires_grad], lr=1e-4)
    scheduler = build_scheduler(optimizer, 2, 0)
    trainee = image_trainee(twin, preprocessing, runtime, lambda: set_train_mode(twin, arch, trained, "train"))
    train_epoch(trainee, data, optimizer, scheduler, probe, runtime, 0)  # warm-up
    began = time.perf_counter()
    train_epoch(trainee, data, optimizer, scheduler, probe, runtime, 0)
    per_step = (time.perf_counter() - began) / 2
    full = max(1, len(data.labels) // probe.batch_size)
    # ~25% of the budget is left for validation, decoding and writing.
    return max(1, min(full, int(0.75 * budget_s / (per_step * epochs))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("data/source/images"))
    parser.add_argument("--out", type=Path, default=Path("models/demo_backbone.pt"))
    parser.add_argument("--budget-seconds", type=float, default=100.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--force", action="store_true", help="retrain even if --out exists")
    args = parser.parse_args(argv)
    setup_logging()
    if args.out.exists() and not args.force:
        log.info("%s exists; nothing to do (--force retrains)", args.out)
        return 0
    try:
        began = time.perf_counter()
        result = pretrain(load_params(), args.source, args.out, args.budget_seconds, args.epochs, args.lr)
    except (InputError, ValueError) as exc:
        print(f"pretrain: {exc}", file=sys.stderr)
        return 2
    log.info("wrote %s (%s, val macro F1 %.3f) in %.0f s", args.out, result["arch"], result["value"],
             time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
