"""CSV writing and reading shared by every stage (finetuner/common/stage.py): what csv.DictWriter wrote and
csv.DictReader read, exactly."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.common.stage import read_csv, write_csv


def dict_writer_reference(path: Path, rows: list[dict], columns: list[str]) -> None:
    """The writer before: DictWriter with the extra keys in first-seen order, a missing key written empty."""
    extra = [key for row in rows for key in row if key not in columns]
    fieldnames = list(columns) + list(dict.fromkeys(extra))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, restval="")
        writer.writeheader()
        writer.writerows(rows)


KEYS = st.sampled_from(["path", "label", "group", "note", "a,b", 'say "hi"'])
CELLS = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=6))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.dictionaries(KEYS, CELLS, max_size=6), max_size=8),
    columns=st.lists(KEYS, max_size=3, unique=True),
)
def test_write_csv_writes_what_dict_writer_wrote(tmp_path_factory, rows: list[dict], columns: list[str]) -> None:
    folder = tmp_path_factory.mktemp("csv")
    write_csv(folder / "ours.csv", rows, columns)
    dict_writer_reference(folder / "reference.csv", rows, columns)
    assert (folder / "ours.csv").read_bytes() == (folder / "reference.csv").read_bytes()


def test_write_csv_keeps_key_order_quoting_and_missing_cells(tmp_path: Path) -> None:
    rows = [{"path": "a.jpg", "x": 1}, {"label": "cat", "path": 'b "2".jpg', "y": None}, {"path": "c,d.jpg"}]
    write_csv(tmp_path / "out.csv", rows, ["path", "label"])
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "path,label,x,y"
    assert read_csv(tmp_path / "out.csv") == [
        {"path": "a.jpg", "label": "", "x": "1", "y": ""},
        {"path": 'b "2".jpg', "label": "cat", "x": "", "y": ""},
        {"path": "c,d.jpg", "label": "", "x": "", "y": ""},
    ]
    # a single field: its cells, not their letters
    write_csv(tmp_path / "one.csv", [{"path": "a.jpg"}, {"path": "b.jpg"}], ["path"])
    assert (tmp_path / "one.csv").read_text().splitlines() == ["path", "a.jpg", "b.jpg"]


CELL_TEXT = st.sampled_from(["a", '"b,c"', "", '"x""y"', "é"])


@settings(max_examples=200, deadline=None)
@given(
    header=st.lists(st.sampled_from(["path", "label", "group", "path"]), max_size=4),
    widths=st.lists(st.integers(0, 6), max_size=6),
    data=st.data(),
)
def test_read_csv_reads_what_dict_reader_read(tmp_path_factory, header: list[str], widths: list[int], data) -> None:
    # rows of every width: complete, short (None for the missing cells), long (the rest under None), blank (skipped)
    lines = [",".join(header)] + [",".join(data.draw(st.lists(CELL_TEXT, min_size=w, max_size=w))) for w in widths]
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_text("\n".join(lines) + data.draw(st.sampled_from(["", "\n", "\n\n"])), encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as handle:
        assert read_csv(path) == list(csv.DictReader(handle))
