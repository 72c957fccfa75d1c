"""The dedup report: pairs that cross declared groups, shown a row per two groups joined, every one kept in the JSON."""

from __future__ import annotations

import re

from finetuner.dedup import report
from finetuner.dedup.report import pair_record, summarize
from finetuner.dedup.report_page import render_html


def crossing(a: str, b: str, group_a: str, group_b: str, similarity: float, method: str = "verified") -> dict:
    return pair_record(a, b, method, 3, group_a, group_b) | {"similarity": similarity}


def summary_of(kept: list[dict]) -> dict:
    paths = sorted({p for r in kept for p in (r["path_a"], r["path_b"])})
    return summarize(
        n_images=len(paths),
        n_contents=len(paths),
        n_hashed=len(paths),
        kept=kept,
        cut=[],
        clusters=[],  # the page's cluster section would show every image
        units=["u"] * len(paths),
        tradeoff=[],
        settings={},
        unreadable=[],
    )


def test_a_row_per_two_groups_joined_with_their_most_similar_pair() -> None:
    # four copies of one picture filed under patients p1 (two), p2 and p3: six pairs, five of them crossing groups
    kept = [
        crossing("a1.jpg", "a2.jpg", "p1", "p1", 0.99),
        crossing("a1.jpg", "b.jpg", "p1", "p2", 0.95),
        crossing("a2.jpg", "b.jpg", "p1", "p2", 0.97),
        crossing("b.jpg", "c.jpg", "p2", "p3", 0.93),
        crossing("a1.jpg", "c.jpg", "p1", "p3", 0.91),
        crossing("a2.jpg", "c.jpg", "p1", "p3", 1.0, method="exact"),
    ]
    summary = summary_of(kept)
    assert summary["counts"]["cross_group_pairs"] == len(summary["cross_group_pairs"]) == 5  # all kept in the JSON
    shown = summary["cross_group_shown"]
    assert [(r["group_a"], r["group_b"], r["pairs_between_groups"]) for r in shown] == [
        ("p1", "p2", 2),
        ("p1", "p3", 2),
        ("p2", "p3", 1),
    ]
    assert [(r["path_a"], r["path_b"]) for r in shown] == [("a2.jpg", "b.jpg"), ("a2.jpg", "c.jpg"), ("b.jpg", "c.jpg")]
    page = render_html(summary, {})
    assert "Pairs joining different declared groups (5)" in page and "3 of 3 pairs of groups shown" in page
    assert page.count("pairs_between_groups") == 1  # one column of the cross-group table


def test_the_page_shows_a_bounded_number_of_groups_joined(monkeypatch) -> None:
    monkeypatch.setattr(report, "MAX_CROSS_SHOWN", 3)
    kept = [crossing(f"x{k}.jpg", f"y{k}.jpg", f"g{k}", f"h{k}", 0.95, method="phash") for k in range(10)]
    summary = summary_of(kept)
    assert len(summary["cross_group_pairs"]) == 10 and len(summary["cross_group_shown"]) == 3
    page = render_html(summary, {})
    assert "Pairs joining different declared groups (10)" in page and "3 of 10 pairs of groups shown" in page
    assert sum(f"x{k}.jpg" in page for k in range(10)) == 3
    shown = summary["cross_group_shown"]
    assert report.paths_to_preview(summary) == sorted(p for r in shown for p in (r["path_a"], r["path_b"]))


def test_each_thumbnail_is_written_once_however_often_it_is_shown() -> None:
    kept = [crossing("a.jpg", f"b{k}.jpg", "p1", f"q{k}", 0.95) for k in range(4)]  # a.jpg in four rows
    summary = summary_of(kept)
    thumbs = {p: f"DATA{p}" for p in report.paths_to_preview(summary)}
    page = render_html(summary, thumbs)
    assert page.count("DATAa.jpg") == 1 and page.count("data:image/jpeg;base64,") == 5
    name = re.search(r"\.(t\d+)\{background-image:url\(data:image/jpeg;base64,DATAa\.jpg\)", page).group(1)
    assert page.count(f'class="thumb {name}" role="img" aria-label="a.jpg"') >= 4
