"""The validated shape of params.yaml: one frozen pydantic model per section.

`parse_params(raw_dict)` turns the parsed YAML into `Params` or raises `ConfigError` whose message names every
offending key (dotted, as in `dvc exp run -S`) and what is allowed there. Unknown keys are refused, so a typo
never silently falls back to a default. Reading the file is the stages' job (`finetuner/common/stage.py`), not
this module's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Strict,
    StrictBool,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from finetuner.params_checks import TORCHVISION_WEIGHTS, cron_problem, looks_like_path, weights_names
from finetuner.split.fractions import fraction_problem
from finetuner.train.families import ALL, HEAD, block_names, family_for

HASH_METHODS = ("phash", "dhash", "whash", "ahash", "colorhash")
SPLITS = ("train", "val", "test")
STAGES = ("head", "partial", "full")


class ConfigError(ValueError):
    """params.yaml is unusable; the message names the keys and the allowed values."""


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


# YAML's types are kept as written: `epochs: 5.0`, `batch_size: "64"` or `augment: 1` are refused rather than
# quietly converted. Only floats stay lax, because YAML 1.1 reads an unquoted `1e-4` (no dot) as a string.
Int = Annotated[int, Strict()]
PosInt = Annotated[PositiveInt, Strict()]
Float = Annotated[float, BeforeValidator(_refuse_bool)]
Bool = StrictBool


class _Section(BaseModel):
    # allow_inf_nan=False: an infinite or NaN rate, fraction or threshold never reaches the stages.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- data -----------------------------------------------------------------------------------------------------


class DataConfig(_Section):
    raw_dir: str = "data/raw"
    image_size: Int = Field(64, ge=16, le=1024)
    workers: Int = Field(0, ge=0, description="processes for decoding and hashing; 0 = all cores")
    max_image_pixels: Int = Field(89_478_485, gt=0, description="larger images are quarantined as decompression bombs")
    min_images_per_class: Int = Field(3, ge=1, description="classes with fewer usable images are reported")


# --- dedup ----------------------------------------------------------------------------------------------------


class EmbeddingConfig(_Section):
    """The optional second signal: cosine similarity of the configured backbone's embeddings (the head's input)."""

    enabled: Bool = False
    min_similarity: Float = Field(0.95, gt=0, le=1, description="inclusive cosine similarity for a pair")
    image_size: Int | None = Field(None, ge=16, le=1024, description="backbone input size; null = data.image_size")
    batch_size: PosInt = 128
    max_pairs_per_image: Float = Field(
        20.0,
        gt=0,
        description="refuse a threshold that joins more pairs than this times the images (a backbone "
        "whose embeddings do not tell these images apart)",
    )


class VerifyConfig(_Section):
    """The verifier that decides every candidate pair (finetuner/dedup/verify.py); thresholds on 64x64 thumbnails."""

    enabled: Bool = Field(True, description="false = the hash rule alone decides (require_agreement, low_info_*)")
    candidate_distance: Int = Field(
        12,
        ge=0,
        le=32,
        description="Hamming radius between any two views of two images "
        "(mirror, crops, trimmed) that makes a candidate",
    )
    min_similarity: Float = Field(0.93, gt=0, le=1, description="aligned correlation needed")
    min_detail_similarity: Float = Field(0.6, ge=-1, le=1, description="aligned correlation of fine detail needed")
    min_overlap: Float = Field(0.5, gt=0, le=1, description="share of each image's content the alignment must cover")
    max_stretch: Float = Field(0.7, ge=0, description="|log| of the aspect-ratio change an alignment may imply")
    low_detail: Float = Field(1.0, ge=0, description="detail std (grey levels) below which an image is low-detail")
    flat_max_difference: Float = Field(1.5, ge=0, le=255, description="low-detail pairs: mean grey difference allowed")
    min_shape_similarity: Float = Field(
        0.98,
        ge=-1,
        le=1,
        description="two graphics (half the frame plain): fine detail needed after an affine refit; -1 = off",
    )
    min_colour_fit: Float = Field(
        0.5,
        ge=-1,
        le=1,
        description="share of one image's chroma that a global colour edit of the other must explain "
        "(a product in another colour is not a copy); -1 = off",
    )
    candidates_per_image: Int = Field(
        20,
        ge=1,
        description="each image's closest candidates (by hash distance) "
        "that are verified; bounds the work on crowded sets",
    )
    prescreen_similarity: Float = Field(
        0.6,
        ge=-1,
        le=1,
        description="16x16 correlation below which a candidate is rejected before alignment "
        "(finetuner/dedup/prescreen.py); -1 = verify every candidate",
    )


class DedupConfig(_Section):
    methods: tuple[Literal["phash", "dhash", "whash", "ahash", "colorhash"], ...] = ("phash", "dhash")
    max_distance: Int = Field(8, ge=0, le=64, description="inclusive Hamming radius on 64-bit hashes")
    require_agreement: Bool = Field(True, description="a pair needs every listed method within the radius")
    low_info_std: Float = Field(8.0, ge=0, le=128, description="32x32 grey thumbnail std below which it is low-detail")
    low_info_max_distance: Int = Field(4, ge=0, le=64, description="stricter radius for pairs with a low-detail image")
    max_cluster_size: Int = Field(50, ge=0, description="cut near-duplicate clusters beyond this size; 0 = no limit")
    embedding: EmbeddingConfig = EmbeddingConfig()
    verify: VerifyConfig = VerifyConfig()
    max_unit_share: Float = Field(
        0.3,
        gt=0,
        le=1,
        description="a pair that would grow a unit (groups + pairs) past "
        "this share of a class is cut and reported; 1 = never",
    )
    explain_unit_share: Float = Field(
        0.25, gt=0, le=1, description="units holding more of a class are explained by their bridging pairs"
    )
    min_design_share: Float = Field(
        0.5,
        ge=0,
        le=1,
        description="a pair of look-alike graphics or blank frames between two declared groups stands when the pairs "
        "between the groups join this share of one group's images (twin designs; see max_design_chance); 0 = off",
    )
    max_design_chance: Float = Field(
        0.001,
        ge=0,
        le=1,
        description="...or when they join more of one group's images than its look-alikes would, by chance, with at "
        "most this probability",
    )

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
    train: Float = Field(0.7, ge=0, le=1)
    val: Float = Field(0.15, ge=0, le=1)
    test: Float = Field(0.15, gt=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Fractions:
        problem = fraction_problem(self.train, self.val, self.test)
        if problem:
            raise ValueError(problem)
        return self


class SplitConfig(_Section):
    fractions: Fractions = Fractions()
    group_pattern: str | None = None
    reshuffle: Bool = Field(False, description="deliberately reassign every unit, ignoring the sticky registry")
    max_unit_share: Float = Field(
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
        if arch not in TORCHVISION_WEIGHTS:
            close = sorted(name for name in TORCHVISION_WEIGHTS if name[:4] == arch[:4]) or sorted(TORCHVISION_WEIGHTS)
            raise ValueError(f"{arch!r} is not a torchvision model of a supported family (e.g. {', '.join(close)})")
        return arch

    @field_validator("weights")
    @classmethod
    def _weights_exist(cls, weights: str | None, info: ValidationInfo) -> str | None:
        """A weights name must be one of the architecture's; a path must exist (relative to the project root,
        checked when the caller says where that is: the stages and flows do, a bare parse does not)."""
        arch = info.data.get("arch")
        if weights is None or arch is None or weights in weights_names(arch):
            return weights  # (an invalid arch is reported on its own)
        allowed = f"{', '.join(weights_names(arch))} (weights names of {arch}), a checkpoint path, or null"
        root = (info.context or {}).get("root")
        exists = root is not None and (Path(root) / weights).is_file()
        if looks_like_path(weights) or exists:
            if root is not None and not exists:
                raise ValueError(f"checkpoint file not found under {Path(root).resolve()}; allowed: {allowed}")
            return weights
        raise ValueError(f"not a weights name of {arch}; allowed: {allowed}")


# `train.nproc`: a count or `auto`; like LearningRates below, the value's type picks the branch, so one problem is
# shown.
Processes = Annotated[
    Annotated[Literal["auto"], Tag("auto")] | Annotated[PosInt, Tag("count")],
    Discriminator(lambda value: "auto" if isinstance(value, str) else "count"),
]


class TrainConfig(_Section):
    batch_size: PosInt = 64
    weight_decay: Float = Field(1.0e-4, ge=0)
    clip_grad_norm: Float | None = Field(1.0, gt=0)
    bn_policy: Literal["frozen", "train", "eval"] = "frozen"
    select_metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: Float = Field(0.9, ge=0, lt=1, description="SGD momentum (Nesterov when > 0)")
    label_smoothing: Float = Field(0.1, ge=0, lt=1, description="soft targets in the gradient stages")
    augment: Bool = Field(False, description="random crops and flips in stages that train backbone blocks")
    patience: PosInt | None = Field(3, description="stop a stage after this many epochs without improvement")
    cache_features: Bool = Field(True, description="head-only stage: compute frozen backbone features once")
    max_steps_per_epoch: PosInt | None = Field(None, description="cap on optimizer steps per epoch (smoke runs)")
    lr_find_steps: Int = Field(100, ge=10, le=10_000, description="steps of the learning-rate range test (`lr: auto`)")
    nproc: Processes = Field(
        1, description="processes per training stage (DDP under torchrun); auto = one per visible GPU, 1 on CPU"
    )


# A stage's `lr`: per-block rates, or `auto` (a range test). The string picks the branch before validation, so a bad
# rate is reported once, at its key, not once per union branch.
_RATES_TAG = "per-block rates"
LearningRates = Annotated[
    Annotated[Literal["auto"], Tag("auto")] | Annotated[dict[str, Float], Tag(_RATES_TAG)],
    Discriminator(lambda value: "auto" if isinstance(value, str) else _RATES_TAG),
]


class StageConfig(_Section):
    """One training stage. `epochs` caps its length; `min_steps` stretches it on small data (train/recipe.py)."""

    epochs: Int = Field(ge=0)
    train: tuple[str, ...]
    lr: LearningRates
    lr_decay: Float | None = Field(None, gt=0, le=1)
    warmup_epochs: Int = Field(0, ge=0)
    min_steps: Int = Field(0, ge=0, description="plan at least this many optimizer steps, within the `epochs` cap")
    solver: Literal["gradient", "lbfgs"] = Field(
        "gradient", description="lbfgs: head only, full-batch multinomial logistic regression on cached features"
    )
    min_gain: Float | None = Field(
        None, ge=0, le=1, description="run only if the previous stage gained at least this on validation"
    )

    @field_validator("lr")
    @classmethod
    def _positive_lrs(cls, lr: dict[str, float] | str) -> dict[str, float] | str:
        if isinstance(lr, str):
            return lr
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

    @model_validator(mode="after")
    def _lbfgs_trains_the_head_only(self) -> StageConfig:
        if self.solver == "lbfgs" and self.train != (HEAD,):
            raise ValueError(
                f"solver lbfgs fits the head alone on frozen features: set train: [{HEAD}] "
                f"(got {list(self.train)}) or solver: gradient"
            )
        return self


class StagesConfig(_Section):
    """A `stages` section names all three stages: a missing one would otherwise train with defaults nobody chose."""

    head: StageConfig
    partial: StageConfig
    full: StageConfig


# The defaults when params.yaml has no `stages` section at all: the recipe of README "The training recipe" (the
# seed recipe's explicit numbers are documented there too).
DEFAULT_STAGES = StagesConfig(
    head=StageConfig(epochs=100, train=(HEAD,), lr={HEAD: 1.0e-3}, solver="lbfgs"),
    partial=StageConfig(
        epochs=30, train=("layer3", "layer4", HEAD), lr={HEAD: 1.0e-3}, lr_decay=0.5, warmup_epochs=1, min_steps=300
    ),
    full=StageConfig(
        epochs=30, train=(ALL,), lr={HEAD: 1.0e-3}, lr_decay=1.0, warmup_epochs=1, min_steps=300, min_gain=0.01
    ),
)


# --- evaluate -------------------------------------------------------------------------------------------------


class LeakageConfig(_Section):
    """The comparisons behind reports/leakage.json: each trains the pipeline's recipe once more (evaluate stage)."""

    naive: Bool = Field(False, description="train on a per-image random split of train+val; report its inflation")
    scratch: Bool = Field(False, description="train from random initialisation; report the value of pretraining")
    pairs_shown: Int = Field(6, ge=0, le=50, description="near-duplicate pairs the naive split separated, pictured")


