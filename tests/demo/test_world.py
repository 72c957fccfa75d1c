"""The demo world (finetuner/demo/world.py, demo_shapes.py, demo_copies.py) and its writer finetuner/demo/data.py.

Most tests use reduced worlds (a dozen specimens) so the file stays fast on a shared 2-core machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import imagehash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from finetuner.demo import data as demo_data
from finetuner.demo.copies import BROKEN_KINDS, PLANTED_KINDS, decode
from finetuner.demo.shapes import DEMO_CLASSES, SOURCE_CLASSES
from finetuner.demo.world import DEMO_SPEC, SOURCE_SPEC, WorldSpec, build_world, make_specimens

SMALL = WorldSpec(specimens=12, views=(2, 3), planted=(2, 2, 2, 2))
SMALL_BATCH = WorldSpec(specimens=6, views=(2, 2), planted=(1, 1, 0, 0), broken=False, cross_batch=2)
SMALL_SOURCE = WorldSpec(classes=SOURCE_CLASSES, specimens=15, views=(1, 1), planted=(0, 0, 0, 0), broken=False)


@pytest.fixture(scope="module")
def small_world():
    return build_world(7, SMALL)


def _tree(images: Path) -> dict[str, str]:
    return {
        p.relative_to(images).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(images.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_small(root: Path, seed: int = 7, force: bool = False) -> dict | None:
    summary = demo_data.write_first_batch(seed, root, force, spec=SMALL)
    demo_data.write_source(seed, root, force, spec=SMALL_SOURCE)
    return summary


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(small_world):
    again = build_world(7, SMALL)
    assert [(f.path, f.group, f.data) for f in again.files] == [(f.path, f.group, f.data) for f in small_world.files]
    other = build_world(8, SMALL)
    assert {f.data for f in other.files if f.kind == "photo"}.isdisjoint(
        {f.data for f in small_world.files if f.kind == "photo"}
    )


def test_planted_copies_are_real_copies_within_the_dedup_radius(small_world):
    by_path = {f.path: f for f in small_world.files}
    pairs = small_world.truth()["planted"]
    assert Counter(p["kind"] for p in pairs) == dict(zip(PLANTED_KINDS, SMALL.planted, strict=True))
    assert any(p["cross_group"] for p in pairs) and not all(p["cross_group"] for p in pairs)
    for pair in pairs:
        original, copy = by_path[pair["original"]], by_path[pair["copy"]]
        assert original.kind == "photo" and copy.label == original.label
        assert pair["cross_group"] == (copy.group != original.group)
        if pair["kind"] == "exact":
            assert copy.data == original.data
            continue
        assert copy.data != original.data
        a, b = decode(original.data), decode(copy.data)
        # the dedup stage's default: phash or dhash within Hamming distance 8 (params.yaml dedup.max_distance)
        assert min(imagehash.phash(a) - imagehash.phash(b), imagehash.dhash(a) - imagehash.dhash(b)) <= 8, pair
        if pair["kind"] == "rescaled":
            assert b.size != a.size


def test_broken_files_do_not_decode(small_world):
    broken = {f.kind: f for f in small_world.files if f.kind in BROKEN_KINDS}
    assert set(broken) == set(BROKEN_KINDS)
    assert broken["empty"].data == b""
    assert broken["truncated"].data.startswith(b"\xff\xd8")  # looks like a JPEG until it ends early
    assert broken["text"].data.decode("ascii").strip()
    for file in broken.values():
        assert file.path.endswith(".jpg")
        with pytest.raises(OSError):
            with Image.open(io.BytesIO(file.data)) as image:
                image.load()


def test_photos_are_jpegs_of_the_requested_size(small_world):
    for file in small_world.files:
        if file.kind in ("photo", "exact", "requality", "cropped"):
            with Image.open(io.BytesIO(file.data)) as image:
                assert (image.format, image.size, image.mode) == ("JPEG", (64, 64), "RGB")


def test_default_world_sizes_and_class_balance():
    specimens = make_specimens(0, DEMO_SPEC)
    assert len(specimens) == 160 and len({s.id for s in specimens}) == 160
    per_class = Counter(s.label for s in specimens)
    assert set(per_class) == set(DEMO_CLASSES) and max(per_class.values()) - min(per_class.values()) <= 1
    images = Counter()
    for s in specimens:
        images[s.label] += s.n_views
    assert min(s.n_views for s in specimens) >= 2 and max(s.n_views for s in specimens) <= 5
    assert 500 <= sum(images.values()) + sum(DEMO_SPEC.planted) + len(BROKEN_KINDS) <= 700
    assert min(images.values()) >= 0.6 * max(images.values())
    assert set(SOURCE_CLASSES).isdisjoint(DEMO_CLASSES)
    # one photo per source specimen: pretraining can only learn shapes, never memorise a specimen's signature
    assert SOURCE_SPEC.views == (1, 1) and SOURCE_SPEC.specimens == 240 * len(SOURCE_CLASSES)
    source = make_specimens(0, WorldSpec(classes=SOURCE_CLASSES, specimens=60, views=(1, 1)), stream=1, prefix="src")
    assert Counter(s.label for s in source) == dict.fromkeys(SOURCE_CLASSES, 4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), specimens=st.integers(6, 40), batch=st.integers(1, 5))
def test_specimens_are_balanced_and_ids_name_their_batch(seed, specimens, batch):
    spec = WorldSpec(specimens=specimens)
    found = make_specimens(seed, spec, batch=batch)
    counts = Counter(s.label for s in found).values()
    assert max(counts) - min(counts) <= 1
    assert len({s.id for s in found}) == specimens
    assert all(s.id.startswith(f"b{batch}-") for s in found)


def test_first_batch_writes_the_input_contract(tmp_path):
    summary = _write_small(tmp_path)
    images = tmp_path / "raw" / "images"
    rows = _rows(tmp_path / "raw" / "metadata.csv")
    assert list(rows[0]) == ["path", "group"]
    on_disk = _tree(images)
    assert sorted(r["path"] for r in rows) == sorted(on_disk)  # every file listed once, nothing else in images/
    for row in rows:
        label, group, name = row["path"].split("/")
        assert label in DEMO_CLASSES and group == row["group"] and name.startswith(f"{group}-")
        assert name.endswith(".jpg")
    assert summary is not None and summary["files"] == len(rows)
    source_rows = _rows(tmp_path / "source" / "metadata.csv")
    assert {r["path"].split("/")[0] for r in source_rows} == set(SOURCE_CLASSES)
    assert sorted(r["path"] for r in source_rows) == sorted(_tree(tmp_path / "source" / "images"))
    truth = json.loads((tmp_path / "demo_truth.json").read_text())
    assert {b["path"] for b in truth["batches"]["1"]["broken"]} <= set(on_disk)
    assert not [p for p in tmp_path.rglob(".*")]  # no staging folders or temp files left behind


def test_first_batch_is_left_alone_when_present_and_force_regenerates_the_same(tmp_path, caplog):
    _write_small(tmp_path)
    before = _tree(tmp_path / "raw" / "images")
    (tmp_path / "raw" / "images" / "circle" / "mine.jpg").write_bytes(b"user file")
    with caplog.at_level("INFO"):
        assert _write_small(tmp_path) is None
    assert "already present" in caplog.text
    assert (tmp_path / "raw" / "images" / "circle" / "mine.jpg").exists()
    assert _write_small(tmp_path, force=True) is not None
    assert _tree(tmp_path / "raw" / "images") == before


def test_batch_two_adds_new_groups_and_leaves_batch_one_untouched(tmp_path):
    _write_small(tmp_path)
    images, metadata = tmp_path / "raw" / "images", tmp_path / "raw" / "metadata.csv"
    before_files, before_rows = _tree(images), _rows(metadata)
    summary = demo_data.write_later_batch(7, tmp_path, 2, spec=SMALL_BATCH)
    assert summary is not None
    after_files, after_rows = _tree(images), _rows(metadata)
    assert after_rows[: len(before_rows)] == before_rows
    assert {p: h for p, h in after_files.items() if p in before_files} == before_files
    new_rows = after_rows[len(before_rows) :]
    assert new_rows and all(r["group"].startswith("b2-") for r in new_rows)
    assert {r["group"] for r in new_rows}.isdisjoint(r["group"] for r in before_rows)
    assert sorted(r["path"] for r in after_rows) == sorted(after_files)
    truth = json.loads((tmp_path / "demo_truth.json").read_text())
    crossing = [p for p in truth["batches"]["2"]["planted"] if p["kind"] == "cross_batch"]
    assert len(crossing) == 2 and all(p["original"] in before_files for p in crossing)
    # already there: nothing happens; --force rewrites the same batch 2 and still leaves batch 1 alone
    assert demo_data.write_later_batch(7, tmp_path, 2, spec=SMALL_BATCH) is None
    demo_data.write_later_batch(7, tmp_path, 2, force=True, spec=SMALL_BATCH)
    assert _tree(images) == after_files and _rows(metadata) == after_rows


def test_cli_refuses_a_later_batch_without_a_world(tmp_path, monkeypatch, repo_root, capsys):
    monkeypatch.chdir(repo_root)  # params.yaml supplies the seed
    assert demo_data.main(["--batch", "2", "--root", str(tmp_path)]) == 2
    assert "write batch 1 first" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()
