"""Odd metadata.csv files as spreadsheets and scripts write them: read correctly, or each bad row refused with its
line number and the reason (and a file the stage cannot use at all refused naming the line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetuner.common.stage import InputError
from tasks.ingest import read_metadata


def _read(tmp_path: Path, data: bytes):
    path = tmp_path / "metadata.csv"
    path.write_bytes(data)
    return read_metadata(path)


def _problems(metadata) -> dict[int | None, str]:
    return {problem.line: problem.problem for problem in metadata.problems}


READ_CORRECTLY = {
    "utf-8 with BOM": ("\ufeffpath,group\r\na/1.jpg,p1\r\n".encode("utf-8"), {"a/1.jpg": "p1"}),
    "CRLF line ends": (b"path,group\r\na/1.jpg,p1\r\na/2.jpg,p2\r\n", {"a/1.jpg": "p1", "a/2.jpg": "p2"}),
    "old Mac CR line ends": (b"path,group\ra/1.jpg,p1\r", {"a/1.jpg": "p1"}),
    "quoted commas and quotes": (b'path,group\n"a/x, y.jpg","Smith, ""J"""\n', {"a/x, y.jpg": 'Smith, "J"'}),
    "backslashes": (b"path,group\r\na\\sub\\1.jpg,p1\r\n", {"a/sub/1.jpg": "p1"}),
    "spaces around cells and header": (b" path , group \n a/1.jpg , p1 \n", {"a/1.jpg": "p1"}),
    "extra columns kept": (b"path,group,scanner,site\na/1.jpg,p1,X,north\n", {"a/1.jpg": "p1"}),
    "utf-8 names": ("path,group\nä/ß.jpg,Zoë\n".encode(), {"ä/ß.jpg": "Zoë"}),
    "no final newline": (b"path,group\na/1.jpg,p1", {"a/1.jpg": "p1"}),
    "columns in another order": (b"group,label,path\np1,cat,a/1.jpg\n", {"a/1.jpg": "p1"}),
}


@pytest.mark.parametrize("name", list(READ_CORRECTLY))
def test_odd_but_valid_files_are_read_correctly(tmp_path: Path, name: str) -> None:
    data, groups = READ_CORRECTLY[name]
    metadata = _read(tmp_path, data)
    assert {path: entry.group for path, entry in metadata.entries.items()} == groups
    assert not metadata.problems


def test_latin1_file_is_read_and_the_first_non_utf8_line_reported(tmp_path: Path) -> None:
    metadata = _read(tmp_path, "path,group\na/1.jpg,p1\na/2.jpg,Zoë\n".encode("latin-1"))
    assert metadata.entries["a/2.jpg"].group == "Zoë"
    assert "not UTF-8" in _problems(metadata)[3] and "Windows-1252" in _problems(metadata)[3]


# (file, {line: fragment of the reason}, paths that must not be entries)
ROWS_REFUSED = {
    "absolute paths": (
        b"path,group\n/etc/passwd,p1\nC:\\data\\1.jpg,p2\na/ok.jpg,p3\n",
        {2: "absolute path", 3: "absolute path"},
        ["/etc/passwd"],
    ),
    "parent directory": (b"path,group\n../outside.jpg,p1\na/ok.jpg,p3\n", {2: "'..'"}, ["../outside.jpg"]),
    "blank group": (b"path,group\na/1.jpg,\na/2.jpg,  \n", {2: "empty group", 3: "empty group"}, []),
    "duplicate row": (b"path,group\na/1.jpg,p1\na/1.jpg,p1\n", {3: "duplicate of line 2"}, []),
    "contradicting rows": (b"path,group\na/1.jpg,p1\na/1.jpg,p2\n", {3: "contradicts line 2"}, ["a/1.jpg"]),
    "same file spelled twice": (b"path,group\na/1.jpg,p1\na\\1.jpg,p2\n", {3: "contradicts line 2"}, ["a/1.jpg"]),
    "more fields than the header": (b"path,group\na/1.jpg,p1,surplus\n", {2: "more fields than the header"}, []),
    "missing cells": (b"path,group\na/1.jpg\n", {2: "empty group"}, []),
    "empty path": (b'path,group\n"",p1\n', {2: "empty path"}, []),
    "NUL byte": (b"path,group\na/1.jpg,p\x001\n", {2: "NUL byte"}, ["a/1.jpg"]),
    "multi-line quoted cell counts lines": (
        b'path,group,note\na/1.jpg,p1,"two\nlines"\n/abs.jpg,p2,x\n',
        {4: "absolute path"},
        [],
    ),
}


@pytest.mark.parametrize("name", list(ROWS_REFUSED))
def test_bad_rows_are_refused_with_line_and_reason(tmp_path: Path, name: str) -> None:
    data, expected, absent = ROWS_REFUSED[name]
    problems = _problems(_read(tmp_path, data))
    metadata = _read(tmp_path, data)
    for line, fragment in expected.items():
        assert line in problems and fragment in problems[line], (name, problems)
    assert not set(absent) & set(metadata.entries)


FILES_REFUSED = {
    "no group column": (b"path,label\na/1.jpg,cat\n", "line 1 (header): missing column(s) ['group']"),
    "empty file": (b"", "missing column(s) ['path', 'group']"),
    "header repeated column": (b"path,group,group\na/1.jpg,p1,p2\n", "appear more than once"),
    "semicolon separated": (b"path;group\na/1.jpg;p1\n", "missing column(s)"),
}


@pytest.mark.parametrize("name", list(FILES_REFUSED))
def test_unusable_files_are_refused_naming_file_and_line(tmp_path: Path, name: str) -> None:
    data, fragment = FILES_REFUSED[name]
    with pytest.raises(InputError) as info:
        _read(tmp_path, data)
    assert "metadata.csv" in str(info.value) and fragment in str(info.value)
