"""The dedup stage's input (finetuner/dedup/stage.py): the manifest's usable rows, their distinct contents, each
image's proportions (the verifier's stretch check), and a warning when many images are smaller than the verifier's
thumbnail and declare no group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetuner import layout
from finetuner.common.stage import read_csv
from finetuner.dedup.hashing import THUMB as VERIFIER_THUMB

SMALL_MIN, SMALL_MIN_SHARE = 20, 0.1  # how many images under the verifier's thumbnail side make a warning


@dataclass(frozen=True)
class Usable:
    """The manifest's usable rows in path order (row order never matters), and their distinct contents."""

    rows: list[dict]
    paths: list[str]
    groups: list[str]
    labels: list[str]
    # Groups a user declared (metadata.csv or split.group_pattern), "" for none: ingest files an image without one as
    # its own group (group_source "image"), which joins the split's units alike but is no group a pair can cross
    declared: list[str]
    shas: list[str]
    contents: list[str]  # distinct shas, in the order of their first row; copies are linked as `exact`
    rep_rows: np.ndarray  # per content, its first row


def read_usable(manifest: Path) -> Usable:
    """The manifest's `ok` rows; the first row holding each content (sha256) stands for it."""
    rows = read_csv(manifest, required=("path", "group", "status", "sha256"))
    usable = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["path"])
    shas = [r["sha256"] for r in usable]
    first: dict[str, int] = {}
    for index, sha in enumerate(shas):
        first.setdefault(sha, index)
    return Usable(
        rows=usable,
        paths=[r["path"] for r in usable],
        groups=[r["group"] for r in usable],
        labels=[r.get("label", "") for r in usable],
        declared=[r["group"] if r.get("group_source") != layout.IMAGE_GROUP else "" for r in usable],
        shas=shas,
        contents=list(first),
        rep_rows=np.array(list(first.values()), dtype=np.int64),
    )


def small_images_note(usable: Usable) -> str | None:
    """A warning when many images (SMALL_MIN_SHARE, at least SMALL_MIN) are smaller than the verifier's thumbnail
    and most of those declare no group: the verifier sees them upsampled, and patches of one picture that hold one
    edge or a periodic texture then pass as copies of each other (docs/dedup.md, *Tiles of one picture*). Sizes from
    the manifest's width and height; rows without them are not counted."""
    sides = np.array([min(w, h) for w, h in (_size(r) for r in usable.rows)], dtype=np.float64)
    small = np.flatnonzero(sides < VERIFIER_THUMB)
    undeclared = sum(not usable.declared[k] for k in small.tolist())
    if len(small) < max(SMALL_MIN, SMALL_MIN_SHARE * len(sides)) or undeclared * 2 <= len(small):
        return None
    return (
        f"{len(small)} of {len(sides)} images are under {VERIFIER_THUMB} px on their short side, {undeclared} of them "
        "in no declared group: the verifier sees such images upsampled, and small patches of one picture that hold "
        "one edge or a periodic texture pass as copies of each other (docs/dedup.md, Tiles of one picture). Declare "
        "each slide's or video's images as one group (metadata.csv's group column, or split.group_pattern)"
    )


def _size(row: dict) -> tuple[float, float]:
    """(width, height) of a manifest row, NaN where it does not say."""
    try:
        width, height = float(row.get("width") or 0), float(row.get("height") or 0)
    except ValueError:
        return np.nan, np.nan
    return (width, height) if width > 0 and height > 0 else (np.nan, np.nan)


def aspects(rows: list[dict]) -> np.ndarray:
    """width / height per manifest row, NaN where the manifest does not say (the verifier then skips that check)."""
    return np.array([w / h for w, h in (_size(r) for r in rows)], dtype=np.float64)
