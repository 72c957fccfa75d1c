"""The ingest stage end to end on tmp_path: manifest and report written, bad input refused with a clear message,
metadata rows outside the image folder never opened, and `dvc repro ingest` in a throwaway git repository."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finetuner.ingest.manifest import MANIFEST_COLUMNS
from tasks.ingest import main
from tests.odd_images import BROKEN, encode, noise_rgb

ROOT = Path(__file__).resolve().parents[2]
_OPENED: list[str] | None = None  # while a list, every file opened in this process is recorded here


def _record_opens(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_record_opens)  # audit hooks cannot be removed; this one is idle unless _OPENED is a list


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_params(project: Path, **sections: dict) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["weights"] = None  # ingest refuses a weights file that is not there (no demo backbone here)
    for section, values in sections.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with params.yaml and data/raw/images: 2 classes x 2 specimens x 2 images + 1 broken."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, data={"workers": 1})
    images = tmp_path / "data" / "raw" / "images"
    for c, label in enumerate(("cat", "dog")):
        for s in range(2):
            for i in range(2):
                write(images / label / f"s{s}" / f"{i}.jpg", encode(noise_rgb(100 * c + 10 * s + i), "JPEG"))
    write(images / "dog" / "s1" / "cut.jpg", BROKEN["truncated.jpg"][0])
    return tmp_path


def read_manifest(project: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (project / "data" / "interim" / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_stage_writes_manifest_and_report(project, caplog):
    global _OPENED
    outside = write(project / "data" / "raw" / "secret.jpg", encode(noise_rgb(7), "JPEG"))
    metadata = (
        "\ufeffpath,group,site\n"  # a spreadsheet's byte-order mark must not break the header
        "cat/s0/0.jpg,c0,A\ncat/s0/1.jpg,c0,A\n../secret.jpg,c0,A\n"
        f"{outside},c0,A\ndog/s0/9.jpg,d0,B\n"
    )
    (project / "data" / "raw" / "metadata.csv").write_text(metadata, encoding="utf-8")
    _OPENED = []
    try:
        assert main() == 0
        opened = _OPENED
    finally:
        _OPENED = None
    assert str(outside.resolve()) not in opened
    assert str((project / "data/raw/images/cat/s0/0.jpg").resolve()) in opened  # the recorder does see reads

    columns, rows = read_manifest(project)
    assert columns[: len(MANIFEST_COLUMNS)] == list(MANIFEST_COLUMNS) and "site" in columns
    assert len(rows) == 9 and not any("secret" in row["path"] for row in rows)
    by_path = {row["path"]: row for row in rows}
    assert by_path["cat/s0/1.jpg"]["group"] == "c0" and by_path["cat/s0/1.jpg"]["site"] == "A"
    assert by_path["dog/s0/0.jpg"]["group"] == "dog/s0/0.jpg"
    assert (by_path["dog/s1/cut.jpg"]["status"], by_path["dog/s1/cut.jpg"]["reason"]) == ("quarantined", "truncated")

    report = json.loads((project / "reports" / "ingest.json").read_text())
    assert report["by_status"] == {"ok": 8, "quarantined": 1}
    assert report["by_reason"] == {"truncated": 1}
    assert report["by_class"]["dog"] == {"ok": 4, "quarantined": 1}
    problems = {p["line"]: p["problem"] for p in report["metadata"]["problems"]}
    assert set(problems) == {4, 5, 6}
    assert "refused" in problems[4] and "refused" in problems[5] and "no such file" in problems[6]
    assert report["classes_too_small"] == []
    assert "dog/s0/9.jpg" in caplog.text and "no such file" in caplog.text


def test_group_pattern_and_small_classes_from_params(project, caplog):
    write_params(project, data={"workers": 1, "min_images_per_class": 5}, split={"group_pattern": r"/(?P<group>s\d)/"})
    assert main() == 0
    _, rows = read_manifest(project)
    assert {row["group_source"] for row in rows if row["status"] == "ok"} == {"pattern"}
    assert {row["group"] for row in rows} == {"s0", "s1"}
    report = json.loads((project / "reports" / "ingest.json").read_text())
    assert {finding["label"] for finding in report["classes_too_small"]} == {"cat", "dog"}
    assert "class 'cat' is too small" in caplog.text and "cannot appear in every split" in caplog.text


def test_unusable_metadata_stops_the_stage_before_writing(project, capsys):
    (project / "data" / "raw" / "metadata.csv").write_text("path,patient\ncat/s0/0.jpg,p1\n")
    assert main() == 2
    err = capsys.readouterr().err
    assert "data/raw/metadata.csv, line 1" in err and "['group']" in err
    assert not (project / "data" / "interim" / "manifest.csv").exists()


def test_missing_image_folder_is_a_clear_error(project, capsys):
    shutil.rmtree(project / "data" / "raw" / "images")
    assert main() == 2
    assert "data/raw/images: no such folder" in capsys.readouterr().err


def test_no_usable_image_fails_but_keeps_the_manifest(project, capsys):
    shutil.rmtree(project / "data" / "raw" / "images")
    write(project / "data" / "raw" / "images" / "cat" / "empty.jpg", b"")
    assert main() == 2
    assert "none of the 1 files is a usable image" in capsys.readouterr().err
    _, rows = read_manifest(project)
    assert [(row["path"], row["reason"]) for row in rows] == [("cat/empty.jpg", "empty file")]


def test_dvc_repro_ingest(project):
    """The dvc.yaml block runs the stage and records its code and params (one subprocess: it pays torch's import)."""
    for name in ("dvc.yaml", ".dvc/config", ".dvcignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, project / name)
    for package in ("finetuner", "tasks"):
        shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}  # `python` in dvc.yaml = this one
    env.update(
        {
            f"GIT_{who}_{what}": value
            for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "test"), ("EMAIL", "test@example.com"))
        }
    )
    git = ["git", "-c", "init.defaultBranch=main"]
    for command in (git + ["init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "init"]):
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    result = subprocess.run(
        [str(bin_dir / "dvc"), "repro", "ingest"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_manifest(project)
    assert len(rows) == 9
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["ingest"]
    assert {"finetuner/ingest/manifest.py", "finetuner/common/imageio.py", "data/raw"} <= {
        dep["path"] for dep in lock["deps"]
    }
    assert {"split.group_pattern", "data.max_image_pixels"} <= set(lock["params"]["params.yaml"])
