"""GPU readiness check: is the training data path fast enough to keep a GPU busy? One short run, about a minute.

(1) resnet50 at 224 px, partial stage (layer4 + head trained, BN of frozen blocks in eval): images/s of the real
path (image store view -> engine `train_epoch` with the runtime `device: auto` picks: AMP, channels_last) vs the
model-only step on batches already on the GPU (same model, optimizer and autocast). Target: ratio >= 0.85.
(2) Where two or more GPUs are visible: the model-only step under DistributedDataParallel (NCCL, one process per
GPU, same per-GPU batch) vs one GPU: the scaling factor.
It prints the runtime settings it found (AMP dtype, channels_last, cudnn.benchmark) so what is missing shows.
On a machine without CUDA it says so and exits 0: the CPU paths never depend on it.

Run: `.venv/bin/python benchmarks/gpu_check.py [--steps 30] [--batch 64]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCH, CLASSES = "resnet50", 10
SIZE = 224  # --size changes it (a CPU dry run of the code paths uses 64)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def partial_model(device: torch.device, channels_last: bool) -> tuple[torch.nn.Module, list[str]]:
    from torchvision.models import get_model

    from finetuner.train.models import expand_blocks, freeze_except, set_train_mode

    model = get_model(ARCH, weights=None, num_classes=CLASSES)
    trained = expand_blocks(ARCH, ["layer4", "head"])
    freeze_except(model, ARCH, trained)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    set_train_mode(model, ARCH, trained, "frozen")
    return model, trained


def optimizer_for(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def model_only(model: torch.nn.Module, runtime, batch: int, steps: int) -> float:
    """Images/s of forward + backward + optimizer step on one normalised batch that is already on the device."""
    inputs = torch.randn(batch, 3, SIZE, SIZE, device=runtime.device)
    if runtime.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, CLASSES, (batch,), device=runtime.device)
    optimizer = optimizer_for(model)
    for step in range(steps + 5):  # 5 warm-up steps: cudnn.benchmark picks its kernels
        if step == 5:
            sync(runtime.device)
            began = time.perf_counter()
        with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype, enabled=runtime.amp_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(inputs).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(runtime.device)
    return steps * batch / (time.perf_counter() - began)


def pipeline(model: torch.nn.Module, trained: list[str], runtime, batch: int, steps: int, folder: Path) -> float:
    """Images/s of the stage's real path: store view -> engine.train_epoch (prepare, autocast, scaler, schedule)."""
    from finetuner.train.engine import FitConfig, Split, train_epoch
    from finetuner.train.features import image_trainee
    from finetuner.train.image_cache import stored_images
    from finetuner.train.models import set_train_mode
    from finetuner.train.preprocessing import Preprocessing

    n = batch * (steps + 5)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    prep = Preprocessing(resize_size=round(SIZE * 256 / 224), crop_size=SIZE)
    view = stored_images(paths, prep, folder / "store", workers=os.cpu_count() or 1)
    data = Split(view, torch.arange(n) % CLASSES)  # type: ignore[arg-type]
    trainee = image_trainee(model, prep, runtime, lambda: set_train_mode(model, ARCH, trained, "frozen"))
    optimizer = optimizer_for(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cuda") if runtime.amp_dtype == torch.float16 else None
    train_epoch(trainee, data, optimizer, scheduler, FitConfig(1, batch, max_steps_per_epoch=5), runtime, 0, scaler)
    sync(runtime.device)
    began = time.perf_counter()
    train_epoch(trainee, data, optimizer, scheduler, FitConfig(1, batch, max_steps_per_epoch=steps), runtime, 1, scaler)
    sync(runtime.device)
    return steps * batch / (time.perf_counter() - began)


def _ddp_worker(rank: int, world: int, batch: int, steps: int, port: int, results) -> None:
    import torch.distributed as dist

    from finetuner.train.engine import pick_runtime

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    runtime = pick_runtime("cuda")
    runtime.device = torch.device("cuda", rank)
    model, _ = partial_model(runtime.device, runtime.channels_last)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
    speed = model_only(ddp, runtime, batch, steps)
    results[rank] = speed
    dist.destroy_process_group()


def ddp_scaling(batch: int, steps: int, single: float) -> None:
    import socket

    import torch.multiprocessing as mp

    world = torch.cuda.device_count()
    if world < 2:
        print(f"(2) DDP: skipped, {world} GPU visible (needs 2)")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(world, batch, steps, port, results), nprocs=world, join=True)
    total = sum(results.values())
    print(
        f"(2) DDP model-only step on {world} GPUs: {total:.0f} img/s vs {single:.0f} on one: "
        f"x{total / single:.2f} (ideal x{world})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="auto", help="`cpu` runs (1) as a dry run of the code (use --size 64)")
    args = parser.parse_args()
    global SIZE
    SIZE = args.size
    if args.device == "auto" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; skipped (the CPU paths do not depend on it)")
        return 0
    from finetuner.train.engine import pick_runtime

    runtime = pick_runtime(args.device)
    name = torch.cuda.get_device_name(0) if runtime.device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {torch.cuda.device_count()} GPU(s)")
    print(
        f"runtime: amp {runtime.amp_dtype}, channels_last {runtime.channels_last}, "
        f"cudnn.benchmark {torch.backends.cudnn.benchmark}, tf32 matmul {torch.backends.cuda.matmul.allow_tf32}"
    )
    torch.manual_seed(0)
    model, trained = partial_model(runtime.device, runtime.channels_last)
    bare = model_only(model, runtime, args.batch, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        ours = pipeline(model, trained, runtime, args.batch, args.steps, Path(tmp))
    print(
        f"(1) {ARCH} partial stage at {SIZE} px, batch {args.batch}: pipeline {ours:.1f} img/s, model-only step "
        f"{bare:.1f} img/s: ratio {ours / bare:.2f} (target >= 0.85)"
    )
    if runtime.device.type == "cuda":
        ddp_scaling(args.batch, args.steps, bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
