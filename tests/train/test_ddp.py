"""DDP training under torchrun on the CPU (gloo, 2 processes) against one process with the same global batch.

One tiny project (resnet18 at 32 px, 12 training images, batch 4, two steps per epoch, layer4 + head trained with
`lr: auto`) is trained three ways: in this process (the reference), by the params switch `train.nproc: 2` (the stage
relaunches itself under torchrun), and by `torchrun --nproc-per-node 2` SIGKILLed (its whole process group) after
the first epoch's checkpoint, then run again. The final weights must agree within 1e-3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from finetuner.common.stage import load_params
from finetuner.train.data import epoch_indices
from finetuner.train.launch import run_training_entry
from finetuner.train.stage import run_training_stage
from tests.train_fixtures import make_splits

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS = """\
seed: 0
data: {raw_dir: data/raw, image_size: 32, workers: 1}
model: {arch: resnet18, weights: null}
train: {batch_size: 4, device: cpu, max_steps_per_epoch: 2, optimizer: sgd, nproc: NPROC}
stages:
  head:    {epochs: 3, train: [layer4, head], lr: {layer4: 1.0e-2, head: 1.0e-1}, warmup_epochs: 1}
  partial: {epochs: 0, train: [layer4, head], lr: {head: 1.0e-3}}
  full:    {epochs: 0, train: [all], lr: {head: 1.0e-3}}
"""


def project(root: Path, nproc: int) -> Path:
    make_splits(root)
    (root / "params.yaml").write_text(PARAMS.replace("NPROC", str(nproc)))
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """Final weights of the stage trained in one process."""
    root = project(tmp_path_factory.mktemp("single"), nproc=1)
    run_training_stage("train_head", load_params(root / "params.yaml"), root)
    return torch.load(root / "models" / "train_head" / "last.pt", weights_only=True)


def environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("FINETUNER_KILL_AT", None)
    return env


def assert_same_weights(root: Path, reference: dict) -> None:
    trained = torch.load(root / "models" / "train_head" / "last.pt", weights_only=True)
    differences = {
        name: (value.float() - reference["state_dict"][name].float()).abs().max().item()
        for name, value in trained["state_dict"].items()
    }
    assert max(differences.values()) < 1e-3, sorted(differences.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_each_global_batch_of_one_process(world_size: int) -> None:
    one = epoch_indices(11, 4, seed=3, epoch=1, shuffle=True, drop_last=True)
    shares = [epoch_indices(11, 4, 3, 1, True, rank, world_size, drop_last=True) for rank in range(world_size)]
    assert all(len(share) == len(one) for share in shares)
    for step, batch in enumerate(one):
        assert sorted(torch.cat([share[step] for share in shares]).tolist()) == sorted(batch.tolist())


def test_head_on_cached_features_stays_in_one_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = project(tmp_path, nproc=2)
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(
        text.replace("train: [layer4, head], lr: {layer4: 1.0e-2, head: 1.0e-1}", "train: [head], lr: {head: 1.0e-1}")
    )
    params = load_params(root / "params.yaml")
    assert params.stages.head.train == ("head",) and params.train.nproc == 2
    with contextlib.chdir(root), caplog.at_level(logging.INFO, logger="finetuner.train"):
        run_training_entry("train_head", params)
    assert "train_head trains the head on cached features in one process (train.nproc 2 not used)" in caplog.text
    assert (root / "models" / "train_head" / "best.pt").is_file()


def test_params_switch_runs_the_stage_under_torchrun_and_matches_one_process(tmp_path: Path, reference) -> None:
    root = project(tmp_path, nproc=2)
    done = subprocess.run(
        [sys.executable, "-m", "tasks.train", "train_head"],
        cwd=root,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes under torchrun" in done.stderr and "rank 1 of 2 (gloo" in done.stderr
    assert_same_weights(root, reference)


def test_torchrun_group_killed_after_a_checkpoint_resumes_and_matches(tmp_path: Path, reference) -> None:
    root = project(tmp_path, nproc=1)  # torchrun started by hand: train.nproc is not consulted
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "tasks.train",
        "train_head",
    ]
    with (tmp_path / "killed.log").open("w") as log:
        first = subprocess.Popen(command, cwd=root, env=environment(), stdout=log, stderr=log, start_new_session=True)
        resume, deadline = root / "checkpoints" / "train_head" / "resume.pt", time.monotonic() + 600
        while not resume.exists():
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
            time.sleep(0.01)
        workers = psutil.Process(first.pid).children(recursive=True)
        os.killpg(first.pid, signal.SIGKILL)  # the launcher's group; torchrun's workers run in sessions of their own
        first.wait()
    assert len(workers) == 2
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "workers outlived their killed launcher"
    assert not (root / "models" / "train_head" / "last.pt").exists(), "killed too late: the run had finished"
    done = subprocess.run(command, cwd=root, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train_head: resuming after epoch" in done.stderr
    assert_same_weights(root, reference)
