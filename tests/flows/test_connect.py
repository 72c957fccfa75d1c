"""Project-local Prefect settings: `prefect` typed in the project root talks to the project's server and home with
analytics off, and the flows' local entry points fall back to a temporary server when none answers."""

from __future__ import annotations

import logging
import os
import subprocess

from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from flows.connect import prefect_backend
from tests.prefect_server import BIN, free_port


def _without_prefect_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}


def test_prefect_cli_in_project_root_reads_prefect_toml(repo_root):
    shown = subprocess.run(
        [BIN / "prefect", "config", "view", "--show-sources"],
        cwd=repo_root,
        env=_without_prefect_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "PREFECT_API_URL='http://127.0.0.1:4200/api' (from prefect.toml)" in shown
    assert "PREFECT_HOME='.prefect' (from prefect.toml)" in shown
    assert "PREFECT_SERVER_ANALYTICS_ENABLED='False' (from prefect.toml)" in shown


def test_local_runs_use_a_temporary_server_when_none_answers(caplog):
    caplog.set_level(logging.INFO, logger="finetuner.flows")
    dead = f"http://127.0.0.1:{free_port()}/api"
    caplog.set_level(logging.INFO, logger="finetuner.flows")
    with temporary_settings(updates={PREFECT_API_URL: dead}), prefect_backend() as backend:
        assert backend == "a temporary local server"
        settings = get_current_settings()
        assert not settings.api.url  # Prefect then starts its ephemeral server
        assert "finetuner-prefect-" in settings.server.database.connection_url.get_secret_value()
    assert f"no Prefect server answers at {dead}" in caplog.text  # said, not silently switched
