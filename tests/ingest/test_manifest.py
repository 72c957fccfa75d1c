"""ingest core: every file listed once, odd files accepted, broken ones quarantined, metadata applied safely."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import finetuner.ingest.manifest as ingest_core
from finetuner.ingest.manifest import (
    MANIFEST_COLUMNS,
    OK,
    QUARANTINED,
    build_manifest,
    check_classes,
    inspect_files,
    list_files,
    missing_files,
    resolve_groups,
    summarize,
)
from finetuner.ingest.metadata import MetadataError, normalise_relpath, parse_metadata
from tests.odd_images import BROKEN, VALID, encode, noise_rgb


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A raw image folder with every odd-but-valid and every broken kind of file, plus layout oddities."""
    root = tmp_path / "raw" / "images"
    for name, (data, _, _) in VALID.items():
        write(root / "cat" / "specimen1" / name, data)
    for index in range(3):
        write(root / "dog" / f"d{index}.jpg", encode(noise_rgb(10 + index), "JPEG"))
    for name, (data, _) in BROKEN.items():
        write(root / "dog" / "broken" / name, data)
    write(root / "cat" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / ".cache" / "thumb.png", encode(noise_rgb(20), "PNG"))  # a valid image, but in a hidden folder
    write(root / "loose.jpg", encode(noise_rgb(21), "JPEG"))  # no label folder
    (root / "dog" / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    return root


def manifest_for(images: Path, metadata_text: str | None = None, pattern: str | None = None) -> dict[str, dict]:
    metadata = parse_metadata(metadata_text, "metadata.csv") if metadata_text is not None else None
    checks = inspect_files(images, list_files(images), workers=1)
    return {row["path"]: row for row in build_manifest(checks, metadata, pattern)}


def test_every_file_is_listed_once_and_nothing_dropped(images):
    on_disk = sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if p.is_file() or p.is_symlink())
    assert list_files(images) == on_disk
    rows = manifest_for(images)
    assert sorted(rows) == on_disk
    assert all(row["status"] in (OK, QUARANTINED) for row in rows.values())
    assert all(bool(row["reason"]) == (row["status"] == QUARANTINED) for row in rows.values())


def test_odd_but_valid_files_are_ok_with_rotated_size(images):
    rows = manifest_for(images)
    for name, (data, (width, height), fmt) in VALID.items():
        row = rows[f"cat/specimen1/{name}"]
        assert (row["status"], row["label"], row["format"]) == (OK, "cat", fmt), name
        assert (row["width"], row["height"]) == (width, height), name
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["size_bytes"] == len(data)


def test_broken_files_are_quarantined_with_their_reason(images):
    rows = manifest_for(images)
    for name, (_, reason) in BROKEN.items():
        row = rows[f"dog/broken/{name}"]
        assert (row["status"], row["reason"], row["label"]) == (QUARANTINED, reason, "dog"), name
    assert rows["cat/.DS_Store"]["reason"] == "not an image"
    assert rows[".cache/thumb.png"]["reason"] == "not an image"
    assert rows["loose.jpg"]["reason"] == "no label folder"
    assert rows["dog/dangling.jpg"]["reason"] == "unreadable" and rows["dog/dangling.jpg"]["sha256"] == ""


def test_permission_denied_is_unreadable(images, monkeypatch):
    target = images / "dog" / "d0.jpg"
    if os.geteuid() != 0:  # root reads anything, so there the denial is simulated
        target.chmod(0)
    else:
        real_open = Path.open

        def deny(path: Path, *args, **kwargs):
            if path == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(Path, "open", deny)
    row = manifest_for(images)["dog/d0.jpg"]
    assert (row["status"], row["reason"]) == (QUARANTINED, "unreadable")
    assert "Permission denied" in row["detail"]


def test_pipes_are_not_read(images):
    os.mkfifo(images / "cat" / "pipe.jpg")  # opening it for reading would block the scan forever
    check = inspect_files(images, ["cat/pipe.jpg"], workers=1)["cat/pipe.jpg"]
    assert (check.reason, check.detail) == ("unreadable", "not a regular file (a pipe, socket or device)")


