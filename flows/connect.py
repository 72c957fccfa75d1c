"""Which Prefect server a locally started flow talks to.

`python -m flows.finetune` / `python -m flows.retrain` use the server in prefect.toml (`make server`) when it
answers, so their runs show in its UI; otherwise a temporary local server, with its own database so it never
waits on the SQLite file of a server that is stopped or starting.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

log = logging.getLogger("finetuner.flows")


def server_answers(api_url: str, timeout_s: float = 3.0) -> bool:
    """True when `<api_url>/health` answers 200."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def prefect_backend() -> Iterator[str]:
    """Run the enclosed flow against the configured server if it answers, else a temporary one; yields which."""
    url = get_current_settings().api.url
    if url and server_answers(url):
        yield url
        return
    if url:
        log.info("no Prefect server answers at %s (`make server` starts one); using a temporary one", url)
    with tempfile.TemporaryDirectory(prefix="finetuner-prefect-") as home:
        database = f"sqlite+aiosqlite:///{Path(home) / 'prefect.db'}"
        # The temporary server can take longer than Prefect's default 20 s to start on a busy small machine.
        settings = {
            PREFECT_SERVER_DATABASE_CONNECTION_URL: database,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180,
        }
        with temporary_settings(updates=settings, restore_defaults={PREFECT_API_URL}):
            yield "a temporary local server"
