"""Data-parallel training across the processes torchrun starts: the process group, the engine's distributed seams,
and the DistributedDataParallel wrapper.

torchrun (`torch.distributed.run`) starts N copies of a training stage and gives each RANK, LOCAL_RANK and
WORLD_SIZE in its environment. `process_group(device)` joins them (gloo on CPU; nccl on CUDA, one GPU per process)
and yields a `Runtime` whose all-reduce, share (broadcast from rank 0) and barrier are the real collectives; without
torchrun (or with one process) it is the plain single-process runtime and nothing is initialised.

BatchNorm: a frozen block's BatchNorms (`bn_policy: frozen`) run in eval mode with their pretrained statistics, so a
sample's output there does not depend on the rest of its batch and splitting the batch changes nothing. The
BatchNorms of the blocks being trained (and all of them under `bn_policy: train`) normalise with batch statistics,
which must be those of the global batch, or N processes would train a different model than one: on CUDA they become
torch's SyncBatchNorm; on the CPU, where that does not run, `GlobalBatchNorm2d` does the same over gloo.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from finetuner.train.engine import Runtime, pick_runtime

log = logging.getLogger(__name__)


def world_size() -> int:
    """The number of processes torchrun started this one among (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_nproc(nproc: int | str) -> int:
    """`train.nproc` as a count: `auto` is one process per visible GPU, and 1 without CUDA (on a CPU the intra-op
    threads of one process already use every core; more processes only add gradient traffic)."""
    if nproc == "auto":
        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    return int(nproc)


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[Runtime]:
    """The runtime of this process: joined to its torchrun group (torn down on exit) when there is one."""
    runtime = pick_runtime(device)
    world = world_size()
    if world <= 1 or dist.is_initialized():
        yield runtime
        return
    _die_with_parent()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if runtime.device.type == "cuda":
        torch.cuda.set_device(local_rank)
        runtime = replace(runtime, device=torch.device("cuda", local_rank))
    # Rank 0 may fill the image store while the others wait at a barrier: allow that hours, not the default minutes.
    dist.init_process_group("nccl" if runtime.device.type == "cuda" else "gloo", timeout=timedelta(hours=4))
    log.info("rank %d of %d (%s, device %s)", rank, world, dist.get_backend(), runtime.device)
    try:
        yield replace(runtime, rank=rank, world_size=world, all_reduce=_sum, share=_share, barrier=dist.barrier)
    finally:
        dist.destroy_process_group()


def _sum(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def _share(value: Any) -> Any:
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(module: nn.Module, runtime: Runtime) -> nn.Module:
    """`module` for training on this rank: itself alone, else in DDP (gradients averaged over the ranks) with its
    BatchNorms converted in place to global-batch statistics."""
    if runtime.world_size <= 1:
        return module
    cuda = runtime.device.type == "cuda"
    if cuda:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    else:
        group = dist.new_group(backend="gloo")  # its own channel: never interleaved with DDP's gradient buckets
        _convert_batchnorms(module, group)
    # Every rank computes the same global statistics, so there are no buffers to broadcast before each forward.
    return DistributedDataParallel(
        module, device_ids=[runtime.device.index] if cuda else None, forward_sync_buffers=False
    )


def _convert_batchnorms(module: nn.Module, group: Any) -> None:
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d  # same parameters, buffers and state_dict keys
            child.group = group


class _Summed(torch.autograd.Function):
    """The sum of a tensor over the ranks; its gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose train-mode statistics are those of the global batch (every rank's share): what torch's
    SyncBatchNorm does on CUDA, for gloo on the CPU. Eval mode is plain BatchNorm2d."""

    group: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.full((1,), x.numel() / x.shape[1], dtype=x.dtype, device=x.device)
        totals = _Summed.apply(torch.cat([x.sum(dims), count]), self.group)
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(1, -1, 1, 1)
        var = _Summed.apply(centred.square().sum(dims), self.group) / n  # two passes, as BatchNorm computes it
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * n / (n - 1).clamp(min=1))
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        return out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1) if self.affine else out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(unbiased_var, factor)


def one_process_if(runtime: Runtime, work: str | None, stage: str) -> Runtime | None:
    """This rank's runtime for a stage: unchanged when it trains in DDP (`work` None); when one process does `work`
    faster, rank 0 gets a one-process runtime and the other ranks None (they have nothing to do)."""
    if runtime.world_size <= 1 or work is None:
        return runtime
    if not runtime.is_main:
        return None
    log.info(
        "%s %s in one process (rank 0); the other %d process(es) have nothing to do",
        stage,
        work,
        runtime.world_size - 1,
    )
    return runtime.alone()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its launcher dies.

    torchrun starts every worker in a session of its own, so a kill of the launcher's process group (Ctrl-C, a
    scheduler stopping the stage, `kill -9`) would leave the workers running on, writing into a workspace whose
    lock died with the launcher.
    """
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before the request was in place
        os._exit(1)
