"""Reading the sticky split registry (data/splits/registry.csv) back, refusing it when it is damaged.

The registry holds decisions that must never be lost silently: which split every image was placed in. So a
registry that fails its checksum (data/splits/registry.csv.sha256, written by the split stage beside it) or its
schema (columns, a known split per row, a run number, one row per path) stops the stage with the file, the line
and what to do, instead of being repaired by guesswork, which would move images between splits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from finetuner.common.integrity import CorruptFile, replace_with_sidecar, sidecar, verify_sidecar
from finetuner.common.stage import InputError
from finetuner.split.assign import SPLITS
from finetuner.split.report import REGISTRY_COLUMNS

log = logging.getLogger("finetuner.split")

MAX_SHOWN = 5


def _what_to_do(path: Path) -> str:
    return (
        f"It holds the sticky split of every image seen so far. Restore it (`dvc checkout {path}`, git or a "
        f"backup); if you edited it on purpose and it is valid, delete {sidecar(path)} to accept it; to reassign "
        "every image deliberately, run with split.reshuffle=true."
    )


def read_registry(path: Path) -> pd.DataFrame:
    """The registry as strings, checked; InputError naming the file, the lines and what to do when it is damaged."""
    try:
        if not verify_sidecar(path):
            log.warning("%s: no recorded checksum (written before checksums, or by hand); checking its rows only", path)
        frame = pd.read_csv(path, dtype=object, keep_default_na=False)
    except CorruptFile as exc:
        raise InputError(f"{exc}. {_what_to_do(path)}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise InputError(f"{path}: not readable as CSV ({exc}). {_what_to_do(path)}") from None
    missing = [column for column in REGISTRY_COLUMNS if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}. {_what_to_do(path)}")
    shown, count = _row_problems(frame)
    if count:
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        raise InputError(f"{path}: {count} problem(s) in its rows: {'; '.join(shown)}{more}. {_what_to_do(path)}")
    return frame[list(REGISTRY_COLUMNS)]


def _row_problems(frame: pd.DataFrame) -> tuple[list[str], int]:
    """(`line N: ...` for the first bad rows of each kind, how many problems in all); line 1 is the header.
    Vectorised: registries reach millions of rows."""
    run = frame["assigned_at_run"].astype(str)
    checks = (
        (frame["path"] == "", lambda row: "empty path"),
        (~frame["split"].isin(SPLITS), lambda row: f"split {row['split']!r} is not one of {', '.join(SPLITS)}"),
        (
            ~run.str.fullmatch(r"[1-9][0-9]*"),
            lambda row: f"assigned_at_run {row['assigned_at_run']!r} is not a run number >= 1",
        ),
        (frame["path"].duplicated(keep="first"), lambda row: f"{row['path']!r} is registered twice"),
    )
    problems: list[tuple[int, str]] = []
    for bad, describe in checks:
        for index in frame.index[bad.to_numpy()][:MAX_SHOWN]:
            problems.append((int(index) + 2, describe(frame.loc[index])))
    counts = sum(int(bad.sum()) for bad, _ in checks)
    return [f"line {line}: {text}" for line, text in sorted(problems)][:MAX_SHOWN], counts


def latest_run_counts(registry: pd.DataFrame, placed: pd.Series) -> dict[str, int]:
    """{sticky, new} for the placed images, "new" meaning registered by the latest run that registered any: the same
    figures for a rerun on unchanged inputs (whose registry already holds every image) as for the run before it,
    so reports/split.json stays byte-identical (a count of what this very execution did would not)."""
    runs = registry.set_index("path")["assigned_at_run"].astype(str)
    latest = str(max((int(run) for run in runs), default=0))
    new = int((runs.reindex(placed.to_numpy()) == latest).sum())
    return {"sticky": int(len(placed) - new), "new": new}


def write_registry(path: Path, write: Callable[[Path], None]) -> None:
    """Write the registry with `write(target)`, its checksum beside it: the next run can tell it was not damaged
    or edited since, and a kill at any moment leaves a registry that still verifies."""
    replace_with_sidecar(path, write)
