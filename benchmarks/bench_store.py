"""The streaming image store vs the old in-RAM image cache: peak memory of a training epoch as data grows, and speed.

(1) Peak RSS of one training-like epoch (every image read once in shuffled batches through the real engine, a small
CNN so the data, not the model, dominates) at N and 4N images: the store must stay flat (4N/N <= 1.2); the in-RAM
cache (the whole split as one array, what `cached_images` gave the stage before) is measured beside it.
(2) Images/s of resnet18 partial-stage training steps at 64 px reading from the store vs from the in-RAM array
(target >= 0.9), and the store with random-resized-crop augmentation for reference.

Each measurement runs in a fresh process (peak RSS = that process's `ru_maxrss`). Generated JPEGs in a temp folder;
nothing is downloaded. Run: `.venv/bin/python benchmarks/bench_store.py [--images N] [--steps S]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_images(folder: Path, n: int, side: int = 112) -> list[Path]:
    """n distinct smooth colour JPEGs (what photos decode like, unlike noise)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, side)[None, :, None]
    paths = []
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"img_{i:06d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            pixels = (a * ramp + b * ramp.transpose(1, 0, 2) + rng.normal(0, 12, (side, side, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def child(args: argparse.Namespace) -> None:
    """One measurement in this process: load the data as `mode`, train, print a JSON line."""
    import torch
    from torch import nn

    from finetuner.train.engine import FitConfig, Runtime, Split, Trainee, train_epoch
    from finetuner.train.image_cache import stored_images
    from finetuner.train.preprocessing import Preprocessing

    paths = sorted(Path(args.folder).rglob("*.jpg"))[: args.n]
    prep = Preprocessing(args.size, args.size)
    view = stored_images(paths, prep, Path(args.cache), workers=2, augment=args.mode == "store+crop")
    inputs = torch.from_numpy(view[:].numpy()) if args.mode == "ram" else view
    labels = torch.arange(len(paths)) % 4
    torch.manual_seed(0)
    if args.model == "small":
        model = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)
        )
    else:
        from torchvision.models import resnet18

        model = resnet18(num_classes=4)
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(("layer4", "fc"))
    runtime = Runtime()
    trainee = Trainee(model, model.train, lambda b: prep.normalize(b))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    data = Split(inputs, labels)  # type: ignore[arg-type]
    warm = FitConfig(epochs=1, batch_size=64, max_steps_per_epoch=2)
    train_epoch(trainee, data, optimizer, scheduler, warm, runtime, epoch=0)
    config = FitConfig(epochs=1, batch_size=64, max_steps_per_epoch=args.steps or None)
    began, cpu_began = time.perf_counter(), time.process_time()
    train_epoch(trainee, data, optimizer, scheduler, config, runtime, epoch=1)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    steps = args.steps or len(paths) // 64
    gather_began = time.process_time()  # the data path alone: 20 random batches, as the engine indexes them
    for index in torch.randint(0, len(paths), (20, 64)):
        inputs[index]
    print(
        json.dumps(
            {
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "img_s": steps * 64 / seconds,
                "img_cpu_s": steps * 64 / cpu_seconds,
                "batch_ms": (time.process_time() - gather_began) / 20 * 1000,
            }
        )
    )


def measure(folder: Path, cache: Path, mode: str, n: int, size: int, model: str, steps: int = 0) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--folder",
        str(folder),
        "--cache",
        str(cache),
        "--mode",
        mode,
        "--n",
        str(n),
        "--size",
        str(size),
        "--model",
        model,
        "--steps",
        str(steps),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="N; the memory test also runs 4N")
    parser.add_argument("--steps", type=int, default=16, help="resnet18 steps of 64 images per throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput runs per mode (best counts)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("folder", "cache", "mode", "model"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("n", "size"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    n = args.images
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "images", Path(tmp) / "cache"
        write_images(folder, 4 * n)
        for mode in ("store", "store+crop"):  # fill the stores first: decoding is not what is measured
            measure(folder, cache, mode, 4 * n, 64, "small", steps=1)
        measure(folder, cache, "store", 4 * n, 96, "small", steps=1)
        print(f"(1) peak RSS of one epoch, 96 px images, small CNN, batch 64 (N = {n}):")
        rss = {
            (mode, k): measure(folder, cache, mode, k, 96, "small")["peak_rss_mib"]
            for mode in ("store", "ram")
            for k in (n, 4 * n)
        }
        for mode in ("store", "ram"):
            ratio = rss[(mode, 4 * n)] / rss[(mode, n)]
            print(
                f"  {mode:>5}: {rss[(mode, n)]:7.1f} MiB at {n}, {rss[(mode, 4 * n)]:7.1f} MiB at {4 * n}: x{ratio:.2f}"
            )
        print(
            f"(2) resnet18 (layer4 + head) training, 64 px, {args.steps} steps of 64 from {n} images, best of "
            f"{args.rounds} alternating runs (img/s of wall time, and of this process's CPU time):"
        )
        runs = [
            (mode, measure(folder, cache, mode, n, 64, "resnet18", args.steps))
            for _ in range(args.rounds)
            for mode in ("ram", "store", "store+crop")
        ]
        best = {
            mode: {key: max(r[key] for m, r in runs if m == mode) for key in ("img_s", "img_cpu_s")}
            for mode in ("ram", "store", "store+crop")
        }
        batch_ms = {mode: min(r["batch_ms"] for m, r in runs if m == mode) for mode in best}
        for mode in ("ram", "store", "store+crop"):
            print(
                f"  {mode:>10}: {best[mode]['img_s']:6.1f} img/s, {best[mode]['img_cpu_s']:6.1f} img/CPU-s; "
                f"reading a batch of 64: {batch_ms[mode]:.2f} ms CPU"
            )
        for key, what in (("img_s", "wall"), ("img_cpu_s", "CPU")):
            print(f"  store / in-RAM ({what}): {best['store'][key] / best['ram'][key]:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
