"""The leak's inflation, measured: a careless per-image split of the training pool, and the report comparing it.

Pure functions over split rows (`path,label,group,unit` dicts) and metric dicts. `naive_split` splits the pool (the
leak-aware train + val images; never the test split) at random by image, stratified by class, as a user who ignores
groups and near duplicates would; `naive_leaks` counts how many of its test images have an image of the same
leakage unit in its train split; `build_report` assembles `reports/leakage.json` (schema below). The evaluate stage
(`finetuner/evaluate/leakage_runs.py`) trains and scores the models; nothing here reads a file.

`reports/leakage.json` (`schema: finetuner.leakage/1`; every figure a test-split score, none used to select):
- `metric`: the selection metric named in train.select_metric; `used_for_selection`: always false.
- `models`: one entry per model, keyed `leak_free` (models/best.pt), `naive` and `scratch` (absent when turned off):
  `trained_on` (which split and weights), `images` (train/val/test counts of its own split), `own_test` (the figures
  its own split's test set reports: what its author would publish), `leak_free_test` (the same model scored on the
  leak-aware test split, which no model trained on), `model_sha256` (as counted in reports/test_ledger.json).
- `naive.leaks`: its test images with a same-unit image in its train split (count and share).
- `inflation`: naive `own_test` minus naive `leak_free_test`, per figure: what a careless split would have fooled
  its user by. `pretraining_gain`: leak_free minus scratch on the leak-free test.
- `table`: the three lines `make demo` prints (model, own test, leak-free test), in that order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SCHEMA = "finetuner.leakage/1"
FIGURES = ("macro_f1", "accuracy", "balanced_accuracy")
SPLITS = ("train", "val", "test")
Row = Mapping[str, str]


def naive_split(pool: Sequence[Row], fractions: Mapping[str, float], seed: int) -> dict[str, list[Row]]:
    """Each class's images shuffled and cut by `fractions` (train/val/test), ignoring groups and units.

    Stratified by class, as `train_test_split(..., stratify=y)` would be: the careless part is ignoring the units,
    not the class balance. Every class with at least three images gets one in each split, so each split scores.
    """
    by_class: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(pool, key=lambda r: r["path"]):
        by_class[row["label"]].append(row)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x1EA4,)))
    out: dict[str, list[Row]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        rows = [by_class[label][i] for i in rng.permutation(len(by_class[label]))]
        n_test, n_val = _counts(len(rows), fractions["test"]), _counts(len(rows), fractions["val"])
        out["test"] += rows[:n_test]
        out["val"] += rows[n_test : n_test + n_val]
        out["train"] += rows[n_test + n_val :]
    return {name: sorted(rows, key=lambda r: r["path"]) for name, rows in out.items()}


def _counts(n: int, fraction: float) -> int:
    return min(max(1, round(n * fraction)), max(0, (n - 1) // 2)) if n >= 3 else 0


def naive_leaks(split: Mapping[str, Sequence[Row]]) -> dict[str, Any]:
    """Test images of the naive split with an image of the same leakage unit (group or near duplicate) in train."""
    train_units = {row["unit"] for row in split["train"]}
    leaking = [row for row in split["test"] if row["unit"] in train_units]
    n = len(split["test"])
    return {
        "test_images": n,
        "test_images_with_same_unit_in_train": len(leaking),
        "share": round(len(leaking) / n, 4) if n else None,
    }


def separated_pairs(
    pairs: Sequence[Row], naive: Mapping[str, Sequence[Row]], leak_free: Mapping[str, str], limit: int
) -> list[dict[str, str]]:
    """Near-duplicate pairs the naive split put in train and test, with where the leak-aware split put both.

    `pairs` are rows of near_duplicates.csv; `leak_free` maps path -> split. Cross-group pairs first (they are the
    ones only near-duplicate detection catches), then by path, at most `limit`.
    """
    where = {row["path"]: name for name, rows in naive.items() for row in rows}
    group = {row["path"]: row["group"] for rows in naive.values() for row in rows}
    found = []
    for pair in pairs:
        a, b = pair["path_a"], pair["path_b"]
        if {where.get(a), where.get(b)} != {"train", "test"}:
            continue
        train, test = (a, b) if where[a] == "train" else (b, a)
        found.append(
            {
                "naive_train": train,
                "naive_test": test,
                "method": pair.get("method", ""),
                "cross_group": str(group.get(a) != group.get(b)).lower(),
                "leak_free": f"{leak_free.get(train, '?')} / {leak_free.get(test, '?')}",
            }
        )
    found.sort(key=lambda p: (p["cross_group"] != "true", p["naive_test"]))
    return found[:limit]


def _figures(metrics: Mapping[str, Any] | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    return {key: round(float(metrics[key]), 4) for key in FIGURES if key in metrics}


def model_entry(
    trained_on: str, images: Mapping[str, int], own_test: Mapping[str, Any] | None, leak_free_test: Mapping[str, Any]
) -> dict[str, Any]:
    """One model's line of the report; `own_test` None means its own test split is the leak-free one."""
    leak_free = _figures(leak_free_test)
    return {
        "trained_on": trained_on,
        "images": dict(images),
        "own_test": _figures(own_test) if own_test is not None else leak_free,
        "leak_free_test": leak_free,
        "model_sha256": leak_free_test.get("model_sha256"),
    }


def build_report(
    models: Mapping[str, dict[str, Any]],
    metric: str,
    leaks: Mapping[str, Any] | None,
    pairs: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """The whole `reports/leakage.json` from the model entries (`leak_free` required; `naive`, `scratch` optional)."""
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "enabled": True,
        "metric": metric,
        "used_for_selection": False,
        "models": {name: dict(entry) for name, entry in models.items()},
    }
    if "naive" in models:
        naive = report["models"]["naive"]
        naive["leaks"] = dict(leaks or {})
        report["inflation"] = {
            key: round(naive["own_test"][key] - naive["leak_free_test"][key], 4) for key in naive["own_test"]
        }
        report["separated_pairs"] = [dict(pair) for pair in pairs]
    if "scratch" in models:
        report["pretraining_gain"] = {
            key: round(models["leak_free"]["leak_free_test"][key] - models["scratch"]["leak_free_test"][key], 4)
            for key in models["leak_free"]["leak_free_test"]
        }
    report["table"] = [
        {
            "model": name,
            "own_test": entry["own_test"].get(metric),
            "leak_free_test": entry["leak_free_test"].get(metric),
        }
        for name, entry in report["models"].items()
    ]
    return report


LABELS = {"leak_free": "leak-free split (ours)", "naive": "naive split (by image)", "scratch": "from scratch"}


def format_table(report: Mapping[str, Any]) -> str:
    """The lines `make demo` prints: per model, what its own test says and what the leak-free test says."""
    metric = report.get("metric", "macro_f1")
    lines = [f"{'model':<24} {'its own test':>14} {'leak-free test':>15}   ({metric})"]
    for row in report.get("table", []):
        note = ""
        if row["model"] == "naive" and "inflation" in report:
            note = f"   inflated by {report['inflation'].get(metric, 0):+.3f}"
        lines.append(
            f"{LABELS.get(row['model'], row['model']):<24} {_num(row['own_test']):>14} "
            f"{_num(row['leak_free_test']):>15}{note}"
        )
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
