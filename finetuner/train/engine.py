"""The training engine shared by every stage: one epoch of training, validation metrics, the epoch loop.

Pure with respect to files: checkpoints and logs are written by the caller's `on_epoch_end` callback. The seams a
DistributedDataParallel run needs are explicit in `Runtime` (rank, world size, main-process flag, all-reduce of metric
tensors, sharing a value from rank 0); single-process defaults make them no-ops, and finetuner/train/distributed.py
fills them under torchrun. Every rank trains on its share of the same global batch, weighted so the averaged gradient
is the one-process gradient. On CUDA the engine never waits for the device inside a step: the non-finite-loss check
reads a loss summed on the device once every `finite_check_every` steps. Determinism: the global RNG is reseeded from
(seed, epoch) at every epoch start and batches come from `data.epoch_indices`, so a run resumed at an epoch boundary
repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from finetuner.common.device import resolve_device
from finetuner.train.data import augment, epoch_indices, shard

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops, the best checkpoint so far is kept."""


@dataclass
class Runtime:
    """Where and how the engine runs; the distributed seams default to a single process."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None  # autocast dtype on CUDA; never on CPU (bf16 there is far slower)
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    all_reduce: Callable[[torch.Tensor], torch.Tensor] = lambda tensor: tensor  # sum over ranks
    share: Callable[[Any], Any] = lambda value: value  # rank 0's value on every rank (a broadcast)
    barrier: Callable[[], None] = lambda: None
    finite_check_every: int = 1  # steps between non-finite loss checks (each one waits for the device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def alone(self) -> Runtime:
        """The same device as one process: for work that rank 0 does by itself while the others wait."""
        return replace(
            self,
            rank=0,
            world_size=1,
            all_reduce=lambda tensor: tensor,
            share=lambda value: value,
            barrier=lambda: None,
        )

    def on_main(self, work: Callable[[Runtime], Any]) -> Any:
        """`work(self.alone())` on rank 0 only, its result shared with every rank (the others wait for it)."""
        return self.share(work(self.alone()) if self.is_main else None)

    def main_first(self, work: Callable[[], Any]) -> Any:
        """`work()` on rank 0, then on the other ranks (after what rank 0 wrote, e.g. a filled cache, is there)."""
        result = work() if self.is_main else None
        self.barrier()
        return result if self.is_main else work()


def pick_runtime(device: str = "auto") -> Runtime:
    """`auto`: CUDA with AMP (bf16 where supported, else fp16) and channels_last when present; else CPU fp32.

    CUDA also turns on cudnn's autotuner (fixed input sizes: the fastest kernels are picked once) and checks the loss
    for NaN/inf every 50 steps instead of every step; none of that applies on the CPU.
    """
    if resolve_device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Runtime(torch.device("cuda"), dtype, channels_last=True, finite_check_every=50)
    return Runtime(torch.device("cpu"))


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    seed: int = 0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    select_metric: str = "macro_f1"
    patience: int | None = None
    augment: bool = False
    max_steps_per_epoch: int | None = None  # caps an epoch (tests, smoke runs); None = the whole split


@dataclass
class Trainee:
    """What the engine optimises: the module forward runs on, how to put it in train mode, how to prepare inputs."""

    module: nn.Module
    set_train_mode: Callable[[], Any]  # model.train() plus the BN policy, re-applied every epoch
    prepare: Callable[[torch.Tensor], torch.Tensor]  # a CPU batch of stored inputs -> float model input on device
    augmentable: bool = True  # image inputs (not cached features)


@dataclass
class Split:
    inputs: torch.Tensor  # uint8 NHWC images or float features, on the CPU
    labels: torch.Tensor  # int64


def steps_per_epoch(n: int, config: FitConfig, world_size: int = 1) -> int:
    # Batches are global (data.epoch_indices): the number of steps does not depend on the number of processes.
    steps = len(epoch_indices(n, config.batch_size, 0, 0, False, drop_last=True))
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps


def train_epoch(
    trainee: Trainee,
    data: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: FitConfig,
    runtime: Runtime,
    epoch: int,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One pass over the training split; returns the mean loss. Raises NonFiniteLossError on NaN/inf loss."""
    trainee.set_train_mode()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    batches = epoch_indices(len(data.labels), config.batch_size, config.seed, epoch, True, drop_last=True)
    batches = batches[: config.max_steps_per_epoch] if config.max_steps_per_epoch else batches
    # Ranks draw different augmentations (the same draws on every rank would correlate their shares).
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch + 104_729 * runtime.rank)
    labels_on_device = data.labels.to(runtime.device, non_blocking=True)  # one copy per epoch, not one per step
    total, count = torch.zeros((), device=runtime.device), 0
    for step, batch in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not runtime.is_main)):
        index = shard(batch, runtime.rank, runtime.world_size)
        inputs = trainee.prepare(data.inputs[index])
        if config.augment and trainee.augmentable:
            inputs = augment(inputs, generator)
        labels = labels_on_device[index.to(runtime.device, non_blocking=True)]
        with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype, enabled=runtime.amp_dtype is not None):
            loss = loss_fn(trainee.module(inputs).float(), labels)
        total += loss.detach() * len(index)
        count += len(index)
        if (step + 1) % runtime.finite_check_every == 0 or step + 1 == len(batches):
            _check_finite(total, runtime, epoch, step)
        if runtime.world_size > 1:  # DDP averages over ranks: weigh each share by its size in the global batch
            loss = loss * (len(index) * runtime.world_size / len(batch))
        optimizer.zero_grad(set_to_none=True)
        backward_step(trainee.module, loss, optimizer, config.clip_grad_norm, scaler)
        scheduler.step()
    summed = runtime.all_reduce(torch.stack([total, torch.tensor(float(count), device=runtime.device)]))
    return float(summed[0] / summed[1].clamp(min=1))