def test_folders_that_cannot_be_listed_are_reported(images, monkeypatch):
    real_scandir = os.scandir
    locked = images / "dog" / "broken"

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root lists anything, so the denial is simulated
    paths = list_files(images)
    assert "dog/broken" in paths and not any(path.startswith("dog/broken/") for path in paths)
    row = manifest_for(images)["dog/broken"]
    assert (row["reason"], row["detail"]) == ("unreadable", "a folder whose contents could not be listed")


def test_parallel_scan_matches_serial(images, monkeypatch):
    paths = list_files(images)
    serial = inspect_files(images, paths, workers=1)
    monkeypatch.setattr(ingest_core, "SERIAL_BELOW", 2)
    assert inspect_files(images, paths, workers=2) == serial


def test_decompression_bomb_threshold_is_applied(images):
    checks = inspect_files(images, ["dog/d0.jpg", "cat/specimen1/bitmap.bmp"], max_pixels=100, workers=1)
    assert {check.reason for check in checks.values()} == {"decompression bomb"}


# --- metadata.csv ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["../secret.jpg", "/etc/passwd", "cat/../../secret.jpg", "..\\secret.jpg", "C:\\data\\x.jpg", "  "]
)
def test_paths_outside_the_image_folder_are_refused(raw):
    path, problem = normalise_relpath(raw)
    assert path == "" and problem
    metadata = parse_metadata(f"path,group\n{raw},g1\ncat/a.jpg,g2\n")
    assert list(metadata.entries) == ["cat/a.jpg"]
    assert metadata.problems[0].line == 2


def test_harmless_path_spellings_are_normalised():
    assert normalise_relpath("./cat//a.jpg ") == ("cat/a.jpg", "")
    assert normalise_relpath("cat\\s1\\a.jpg") == ("cat/s1/a.jpg", "")


@pytest.mark.parametrize("header", ["file,group", "path,specimen", "path", ""])
def test_missing_required_columns_name_file_and_line(header):
    with pytest.raises(MetadataError) as caught:
        parse_metadata(f"{header}\ncat/a.jpg,g\n", "data/raw/metadata.csv")
    message = str(caught.value)
    assert "data/raw/metadata.csv, line 1" in message and "missing column" in message


def test_duplicate_and_contradicting_rows():
    metadata = parse_metadata(
        "path,group\ncat/a.jpg,g1\ncat/a.jpg,g1\ncat/b.jpg,g1\ncat/b.jpg,g2\ncat/c.jpg,\ncat/d.jpg,g3,extra\n"
    )
    assert metadata.entries["cat/a.jpg"].group == "g1"
    assert "cat/b.jpg" not in metadata.entries and metadata.conflicts["cat/b.jpg"] == (4, 5)
    described = [problem.describe("m.csv") for problem in metadata.problems]
    assert any("m.csv, line 3" in text and "duplicate of line 2" in text for text in described)
    assert any("m.csv, line 5" in text and "contradicts line 4" in text for text in described)
    assert any("line 6" in text and "empty group" in text for text in described)
    assert any("line 7" in text and "more fields" in text for text in described)
    assert metadata.n_rows == 6


def test_metadata_groups_labels_and_extra_columns_reach_the_manifest(images):
    text = (
        "path,group,label,status,site\n"
        "cat/specimen1/UPPER.JPG,patient7,lion,x,A\n"
        "dog/d0.jpg,patient7,,y,B\n"
        "loose.jpg,patient9,cat,,C\n"
        "dog/d1.jpg,p1\n"
        "dog/d1.jpg,p2\n"
    )
    rows = manifest_for(images, text)
    upper = rows["cat/specimen1/UPPER.JPG"]
    assert (upper["label"], upper["group"], upper["group_source"]) == ("lion", "patient7", "metadata")
    assert (upper["site"], upper["meta_status"], upper["status"]) == ("A", "x", OK)  # ours is not overwritten
    assert (rows["dog/d0.jpg"]["label"], rows["dog/d0.jpg"]["group"]) == ("dog", "patient7")
    assert (rows["loose.jpg"]["status"], rows["loose.jpg"]["label"]) == (OK, "cat")  # metadata supplies the label
    assert (rows["dog/d1.jpg"]["status"], rows["dog/d1.jpg"]["reason"]) == (QUARANTINED, "conflicting metadata")
    assert rows["dog/d2.jpg"]["site"] == "" and rows["dog/d2.jpg"]["group_source"] == "image"
    assert list(next(iter(rows.values())))[: len(MANIFEST_COLUMNS)] == list(MANIFEST_COLUMNS)


