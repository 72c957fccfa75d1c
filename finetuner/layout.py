"""Every file the pipeline reads or writes, named once: paths relative to the repository root, and column lists.

Stages, flows, reports, the retrain registry and tests take their paths from here (kedro's data catalog, in Python).
dvc.yaml cannot import Python, so tests/test_layout.py checks that its `outs`, `metrics` and `plots` are exactly the
artifacts named below. Paths under `data.raw_dir` (params.yaml) are relative to that folder, not to the root.
"""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = "params.yaml"

# Under params.yaml's data.raw_dir.
RAW_IMAGES = "images"
RAW_METADATA = "metadata.csv"

# ingest
MANIFEST = Path("data/interim/manifest.csv")
MANIFEST_COLUMNS = ("path", "label", "group", "status", "reason", "sha256", "width", "height")
# The manifest's group_source of an image filed as its own group, no group declared for it (the others: "metadata",
# "pattern")
IMAGE_GROUP = "image"
INGEST_REPORT = Path("reports/ingest.json")

# dedup
NEAR_DUPLICATES = Path("data/interim/near_duplicates.csv")
PAIR_COLUMNS = ("path_a", "path_b", "method", "distance")
UNITS = Path("data/interim/units.csv")
UNIT_COLUMNS = ("path", "unit")
DEDUP_REPORT = Path("reports/dedup.json")
DEDUP_PAGE = Path("reports/dedup.html")
DEDUP_CACHE = Path("data/cache/dedup")  # hashes and embeddings per content sha256 (gitignored)

# split
SPLITS = Path("data/splits")
SPLIT_NAMES = ("train", "val", "test")
SPLIT_COLUMNS = ("path", "label", "group", "unit")
SPLIT_REGISTRY = SPLITS / "registry.csv"
SPLIT_REGISTRY_CHECKSUM = SPLITS / "registry.csv.sha256"
REGISTRY_COLUMNS = ("path", "unit", "group", "label", "split", "assigned_at_run")
SPLIT_REPORT = Path("reports/split.json")

# train_head, train_partial, train_full
TRAINING_STAGES = ("train_head", "train_partial", "train_full")
MODELS = Path("models")
BEST_MODEL = MODELS / "best.pt"  # best validation checkpoint over every training stage so far
IMAGE_CACHE = Path("data/cache/images")  # decoded images, content-addressed (gitignored)
RESUME = Path("checkpoints")  # per-stage resume state (gitignored)
TRAIN_REPORTS = Path("reports/train")

# evaluate
REPORTS = Path("reports")
METRICS = REPORTS / "metrics.json"
TEST_SCORES = REPORTS / "test_scores.json"
LEAKAGE = REPORTS / "leakage.json"
PREDICTIONS = REPORTS / "predictions.csv"
CONFUSION_MATRIX = REPORTS / "confusion_matrix.png"
RELIABILITY = REPORTS / "reliability.png"
TEST_SAMPLES = REPORTS / "test_samples.png"
TRAINING_CURVES = REPORTS / "training_curves.png"
SEPARATED_PAIRS = REPORTS / "separated_pairs.png"
SUMMARY = REPORTS / "summary.md"
MODEL_CARD = REPORTS / "model_card.md"
TEST_LEDGER = REPORTS / "test_ledger.json"  # deliberately not a DVC output: it must survive checkouts

# retrain (flows/retrain.py; no DVC stage)
CHAMPION = MODELS / "champion.pt"
CHAMPION_CARD = MODELS / "champion.md"
CHAMPION_PENDING = MODELS / "champion.pending.pt"  # a promoted challenger until models/champion.pt is replaced
RETRAIN_REGISTRY = REPORTS / "retrain_registry.jsonl"
RETRAIN_SCORES = REPORTS / "retrain"

# demo (make demo-data)
DEMO_SOURCE_IMAGES = Path("data/source/images")
DEMO_BACKBONE = MODELS / "demo_backbone.pt"

# Per-run facts (times, cache hits) that must stay out of DVC-tracked files.
RUN_LOGS = Path("logs")
DVC_LOCK = Path("dvc.lock")


def stage_models(stage: str) -> Path:
    """`models/<stage>/`: best.pt (best so far), stage_best.pt, last.pt, recipe.json of one training stage."""
    return MODELS / stage


def stage_reports(stage: str) -> Path:
    """`reports/train/<stage>/`: the stage's per-epoch metrics (DVCLive)."""
    return TRAIN_REPORTS / stage


def split_csv(name: str) -> Path:
    return SPLITS / f"{name}.csv"


def dvc_outputs() -> dict[str, set[Path]]:
    """What each dvc.yaml stage declares as outs, metrics or plots (tests/test_layout.py holds dvc.yaml to it)."""
    outputs = {
        "ingest": {MANIFEST, INGEST_REPORT},
        "dedup": {NEAR_DUPLICATES, UNITS, DEDUP_REPORT, DEDUP_PAGE},
        "split": {*(split_csv(name) for name in SPLIT_NAMES), SPLIT_REGISTRY, SPLIT_REGISTRY_CHECKSUM, SPLIT_REPORT},
        "evaluate": {
            METRICS,
            TEST_SCORES,
            LEAKAGE,
            PREDICTIONS,
            CONFUSION_MATRIX,
            RELIABILITY,
            TEST_SAMPLES,
            TRAINING_CURVES,
            SEPARATED_PAIRS,
            SUMMARY,
            MODEL_CARD,
        },
    }
    for stage in TRAINING_STAGES:
        outputs[stage] = {stage_models(stage), stage_reports(stage)}
    outputs[TRAINING_STAGES[-1]].add(BEST_MODEL)
    return outputs
