"""Training speed: (1) ten head-only epochs on cached backbone features vs running the frozen backbone every epoch
(target >= 5x, same val metric); (2) throughput of a partial-stage epoch from the uint8 image cache vs the bare
model step (forward, backward, optimizer) on ready normalised tensors (target >= 85%).

Run: `.venv/bin/python benchmarks/bench_train.py` (CPU or CUDA, whatever `device: auto` picks); prints our figure,
the baseline and the ratio for each. Generated images; nothing is downloaded or written.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.models import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetuner.train.engine import FitConfig, Split, fit, pick_runtime, train_epoch  # noqa: E402
from finetuner.train.features import feature_trainee, image_trainee  # noqa: E402
from finetuner.train.models import expand_blocks, freeze_except, set_train_mode  # noqa: E402
from finetuner.train.param_groups import block_learning_rates, build_optimizer, build_param_groups  # noqa: E402
from finetuner.train.preprocessing import Preprocessing  # noqa: E402
from finetuner.train.schedules import build_scheduler  # noqa: E402

ARCH, SIZE, CLASSES = "resnet18", 64, 4
RUNTIME = pick_runtime("auto")
PREP = Preprocessing(SIZE, SIZE)


def images(n: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    pixels = torch.randint(0, 256, (n, SIZE, SIZE, 3), generator=generator, dtype=torch.uint8)
    pixels[..., 0] = (labels * 60).view(n, 1, 1).to(torch.uint8)
    return Split(pixels, labels)


def setup(model: torch.nn.Module, train: list[str], steps: int, epochs: int):
    trained = expand_blocks(ARCH, train)
    freeze_except(model, ARCH, trained)
    model.to(RUNTIME.device, memory_format=torch.channels_last if RUNTIME.channels_last else torch.preserve_format)
    rates = block_learning_rates(expand_blocks(ARCH, ["all"]), trained, {b: 1e-3 for b in trained}, None)
    optimizer = build_optimizer(build_param_groups(model, ARCH, rates, 1e-4), "adamw")
    return trained, optimizer, build_scheduler(optimizer, steps * epochs, steps)


def head_benchmark(n_train: int = 256, n_val: int = 64, epochs: int = 10) -> None:
    torch.manual_seed(0)
    base = get_model(ARCH, weights=None, num_classes=CLASSES)
    config = FitConfig(epochs=epochs, batch_size=32, seed=0, clip_grad_norm=1.0)
    results = {}
    for name in ("baseline", "ours"):
        model = copy.deepcopy(base)
        trained, optimizer, scheduler = setup(model, ["head"], n_train // 32, epochs)
        data = {"train": images(n_train, 1), "val": images(n_val, 2)}
        began = time.perf_counter()
        if name == "ours":
            trainee, data = feature_trainee(model, ARCH, data, PREP, RUNTIME, 64)
        else:
            trainee = image_trainee(
                model, PREP, RUNTIME, lambda m=model, t=trained: set_train_mode(m, ARCH, t, "frozen")
            )
        history = fit(
            trainee, data["train"], data["val"], optimizer, scheduler, config, RUNTIME, CLASSES, lambda h, i: None
        )
        results[name] = (time.perf_counter() - began, history[-1]["val_macro_f1"])
    (ours, f1_ours), (base_s, f1_base) = results["ours"], results["baseline"]
    print(f"head-only, {epochs} epochs, {n_train} train / {n_val} val images at {SIZE}px on {RUNTIME.device}:")
    print(f"  ours (features once): {ours:.2f} s, val macro F1 {f1_ours:.4f}")
    print(f"  baseline (backbone every epoch): {base_s:.2f} s, val macro F1 {f1_base:.4f}")
    print(f"  speed-up {base_s / ours:.1f}x (target >= 5x); same metric: {abs(f1_ours - f1_base) < 1e-6}")


def partial_benchmark(n: int = 192, batch: int = 32, rounds: int = 3) -> None:
    torch.manual_seed(0)
    model = get_model(ARCH, weights=None, num_classes=CLASSES)
    steps = n // batch
    trained, optimizer, scheduler = setup(model, ["layer4", "head"], steps, 100)
    data = images(n, 3)
    config = FitConfig(epochs=1, batch_size=batch, seed=0, clip_grad_norm=1.0)
    trainee = image_trainee(model, PREP, RUNTIME, lambda m=model, t=trained: set_train_mode(m, ARCH, t, "frozen"))
    ready = [PREP.normalize(data.inputs[i : i + batch]).to(RUNTIME.device) for i in range(0, n, batch)]
    ready = [x.contiguous(memory_format=torch.channels_last) if RUNTIME.channels_last else x for x in ready]
    labels = [data.labels[i : i + batch].to(RUNTIME.device) for i in range(0, n, batch)]
    loss_fn = torch.nn.CrossEntropyLoss()

    def model_only() -> None:
        set_train_mode(model, ARCH, trained, "frozen")
        for inputs, target in zip(ready, labels):
            with torch.autocast(RUNTIME.device.type, dtype=RUNTIME.amp_dtype, enabled=RUNTIME.amp_dtype is not None):
                loss = loss_fn(model(inputs).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def ours() -> None:
        train_epoch(trainee, data, optimizer, scheduler, config, RUNTIME, epoch=0)

    timings: dict[str, list[float]] = {"ours": [], "baseline": []}
    model_only(), ours()  # warm-up
    for _ in range(rounds):  # interleaved, so load from other processes hits both alike
        for name, run in (("baseline", model_only), ("ours", ours)):
            if RUNTIME.device.type == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
            run()
            if RUNTIME.device.type == "cuda":
                torch.cuda.synchronize()
            timings[name].append(n / (time.perf_counter() - began))
    ours_ips, base_ips = statistics.median(timings["ours"]), statistics.median(timings["baseline"])
    print(f"partial stage (layer4 + head), {n} images at {SIZE}px, batch {batch}, on {RUNTIME.device}:")
    print(f"  ours (uint8 cache -> normalise -> step, clip, schedule): {ours_ips:.1f} img/s")
    print(f"  baseline (model step on ready tensors): {base_ips:.1f} img/s")
    print(f"  ratio {ours_ips / base_ips:.2f} (target >= 0.85)")


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["head", "partial"]  # e.g. `bench_train.py partial` runs one of them
    if "head" in chosen:
        head_benchmark()
    if "partial" in chosen:
        partial_benchmark()