class EvaluateConfig(_Section):
    batch_size: PosInt = 64
    ledger_warn_after: Int = Field(
        5, ge=1, description="warn once more than this many distinct models were scored on one test split"
    )
    calibration_bins: Int = Field(15, ge=2, le=100, description="equal-width confidence bins for ECE")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    leakage: LeakageConfig = LeakageConfig()


# --- retrain ----------------------------------------------------------------------------------------------------


class RetrainConfig(_Section):
    """Scheduled retraining: when a challenger replaces the champion, and when the nightly run starts."""

    min_gain: Float = Field(
        0.01, ge=0, le=1, description="the challenger must beat the champion by at least this on train.select_metric"
    )
    schedule: str = Field("0 3 * * *", description="cron (5 fields, server time zone) of the retrain/nightly run")

    @field_validator("schedule")
    @classmethod
    def _cron_shape(cls, schedule: str) -> str:
        # Checked here, with the key's name, rather than later inside Prefect's scheduler.
        problem = cron_problem(schedule)
        if problem:
            raise ValueError(
                f"{problem}; allowed: a cron expression of 5 fields (minute hour day-of-month month "
                "day-of-week), e.g. '0 3 * * *' (03:00 daily) or '30 1 * * 1-5'"
            )
        return schedule


# --- the whole file -------------------------------------------------------------------------------------------


