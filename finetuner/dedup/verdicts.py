"""What the verifier decides, and by which thresholds (finetuner/dedup/verify.py, searches.py, retouched.py).

`VerifyRule` holds the acceptance thresholds (params.yaml `dedup.verify`), `Verdicts` the decision and evidence per
pair (`Verdict` one row), `Best` each pair's best alignment so far while the verifier searches, and `passing`,
`alignment_score` and `refit_rule` how an alignment is judged against the thresholds and against another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# A refit (finetuner/dedup/refit.py) bends one image onto the other more freely than a scale and a shift, so
# it must explain more: at the verifier's own thresholds it let through light/dark twin wallpapers (0.93 / 0.79) and
# a stereo pair; a crop refitted scores 0.99 and more. So must whole frames placed and bands (searches beyond the
# candidate's views): at the plain thresholds they linked 3 pairs of look-alike specimens in the demo data.
REFIT_MIN_SIMILARITY = 0.95
REFIT_MIN_DETAIL = 0.9


@dataclass(frozen=True)
class VerifyRule:
    """Acceptance thresholds (params.yaml `dedup.verify`)."""

    min_similarity: float = 0.93
    min_detail_similarity: float = 0.6
    min_overlap: float = 0.5
    max_stretch: float = 0.7  # |log| of the aspect change the alignment implies (a copy resized to another shape)
    low_detail: float = 1.0  # detail std (grey levels) below which an image is low-detail
    flat_max_difference: float = 1.5
    min_shape_similarity: float = 0.98  # graphics: fine detail after an affine refit (finetuner/dedup/shape.py)
    min_colour_fit: float = 0.5  # share of chroma one global colour edit must explain (finetuner/dedup/colour.py)


@dataclass(frozen=True)
class Verdict:
    """One pair's decision and its evidence; `transform` reads e.g. "mirror, b in a at 0.90x1.00 +(3,0)"."""

    accepted: bool
    # "aligned", "shape" (two graphics), "frame" (photographs framed alike), "blocks", "low-detail", "colour",
    # "low-detail-colour" (two near-blank frames whose colours one edit explains less than LOW_DETAIL_COLOUR_FIT of) or
    # "toned" (colours that agree only as a toned copy's, and the grey short of min_similarity inside a frame or
    # agreeing only over local contrast)
    rule: str
    similarity: float
    detail_similarity: float
    overlap: float
    transform: str
    colour: float | None = None  # the colour check's share explained (None where it did not look)


@dataclass(frozen=True)
class Verdicts:
    """Column-wise verdicts of many pairs; `transform` reads e.g. "mirror: full of a = crop90 of b, +(2,0) x0.95"."""

    accepted: np.ndarray
    # "aligned", "shape", "frame", "blocks" (parts disagree), "low-detail", "full size", "colour", "low-detail-colour"
    # or "toned"
    rule: np.ndarray
    similarity: np.ndarray
    detail_similarity: np.ndarray
    overlap: np.ndarray
    transform: np.ndarray
    colour: np.ndarray | None = None  # the colour check's share explained, NaN where it did not look

    def __post_init__(self):
        if self.colour is None:
            object.__setattr__(self, "colour", np.full(len(self.accepted), np.nan))

    def __len__(self) -> int:
        return len(self.accepted)

    def row(self, k: int) -> Verdict:
        return Verdict(
            bool(self.accepted[k]),
            str(self.rule[k]),
            float(self.similarity[k]),
            float(self.detail_similarity[k]),
            float(self.overlap[k]),
            str(self.transform[k]),
            None if np.isnan(self.colour[k]) else float(self.colour[k]),
        )


@dataclass
class Best:
    """Per pair, the best alignment found so far and its evidence; `stage` 0 the frames as they are (inside their
    bars), 1 the regions the signal names, 2 those refined by the local search, 3 those then refitted, 4 the frames
    as they are over the content both trims keep, 5 and 6 the whole frames placed and refitted, 7 and 8 one picture as
    a band in the other's canvas, 9 the frames as they are with what is drawn over one left out, 10 the frames as they
    are with one lit like the other, 11 and 12 one whole frame with the other inside its bars, 13 and 14 the whole
    frames placed mirrored where the signal mirrored neither, 15 the frames as they are with a's hues turned, 16-19
    one picture as a band at one end of the other's canvas (a crop of one side; align.BAND_STAGES) (the searches in
    finetuner/dedup/searches.py); finetuner/dedup/align.py
    `aligned_pair` rebuilds the regions of each."""

    sim: np.ndarray
    det: np.ndarray
    overlap: np.ndarray
    stretch: np.ndarray
    how: np.ndarray
    stage: np.ndarray = field(init=False)

    def __post_init__(self):
        self.stage = np.zeros(len(self.sim), np.int8)

    def improved_by(self, where: np.ndarray, sim, det, stretch, rule: VerifyRule) -> np.ndarray:
        """Which pairs `where` an alignment with this evidence would improve on (`alignment_score`)."""
        mine = alignment_score(self.sim[where], self.det[where], self.stretch[where], rule)
        return alignment_score(sim, det, stretch, rule) > mine

    def take(self, where: np.ndarray, sim, det, overlap, stretch, how, stage: int) -> None:
        self.sim[where], self.det[where], self.overlap[where], self.stretch[where] = sim, det, overlap, stretch
        self.how[where], self.stage[where] = how, stage


def alignment_score(sim: np.ndarray, det: np.ndarray, stretch: np.ndarray, rule: VerifyRule) -> np.ndarray:
    """Which of two alignments to keep: the more similar one, and never one that stretches beyond the limit."""
    return sim + det - 10.0 * (stretch > rule.max_stretch)


def passing(rule: VerifyRule):
    """`passes(sim, det, overlap, stretch)`: which alignments meet `rule`'s thresholds."""

    def passes(sim: np.ndarray, det: np.ndarray, overlap: np.ndarray, stretch: np.ndarray) -> np.ndarray:
        return (
            (sim >= rule.min_similarity)
            & (det >= rule.min_detail_similarity)
            & (overlap >= rule.min_overlap)
            & (stretch <= rule.max_stretch)
        )

    return passes


def refit_rule(rule: VerifyRule) -> VerifyRule:
    """The thresholds a freer alignment must reach (a refit, a placement of whole frames or of a band)."""
    return replace(
        rule,
        min_similarity=max(rule.min_similarity, REFIT_MIN_SIMILARITY),
        min_detail_similarity=max(rule.min_detail_similarity, REFIT_MIN_DETAIL),
    )
