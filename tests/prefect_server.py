"""A real local Prefect server (`prefect server start`) in a subprocess, for tests of deployments and schedules.

Each server gets its own PREFECT_HOME (so its own SQLite database) and a free port; its output goes to
`server.log` beside the home, which tests read to assert that no service logged a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Server:
    api: str
    env: dict[str, str]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout_s: float) -> httpx.Response:
    """GET `url` until it answers 200; fail early when `process` (the one that should serve it) has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited early with {process.returncode}"
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not ready within {timeout_s} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group (server or runner and their children), SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def background(
    command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Run `command` in its own process group with output to `log`; stop it on exit."""
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def prefect_server(workdir: Path) -> Iterator[Server]:
    """`prefect server start` on a free port with its home under `workdir`; yields once /api/health answers."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    log = workdir / "server.log"
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(command, env, log) as process:
        wait_for(f"{api}/health", process, 180)
        yield Server(api, env, log)
