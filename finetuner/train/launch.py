"""How `python -m tasks.train <stage>` (dvc.yaml's command) uses several processes: `train.nproc`.

With `train.nproc` above 1 (or `auto` on a machine with several GPUs) the entry does not train itself: it starts
torchrun in-process (`torch.distributed.run`, standalone rendezvous on a free local port) on the same module, and
torchrun starts that many workers, each of which finds itself under torchrun and trains its share in DDP
(finetuner/train/stage.py). The entry holds the workspace lock for them and fails when any worker fails. Started by
torchrun yourself (`torchrun --nproc-per-node N -m tasks.train train_partial`, also across machines), the stage runs
with whatever torchrun set and `train.nproc` is not consulted. A stage that one process does faster (linear
probes, the head on cached features, a skipped stage) is never launched on several.
"""

from __future__ import annotations

import logging

from finetuner.common.stage import InputError
from finetuner.config import Params
from finetuner.train import distributed
from finetuner.train.stage import STAGES, one_process_work, run_training_stage

log = logging.getLogger("finetuner.train")


def run_training_entry(stage: str, params: Params) -> None:
    """What `python -m tasks.train <stage>` runs: this process, or `train.nproc` workers under torchrun."""
    nproc = distributed.resolve_nproc(params.train.nproc)
    if nproc > 1 and distributed.world_size() <= 1:
        config = getattr(params.stages, STAGES[stage][0])
        work = one_process_work(config, params, runs=True)
        if work is None:
            launch(stage, nproc)
            return
        log.info("%s %s in one process (train.nproc %s not used)", stage, work, params.train.nproc)
    run_training_stage(stage, params)


def launch(stage: str, nproc: int) -> None:
    """`torchrun --standalone --nproc-per-node nproc -m tasks.train <stage>`, run in this process."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    log.info("%s: %d processes under torchrun (train.nproc)", stage, nproc)
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "tasks.train", stage]))
    except ChildFailedError as exc:
        codes = sorted({failure.exitcode for failure in exc.failures.values()})
        raise InputError(
            f"{len(exc.failures)} of {nproc} torchrun processes failed (exit code "
            f"{', '.join(map(str, codes))}); their messages are above"
        ) from None
