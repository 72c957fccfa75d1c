"""Running DVC (and stage scripts) as child processes, their output streamed line by line into a logger.

The flows never run stage code themselves: every stage goes through `dvc repro --single-item <stage>`, so DVC
decides what is stale and `dvc.lock` stays the one record, exactly as with a plain `dvc repro`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from finetuner.common.dvc_lock import locked_dep_hash

# How long a child gets to stop after SIGTERM before SIGKILL: enough for DVC to release its lock.
_GRACE_S = 10.0


class CommandFailed(RuntimeError):
    """A child process exited non-zero or ran past its deadline; the message has the command and the last lines."""


class StageRefused(CommandFailed):
    """A stage refused its params or input data (it exits with code 2, see finetuner.common.stage.run_stage): running it
    again cannot help, so the flows never retry it."""


# DVC reports the stage's own exit code like this when a stage command fails.
_REFUSED = re.compile(r"exited with 2\b")
REFUSED_EXIT_CODE = 2


def child_env() -> dict[str, str]:
    """The environment for DVC and the stages: this interpreter's `python` first on PATH, unbuffered output.

    DVC runs each stage's `cmd` through a shell, so `python -m tasks.x` must resolve to the same virtual
    environment as the flow, whichever way the flow was started (make, a Prefect runner, a test).
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def dvc_command(*args: str) -> list[str]:
    """`dvc <args>` through this interpreter, so the locked DVC version runs even when `dvc` is not on PATH."""
    return [sys.executable, "-m", "dvc", *args]


def stream_command(
    command: Sequence[str], cwd: str | Path, log: logging.Logger | logging.LoggerAdapter, timeout_s: float | None
) -> None:
    """Run `command` in `cwd`, logging each output line as it comes; raise CommandFailed on failure or timeout.

    The child gets its own process group so a timeout (or the flow being cancelled) stops the stage script DVC
    started as well, not only DVC.
    """
    log.info("$ %s  (in %s)", " ".join(command), cwd)
    process = subprocess.Popen(
        list(command),
        cwd=str(cwd),
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,  # universal newlines: a progress bar's carriage returns become separate lines
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    timed_out = threading.Event()
    timer = threading.Timer(timeout_s, _stop, (process, timed_out)) if timeout_s else None
    tail: list[str] = []
    try:
        if timer:
            timer.start()
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                log.info(line)
                tail = [*tail[-19:], line]
        returncode = process.wait()
    finally:
        if timer:
            timer.cancel()
        if process.poll() is None:  # interrupted (Prefect timeout, cancellation): leave no orphan behind
            _stop(process, timed_out)
    if timed_out.is_set():
        raise CommandFailed(f"`{' '.join(command)}` ran past its {timeout_s:g} s limit and was stopped")
    if returncode != 0:
        last = "\n".join(tail[-10:])
        refused = returncode == REFUSED_EXIT_CODE or bool(_REFUSED.search(last))
        error = StageRefused if refused else CommandFailed
        raise error(f"`{' '.join(command)}` exited with code {returncode}; last output:\n{last}")


def _stop(process: subprocess.Popen[str], flag: threading.Event) -> None:
    flag.set()
    for sig, wait in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def raw_data_status(project_dir: str | Path, raw_dir: str) -> str | None:
    """What `dvc status` says about the raw data dependency of `ingest`: None when it matches dvc.lock.

    Anything else (`modified`, `new`, `deleted`, or `not in dvc.lock`) means the data differs from the version the
    pipeline last ran on.
    """
    result = subprocess.run(
        dvc_command("status", "ingest", "--json"),
        cwd=str(project_dir),
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CommandFailed(f"`dvc status ingest` failed in {project_dir}:\n{result.stderr.strip()}")
    status = json.loads(result.stdout or "{}")  # e.g. {"ingest": [{"changed deps": {"data/raw": "modified"}}]}
    for entry in status.get("ingest", []):
        if isinstance(entry, dict) and raw_dir in entry.get("changed deps", {}):
            return str(entry["changed deps"][raw_dir])
    if locked_dep_hash(project_dir, "ingest", raw_dir) is None:
        return "not in dvc.lock"
    return None
