"""Same inputs, same bytes: a training stage rerun on identical inputs writes identical files, whatever the
process's random state was before it started (the head's initial weights are seeded from `seed` and the stage)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from finetuner.checkpoint import load_pipeline_checkpoint
from finetuner.seeding import derived_seed
from tasks.training import run_training_stage
from tests.train_fixtures import make_splits, tiny_params


def test_derived_seeds_differ_by_stage_and_seed_and_are_stable() -> None:
    seeds = {derived_seed(s, name) for s in (0, 1) for name in ("train_head", "train_partial")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert derived_seed(0, "train_head") == derived_seed(0, "train_head")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "cache" not in p.parts}


@pytest.mark.parametrize("stage_epochs", [1])
def test_train_head_twice_gives_the_same_bytes(tmp_path: Path, stage_epochs: int) -> None:
    params = tiny_params(**{"stages.head.epochs": stage_epochs})
    roots = [tmp_path / "a", tmp_path / "b"]
    for k, root in enumerate(roots):
        make_splits(root)
        torch.manual_seed(1000 + k)  # whatever ran before in this process must not matter
        run_training_stage("train_head", params, root)
    first, second = (load_pipeline_checkpoint(r / "models/train_head/best.pt") for r in roots)
    for name, tensor in first["state_dict"].items():
        assert torch.equal(tensor, second["state_dict"][name]), name
    a, b = (_files(r / "models") for r in roots)
    assert a.keys() == b.keys() and a == b
    assert _files(roots[0] / "reports") == _files(roots[1] / "reports")
