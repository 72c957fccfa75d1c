"""One pipeline run per workspace: an OS lock that stages and flows take, naming its holder to whoever is refused.

A flow (`flows/`) takes it for its whole run and waits its turn (a queue); every stage takes it for its own run
and never waits: a second `dvc repro` or a hand-run stage beside a flow run is refused at once, with the holder's
process id, what it is and since when. Stages a flow starts (through `dvc repro`) inherit the flow's token in
the environment and run under the flow's lock. A stage that a plain `dvc repro` (or `dvc exp run`) starts takes
the lock for that whole dvc run: a keeper process holds it until dvc exits, so a flow queues behind all of it
rather than slipping in between two stages and then failing on DVC's own lock. An flock dies with its process
(and the keeper with dvc): a killed run never leaves a stale lock behind.

DVC refuses a second `dvc repro` by itself, before any stage runs and so before this lock is asked; its message
("Unable to acquire lock", or "... is busy, it is being blocked by: (PID n)") is explained by

    python -m finetuner.common.workspace_lock        # who holds the workspace: what, pid, since when
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("finetuner.workspace")

TOKEN_ENV = "FINETUNER_WORKSPACE_TOKEN"
KEEPER_POLL_S = 0.2  # how soon after dvc exits its keeper lets the workspace go


class WorkspaceBusy(RuntimeError):
    """Another run holds the workspace; the message names it."""


def lock_path(project_dir: str | Path) -> Path:
    """Inside .dvc/tmp (which DVC keeps out of git) in a DVC project, else a hidden file in the project."""
    project = Path(project_dir)
    dvc_dir = project / ".dvc"
    return dvc_dir / "tmp" / "finetuner-workspace.lock" if dvc_dir.is_dir() else project / ".finetuner-workspace.lock"


def _holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(path: Path) -> str:
    holder = _holder(path)
    try:
        return f"{holder['what']} (pid {holder['pid']}, since {holder['since']})"
    except KeyError:
        return "another process (no details recorded)"


def _busy(project_dir: str | Path, path: Path) -> WorkspaceBusy:
    return WorkspaceBusy(
        f"{Path(project_dir).resolve()} is in use by {describe_holder(path)}; "
        "wait for it to finish (or stop it), then run again"
    )


def _alive(pid: int, create_time: float | None = None) -> bool:
    """The process runs (a zombie has finished: only its parent has not collected it yet)."""
    import psutil

    try:
        process = psutil.Process(pid)
        same = create_time is None or abs(process.create_time() - create_time) < 0.01
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def workspace_lock(project_dir: str | Path, what: str, wait_s: float = 0.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the workspace for `what`; wait up to `wait_s` for it (0 = refuse at once), then WorkspaceBusy."""
    path = lock_path(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    grace = time.monotonic() + 5 * KEEPER_POLL_S
    with path.open("a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A dvc run that just ended: its keeper lets go within KEEPER_POLL_S; worth a moment's wait.
                if time.monotonic() >= deadline and not _ending_dvc_run(path, grace):
                    raise _busy(project_dir, path) from None
                if not announced:
                    log.info("waiting for %s to release the workspace", describe_holder(path))
                    announced = True
                time.sleep(poll_s if time.monotonic() < deadline else KEEPER_POLL_S)
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


def _ending_dvc_run(path: Path, until: float) -> bool:
    holder = _holder(path)
    return (
        str(holder.get("token", "")).startswith("dvc:")
        and isinstance(holder.get("pid"), int)
        and not _alive(holder["pid"])
        and time.monotonic() < until
    )


def _record_holder(handle, what: str, token: str, pid: int | None = None, since: str | None = None) -> None:
    since = since or datetime.now(UTC).isoformat(timespec="seconds")
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps({"pid": pid or os.getpid(), "what": what, "since": since, "token": token}) + "\n")
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
    dvc = _dvc_ancestor()
    if dvc is not None:
        hold_for_dvc_run(project_dir, dvc)
        yield
        return
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
    with workspace_lock(project_dir, f"stage {stage} ({command})"):
        yield


def _dvc_ancestor():
    """The `dvc` process that started this stage (DVC sets DVC_ROOT for its stage commands), or None."""
    if "DVC_ROOT" not in os.environ:
        return None
    import psutil

    try:
        for parent in psutil.Process().parents():
            if any(Path(part).name == "dvc" for part in parent.cmdline()[:3]):  # dvc, python dvc, python -m dvc
                return parent
    except psutil.Error:
        pass
    return None


def hold_for_dvc_run(project_dir: str | Path, dvc) -> None:
    """Hold the workspace until the `dvc` process `dvc` (a psutil.Process) exits; nothing if it holds it already.

    The flock belongs to the open file, which a keeper process inherits: the hold outlives this stage and ends
    when dvc ends (or with the process group, when it is killed). WorkspaceBusy if anyone else holds it."""
    token = f"dvc:{dvc.pid}:{dvc.create_time()}"
    path = lock_path(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    grace = time.monotonic() + 5 * KEEPER_POLL_S
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _holder(path).get("token") == token:  # an earlier stage of this dvc run took it
                    return
                if not _ending_dvc_run(path, grace):  # (the keeper of a dvc run that just ended: a moment)
                    raise _busy(project_dir, path) from None
                time.sleep(KEEPER_POLL_S)
        command = dvc.cmdline()
        start = next(i for i, part in enumerate(command) if Path(part).name == "dvc")
        since = datetime.fromtimestamp(dvc.create_time(), UTC).isoformat(timespec="seconds")
        _record_holder(handle, " ".join(["dvc", *command[start + 1 :]]), token, pid=dvc.pid, since=since)
        keeper = [
            sys.executable,
            "-m",
            "finetuner.common.workspace_lock",
            "--keep",
            str(handle.fileno()),
            str(dvc.pid),
            repr(dvc.create_time()),
        ]
        subprocess.Popen(
            keeper,
            pass_fds=(handle.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
        )


def _keep(pid: int, create_time: float) -> None:
    """The keeper's life: as long as dvc's (the inherited lock file descriptor is closed when it returns)."""
    while _alive(pid, create_time):
        time.sleep(KEEPER_POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Say who holds the workspace (the current folder's project).")
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--keep", nargs=3, metavar=("FD", "PID", "CREATE_TIME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.keep:
        _keep(int(args.keep[1]), float(args.keep[2]))
        return 0
    try:
        with workspace_lock(args.project_dir, "a check"):
            print(f"{Path(args.project_dir).resolve()}: free (no pipeline run holds it)")
    except WorkspaceBusy as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
