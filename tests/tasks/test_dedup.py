"""The dedup stage on tmp_path: variants found, cross-group pairs reported, units written, hashing incremental."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from finetuner import layout
from finetuner.common.stage import InputError, split_run_facts, write_csv
from finetuner.config import parse_params
from finetuner.dedup import candidates, full_size, hashing
from finetuner.dedup import stage as dedup
from finetuner.dedup.usable import read_usable, small_images_note
from finetuner.demo.synthetic_photos import VARIANTS, photo, to_jpeg_bytes, variant
from tests.dedup.test_full_size import page, turned
from tests.dedup.test_shape import letter

COLUMNS = ["path", "label", "group", "status", "reason", "sha256", "width", "height"]


def add_image(root: Path, rows: list[dict], rel: str, data: bytes, group: str, status: str = "ok") -> None:
    path = root / "data/raw/images" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    rows.append(
        {
            "path": rel,
            "label": rel.split("/")[0],
            "group": group,
            "status": status,
            "reason": "",
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": 0,
            "height": 0,
        }
    )


def make_dataset(root: Path, n_photos: int = 6) -> list[dict]:
    rows: list[dict] = []
    for seed in range(n_photos):
        add_image(root, rows, f"c{seed % 2}/p{seed}.jpg", to_jpeg_bytes(photo(seed, (96, 72))), f"g{seed}")
    base = photo(0, (96, 72))
    for kind in VARIANTS:  # variants of photo 0 in its own group...
        add_image(root, rows, f"c0/v0_{kind}.jpg", to_jpeg_bytes(variant(base, kind)), "g0")
    # ...and one filed under another patient: the cross-group pair users must see
    add_image(root, rows, "c1/other_patient.jpg", to_jpeg_bytes(variant(base, "brightness"), 80), "g5")
    add_image(root, rows, "c0/copy_of_p0.jpg", (root / "data/raw/images/c0/p0.jpg").read_bytes(), "")
    add_image(root, rows, "c0/broken.jpg", b"junk", "g9", status="quarantined")
    write_csv(root / dedup.MANIFEST, rows, COLUMNS)
    return rows


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def params():
    return parse_params({"data": {"workers": 1}})


def test_stage_writes_pairs_units_and_reports(tmp_path: Path, params) -> None:
    rows = make_dataset(tmp_path)
    summary = dedup.run(params, tmp_path)
    pairs = read(tmp_path / dedup.PAIRS_CSV)
    joined = {(p["path_a"], p["path_b"]) for p in pairs}
    assert all(p["path_a"] < p["path_b"] for p in pairs)
    assert {"path_a", "path_b", "method", "distance"} <= set(pairs[0])
    assert ("c0/copy_of_p0.jpg", "c0/p0.jpg") in joined and any(p["method"] == "exact" for p in pairs)
    units = {r["path"]: r["unit"] for r in read(tmp_path / dedup.UNITS_CSV)}
    assert set(units) == {r["path"] for r in rows if r["status"] == "ok"}  # every usable image, nothing else
    family = [f"c0/v0_{k}.jpg" for k in VARIANTS] + ["c0/p0.jpg", "c0/copy_of_p0.jpg", "c1/other_patient.jpg"]
    assert len({units[p] for p in family}) == 1  # every variant found
    assert units["c1/p5.jpg"] == units["c0/p0.jpg"]  # group g5 joined through the cross-group pair
    assert len({units[f"c{s % 2}/p{s}.jpg"] for s in range(1, 5)}) == 4  # unrelated photos stay apart
    report = json.loads((tmp_path / dedup.REPORT_JSON).read_text())
    assert report == split_run_facts(summary, dedup.RUN_FACTS)[0]  # cache hits go to logs/dedup.jsonl instead
    cross = report["cross_group_pairs"]
    assert cross and all({p["group_a"], p["group_b"]} == {"g0", "g5"} for p in cross)
    assert report["counts"]["images"] == len(rows) - 1
    html = (tmp_path / dedup.REPORT_HTML).read_text()
    shown = report["cross_group_shown"]
    assert [(r["group_a"], r["group_b"]) for r in shown] in ([("g0", "g5")], [("g5", "g0")])  # one row: two groups
    assert shown[0]["pairs_between_groups"] == len(cross)
    assert html.count('class="thumb t') >= 2 * len(shown)
    assert "other_patient.jpg" in html


def test_images_filed_as_their_own_group_cross_no_declared_group(tmp_path: Path, params) -> None:
    """Without metadata, ingest files each image as its own group (group_source "image"). Its pairs still join units,
    but they cross no group a user declared: the report lists none (it listed every pair of such a folder)."""
    rows = make_dataset(tmp_path)
    for row in rows:
        row["group"], row["group_source"] = row["path"], layout.IMAGE_GROUP
    write_csv(tmp_path / dedup.MANIFEST, rows, [*COLUMNS, "group_source"])
    summary = dedup.run(params, tmp_path)
    assert summary["counts"]["pairs"] > 0 and summary["counts"]["cross_group_pairs"] == 0
    units = {r["path"]: r["unit"] for r in read(tmp_path / dedup.UNITS_CSV)}
    assert units["c1/other_patient.jpg"] == units["c0/p0.jpg"]  # linked all the same
    assert all(p["group_a"] == p["group_b"] == "" for p in summary["accepted_shown"])
    rows[0]["group_source"] = "metadata"  # a declared group beside images without one: still nothing crossed
    write_csv(tmp_path / dedup.MANIFEST, rows, [*COLUMNS, "group_source"])
    assert dedup.run(params, tmp_path)["counts"]["cross_group_pairs"] == 0


def test_the_stage_warns_of_small_images_without_groups(
    tmp_path: Path, params, caplog: pytest.LogCaptureFixture
) -> None:
    """Patches under the verifier's 64-px thumbnail, most in no declared group: look-alike patches pass as copies
    (docs/dedup.md, Tiles of one picture), so the stage says so and what to do; not with groups, nor for large
    images."""
    rows: list[dict] = []
    for k in range(24):
        add_image(tmp_path, rows, f"c{k % 2}/tile{k}.png", png(photo(k, (32, 32))), "")
    for row in rows:
        row["width"] = row["height"] = 32
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    with caplog.at_level(logging.WARNING, logger="finetuner.dedup"):
        summary = dedup.run(params, tmp_path)
    said = "24 of 24 images are under 64 px on their short side, 24 of them in no declared group"
    assert said in caplog.text and "Declare each slide's or video's images as one group" in caplog.text
    assert len(summary["warnings"]) == 1 and said in summary["warnings"][0]  # in the report, and on its page
    assert said in json.loads((tmp_path / dedup.REPORT_JSON).read_text())["warnings"][0]
    assert f'<p class="warning">{said}' in (tmp_path / dedup.REPORT_HTML).read_text()
    usable = read_usable(tmp_path / dedup.MANIFEST)
    assert small_images_note(replace(usable, declared=[f"slide{k % 3}" for k in range(24)])) is None
    assert small_images_note(replace(usable, declared=[""] * 11 + ["s"] * 13)) is None  # most declare one
    big = [r | {"width": 640, "height": 480} for r in usable.rows]
    assert small_images_note(replace(usable, rows=big)) is None
    assert small_images_note(replace(usable, rows=[r | {"width": 0} for r in usable.rows])) is None  # unknown
    assert small_images_note(replace(usable, rows=usable.rows[:19], declared=[""] * 19)) is None  # a few


def test_the_stage_says_what_it_hashes_and_verifies(tmp_path: Path, params, caplog: pytest.LogCaptureFixture) -> None:
    make_dataset(tmp_path)
    with caplog.at_level(logging.INFO, logger="finetuner.dedup"):
        summary = dedup.run(params, tmp_path)
    said = caplog.text
    contents = summary["counts"]["distinct_contents"]
    assert f"hashed {contents} files in" in said and "(0 unreadable)" in said
    assert re.search(r"verifying (\d+) of \1 candidate pairs \(0 decided in earlier runs", said)
    assert re.search(r"verified \d+ pairs in [\d.]+ s: \d+ accepted", said)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="finetuner.dedup"):
        dedup.run(params, tmp_path)  # nothing new: nothing hashed or verified again
    assert "hashed" not in caplog.text and re.search(r"verifying 0 of (\d+) candidate pairs \(\1 decided", caplog.text)


def test_a_crowded_collection_is_warned_about(
    tmp_path: Path, params, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(tmp_path)
    with caplog.at_level(logging.INFO, logger="finetuner.dedup"):
        assert dedup.run(params, tmp_path)["warnings"] == []
    assert "per image: many images lie within" not in caplog.text  # a few copies of a few photos
    monkeypatch.setattr(candidates, "CROWDED", 0.1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="finetuner.dedup"):
        summary = dedup.run(params, tmp_path)  # the same candidates, read from the cache
    crowded = r"\d+ candidate pairs among \d+ images, \d+ per image: many images lie within"
    assert re.search(crowded, caplog.text)
    assert len(summary["warnings"]) == 1 and re.match(crowded, summary["warnings"][0])  # in the report too


def test_only_new_files_are_decoded(tmp_path: Path, params, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = make_dataset(tmp_path)
    decoded: list[str] = []
    original = hashing.decode_colour

    def counting(path, **kwargs):
        decoded.append(str(path))
        return original(path, **kwargs)

    monkeypatch.setattr(hashing, "decode_colour", counting)  # decoding.decode_colour, as hashing calls it per file
    first = dedup.run(params, tmp_path)
    assert len(decoded) == first["counts"]["distinct_contents"] == len(rows) - 2  # one copy, one quarantined
    units_before = read(tmp_path / dedup.UNITS_CSV)
    decoded.clear()
    add_image(tmp_path, rows, "c1/new.jpg", to_jpeg_bytes(photo(99, (96, 72))), "g99")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    second = dedup.run(params, tmp_path)
    assert [Path(p).name for p in decoded] == ["new.jpg"]
    assert second["counts"]["newly_hashed"] == 1
    after = {r["path"]: r["unit"] for r in read(tmp_path / dedup.UNITS_CSV)}
    assert all(after[r["path"]] == r["unit"] for r in units_before)  # old units keep their ids


def test_size_guard_is_reported(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    summary = dedup.run(parse_params({"data": {"workers": 1}, "dedup": {"max_cluster_size": 3}}), tmp_path)
    assert summary["counts"]["pairs_cut_by_size_guard"] > 0
    assert summary["largest_cluster_size"] <= 3 + 1  # + the exact copy, which is never cut
    assert "cut by the cluster size guard" in (tmp_path / dedup.REPORT_HTML).read_text()


def shape(seed: int) -> Image.Image:
    """A dark polygon of its own on light paper: a graphic like no other."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (192, 192), 235)
    corners = rng.uniform(40, 150, size=(int(rng.integers(3, 7)), 2))
    ImageDraw.Draw(image).polygon([tuple(c) for c in corners.tolist()], fill=20)
    return image.resize((48, 48), Image.LANCZOS).convert("RGB")