class Params(_Section):
    seed: Int = Field(0, ge=0, le=2**32 - 1, description="every random draw derives from it")
    data: DataConfig = DataConfig()
    dedup: DedupConfig = DedupConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    stages: StagesConfig = DEFAULT_STAGES
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
            if stage.lr == "auto":  # one range-tested factor over ratios from lr_decay: every block has a rate
                continue
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
            # One line per problem, each starting with its dotted key (format_validation_error lists them).
            raise ValueError("\n".join(f"{problem} (blocks of {self.model.arch}: {allowed})" for problem in problems))
        return self


def parse_params(raw: Any, source: str = "params.yaml", root: str | Path | None = None) -> Params:
    """Validate a parsed params.yaml; every problem is reported at once, each with its dotted key.

    With `root` (the project directory), files params.yaml names (`model.weights`) must exist there too.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw, context={"root": root} if root is not None else None)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"] if part not in ("auto", _RATES_TAG))
        message = error["msg"].removeprefix("Value error, ")
        if not key:  # checks across sections name their keys themselves, one problem per line
            lines += [f"  - {line}" for line in message.splitlines()]
            continue
        if error["type"] == "extra_forbidden":
            message = f"unknown key (a typo?); allowed here: {', '.join(_allowed_keys(error['loc'][:-1]))}"
        elif error["type"] == "missing":
            message = f"missing key; this section needs {', '.join(_required_keys(error['loc'][:-1]))}"
        elif error["type"] == "literal_error" or "input" in error and not isinstance(error["input"], dict):
            message = f"{message}; got {error['input']!r}"
        lines.append(f"  - {key}: {message}")
    return "\n".join(lines)


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model a location points into (None below a plain dict such as a stage's `lr`)."""
    model: Any = Params
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    section = _section_at(loc)
    return list(section.model_fields) if section else []


def _required_keys(loc: tuple[Any, ...]) -> list[str]:
    section = _section_at(loc)
    return [name for name, field in section.model_fields.items() if field.is_required()] if section else []
