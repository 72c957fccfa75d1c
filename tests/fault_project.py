"""A tiny project for the fault tests and benchmarks/kill_matrix.py: images, params.yaml, and running the seven
stages through their real entry points (dvc.yaml's `python -m tasks.<module>` commands), in process or as
killable subprocesses."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.train_fixtures import make_images

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "dedup", "split", "train_head", "train_partial", "train_full", "evaluate")
PARAMS = """\
seed: 0
data: {raw_dir: data/raw, image_size: 32, workers: 1}
model: {arch: resnet18, weights: null}
train: {batch_size: 4, device: cpu, max_steps_per_epoch: 2}
stages:
  head:    {epochs: 2, train: [head], lr: {head: 1.0e-2}}
  partial: {epochs: 1, train: [layer4, head], lr: {layer4: 1.0e-3, head: 1.0e-2}}
  full:    {epochs: 1, train: [all], lr: {head: 1.0e-3}, lr_decay: 0.5}
evaluate: {device: cpu}
"""
# Files no later run depends on and that hold no decisions: caches (rebuilt on damage) and per-run logs.
UNTRACKED = (
    "data/raw",
    "data/cache",
    "checkpoints",
    ".dvc",
    "logs",
    "reports/test_ledger.json",
    ".finetuner-workspace.lock",
)


def make_project(root: Path, per_class: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    make_images(root, per_class=per_class)
    (root / "params.yaml").write_text(PARAMS)
    return root


def entry_point(stage: str) -> tuple[str, list[str]]:
    """The module and arguments of a stage's `python -m <module> [args]` command in dvc.yaml."""
    import yaml

    cmd = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"].split()
    return cmd[2], cmd[3:]


def run_in_process(root: Path, stage: str) -> int:
    """One stage through its real entry point, in this process (cheap: torchvision is imported once)."""
    name, args = entry_point(stage)
    module = importlib.import_module(name)
    with contextlib.chdir(root):
        return module.main(args) if name in ("tasks.split", "tasks.evaluate", "tasks.train") else module.main()


def run_subprocess(root: Path, stage: str, kill_at: str | None = None, timeout: float = 600) -> int:
    """One stage as its dvc.yaml command (`python -m tasks.<stage>`); `kill_at` ("after:N" / "before:N") SIGKILLs it
    at that write."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("FINETUNER_KILL_AT", None)
    if kill_at:
        env["FINETUNER_KILL_AT"] = kill_at
    name, args = entry_point(stage)
    done = subprocess.run(
        [sys.executable, "-m", name, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{stage} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.returncode


def outputs(root: Path) -> dict[str, bytes]:
    """Every file a run leaves, by relative path, except inputs, caches, resume state and the test ledger."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative != "params.yaml" and not relative.startswith(UNTRACKED):
            found[relative] = path.read_bytes()
    return found


def stage_outputs(stage: str) -> list[str]:
    """The outputs DVC deletes before it runs `stage` (everything in dvc.yaml but `persist: true` ones)."""
    import yaml

    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]
    found = []
    for entry in [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]:
        path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        if not (options or {}).get("persist"):
            found.append(path)
    return found


def remove_outputs(root: Path, stage: str) -> None:
    """What `dvc repro` does to a stage's outputs before running it."""
    import shutil

    for relative in stage_outputs(stage):
        target = root / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def differences(found: dict[str, bytes], expected: dict[str, bytes]) -> list[str]:
    """Paths missing, extra or with other bytes (an empty list when the runs agree byte for byte)."""
    return sorted(path for path in set(found) | set(expected) if found.get(path) != expected.get(path))
