"""Helpers for tests that drive the real `dvc` CLI in a temporary git repository (DVC needs git with a commit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run a command with this environment's `python` and `dvc` first on PATH, as in the activated .venv."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout, check=False)


def init_repo(repo: Path) -> None:
    """git init + dvc init (analytics off) + one commit of everything already in `repo`."""
    for args in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        ["dvc", "config", "core.check_update", "false"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        result = run(args, repo)
        assert result.returncode == 0, (args, result.stderr)
