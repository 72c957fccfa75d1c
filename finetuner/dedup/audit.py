"""The report's audit of the verifier's cut-off (reports/dedup.html, reports/dedup.json): how far each candidate lies
from the thresholds of the rule that decided it (`margin`), the rejected candidates nearest the cut-off, shown side by
side so a person can see whether it is too strict (`nearest_rejected`), and the pairs and largest cluster at
thresholds around `min_similarity` (`verify_tradeoff`). Called by finetuner/dedup/detect.py on the verified candidates
(finetuner/dedup/candidates.py).
"""

from __future__ import annotations

import numpy as np

from finetuner.config import VerifyConfig
from finetuner.dedup.candidates import Verified
from finetuner.dedup.colour_checks import LOW_DETAIL_COLOUR_FIT
from finetuner.dedup.surround import MIN_BLOCK_AGREEMENT, MIN_INSIDE_SIMILARITY
from finetuner.dedup.units import cluster_stats

MAX_REJECTED_SHOWN = 30


def margin(verified: Verified, config: VerifyConfig) -> np.ndarray:
    """How far each candidate is from the cut-off (negative = rejected), in the measure its rule uses."""
    v = verified.verdicts
    aligned = np.minimum.reduce(
        [
            v.similarity - config.min_similarity,
            v.detail_similarity - config.min_detail_similarity,
            v.overlap - config.min_overlap,
        ]
    )
    shape = np.minimum(aligned, v.detail_similarity - config.min_shape_similarity)
    inside = np.minimum.reduce(
        [
            v.similarity - MIN_INSIDE_SIMILARITY,
            v.detail_similarity - config.min_detail_similarity,
            v.overlap - config.min_overlap,
        ]
    )
    flat = v.similarity - (1.0 - config.flat_max_difference / 255.0)
    colour = np.asarray(v.colour, np.float64) - config.min_colour_fit
    plain_colour = np.asarray(v.colour, np.float64) - max(config.min_colour_fit, LOW_DETAIL_COLOUR_FIT)
    blocks = v.similarity - MIN_BLOCK_AGREEMENT  # a pair refused by its blocks has their agreement as its similarity
    toned = v.similarity - config.min_similarity  # inside a frame, held to the verifier's own bar
    rules = ["low-detail", "shape", "frame", "colour", "low-detail-colour", "blocks", "toned"]
    measures = [flat, shape, inside, colour, plain_colour, blocks, toned]
    return np.select([v.rule == r for r in rules], measures, aligned)


def nearest_rejected(verified: Verified, config: VerifyConfig) -> np.ndarray:
    """Positions of the rejected candidates closest to the cut-off, closest first (at most MAX_REJECTED_SHOWN)."""
    gap = margin(verified, config)
    rejected = np.flatnonzero(~verified.verdicts.accepted)
    order = np.lexsort((verified.b[rejected], verified.a[rejected], -gap[rejected]))
    return rejected[order][:MAX_REJECTED_SHOWN]


def verify_tradeoff(n: int, verified: Verified, config: VerifyConfig) -> list[dict]:
    """Pairs and largest cluster (before the size guard) if min_similarity were a little looser or stricter. The row
    at the threshold is the verdicts as they are, and stricter rows drop accepted pairs below them; looser rows add
    the aligned candidates rejected only for similarity, an upper bound: the stretch limit and, for graphics and
    framed photographs, the shape and surround checks were not run on them. Framed pairs, like near-blank ones, are
    judged by their own threshold in every row."""
    v = verified.verdicts
    exempt = np.isin(v.rule, ("low-detail", "frame"))  # their own rules, not this similarity threshold
    short = (  # aligned, rejected for similarity alone (not for its stretch)
        (v.rule == "aligned")
        & (v.similarity < config.min_similarity)
        & (v.detail_similarity >= config.min_detail_similarity)
        & (v.overlap >= config.min_overlap)
    )
    rows = []
    for step in (-0.06, -0.03, 0.0, 0.02, 0.04):
        threshold = round(config.min_similarity + step, 4)
        if not 0 < threshold <= 1:
            continue
        keep = v.accepted & (exempt | (v.similarity >= threshold))
        if step < 0:
            keep |= short & (v.similarity >= threshold)
        clusters, largest = cluster_stats(n, verified.a[keep], verified.b[keep])
        rows.append(
            {"min_similarity": threshold, "pairs": int(keep.sum()), "clusters": clusters, "largest_cluster": largest}
        )
    return rows
