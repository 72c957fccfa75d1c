"""The validated shape of params.yaml: one frozen pydantic model per section.

`parse_params(raw_dict)` turns the parsed YAML into `Params` or raises `ConfigError` whose message names every
offending key (dotted, as in `dvc exp run -S`) and what is allowed there. Unknown keys are refused, so a typo
never silently falls back to a default. Reading the file is the stages' job (`tasks/common.py`), not this module's.
"""
from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from finetuner.families import ALL, HEAD, block_names, family_for

HASH_METHODS = ("phash", "dhash", "whash", "ahash", "colorhash")
SPLITS = ("train", "val", "test")
STAGES = ("head", "partial", "full")


class ConfigError(ValueError):
    """params.yaml is unusable; the message names the keys and the allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data -----------------------------------------------------------------------------------------------------


class DataConfig(_Section):
    raw_dir: str = "data/raw"
    image_size: int = Field(64, ge=16, le=1024)
    workers: int = Field(0, ge=0, description="processes for decoding and hashing; 0 = all cores")
    max_image_pixels: int = Field(89_478_485, gt=0, description="larger images are quarantined as decompression bombs")
    min_images_per_class: int = Field(3, ge=1, description="classes with fewer usable images are reported")


# --- dedup ----------------------------------------------------------------------------------------------------


class EmbeddingConfig(_Section):
    """The optional second signal: cosine similarity of the configured backbone's embeddings (the head's input)."""

    enabled: bool = False
    min_similarity: float = Field(0.95, gt=0, le=1, description="inclusive cosine similarity for a pair")
    image_size: int | None = Field(None, ge=16, le=1024, description="backbone input size; null = data.image_size")
    batch_size: PositiveInt = 128
    max_pairs_per_image: float = Field(
        20.0, gt=0, description="refuse a threshold that joins more pairs than this times the images (a backbone "
                                "whose embeddings do not tell these images apart)")


class VerifyConfig(_Section):
    """The verifier that decides every candidate pair (finetuner/verify.py); thresholds on 64x64 thumbnails."""

    enabled: bool = Field(True, description="false = the hash rule alone decides (require_agreement, low_info_*)")
    candidate_distance: int = Field(12, ge=0, le=32, description="Hamming radius between any two views of two images "
                                                                 "(mirror, crops, trimmed) that makes a candidate")
    min_similarity: float = Field(0.93, gt=0, le=1, description="aligned correlation needed")
    min_detail_similarity: float = Field(0.6, ge=-1, le=1, description="aligned correlation of fine detail needed")
    min_overlap: float = Field(0.6, gt=0, le=1, description="share of each image's content the alignment must cover")
    max_stretch: float = Field(0.12, ge=0, description="|log| of the aspect-ratio change an alignment may imply")
    low_detail: float = Field(1.0, ge=0, description="detail std (grey levels) below which an image is low-detail")
    flat_max_difference: float = Field(1.5, ge=0, le=255, description="low-detail pairs: mean grey difference allowed")
    candidates_per_image: int = Field(20, ge=1, description="each image's closest candidates (by hash distance) "
                                                            "that are verified; bounds the work on crowded sets")


class DedupConfig(_Section):
    methods: tuple[Literal["phash", "dhash", "whash", "ahash", "colorhash"], ...] = ("phash", "dhash")
    max_distance: int = Field(8, ge=0, le=64, description="inclusive Hamming radius on 64-bit hashes")
    require_agreement: bool = Field(True, description="a pair needs every listed method within the radius")
    low_info_std: float = Field(8.0, ge=0, le=128, description="32x32 grey thumbnail std below which it is low-detail")
    low_info_max_distance: int = Field(4, ge=0, le=64, description="stricter radius for pairs with a low-detail image")
    max_cluster_size: int = Field(50, ge=0, description="cut near-duplicate clusters beyond this size; 0 = no limit")
    embedding: EmbeddingConfig = EmbeddingConfig()
    verify: VerifyConfig = VerifyConfig()
    max_unit_share: float = Field(0.3, gt=0, le=1, description="a pair that would grow a unit (groups + pairs) past "
                                                               "this share of a class is cut and reported; 1 = never")
    explain_unit_share: float = Field(0.25, gt=0, le=1, description="units holding more of a class are explained "
                                                                     "by their bridging pairs")

    @field_validator("methods")
    @classmethod
    def _at_least_one(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        if not methods:
            raise ValueError(f"list at least one of {', '.join(HASH_METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError("each method may be listed once")
        return methods


# --- split ----------------------------------------------------------------------------------------------------


class Fractions(_Section):
    train: float = Field(0.7, ge=0, le=1)
    val: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, gt=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Fractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must sum to 1 (got {total:g})")
        if self.train <= 0:
            raise ValueError("train must be > 0")
        return self


class SplitConfig(_Section):
    fractions: Fractions = Fractions()
    group_pattern: str | None = None
    reshuffle: bool = Field(False, description="deliberately reassign every unit, ignoring the sticky registry")
    max_unit_share: float = Field(
        0.5, gt=0, le=1, description="a class whose largest unit holds more of its images is refused; 1 = never"
    )

    @field_validator("group_pattern")
    @classmethod
    def _valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        if "group" not in compiled.groupindex:
            raise ValueError("the regex needs a named group `group`, e.g. '(?P<group>patient_\\d+)/'")
        return pattern


# --- model and training -----------------------------------------------------------------------------------------


class ModelConfig(_Section):
    arch: str = "resnet18"
    weights: str | None = Field(None, description="DEFAULT, a torchvision weights name, a checkpoint path, or null")

    @field_validator("arch")
    @classmethod
    def _known_family(cls, arch: str) -> str:
        family_for(arch)  # raises with the list of known families
        return arch


class TrainConfig(_Section):
    batch_size: PositiveInt = 64
    weight_decay: float = Field(1.0e-4, ge=0)
    clip_grad_norm: float | None = Field(1.0, gt=0)
    bn_policy: Literal["frozen", "train"] = "frozen"
    select_metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (Nesterov when > 0)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: bool = Field(False, description="random flip and shift of training images")
    patience: PositiveInt | None = Field(None, description="stop a stage after this many epochs without improvement")
    cache_features: bool = Field(True, description="head-only stage: compute frozen backbone features once")
    max_steps_per_epoch: PositiveInt | None = Field(None, description="cap on optimizer steps per epoch (smoke runs)")


class StageConfig(_Section):
    epochs: int = Field(ge=0)
    train: tuple[str, ...]
    lr: dict[str, float]
    lr_decay: float | None = Field(None, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)

    @field_validator("lr")
    @classmethod
    def _positive_lrs(cls, lr: dict[str, float]) -> dict[str, float]:
        bad = {block: value for block, value in lr.items() if not value > 0}
        if bad:
            raise ValueError(f"learning rates must be > 0 (got {bad})")
        return lr

    @field_validator("train")
    @classmethod
    def _non_empty(cls, train: tuple[str, ...]) -> tuple[str, ...]:
        if not train:
            raise ValueError(f"name at least one block, `{HEAD}` or `{ALL}`")
        return train


class StagesConfig(_Section):
    head: StageConfig = StageConfig(epochs=5, train=(HEAD,), lr={HEAD: 1.0e-3})
    partial: StageConfig = StageConfig(
        epochs=5, train=("layer4", HEAD), lr={"layer4": 1.0e-5, HEAD: 1.0e-4}, warmup_epochs=1
    )
    full: StageConfig = StageConfig(
        epochs=0, train=(ALL,), lr={HEAD: 3.0e-4, "layer4": 3.0e-5}, lr_decay=0.33, warmup_epochs=1
    )


# --- evaluate -------------------------------------------------------------------------------------------------


class EvaluateConfig(_Section):
    batch_size: PositiveInt = 64
    ledger_warn_after: int = Field(
        5, ge=1, description="warn once more than this many distinct models were scored on one test split"
    )
    calibration_bins: int = Field(15, ge=2, le=100, description="equal-width confidence bins for ECE")
    device: Literal["auto", "cpu", "cuda"] = "auto"


# --- retrain ----------------------------------------------------------------------------------------------------

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-?LW#]+$")


class RetrainConfig(_Section):
    """Scheduled retraining: when a challenger replaces the champion, and when the nightly run starts."""

    min_gain: float = Field(
        0.01, ge=0, le=1, description="the challenger must beat the champion by at least this on train.select_metric"
    )
    schedule: str = Field("0 3 * * *", description="cron (5 fields, server time zone) of the retrain/nightly run")

    @field_validator("schedule")
    @classmethod
    def _cron_shape(cls, schedule: str) -> str:
        fields = schedule.split()
        # A light check so a typo fails here, with the key's name, rather than later inside Prefect's scheduler.
        if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
            raise ValueError("expected a cron expression of 5 fields (minute hour day month weekday), e.g. '0 3 * * *'")
        return schedule


# --- the whole file -------------------------------------------------------------------------------------------


class Params(_Section):
    seed: int = 0
    data: DataConfig = DataConfig()
    dedup: DedupConfig = DedupConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    stages: StagesConfig = StagesConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    retrain: RetrainConfig = RetrainConfig()

    @model_validator(mode="after")
    def _blocks_exist(self) -> Params:
        """Every block a stage trains or sets a learning rate for must exist in the chosen architecture."""
        known = block_names(self.model.arch)
        problems = []
        for stage_name in STAGES:
            stage: StageConfig = getattr(self.stages, stage_name)
            prefix = f"stages.{stage_name}"
            for block in stage.train:
                if block not in known and block != ALL:
                    problems.append(f"{prefix}.train: unknown block {block!r}")
            for block in stage.lr:
                if block not in known:
                    problems.append(f"{prefix}.lr: unknown block {block!r}")
            trained = known if ALL in stage.train else [b for b in stage.train if b in known]
            missing = [b for b in trained if b not in stage.lr]
            if stage.epochs and missing and stage.lr_decay is None:
                problems.append(
                    f"{prefix}.lr: no learning rate for {missing}; give one per trained block or set {prefix}.lr_decay"
                )
        if problems:
            allowed = ", ".join([*known, ALL])
            raise ValueError("; ".join(problems) + f" (blocks of {self.model.arch}: {allowed})")
        return self


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a parsed params.yaml; every problem is reported at once, each with its dotted key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (a typo? see params.yaml in the repository for every allowed key)"
        elif error["type"] == "literal_error":
            message = f"{message}; got {error['input']!r}"
        elif "input" in error and not isinstance(error["input"], dict):
            message = f"{message}; got {error['input']!r}"
        lines.append(f"  - {key}: {message}")
    return "\n".join(lines)