def _check_finite(total: torch.Tensor, runtime: Runtime, epoch: int, step: int) -> None:
    """Raise on every rank at once when any rank's summed loss is NaN/inf (one rank alone would hang the others)."""
    bad = runtime.all_reduce((~torch.isfinite(total)).float())
    if bad.item():  # the host waits for the device here, and only here
        where = f"step {step + 1}" if runtime.finite_check_every == 1 else f"by step {step + 1}"
        value = float(total)
        shown = value if not math.isfinite(value) else "not finite on another rank"
        raise NonFiniteLossError(f"loss is {shown} at epoch {epoch + 1}, {where}")


def backward_step(
    module: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    clip: float | None,
    scaler: torch.amp.GradScaler | None,
) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


@torch.no_grad()
def evaluate(trainee: Trainee, data: Split, num_classes: int, runtime: Runtime, batch_size: int) -> dict[str, float]:
    """Loss, accuracy and macro F1 on a split (eval mode); the confusion matrix is summed over ranks."""
    # The module without its DDP wrapper: evaluation needs no gradient sync, and ranks may hold uneven shares.
    module = trainee.module.module if isinstance(trainee.module, DistributedDataParallel) else trainee.module
    module.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=runtime.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for index in epoch_indices(len(data.labels), batch_size, 0, 0, False, runtime.rank, runtime.world_size):
        if not len(index):
            continue
        labels = data.labels[index].to(runtime.device, non_blocking=True)
        with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype, enabled=runtime.amp_dtype is not None):
            logits = module(trainee.prepare(data.inputs[index])).float()
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        pairs = labels * num_classes + logits.argmax(1)
        confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes).double()
    confusion = runtime.all_reduce(confusion)
    loss_sum = runtime.all_reduce(loss_sum)
    return metrics_from_confusion(confusion.cpu(), float(loss_sum))


def metrics_from_confusion(confusion: torch.Tensor, loss_sum: float) -> dict[str, float]:
    """accuracy, macro F1 over the classes present in labels or predictions (as sklearn), mean loss."""
    n = float(confusion.sum())
    true_pos = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * true_pos / (support + predicted).clamp(min=1e-12)
    return {
        "loss": loss_sum / n if n else math.nan,
        "accuracy": float(true_pos.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def fit(
    trainee: Trainee,
    train: Split,
    val: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: FitConfig,
    runtime: Runtime,
    num_classes: int,
    on_epoch_end: Callable[[list[dict[str, Any]], bool], None],
    history: list[dict[str, Any]] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> list[dict[str, Any]]:
    """Train from epoch len(history) to config.epochs, validating each epoch; returns the history of records.

    `on_epoch_end(history, improved)` runs after every epoch (the new record is `history[-1]`) (rank 0 writes
    checkpoints there); `history` from a resume checkpoint continues the run. Early stopping after `patience` epochs
    without improvement.
    """
    history = list(history or [])
    for epoch in range(len(history), config.epochs):
        if _patience_spent(history, config):
            log.info("early stopping: no %s improvement for %d epochs", config.select_metric, config.patience)
            break
        # Dropout, random crops: the same draws on resume; each rank its own (shared draws would correlate ranks).
        torch.manual_seed(config.seed * 1_000_003 + epoch + 15_485_863 * runtime.rank)
        lrs = {group.get("block", str(i)): group["lr"] for i, group in enumerate(optimizer.param_groups)}
        train_loss = train_epoch(trainee, train, optimizer, scheduler, config, runtime, epoch, scaler)
        metrics = evaluate(trainee, val, num_classes, runtime, config.batch_size)
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            **{f"val_{k}": v for k, v in metrics.items()},
            "lr": lrs,
        }
        improved = all(record[f"val_{config.select_metric}"] > r[f"val_{config.select_metric}"] for r in history)
        history.append(record)
        log.info(
            "epoch %d/%d: train loss %.4f, val loss %.4f, accuracy %.4f, macro F1 %.4f",
            epoch + 1,
            config.epochs,
            train_loss,
            metrics["loss"],
            metrics["accuracy"],
            metrics["macro_f1"],
        )
        on_epoch_end(history, improved)
    return history


def _patience_spent(history: list[dict[str, Any]], config: FitConfig) -> bool:
    if not config.patience or not history:
        return False
    key = f"val_{config.select_metric}"
    best_epoch = max(range(len(history)), key=lambda i: (history[i][key], -i))
    return len(history) - 1 - best_epoch >= config.patience
