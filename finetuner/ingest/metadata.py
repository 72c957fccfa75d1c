"""Reading the optional `metadata.csv` that declares each image's group (and optionally its label).

`parse_metadata(text, source)` turns the file's text into `Metadata`: one entry per usable row, keyed by the
normalised path relative to `data/raw/images`. Nothing here touches the file system, so a row pointing outside the
image folder (`../x.jpg`, `/etc/passwd`, `C:\\x.jpg`) is refused before anything could open it. Unusable rows
become `MetadataProblem`s (line number, path, what is wrong) for the ingest report; a file the whole stage cannot
use (no `path` or `group` column, not CSV text) raises `MetadataError`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

REQUIRED_COLUMNS = ("path", "group")
LABEL_COLUMN = "label"
_DRIVE = re.compile(r"^[A-Za-z]:")


class MetadataError(ValueError):
    """metadata.csv as a whole is unusable; the message names the file and the line."""


@dataclass(frozen=True)
class MetadataEntry:
    """One usable row: its group, its label override ("" = keep the folder's) and any extra columns."""

    group: str
    label: str
    extras: dict[str, str]
    line: int


@dataclass(frozen=True)
class MetadataProblem:
    """A row that was refused or could not be fully used; `line` is the 1-based line in the file."""

    line: int | None
    path: str
    problem: str

    def describe(self, source: str) -> str:
        where = f"{source}, line {self.line}" if self.line is not None else source
        return f"{where}: {self.path!r}: {self.problem}"


@dataclass(frozen=True)
class Metadata:
    """The parsed file. `conflicts` maps a path to the lines of its contradicting rows (it gets no entry)."""

    source: str
    entries: dict[str, MetadataEntry]
    conflicts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    problems: tuple[MetadataProblem, ...] = ()
    extra_columns: tuple[str, ...] = ()
    n_rows: int = 0


def decode_metadata(data: bytes) -> tuple[str, tuple[MetadataProblem, ...]]:
    """The file's text with `\n` line ends: UTF-8 (a byte-order mark is dropped; spreadsheets often write one), else
    Windows-1252 / Latin-1 (what spreadsheets on Windows save as "CSV"), with a problem naming the first line that
    is not UTF-8. CRLF and old-Mac CR line ends become `\n`, as a text-mode read would make them."""
    try:
        return _unix_newlines(data.decode("utf-8-sig")), ()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
    try:
        text, encoding = data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "Latin-1"
    text = _unix_newlines(text)
    problem = MetadataProblem(
        line,
        "",
        f"not UTF-8 (first at this line); the file was read as {encoding}; save it as UTF-8 if names look wrong",
    )
    return text, (problem,)


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalise_relpath(raw: str) -> tuple[str, str]:
    """Return (posix path relative to the image folder, "") or ("", why it is refused), lexically only."""
    text = raw.strip().replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        return "", "absolute path: refused (paths are relative to data/raw/images); the file was not read"
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts:
        return "", "empty path (no file named)"
    if ".." in parts:
        return "", "path contains '..' and may point outside data/raw/images: refused; the file was not read"
    return "/".join(parts), ""


def parse_metadata(text: str, source: str = "metadata.csv") -> Metadata:
    """Parse metadata.csv text; refuse unsafe or contradictory rows with a problem each, never silently."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
    except csv.Error as exc:
        raise MetadataError(f"{source}, line 1: not readable as CSV ({exc})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise MetadataError(
            f"{source}, line 1 (header): missing column(s) {missing}; found {header or 'nothing'}. "
            f"Expected a header like `path,group` or `path,group,label` (path relative to data/raw/images)."
        )
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise MetadataError(f"{source}, line 1 (header): column(s) {duplicated} appear more than once")
    reader.fieldnames = header
    extra_columns = tuple(name for name in header if name not in (*REQUIRED_COLUMNS, LABEL_COLUMN))
    entries: dict[str, MetadataEntry] = {}
    conflicts: dict[str, tuple[int, ...]] = {}
    problems: list[MetadataProblem] = []
    n_rows = 0
    try:
        for row in reader:
            n_rows += 1
            _add_row(row, reader.line_num, extra_columns, entries, conflicts, problems)
    except csv.Error as exc:
        raise MetadataError(f"{source}, line {reader.line_num}: not readable as CSV ({exc})") from None
    return Metadata(source, entries, conflicts, tuple(problems), extra_columns, n_rows)


def _add_row(
    row: dict[str | None, str | list[str] | None],
    line: int,
    extra_columns: tuple[str, ...],
    entries: dict[str, MetadataEntry],
    conflicts: dict[str, tuple[int, ...]],
    problems: list[MetadataProblem],
) -> None:
    """Validate one row and file it under entries, conflicts or problems."""
    raw_path = _cell(row, "path")
    if any("\x00" in value for value in row.values() if isinstance(value, str)):
        problems.append(
            MetadataProblem(
                line,
                raw_path.replace("\x00", ""),
                "contains a NUL byte (a binary file or a broken export?); the row is ignored",
            )
        )
        return
    path, refused = normalise_relpath(raw_path)
    if refused:
        problems.append(MetadataProblem(line, raw_path, refused))
        return
    if None in row:  # csv puts fields beyond the header under the key None
        problems.append(MetadataProblem(line, path, "more fields than the header; the extra fields are ignored"))
    entry = MetadataEntry(
        group=_cell(row, "group"),
        label=_cell(row, LABEL_COLUMN),
        extras={name: _cell(row, name) for name in extra_columns},
        line=line,
    )
    if not entry.group:
        problems.append(MetadataProblem(line, path, "empty group; the image falls back to group_pattern or itself"))
    if path in conflicts:
        conflicts[path] = (*conflicts[path], line)
        problem = f"another contradicting row for this path (lines {conflicts[path]})"
        problems.append(MetadataProblem(line, path, problem))
        return
    first = entries.get(path)
    if first is None:
        entries[path] = entry
        return
    if (first.group, first.label, first.extras) == (entry.group, entry.label, entry.extras):
        problems.append(MetadataProblem(line, path, f"duplicate of line {first.line}; ignored"))
        return
    # Two different groups (or labels) for one image: picking either could leak, so the image is quarantined.
    del entries[path]
    conflicts[path] = (first.line, line)
    problems.append(
        MetadataProblem(
            line,
            path,
            f"contradicts line {first.line} (group {first.group!r} vs {entry.group!r}, "
            f"label {first.label!r} vs {entry.label!r}); the image is quarantined",
        )
    )


def _cell(row: dict[str | None, str | list[str] | None], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""
