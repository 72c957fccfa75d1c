"""Champion/challenger decisions for scheduled retraining: pure functions, no files, no Prefect.

The retrain flow (`flows/retrain.py`) scores the current champion and the freshly trained challenger on the same
current test split, then asks `decide` whether to promote. Both scores come from the same evaluate code on the same
split, so the comparison is fair: the sticky split guarantees neither model trained on that split.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PROMOTED = "promoted"
KEPT = "kept"
NO_NEW_DATA = "no_new_data"

DecisionKind = Literal["promoted", "kept", "no_new_data"]

# Scores are rounded to about 1e-12 when compared, so 0.71 - 0.70 counts as a gain of 0.01 despite binary floats.
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Decision:
    """The outcome of one comparison, with a sentence a person can read in the registry and the Prefect UI."""

    decision: DecisionKind
    reason: str

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTED


def decide(champion_score: float | None, challenger_score: float, min_gain: float, metric: str) -> Decision:
    """Promote the challenger when there is no champion, or when it beats the champion by at least `min_gain`.

    A tie never promotes, even with `min_gain == 0`: replacing a model with an equally good one only churns.
    """
    if min_gain < 0 or not math.isfinite(min_gain):
        raise ValueError(f"min_gain must be a finite number >= 0, got {min_gain!r}")
    if not math.isfinite(challenger_score):
        raise ValueError(f"the challenger's {metric} is not a finite number: {challenger_score!r}")
    if champion_score is None:
        return Decision(PROMOTED, f"no champion yet: the challenger ({metric} {challenger_score:.4f}) becomes champion")
    if not math.isfinite(champion_score):
        raise ValueError(f"the champion's {metric} is not a finite number: {champion_score!r}")
    gain = challenger_score - champion_score
    if gain > _TOLERANCE and gain >= min_gain - _TOLERANCE:
        return Decision(
            PROMOTED,
            f"challenger {metric} {challenger_score:.4f} beats champion {champion_score:.4f} "
            f"by {gain:+.4f} >= min_gain {min_gain:g}",
        )
    return Decision(
        KEPT,
        f"challenger {metric} {challenger_score:.4f} vs champion {champion_score:.4f}: "
        f"gain {gain:+.4f} is below min_gain {min_gain:g} (or not positive); champion kept",
    )


def metric_value(scores: Mapping[str, Any], metric: str, source: str) -> float:
    """The selected metric from an evaluate report, or a ValueError naming the report and the keys it has."""
    if metric not in scores:
        raise ValueError(f"{source}: no {metric!r} in the scores (found {sorted(scores)})")
    value = scores[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: {metric!r} is not a number ({value!r})")
    return float(value)


def render_card(record: Mapping[str, Any], checkpoint_info: Mapping[str, Any] | None) -> str:
    """The champion's card (markdown): where it came from, how it scored, and when it was promoted."""
    lines = [
        "# Champion model",
        "",
        f"- promoted: {record['time']}",
        f"- data version (DVC hash of the raw data): `{record['data_version']}`",
        f"- selected metric: `{record['metric']}` = {record['challenger_score']:.4f} on the test split of that data",
        f"- previous champion's score on the same split: {_fmt(record.get('champion_score'))}",
        f"- decision: {record['reason']}",
    ]
    if checkpoint_info:
        lines += ["", "## Checkpoint", ""]
        for key in ("arch", "stage", "epoch", "metric", "value"):
            if key in checkpoint_info:
                lines.append(f"- {key}: {checkpoint_info[key]}")
        classes = checkpoint_info.get("class_to_idx")
        if isinstance(classes, Mapping):
            lines.append(f"- classes ({len(classes)}): {', '.join(sorted(classes, key=classes.__getitem__))}")
    params = record.get("params")
    if params:
        lines += ["", "## Parameters (params.yaml at training time)", "", "```json", _json(params), "```"]
    return "\n".join(lines) + "\n"


def _fmt(score: float | None) -> str:
    return "none (first champion)" if score is None else f"{score:.4f}"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


# --- the registry of decisions (reports/retrain_registry.jsonl) ----------------------------------------------------

REGISTRY_KEYS = (
    "time",
    "metric",
    "min_gain",
    "data_version",
    "decision",
    "reason",
    "champion_score",
    "challenger_score",
)
_DECISIONS = (PROMOTED, KEPT, NO_NEW_DATA)


def _line_digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def registry_line(record: Mapping[str, Any], previous_line: str | None) -> str:
    """One JSON line for the registry, chained to the line before it (its sha256), so an edited, garbled or removed
    earlier line is detected when the registry is read back."""
    chained = {**record, "previous_sha256": _line_digest(previous_line) if previous_line is not None else None}
    return json.dumps(chained, sort_keys=True, default=str)


def parse_registry(text: str, source: str) -> list[dict[str, Any]]:
    """Every decision in the registry's text, checked; ValueError naming the line and what is wrong.

    The registry is the record of which model became champion and why: a damaged one is refused, never repaired.
    Lines written before chaining existed (no `previous_sha256`) are checked for their keys only.
    """
    records = []
    previous: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not a JSON record ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in REGISTRY_KEYS if key not in record]
        if missing or record.get("decision") not in _DECISIONS:
            raise ValueError(
                f"{where}: not a retrain decision (missing {missing}, decision "
                f"{record.get('decision')!r}; allowed {', '.join(_DECISIONS)})"
            )
        if "previous_sha256" in record:
            expected = _line_digest(previous) if previous is not None else None
            if record["previous_sha256"] != expected:
                raise ValueError(
                    f"{where}: the line before it is not the one it was written after "
                    "(an earlier line was edited, garbled or removed)"
                )
        records.append(record)
        previous = line
    return records


def last_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None