def test_rows_for_missing_files_are_reported():
    metadata = parse_metadata("path,group\ncat/a.jpg,g\ncat/gone.jpg,g\n")
    problems = missing_files(metadata, ["cat/a.jpg"])
    assert [(p.line, p.path) for p in problems] == [(3, "cat/gone.jpg")]
    assert "no such file" in problems[0].problem


# --- groups and classes ---------------------------------------------------------------------------------------


def test_group_precedence_metadata_then_pattern_then_image():
    metadata = parse_metadata("path,group\ncat/p01/a.jpg,declared\n")
    paths = ["cat/p01/a.jpg", "cat/p01/b.jpg", "cat/p02/c.jpg", "cat/loose.jpg"]
    groups = resolve_groups(paths, metadata, r"/(?P<group>p\d+)/")
    assert [(g.name, g.source) for g in groups.values()] == [
        ("declared", "metadata"),
        ("p01", "pattern"),
        ("p02", "pattern"),
        ("cat/loose.jpg", "image"),
    ]
    assert all(g.source == "image" and g.name == path for path, g in resolve_groups(paths).items())


def _row(label: str, group: str, status: str = OK) -> dict:
    return {"path": f"{label}/{group}", "label": label, "group": group, "status": status, "reason": ""}


def test_small_classes_are_reported():
    rows = [_row("big", f"g{i}") for i in range(5)]
    rows += [_row("few", "g1"), _row("few", "g2", QUARANTINED)]
    rows += [_row("onegroup", "g1") for _ in range(6)]
    rows += [_row("dead", "g1", QUARANTINED)]
    findings = {f["label"]: f for f in check_classes(rows, min_images=3, n_splits=3)}
    assert set(findings) == {"few", "onegroup", "dead"}
    assert findings["few"]["usable"] == 1 and "min_images_per_class = 3" in findings["few"]["problems"][0]
    assert findings["onegroup"]["groups"] == 1 and "cannot appear in every split" in findings["onegroup"]["problems"][0]
    assert findings["dead"]["usable"] == 0
    assert "onegroup" not in {f["label"] for f in check_classes(rows, min_images=3, n_splits=1)}


def test_summary_counts(images):
    rows = list(manifest_for(images).values())
    summary = summarize(rows)
    assert summary["n_files"] == len(rows) == sum(summary["by_status"].values())
    assert summary["by_status"][OK] == len(VALID) + 3
    assert summary["by_reason"]["truncated"] == 2
    assert summary["by_reason"]["not an image"] == 4  # 2 junk files, .DS_Store, the hidden folder's image
    assert summary["by_class"]["cat"] == {OK: len(VALID), QUARANTINED: 1}
    assert len(summary["quarantined"]) == summary["by_status"][QUARANTINED]


def test_symlinked_folders_are_followed_once(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "a.jpg", encode(noise_rgb(30), "JPEG"))
    images = tmp_path / "images"
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (images / "cat" / "linked_again").symlink_to(elsewhere, target_is_directory=True)
    (images / "cat" / "loop").symlink_to(images / "cat", target_is_directory=True)
    assert list_files(images) == ["cat/linked/a.jpg"]


@given(st.text(alphabet="ab./\\:C ", max_size=12))
def test_accepted_metadata_paths_stay_inside_the_image_folder(raw):
    path, problem = normalise_relpath(raw)
    assert bool(path) != bool(problem)
    if path:
        base = "/srv/images"
        joined = os.path.normpath(os.path.join(base, path))
        assert joined.startswith(base + "/") and ".." not in path.split("/")
