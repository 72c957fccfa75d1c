"""One run per workspace: a stage or `dvc repro` beside a flow run (or beside another stage) is refused at once,
naming the holder, and writes nothing; a second flow run waits its turn; stages a flow starts run under its lock; a
plain `dvc repro` holds the workspace from its first stage to its end, and a second one is refused by DVC at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from finetuner.common.workspace_lock import (
    TOKEN_ENV,
    WorkspaceBusy,
    describe_holder,
    lock_path,
    main,
    stage_lock,
    workspace_lock,
)
from tests.dvc_project import init_repo
from tests.fault_project import REPO_ROOT, make_project


def _ingest(
    project: Path,
    env_extra: dict[str, str] | None = None,
    command: tuple[str, ...] = (sys.executable, "-m", "tasks.ingest"),
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        **(env_extra or {}),
    )
    return subprocess.run(list(command), cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", per_class=3)


def test_a_stage_beside_a_flow_run_is_refused_naming_it_and_writes_nothing(project: Path) -> None:
    with workspace_lock(project, "Prefect flow run finetune/brave-otter"):
        token = os.environ[TOKEN_ENV]
        os.environ.pop(TOKEN_ENV)  # a process the flow did not start
        try:
            refused = _ingest(project)
        finally:
            os.environ[TOKEN_ENV] = token
        assert refused.returncode == 2, refused.stderr
        assert "finetune/brave-otter" in refused.stderr and f"pid {os.getpid()}" in refused.stderr
        assert "Traceback" not in refused.stderr and not (project / "data/interim").exists()
        started_by_flow = _ingest(project, {TOKEN_ENV: token})  # what `dvc repro` inside the flow inherits
        assert started_by_flow.returncode == 0, started_by_flow.stderr
    assert (project / "data/interim/manifest.csv").is_file()


def test_a_stage_beside_another_stage_is_refused(project: Path) -> None:
    with stage_lock("train_head", project):
        refused = _ingest(project)
    assert refused.returncode == 2 and "stage train_head" in refused.stderr


def test_a_second_flow_run_waits_its_turn_or_gives_up_naming_the_holder(tmp_path: Path) -> None:
    order: list[str] = []

    def first() -> None:
        with workspace_lock(tmp_path, "flow run one"):
            order.append("one starts")
            time.sleep(1.5)
            order.append("one ends")

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.3)
    with pytest.raises(WorkspaceBusy, match="flow run one"):
        with workspace_lock(tmp_path, "flow run impatient", wait_s=0.2, poll_s=0.05):
            pass
    with workspace_lock(tmp_path, "flow run two", wait_s=30, poll_s=0.05):
        order.append("two starts")
    thread.join()
    assert order == ["one starts", "one ends", "two starts"]


def test_dvc_repro_beside_a_flow_run_is_refused_at_its_first_stage(project: Path) -> None:
    (project / "dvc.yaml").write_text(
        "stages:\n  ingest:\n    cmd: python -m tasks.ingest\n    deps: [data/raw]\n"
        "    outs: [data/interim/manifest.csv]\n"
    )
    init_repo(project)
    with workspace_lock(project, "Prefect flow run retrain/nightly"):
        token = os.environ.pop(TOKEN_ENV)
        try:
            refused = _ingest(project, command=("dvc", "repro"))
        finally:
            os.environ[TOKEN_ENV] = token
    assert refused.returncode != 0
    assert "retrain/nightly" in refused.stderr + refused.stdout
    assert not (project / "data/interim/manifest.csv").exists() and not (project / "dvc.lock").exists()
    done = _ingest(project, command=("dvc", "repro"))
    assert done.returncode == 0, done.stderr


# A stage that holds its place until the test lets it go (the `go` file), then writes its output; through
# stage_lock like every real stage, without the real stages' imports.
SLOW_STAGE = """
import sys, time
from pathlib import Path
from finetuner.common.workspace_lock import WorkspaceBusy, stage_lock
name, out = sys.argv[1], sys.argv[2]
try:
    with stage_lock(name):
        deadline = time.monotonic() + 120
        while name == "first" and not Path("go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0 if name == "second" else 0)
        Path(out).write_text(name + "\\n")
except WorkspaceBusy as exc:
    sys.exit(f"{name}: {exc}")
"""


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    return {**env, "PYTHONPATH": str(REPO_ROOT), "PATH": str(Path(sys.executable).parent) + os.pathsep + env["PATH"]}


def _wait_for(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.1)


def test_a_dvc_repro_holds_the_workspace_from_its_first_stage_to_its_end(tmp_path: Path, capsys) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "stage.py").write_text(SLOW_STAGE)
    (project / "dvc.yaml").write_text(
        "stages:\n  first:\n    cmd: python stage.py first first.txt\n    outs: [first.txt]\n"
        "  second:\n    cmd: python stage.py second second.txt\n    deps: [first.txt]\n    outs: [second.txt]\n"
    )
    init_repo(project)
    dvc = [sys.executable, "-m", "dvc", "repro"]
    first = subprocess.Popen(dvc, cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: f"pid {first.pid}" in describe_holder(lock_path(project)), "hold by the dvc run")
        with pytest.raises(WorkspaceBusy, match=rf"dvc repro \(pid {first.pid}, since "):
            with stage_lock("ingest", project):  # a stage run by hand, between or during the dvc run's stages
                pass
        assert main(["--project-dir", str(project)]) == 1  # `python -m finetuner.common.workspace_lock`: who holds it
        assert f"dvc repro (pid {first.pid}" in capsys.readouterr().out
        # DVC refuses a second `dvc repro` itself, before any stage (so before our lock) is asked; it cannot have
        # waited for the first, which is still held at its first stage until `go` appears.
        second = subprocess.run(dvc, cwd=project, env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert second.returncode != 0 and "lock" in (second.stdout + second.stderr).lower(), second.stderr
        (project / "go").write_text("")
        # A flow run queues behind the whole dvc run, not just behind its current stage.
        with workspace_lock(project, "flow run", wait_s=300, poll_s=0.05):
            assert first.poll() is not None
    finally:
        (project / "go").write_text("")
        output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output
    assert (project / "first.txt").read_text() == "first\n" and (project / "second.txt").read_text() == "second\n"
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == {"first", "second"}
