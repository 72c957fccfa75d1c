"""Part of the `evaluate` stage: the naive-split and from-scratch comparisons behind `reports/leakage.json`.

Called by `tasks.evaluate` when `evaluate.leakage.naive` or `.scratch` is on. Each comparison model is trained with
the pipeline's own stage code inside a throwaway workspace, so nothing under `models/` or `reports/train/` changes,
and is then scored on the leak-aware test split by the caller, which counts every such look in the test ledger.
- naive: the same recipe on the naive split, reusing the rates the leak-free run's range tests chose (the same
  settings, and no second range test to pay for); each stage's gate still decides on the naive validation split.
- scratch: random weights, every block trained from the start at one rate (the `full` stage alone, ungated, with
  its step budget): a head probe or a partial stage on random features would only spend time.
None of these figures chooses anything: `models/best.pt` was fixed before this runs, and the report says so
(`used_for_selection: false`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from finetuner import layout
from finetuner.common.stage import read_csv, write_csv
from finetuner.config import Params
from finetuner.evaluate.leakage import build_report, model_entry, naive_leaks, naive_split, separated_pairs
from finetuner.train.families import ALL, HEAD
from finetuner.train.recipe_files import recipe_record
from finetuner.train.stage import STAGES, run_training_stage

log = logging.getLogger("finetuner.evaluate")

SPLIT_COLUMNS = layout.SPLIT_COLUMNS
Rows = Sequence[Mapping[str, str]]
#: (checkpoint, rows, ledger source) -> the evaluate stage's metrics for those rows; a look at the test split passes
#: the source under which the ledger counts it, any other rows None.
Scorer = Callable[[Path, Rows, "str | None"], dict[str, Any]]


def train_in_sandbox(params: Params, root: Path, splits: Mapping[str, Rows], sandbox: Path) -> Path:
    """Run the three training stages on `splits` (train/val) inside `sandbox`; returns its best checkpoint.

    The sandbox sees the real images through a link to the raw folder and gets its own splits, models and logs.
    """
    raw = Path(params.data.raw_dir)
    if not raw.is_absolute():
        (sandbox / raw).parent.mkdir(parents=True, exist_ok=True)
        (sandbox / raw).symlink_to((root / raw).resolve(), target_is_directory=True)
    for name in ("train", "val"):
        write_csv(sandbox / "data" / "splits" / f"{name}.csv", splits[name], SPLIT_COLUMNS)
    for stage in STAGES:
        run_training_stage(stage, params, sandbox)
    return sandbox / "models" / "best.pt"


def _with_weights(params: Params, root: Path, weights: str | None) -> Params:
    """params with model.weights replaced; a relative weights path is made absolute (the sandbox is elsewhere)."""
    if weights is not None and (root / weights).is_file():
        weights = str((root / weights).resolve())
    return params.model_copy(update={"model": params.model.model_copy(update={"weights": weights})})


def _with_rates(params: Params, root: Path) -> Params:
    """params whose `lr: auto` stages take the rates the leak-free run recorded in models/<stage>/recipe.json."""
    stages = {}
    for stage, (section, _) in STAGES.items():
        config = getattr(params.stages, section)
        record = recipe_record(root, stage) or {}
        if config.lr == "auto" and record.get("lr_source") == "auto" and record.get("lr"):
            config = config.model_copy(update={"lr": dict(record["lr"])})
        stages[section] = config
    return params.model_copy(update={"stages": params.stages.model_copy(update=stages)})


def _scratch(params: Params) -> Params:
    """params that train every block from the first step: head and partial off, full ungated, and one rate for all
    blocks (the full stage's head rate: a random network has no general lower blocks to protect)."""
    full = params.stages.full
    update: dict[str, Any] = {"min_gain": None, "train": (ALL,)}
    if isinstance(full.lr, dict):
        update.update(lr={HEAD: max(full.lr.values())}, lr_decay=1.0)
    stages = params.stages.model_copy(
        update={
            "head": params.stages.head.model_copy(update={"epochs": 0}),
            "partial": params.stages.partial.model_copy(update={"epochs": 0}),
            "full": full.model_copy(update=update),
        }
    )
    return params.model_copy(update={"stages": stages})


def _counts(splits: Mapping[str, Rows]) -> dict[str, int]:
    return {name: len(rows) for name, rows in splits.items()}


def compare(params: Params, root: Path, test_rows: Rows, leak_free: dict[str, Any], score: Scorer) -> dict[str, Any]:
    """Train and score the comparison models; returns the `reports/leakage.json` dict.

    `leak_free` is models/best.pt's test metrics, already computed by the caller; `score(checkpoint, rows, source)`
    scores a checkpoint on rows (the caller records looks at the test split in the ledger).
    """
    cfg = params.evaluate.leakage
    splits_dir = root / "data" / "splits"
    ours = {name: read_csv(splits_dir / f"{name}.csv", required=SPLIT_COLUMNS) for name in ("train", "val")}
    ours["test"] = list(test_rows)
    models = {"leak_free": model_entry("leak-aware split (data/splits), model.weights", _counts(ours), None, leak_free)}
    leaks, pairs = None, []
    if cfg.naive:
        naive = naive_split(ours["train"] + ours["val"], params.split.fractions.model_dump(), params.seed)
        leaks = naive_leaks(naive)
        log.info(
            "leakage: naive split of the %d train+val images: %d of its %d test images have an image of the "
            "same unit in its train split",
            sum(_counts(naive).values()),
            leaks["test_images_with_same_unit_in_train"],
            leaks["test_images"],
        )
        same = _with_rates(_with_weights(params, root, params.model.weights), root)
        own, true = _train_and_score(
            "naive split", same, root, naive, [(naive["test"], None), (test_rows, "leakage: naive")], score
        )
        models["naive"] = model_entry(
            "naive per-image split of the same train+val images, model.weights", _counts(naive), own, true
        )
        where = {row["path"]: name for name, rows in ours.items() for row in rows}
        pairs = separated_pairs(_pairs(root), naive, where, cfg.pairs_shown)
    if cfg.scratch:
        (true,) = _train_and_score(
            "from-scratch",
            _scratch(_with_weights(params, root, None)),
            root,
            ours,
            [(test_rows, "leakage: scratch")],
            score,
        )
        models["scratch"] = model_entry(
            "leak-aware split, random initialisation (model.weights: null), all blocks", _counts(ours), None, true
        )
    return build_report(models, params.train.select_metric, leaks, pairs)


def _train_and_score(
    what: str,
    params: Params,
    root: Path,
    splits: Mapping[str, Rows],
    scorings: Sequence[tuple[Rows, str | None]],
    score: Scorer,
) -> list[dict[str, Any]]:
    """Train in a throwaway sandbox (removed afterwards, whatever happens), then score on each of `scorings`."""
    began = time.perf_counter()
    log.info("leakage: training the %s model with the pipeline's recipe", what)
    with tempfile.TemporaryDirectory(prefix="finetuner-leakage-") as box:
        best = train_in_sandbox(params, root, splits, Path(box))
        log.info("leakage: %s model trained in %.0f s", what, time.perf_counter() - began)
        return [score(best, rows, source) for rows, source in scorings]


def _pairs(root: Path) -> list[dict[str, str]]:
    path = root / "data" / "interim" / "near_duplicates.csv"
    return read_csv(path, required=("path_a", "path_b")) if path.exists() else []