def test_twin_designs_between_groups_are_cut_and_copies_kept(tmp_path: Path, params) -> None:
    """Three typefaces (groups A, B, C) share one design of R and nothing else: their R's pass every check, as copies
    would, but join three groups that share nothing else, so the design guard cuts them and reports them. A graphic
    copied from D into E (nothing else looks like it) and F, a clone of A (each image a copy of one of A's), stay
    joined."""
    rows: list[dict] = []
    for k, group in enumerate("ABC"):
        add_image(tmp_path, rows, f"R/{group}.png", png(letter(shift=(k % 2, k // 2))), group)
        for m in range(4):
            add_image(tmp_path, rows, f"s/{group}{m}.png", png(shape(10 * k + m)), group)
    for m in range(4):
        add_image(tmp_path, rows, f"s/F{m}.png", png(shape(m).rotate(0, translate=(1, 0), fillcolor=(235,) * 3)), "F")
    add_image(tmp_path, rows, "R/F.png", png(letter(shift=(1, 1))), "F")
    add_image(tmp_path, rows, "s/D.png", png(shape(100)), "D")
    add_image(tmp_path, rows, "s/D1.png", png(shape(101)), "D")
    add_image(tmp_path, rows, "s/E.png", png(shape(100).resize((64, 64), Image.BICUBIC)), "E")
    add_image(tmp_path, rows, "s/E1.png", png(shape(102)), "E")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    off = dedup.run(parse_params({"data": {"workers": 1}, "dedup": {"min_design_share": 0}}), tmp_path)
    twins = {("R/A.png", "R/B.png"), ("R/A.png", "R/C.png"), ("R/B.png", "R/C.png")}
    found = {(p["path_a"], p["path_b"]) for p in read(tmp_path / dedup.PAIRS_CSV)}
    assert twins <= found and off["counts"]["pairs_cut_by_design_guard"] == 0  # the shape check alone passes them
    summary = dedup.run(params, tmp_path)
    kept = {(p["path_a"], p["path_b"]): p for p in read(tmp_path / dedup.PAIRS_CSV)}
    cut = {(p["path_a"], p["path_b"]) for p in summary["cut_pairs"] if p.get("cut_by") == "design guard"}
    assert twins <= cut and not twins & set(kept)
    assert ("R/B.png", "R/F.png") in cut  # F shares all of A's designs, one of B's
    units = {r["path"]: r["unit"] for r in read(tmp_path / dedup.UNITS_CSV)}
    assert len({units["R/A.png"], units["R/B.png"], units["R/C.png"]}) == 3
    assert units["s/D.png"] == units["s/E.png"] and kept[("s/D.png", "s/E.png")]["rule"] == "shape"
    assert all(units[f"s/A{m}.png"] == units[f"s/F{m}.png"] for m in range(4)) and units["R/A.png"] == units["R/F.png"]
    assert summary["counts"]["pairs_cut_by_design_guard"] == len(cut)
    assert "Twin designs" in (tmp_path / dedup.REPORT_HTML).read_text()
    again = dedup.run(params, tmp_path)  # every verdict read from the cache this time
    assert again["cut_pairs"] == summary["cut_pairs"] and read(tmp_path / dedup.PAIRS_CSV) == list(kept.values())


def test_blank_frames_shared_by_many_groups_join_none_of_them(tmp_path: Path, params) -> None:
    """A black frame in every video (the same bytes, three times in each: a fade, a cut, the end): copies by their
    bytes, but a blank frame shows nothing to leak, and it would join every video into one unit. Blank copies held
    by three or more groups are cut by the design guard; photos copied between two groups, and a blank held by only
    two, still join them."""
    rows: list[dict] = []
    black = png(Image.new("RGB", (64, 48), (3, 3, 3)))
    grey = png(Image.new("RGB", (64, 48), (128, 128, 128)))
    for g in range(5):
        for k in range(4):
            add_image(
                tmp_path, rows, f"c{k % 2}/v{g}_{k}.jpg", to_jpeg_bytes(photo(100 * g + k, (96, 72))), f"video{g}"
            )
        for k in range(3):
            add_image(tmp_path, rows, f"c{k % 2}/v{g}_black{k}.png", black, f"video{g}")
    for k in range(2):  # two of video 0's photos copied into video 1
        add_image(
            tmp_path, rows, f"c1/v1_copy{k}.jpg", (tmp_path / f"data/raw/images/c{k}/v0_{k}.jpg").read_bytes(), "video1"
        )
    add_image(tmp_path, rows, "c1/v2_grey.png", grey, "video2")
    add_image(tmp_path, rows, "c1/v3_grey.png", grey, "video3")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    off = dedup.run(parse_params({"data": {"workers": 1}, "dedup": {"min_design_share": 0}}), tmp_path)
    assert off["counts"]["units"] == 1  # every video joined through its black frame
    summary = dedup.run(params, tmp_path)
    cut = [p for p in summary["cut_pairs"] if p.get("cut_by") == "design guard"]
    video = {r["path"]: r["group"] for r in rows}
    assert len(cut) == 4 * 3  # the star of exact pairs from video 0's first black frame to every other video's
    assert all(p["method"] == "exact" and video[p["path_a"]] != video[p["path_b"]] for p in cut)
    assert all("_black" in p["path_a"] and "_black" in p["path_b"] for p in cut)
    units = {r["path"]: r["unit"] for r in read(tmp_path / dedup.UNITS_CSV)}
    assert units["c0/v0_0.jpg"] == units["c0/v1_0.jpg"]  # the copied photos
    assert units["c0/v2_0.jpg"] == units["c0/v3_0.jpg"]  # one blank frame, two videos: kept (nothing else looks alike)
    assert summary["counts"]["units"] == 3


def test_blank_frames_matched_by_the_pixel_rule_are_twins_too(tmp_path: Path, params) -> None:
    """The same dark frame saved at four JPEG qualities, one per video: not the same bytes, so the verifier's pixel
    rule for near-blank images pairs them, and the design guard cuts those pairs as it cuts exact blank copies."""
    rows: list[dict] = []
    for g in range(4):
        for k in range(4):
            add_image(
                tmp_path, rows, f"c{k % 2}/v{g}_{k}.jpg", to_jpeg_bytes(photo(100 * g + k, (96, 72))), f"video{g}"
            )
        add_image(
            tmp_path,
            rows,
            f"c0/v{g}_dark.jpg",
            to_jpeg_bytes(Image.new("RGB", (96, 72), (20,) * 3), 70 + 8 * g),
            f"video{g}",
        )
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    summary = dedup.run(params, tmp_path)
    cut = [p for p in summary["cut_pairs"] if p.get("cut_by") == "design guard"]
    assert len(cut) == 6 and all(p["rule"] == "low-detail" for p in cut)  # every two of the four dark frames
    assert summary["counts"]["units"] == 4


def test_missing_manifest_column_is_an_input_error(tmp_path: Path, params) -> None:
    write_csv(tmp_path / dedup.MANIFEST, [{"path": "a.jpg", "label": "a"}], ["path", "label"])
    with pytest.raises(InputError, match="missing column"):
        dedup.run(params, tmp_path)


def test_a_scanned_copy_of_a_page_is_found_at_full_size_once(tmp_path: Path, params, monkeypatch) -> None:
    rows: list[dict] = []
    original = page(0)
    for name, image in (("p0", original), ("p0_scan", turned(original)), ("p1", page(1)), ("p2", page(2))):
        add_image(tmp_path, rows, f"forms/{name}.png", png(image), name)
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    dedup.run(params, tmp_path)
    pairs = read(tmp_path / dedup.PAIRS_CSV)
    assert [(p["path_a"], p["path_b"], p["rule"]) for p in pairs] == [
        ("forms/p0.png", "forms/p0_scan.png", full_size.RULE)
    ], pairs
    assert "keypoints fit" in pairs[0]["transform"]
    monkeypatch.setattr(full_size, "_seen", lambda file: pytest.fail(f"{file} opened again"))
    dedup.run(params, tmp_path)  # the verdict is cached with the others: no file is opened again
    assert read(tmp_path / dedup.PAIRS_CSV) == pairs


def test_a_crowded_collection_of_near_blank_frames_pairs_near_shades_only(tmp_path: Path) -> None:
    """40 plain frames of neighbouring shades whose hashes are all alike: each has 39 candidates (the cap is 20),
    ranked by how little their colour thumbnails differ, which the stage reads from its cache (a cached thumbnail
    read one at a time comes back as a stack of one: the stage failed there). Only near shades pair: the pixel rule
    holds them to 1.5 grey levels."""
    rows: list[dict] = []
    for k in range(40):
        add_image(tmp_path, rows, f"c{k % 2}/f{k}.png", png(Image.new("RGB", (64, 48), (100 + k, 120, 140))), f"g{k}")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    summary = dedup.run(parse_params({"data": {"workers": 1}}), tmp_path)
    with open(tmp_path / "data/interim/near_duplicates.csv", newline="") as f:
        found = list(csv.DictReader(f))
    shade = lambda path: int(path.split("/f")[1].split(".")[0])  # noqa: E731
    assert summary["counts"]["pairs"] == len(found) > 40
    assert all(abs(shade(r["path_a"]) - shade(r["path_b"])) <= 6 and r["rule"] == "low-detail" for r in found)
