"""The DVC remote: `finetuner.cli.remote` configures it, `dvc push --run-cache` uploads data, models and the run
cache, and a second clone pulls them and `dvc repro` finds every stage up to date without running any."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from finetuner.cli import remote
from tests.dvc_project import run
from tests.toy_dvc import make_toy_project, stage_runs

COMMIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]


def _ok(args: list[str], cwd: Path) -> str:
    result = run(args, cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_second_clone_pulls_and_reproduces_nothing(tmp_path: Path) -> None:
    first = make_toy_project(tmp_path / "first")
    _ok(["git", "rm", "-r", "-q", "--cached", "data/raw"], first)
    _ok(["dvc", "add", "-q", "data/raw"], first)  # the raw data versioned by DVC, as the README suggests
    assert remote.main(["--project", str(first)]) == 0
    storage = tmp_path / "first-dvc-storage"  # the default: beside the project
    _ok(["dvc", "repro", "-q"], first)
    _ok(["git", "add", "-A"], first)
    _ok([*COMMIT, "pipeline ran; remote configured"], first)
    _ok(["dvc", "push", "--run-cache"], first)
    assert (storage / "files" / "md5").is_dir() and (storage / "runs").is_dir()

    second = tmp_path / "second"
    _ok(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "data" / "raw").exists() and not (second / "models" / "best.pt").exists()
    _ok(["dvc", "pull", "--run-cache"], second)
    assert (second / "models" / "best.pt").read_text() == (first / "models" / "best.pt").read_text()
    assert sorted(p.name for p in (second / "data/raw/images/cat").iterdir()) == ["img0.txt", "img1.txt", "img2.txt"]
    assert "up to date" in _ok(["dvc", "repro"], second)
    assert stage_runs(second) == []  # no stage command ran in the clone


def test_cloud_url_without_its_plugin_is_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    project = make_toy_project(tmp_path / "p")
    if importlib.util.find_spec("dvc_s3") is not None:
        pytest.skip("dvc-s3 is installed here")
    assert remote.main(["s3://bucket/finetuner", "--project", str(project)]) == 2
    assert "uv add 'dvc[s3]'" in capsys.readouterr().err
    assert remote.main(["ftp2://x", "--project", str(project)]) == 2
    assert "unknown scheme 'ftp2'" in capsys.readouterr().err
    assert "storage" not in (project / ".dvc" / "config").read_text()
