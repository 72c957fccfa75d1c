"""The leakage comparison: the naive split's core (finetuner/evaluate/leakage.py) and its report schema."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.evaluate.leakage import (
    SCHEMA,
    build_report,
    format_table,
    model_entry,
    naive_leaks,
    naive_split,
    separated_pairs,
)

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _pool(specimens: int, views: int, classes: int = 3) -> list[dict[str, str]]:
    return [
        {"path": f"c{s % classes}/s{s}/{v}.jpg", "label": f"c{s % classes}", "group": f"s{s}", "unit": f"u{s}"}
        for s in range(specimens)
        for v in range(views)
    ]


@settings(max_examples=30, deadline=None)
@given(specimens=st.integers(3, 30), views=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_naive_split_partitions_the_pool_and_keeps_class_balance(specimens, views, seed):
    pool = _pool(specimens, views)
    split = naive_split(pool, FRACTIONS, seed)
    placed = [row["path"] for rows in split.values() for row in rows]
    assert sorted(placed) == sorted(row["path"] for row in pool)  # every image once, nothing else
    per_class = Counter(row["label"] for row in pool)
    for label, n in per_class.items():
        test = sum(row["label"] == label for row in split["test"])
        assert test == (0 if n < 3 else max(1, min(round(n * 0.15), (n - 1) // 2)))
    assert naive_split(pool, FRACTIONS, seed) == split  # deterministic for a seed


def test_naive_split_ignores_units_so_its_test_leaks():
    split = naive_split(_pool(30, 6), FRACTIONS, seed=0)
    leaks = naive_leaks(split)
    # 6 photos per specimen: nearly every test photo has a sibling in train; the leak-aware split would have none
    assert leaks["test_images"] == len(split["test"]) and leaks["share"] > 0.8


def test_separated_pairs_are_those_the_naive_split_put_in_train_and_test():
    pool = _pool(6, 2)
    split = naive_split(pool, FRACTIONS, seed=1)
    train, test = split["train"][0], split["test"][0]
    pairs = [
        {"path_a": test["path"], "path_b": train["path"], "method": "phash"},
        {"path_a": split["train"][1]["path"], "path_b": train["path"], "method": "phash"},
    ]
    shown = separated_pairs(pairs, split, {test["path"]: "val", train["path"]: "val"}, limit=5)
    assert shown == [
        {
            "naive_train": train["path"],
            "naive_test": test["path"],
            "method": "phash",
            "cross_group": str(train["group"] != test["group"]).lower(),
            "leak_free": "val / val",
        }
    ]


def _metrics(f1: float, sha: str) -> dict:
    return {"macro_f1": f1, "accuracy": f1 + 0.01, "balanced_accuracy": f1, "n_test": 20, "model_sha256": sha}


def test_report_schema_inflation_and_the_printed_table():
    models = {
        "leak_free": model_entry("ours", {"train": 7, "val": 2, "test": 2}, None, _metrics(0.9, "a")),
        "naive": model_entry("naive", {"train": 6, "val": 2, "test": 2}, _metrics(0.99, "b"), _metrics(0.8, "b")),
        "scratch": model_entry("scratch", {"train": 7, "val": 2, "test": 2}, None, _metrics(0.4, "c")),
    }
    report = build_report(models, "macro_f1", {"test_images": 2, "test_images_with_same_unit_in_train": 2}, [])
    assert report["schema"] == SCHEMA and report["used_for_selection"] is False and report["enabled"] is True
    assert set(report["models"]) == {"leak_free", "naive", "scratch"}
    for entry in report["models"].values():
        assert {"trained_on", "images", "own_test", "leak_free_test", "model_sha256"} <= set(entry)
        assert set(entry["own_test"]) == {"macro_f1", "accuracy", "balanced_accuracy"}
    assert report["inflation"]["macro_f1"] == 0.19 and report["pretraining_gain"]["macro_f1"] == 0.5
    assert [row["model"] for row in report["table"]] == ["leak_free", "naive", "scratch"]
    assert report["table"][1] == {"model": "naive", "own_test": 0.99, "leak_free_test": 0.8}
    lines = format_table(report).splitlines()
    assert len(lines) == 4 and "0.990" in lines[2] and "0.800" in lines[2] and "+0.190" in lines[2]


def test_report_without_comparisons_has_no_inflation():
    models = {"leak_free": model_entry("ours", {"train": 7, "val": 2, "test": 2}, None, _metrics(0.9, "a"))}
    report = build_report(models, "macro_f1", None, [])
    assert "inflation" not in report and "pretraining_gain" not in report and len(report["table"]) == 1
