"""What the recipe decided in a training stage, on disk: `recipe.json`, the `lr: auto` range test and its plot.

- `models/<stage>/recipe.json` (a DVC output; the next stage's gate reads it) and a copy in
  `reports/train/<stage>/recipe.json`: ran or skipped and why, start and best validation value, gain, the rates
  (and whether a range test found them), planned and run epochs. No timings: tracked files stay byte-identical.
- `reports/train/<stage>/lr_find.json` and `lr_find.png`: the range-test curve and the chosen factor.
- `checkpoints/<stage>/lr_find.pt`: the range test of an unfinished stage, reused on resume when its fingerprint
  matches, so a resumed run never re-runs it (and cannot pick a different rate).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from finetuner.common.stage import atomic_path, write_json
from finetuner.train import stage_files as train_io
from finetuner.train.lr_finder import RangeTest

log = logging.getLogger("finetuner.train")
RECIPE_FILE = "recipe.json"


def read_recipe(paths: train_io.StagePaths) -> dict[str, Any] | None:
    """The previous stage's recipe record, or None (first stage, or written by an older version)."""
    if paths.previous is None:
        return None
    return recipe_record(paths.root, paths.previous)


def recipe_record(root: Path, stage: str) -> dict[str, Any] | None:
    """models/<stage>/recipe.json under `root`, or None when absent or unreadable (an older version wrote none)."""
    try:
        record = json.loads((root / "models" / stage / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_recipe(paths: train_io.StagePaths, record: dict[str, Any]) -> None:
    for directory in (paths.out, paths.reports):
        write_json(directory / RECIPE_FILE, record)
    log.info("%s recipe: %s", paths.stage, record.get("reason", ""))


def recall_range_test(paths: train_io.StagePaths, expected: str) -> RangeTest | None:
    state = train_io.load_state(paths, expected, "lr_find.pt", "runs its range test again")
    if state is None:
        return None
    log.info(
        "%s: reusing the recorded range test (factor %.3g), not re-running it", paths.stage, state["test"]["chosen"]
    )
    return RangeTest(**state["test"])


def remember_range_test(paths: train_io.StagePaths, expected: str, test: RangeTest) -> None:
    train_io.save_state(paths, "lr_find.pt", {"fingerprint": expected, "test": test.to_dict()})


def write_range_test(paths: train_io.StagePaths, test: RangeTest, rates: dict[str, float]) -> None:
    write_json(paths.reports / "lr_find.json", {**test.to_dict(), "rates": rates})
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.plot(test.factors, test.losses, alpha=0.3, label="loss")
    axes.plot(test.factors, test.smoothed, label="smoothed loss")
    axes.axvline(test.chosen, color="red", linestyle="--", label=f"chosen x{test.chosen:.3g}")
    axes.set_xscale("log")
    axes.set_xlabel("factor of the base rates")
    axes.set_ylabel("training loss")
    axes.set_title(f"{paths.stage}: learning-rate range test")
    axes.legend()
    figure.tight_layout()
    with atomic_path(paths.reports / "lr_find.png") as tmp:
        figure.savefig(tmp, format="png", dpi=80, metadata={"Software": None})


def skipped_record(stage: str, reason: str, previous_best: float | None) -> dict[str, Any]:
    return {
        "stage": stage,
        "ran": False,
        "reason": reason,
        "start_value": previous_best,
        "best_value": previous_best,
        "gain": 0.0,
    }


def trained_record(
    stage: str, reason: str, start_value: float | None, history: list[dict[str, Any]], metric: str, **details: Any
) -> dict[str, Any]:
    """`gain` = the stage's best validation value minus the value it started from."""
    values = [record[f"val_{metric}"] for record in history]
    best = max(values) if values else None
    gain = best - start_value if best is not None and start_value is not None else None
    return {
        "stage": stage,
        "ran": True,
        "reason": reason,
        "start_value": start_value,
        "best_value": best,
        "gain": gain,
        "epochs_run": len(history),
        **details,
    }
