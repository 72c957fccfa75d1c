"""The retrain flow killed from outside, for tests/test_faults_retrain.py and benchmarks/kill_retrain.py.

The flow runs as `python -m flows.retrain` would, in a new process group, and SIGKILLs itself right after its Nth
file write ("after:N") or with the Nth file written but not yet renamed ("before:N"; finetuner/common/stage.py
FINETUNER_KILL_AT); then the rest of its process group is SIGKILLed. A promotion's writes are, in order:
1 the staged champion, 2 the registry line, 3 the card, 4 models/champion.pt (a decision to keep writes only 1, the
registry line). The flow's pipeline step is skipped: the caller runs `dvc repro` first, so it would have nothing
to do, and a stage's own kills are tests/test_faults_kill.py's subject.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.toy_dvc import REPO_ROOT

DRIVER = (
    "import sys, flows.retrain as r; r.run_pipeline = lambda project_dir: None; "
    "sys.exit(r.main(['--project-dir', sys.argv[1]]))"
)


def killed_retrain(project: Path, kill_at: str, api_url: str, timeout_s: float = 900) -> tuple[int, str]:
    """(exit code, output) of a retrain run on `project` (Prefect server `api_url`), killed at `kill_at`."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PREFECT_API_URL": api_url, "FINETUNER_KILL_AT": kill_at}
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(project)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever the flow had started dies with it
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, output
