"""One pipeline run per workspace: an OS lock that stages and flows take, naming its holder to whoever is refused.

A flow (`flows/`) takes it for its whole run and waits its turn (a queue); every stage takes it for its own run
and never waits: a second `dvc repro` or a hand-run stage beside a flow run is refused at once, with the holder's
process id, what it is and since when. Stages a flow starts (through `dvc repro`) inherit the flow's token in
the environment and run under the flow's lock. An flock dies with its process: a killed run never leaves a stale
lock behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("finetuner.workspace")

TOKEN_ENV = "FINETUNER_WORKSPACE_TOKEN"


class WorkspaceBusy(RuntimeError):
    """Another run holds the workspace; the message names it."""


def lock_path(project_dir: str | Path) -> Path:
    """Inside .dvc/tmp (which DVC keeps out of git) in a DVC project, else a hidden file in the project."""
    project = Path(project_dir)
    dvc_dir = project / ".dvc"
    return dvc_dir / "tmp" / "finetuner-workspace.lock" if dvc_dir.is_dir() else project / ".finetuner-workspace.lock"


def describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"{holder['what']} (pid {holder['pid']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (no details recorded)"


@contextlib.contextmanager
def workspace_lock(project_dir: str | Path, what: str, wait_s: float = 0.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the workspace for `what`; wait up to `wait_s` for it (0 = refuse at once), then WorkspaceBusy."""
    path = lock_path(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with path.open("a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"{Path(project_dir).resolve()} is in use by {describe_holder(path)}; "
                                        "wait for it to finish (or stop it), then run again") from None
                if not announced:
                    log.info("waiting for %s to release the workspace", describe_holder(path))
                    announced = True
                time.sleep(poll_s)
        token = secrets.token_hex(8)
        previous = os.environ.get(TOKEN_ENV)
        try:
            _record_holder(handle, what, token)
            os.environ[TOKEN_ENV] = token  # inherited by the stages this run starts
            yield
        finally:
            _restore_env(previous)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on `path` (created if absent), waiting for it; like the workspace lock it dies with
    its process, so a killed holder never leaves it stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _record_holder(handle, what: str, token: str) -> None:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid(), "what": what, "since": since, "token": token}) + "\n")
    handle.flush()


def _restore_env(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(TOKEN_ENV, None)
    else:
        os.environ[TOKEN_ENV] = previous


def held_by_parent(project_dir: str | Path) -> bool:
    """True when the run holding the workspace started this process (its token is in our environment)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return False
    try:
        return json.loads(lock_path(project_dir).read_text(encoding="utf-8")).get("token") == token
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def stage_lock(stage: str, project_dir: str | Path = ".") -> Iterator[None]:
    """A stage's hold on the workspace: nothing when its parent flow holds it, else taken at once or refused."""
    if held_by_parent(project_dir):
        yield
        return
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
    with workspace_lock(project_dir, f"stage {stage} ({command})"):
        yield
