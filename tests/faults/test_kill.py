"""Same inputs, same bytes, and every stage survives SIGKILL: the tiny pipeline runs once for reference; a forced
rerun of every stage writes byte-identical outputs; selected stages are killed from outside at a write (a
subprocess SIGKILLed right after a file landed, or with a file written but not yet renamed), then rerun as
`dvc repro` would (outputs removed, resume state and caches kept) and must end byte-identical to the reference.
benchmarks/kill_matrix.py kills every stage at more points; the README has its figures."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch

from tests.fault_project import (
    STAGES,
    differences,
    make_project,
    outputs,
    remove_outputs,
    run_in_process,
    run_subprocess,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    root = make_project(tmp_path_factory.mktemp("reference"))
    for stage in STAGES:
        assert run_in_process(root, stage) == 0, stage
    return root, outputs(root)


def test_forced_rerun_of_every_stage_writes_the_same_bytes(reference, tmp_path: Path) -> None:
    root, expected = reference
    assert {"models/best.pt", "data/splits/registry.csv", "reports/metrics.json"} <= set(expected)
    copy = tmp_path / "project"
    shutil.copytree(root, copy)
    torch.manual_seed(12345)  # whatever ran before in this process must not matter
    for stage in STAGES:
        remove_outputs(copy, stage)
        assert run_in_process(copy, stage) == 0, stage
    assert differences(outputs(copy), expected) == []


# (stage, where): "after:N" = right after the Nth file write landed; "before:N" = the Nth file fully written to its
# temporary name, not yet renamed.
KILLS = [
    ("ingest", "after:1"),  # manifest written, report not
    ("ingest", "before:2"),  # report written to its temp name, not renamed (the rerun clears the temp file)
    ("split", "after:5"),  # new registry staged, its checksum accepts old and new, not yet renamed
    ("train_head", "after:2"),  # epoch 1 of 2 finished: stage_best.pt and resume.pt written; resumes there
]


@pytest.mark.parametrize(("stage", "kill_at"), KILLS, ids=[f"{s}-{k}" for s, k in KILLS])
def test_killed_stage_reruns_to_the_same_bytes(reference, tmp_path: Path, stage: str, kill_at: str) -> None:
    root, expected = reference
    copy = tmp_path / "project"
    shutil.copytree(root, copy)
    remove_outputs(copy, stage)
    assert run_subprocess(copy, stage, kill_at) == -signal.SIGKILL
    remove_outputs(copy, stage)
    assert run_in_process(copy, stage) == 0
    assert differences(outputs(copy), expected) == []
