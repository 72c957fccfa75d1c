"""What a person checks: evidence columns in near_duplicates.csv, audit tables in dedup.html, giant units explained
by the pairs that bridge them (dedup.json and split.json)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import ImageOps

from finetuner.common.stage import write_csv
from finetuner.config import parse_params
from finetuner.dedup import report_page
from finetuner.dedup import stage as dedup
from finetuner.dedup.units import explain_units
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes
from finetuner.split.report import giant_units
from tests.dedup.test_verify import letterbox, near_blank
from tests.tasks.test_dedup import COLUMNS, add_image, png


def test_explain_units_names_the_bridge_and_what_it_cuts_off() -> None:
    # two families of four images each (one class), joined by a single look-alike pair between 3 and 4
    groups = ["f1"] * 4 + ["f2"] * 4 + ["f3"]
    labels = ["a"] * 9
    units = ["u1"] * 8 + ["u2"]
    i, j = np.array([0, 3, 5]), np.array([1, 4, 6])  # 0-1 and 5-6 inside families; 3-4 bridges them
    found = explain_units(labels, groups, units, i, j, np.ones(3), share=0.5)
    assert len(found) == 1 and found[0]["unit"] == "u1" and found[0]["images_of_class"] == 8
    assert found[0]["bridges"] == [(1, 4)]  # pair index 1 (3-4) cuts off 4 images
    assert found[0]["links_between_groups"] == 1
    # a ring of three families has no single bridge: the weakest link between groups is named instead
    ring = explain_units(
        ["a"] * 6,
        ["x", "x", "y", "y", "z", "z"],
        ["u"] * 6,
        np.array([1, 3, 5]),
        np.array([2, 4, 0]),
        np.array([0.99, 0.95, 0.97]),
        share=0.5,
    )
    assert ring[0]["bridges"][0] == (1, None)


def test_a_unit_giant_in_several_classes_is_bridged_once() -> None:
    # two families, each with two letters of class a and two of class b, joined by one look-alike pair of a letters
    groups, labels = ["f1"] * 4 + ["f2"] * 4, ["a", "a", "b", "b"] * 2
    found = explain_units(labels, groups, ["u"] * 8, np.array([0]), np.array([4]), np.ones(1), share=0.5)
    assert [(u["class"], u["images_of_class"], u["bridges"]) for u in found] == [("a", 4, [(0, 4)]), ("b", 4, [(0, 4)])]
    assert found[0]["bridges"] is not found[1]["bridges"]  # the stage replaces each entry's bridges by pair records
    summary = {"giant_units": [u | {"bridges": []} for u in found], "settings": {"explain_unit_share": 0.5}}
    page = "".join(report_page._giant_units_section(summary, {}))
    assert "Giant units (1)" in page and page.count("<h3>") == 1
    assert "4 of class a (100%), 4 of class b (100%)" in page


def test_split_report_names_bridging_pairs() -> None:
    images = pd.DataFrame(
        {
            "path": [f"p{k}" for k in range(6)],
            "label": ["a"] * 6,
            "group": ["g1", "g1", "g1", "g2", "g2", "g2"],
            "unit": ["u"] * 6,
        }
    )
    edges = pd.DataFrame(
        {"path_a": ["p2"], "path_b": ["p3"], "method": ["verified"], "distance": ["4"], "similarity": ["0.95"]}
    )
    found = giant_units(images, edges, 0.25)
    assert found[0]["bridges"] == [
        {
            "path_a": "p2",
            "path_b": "p3",
            "method": "verified",
            "distance": "4",
            "similarity": "0.95",
            "images_cut_off": 3,
        }
    ]
    json.dumps(found)  # goes into split.json as it is


def test_stage_writes_evidence_and_audit_tables(tmp_path: Path) -> None:
    rows: list[dict] = []
    base = photo(21, (160, 120))
    add_image(tmp_path, rows, "cat/a.jpg", to_jpeg_bytes(base), "g1")
    add_image(tmp_path, rows, "cat/a_mirror.jpg", to_jpeg_bytes(ImageOps.mirror(base)), "g2")
    add_image(tmp_path, rows, "cat/a_letterbox.jpg", to_jpeg_bytes(letterbox(base)), "g3")
    for k in range(3):
        add_image(tmp_path, rows, f"cat/other{k}.jpg", to_jpeg_bytes(photo(30 + k, (160, 120))), f"h{k}")
    # two plain walls in different light: the same noise pattern, so every hash matches; 12 grey levels apart
    add_image(tmp_path, rows, "dog/blank1.png", png(near_blank((120, 120, 120), 0)), "d1")
    add_image(tmp_path, rows, "dog/blank2.png", png(near_blank((132, 132, 132), 0)), "d2")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    summary = dedup.run(parse_params({"data": {"workers": 1}}), tmp_path)
    with (tmp_path / dedup.PAIRS_CSV).open(newline="") as handle:
        reader = csv.DictReader(handle)
        pairs = list(reader)
    assert reader.fieldnames[:4] == ["path_a", "path_b", "method", "distance"]
    assert {"signal", "similarity", "overlap", "transform"} <= set(reader.fieldnames)
    joined = {(p["path_a"], p["path_b"]): p for p in pairs}
    mirror = joined[("cat/a.jpg", "cat/a_mirror.jpg")]
    assert mirror["method"] == "verified" and "mirror" in mirror["transform"] and float(mirror["similarity"]) > 0.9
    assert ("cat/a.jpg", "cat/a_letterbox.jpg") in joined
    assert ("dog/blank1.png", "dog/blank2.png") not in joined  # near-blank look-alikes stay apart
    rejected = {(p["path_a"], p["path_b"]) for p in summary["nearest_rejected"]}
    assert ("dog/blank1.png", "dog/blank2.png") in rejected  # ...and are shown as a rejected candidate
    giant = summary["giant_units"]
    assert giant and giant[0]["class"] == "cat" and giant[0]["images_of_class"] == 3
    assert {(b["path_a"], b["path_b"]) for b in giant[0]["bridges"]} <= set(joined)
    html = (tmp_path / dedup.REPORT_HTML).read_text()
    for title in ("Accepted pairs, least similar first", "Rejected candidates nearest the cut-off", "Giant units"):
        assert title in html
    assert "<table class='pairs'>" in html and "{'" not in html  # tables, never a dict printed raw
    assert html.count('class="thumb t') >= 2 * (len(summary["accepted_shown"]) + len(rejected))
    assert html.count("data:image/jpeg;base64,") == len(set(re.findall(r'class="thumb (t\d+)"', html)))  # once each


def test_grown_collection_verifies_only_new_pairs(tmp_path: Path, monkeypatch) -> None:
    from finetuner.dedup import decide as deciding
    from tests.tasks.test_dedup import make_dataset

    rows = make_dataset(tmp_path)
    params = parse_params({"data": {"workers": 1}})
    first = dedup.run(params, tmp_path)
    seen: list[int] = []
    original = deciding.verify_pairs

    def counting(thumbs, i, j, *args, **kwargs):
        seen.append(len(i))
        return original(thumbs, i, j, *args, **kwargs)

    monkeypatch.setattr(deciding, "verify_pairs", counting)
    add_image(tmp_path, rows, "c1/p0_again.jpg", to_jpeg_bytes(ImageOps.mirror(photo(0, (96, 72)))), "g7")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    second = dedup.run(params, tmp_path)
    assert 0 < seen[0] < first["counts"]["pairs"]  # only the new image's candidates
    assert second["counts"]["pairs"] > first["counts"]["pairs"]  # ...and its mirror copy still joins its family


def test_a_pair_keeps_its_view_signal_before_a_closer_whole_frame_hash_unless_the_view_is_a_corner() -> None:
    """A view pair says where two images overlap, a hash method only that their whole frames hash alike: a page cut at
    the top and found by dhash 1 bit closer than as "bottom90~full" keeps the view (the regions it is looked at and
    aligned by). A corner view is held to the refit's thresholds, so there the closer whole-frame hash stays."""
    from finetuner.dedup.candidates import _views_first, merge_candidates
    from finetuner.dedup.view_search import Candidates

    def part(rows: list[tuple[int, int, str, int]]) -> Candidates:
        i, j, signal, distance = (
            np.array(column, dtype=object if k == 2 else np.int64) for k, column in enumerate(zip(*rows))
        )
        return Candidates(i, j, signal, distance)

    found = part([(0, 1, "bottom90~full", 4), (0, 2, "topleft85~full", 5), (1, 2, "full~full", 2)])
    dhash = part([(0, 1, "dhash", 3), (0, 2, "dhash", 2), (1, 2, "dhash", 2), (2, 3, "dhash", 1)])
    merged = merge_candidates(_views_first([found, dhash], 4))
    got = {(a, b): (s, d) for a, b, s, d in zip(merged.i.tolist(), merged.j.tolist(), merged.signal, merged.distance)}
    assert got == {
        (0, 1): ("bottom90~full", 4),
        (0, 2): ("dhash", 2),
        (1, 2): ("full~full", 2),
        (2, 3): ("dhash", 1),
    }
    assert list(merge_candidates([found, dhash]).signal) == ["dhash", "dhash", "full~full", "dhash"]  # closest alone
