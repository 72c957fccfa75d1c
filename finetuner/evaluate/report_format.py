"""Markdown building blocks shared by the summary and the model card: value formatting, tolerant lookups, tables.

Pure helpers for `finetuner.evaluate.reporting` and `finetuner.evaluate.summary_sections`; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NOT_AVAILABLE = "not available"


def fmt(value: Any, digits: int = 4) -> str:
    """A value as a reader sees it: None -> "not available", booleans as yes/no, floats rounded."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def get(data: Any, *keys: str) -> Any:
    """`data[k1][k2]...`, or None where a level is missing or not a mapping (reports from other stages may be
    partial or from an older version; the summary says "not available" instead of failing)."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def size(value: Any) -> int | None:
    """A count given either as a number or as the list/dict it counts."""
    if isinstance(value, (list, tuple, Mapping)):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; pipes in cells are escaped so a label cannot break the layout."""

    def cell(value: Any) -> str:
        return fmt(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
