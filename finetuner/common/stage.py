"""Shared plumbing for the stage scripts: params loading, atomic writes, logging, and the CLI wrapper.

Every stage module's `main()` goes through `run_stage`, so a bad params.yaml or bad input stops the stage with a
clear one-paragraph message and exit code 2 before any work, instead of a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import logging
import operator
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from finetuner import layout
from finetuner.common.workspace_lock import WorkspaceBusy, stage_lock
from finetuner.config import ConfigError, Params, parse_params

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("finetuner")

PARAMS_FILE = layout.PARAMS_FILE


class InputError(ValueError):
    """Input data the stage cannot use; the message names the file and what is wrong with it."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (first on line {seen[key] + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_params_yaml(path: str | Path = PARAMS_FILE) -> Any:
    """The parsed params.yaml, or a ConfigError naming the file and the line of a YAML error or duplicate key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root, where params.yaml lives)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def load_params(path: str | Path = PARAMS_FILE, check_files: bool = False) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the file and the offending keys.

    `check_files`: files it names (model.weights) must also exist, relative to its folder (the project root).
    """
    return load_params_and_data(path, check_files)[0]


def load_params_and_data(path: str | Path = PARAMS_FILE, check_files: bool = False) -> tuple[Params, Any]:
    """`load_params`, and the parsed YAML as plain data (the retrain registry records it)."""
    path = Path(path)
    raw = read_params_yaml(path)
    return parse_params(raw, source=str(path), root=path.resolve().parent if check_files else None), raw


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on error it vanishes.

    A killed run therefore leaves either the old file or the new one, never half a file that DVC would hash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A run killed mid-write left its temp file behind; nothing ever reads one, and the workspace lock means no
    # other writer is alive, so clear them rather than let them pile up beside the outputs.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates owner-only files; give the result the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        _fault_point("before")
        os.replace(tmp_path, path)
        _fault_point("after")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


# Fault injection for the kill tests (tests/faults/test_kill.py, benchmarks/kill_matrix.py): with
# FINETUNER_KILL_AT="after:3" the process SIGKILLs itself right after its 3rd atomic write lands ("before:3": with
# the 3rd file fully written to its temp name but not yet renamed). Unset, this costs one dict lookup per write.
_WRITES = {"count": 0}


def _fault_point(when: str) -> None:
    spec = os.environ.get("FINETUNER_KILL_AT")
    if not spec:
        return
    if when == "before":
        _WRITES["count"] += 1
    if spec == f"{when}:{_WRITES['count']}":
        os.kill(os.getpid(), signal.SIGKILL)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write rows with exactly `columns` first (extra keys follow in first-seen order; a missing key is "")."""
    rows = list(rows)
    shapes = dict.fromkeys(tuple(row) for row in rows)  # the distinct key orders, first seen first: few
    known = set(columns)
    fieldnames = list(columns) + list(dict.fromkeys(key for shape in shapes for key in shape if key not in known))
    # A row holding as many keys as there are fields holds every field: one C call takes its cells in order. csv's
    # DictWriter looked each cell up in Python (35,000 pairs of 13 columns: 0.11 s, now 0.07 s).
    n = len(fieldnames)
    whole = operator.itemgetter(*fieldnames) if n > 1 else lambda row: tuple(row[key] for key in fieldnames)
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(fieldnames)
        writer.writerows(whole(row) if len(row) == n else [row.get(key, "") for key in fieldnames] for row in rows)


def read_csv(path: str | Path, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Read a CSV written by an earlier stage; a missing file or column is an InputError naming it."""
    path = _existing(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        fields = next(reader, [])
        _require_columns(path, fields, required)
        # csv.DictReader's rows, each built in one zip (21,000 manifest rows: 32 ms -> 22 ms)
        return [dict(zip(fields, row)) if len(row) == len(fields) else _ragged(fields, row) for row in reader if row]


def _ragged(fields: list[str], row: list[str]) -> dict:
    """What csv.DictReader makes of a row with too few cells (None for the rest) or too many (the rest under None)."""
    out: dict = dict(zip(fields, row))
    if len(row) > len(fields):
        out[None] = row[len(fields) :]
    else:
        out.update((field, None) for field in fields[len(row) :])
    return out


def read_frame(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """The `required` columns of a CSV as Python strings (empty cells stay ""), or InputError naming the file and
    the missing columns. Object columns, because pandas' own string dtype is several times slower without pyarrow."""
    import pandas as pd  # only the split stage reads frames; the others need not pay for the import

    path = _existing(path)
    _require_columns(path, list(pd.read_csv(path, nrows=0).columns), required)
    return pd.read_csv(path, dtype=object, keep_default_na=False, usecols=list(required))


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found (run the stage that writes it first, e.g. `dvc repro`)")
    return path


def _require_columns(path: Path, found: Sequence[str], required: Sequence[str]) -> None:
    missing = [column for column in required if column not in found]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {list(found)}")


RUN_LOG_DIR = layout.RUN_LOGS


def log_run(root: str | Path, stage: str, facts: Mapping[str, Any]) -> None:
    """Append what depends on the run rather than the inputs (cache hits, timings, when) to `logs/<stage>.jsonl`,
    untracked: DVC-tracked reports must be byte-identical on a rerun, or every later stage would rerun too."""
    path = Path(root) / RUN_LOG_DIR / f"{stage}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **facts}
    with path.open("a", encoding="utf-8") as handle:  # a log: a torn last line after a kill costs nothing
        handle.write(json.dumps(record, default=_json_default) + "\n")


def split_run_facts(
    report: Mapping[str, Any], keys: Sequence[tuple[str, ...]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a copy of `report` without the nested `keys`, {dotted key: value} of those present)."""
    tracked = json.loads(json.dumps(report, default=_json_default))
    facts = {}
    for key in keys:
        node = tracked
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key[-1] in node:
            facts[".".join(key)] = node.pop(key[-1])
    return tracked, facts


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# Stages that fail on a model.weights file that is not there; ingest is among them because it is the first stage of
# every full run, so `dvc repro` stops before any work. split and evaluate never load those weights.
_CHECK_FILES = frozenset({"ingest", "dedup", "train_head", "train_partial", "train_full"})


def run_stage(name: str, work: Callable[[Params], None], params_path: str | Path = PARAMS_FILE) -> int:
    """Load params, run one stage, and turn expected failures into a clear message and exit code 2."""
    setup_logging()
    try:
        params = load_params(params_path, check_files=name in _CHECK_FILES)
        # Under torchrun the stage's rank 0 holds the workspace for the whole group (only it writes there).
        holds = int(os.environ.get("RANK", "0")) == 0
        with stage_lock(name, Path(params_path).resolve().parent) if holds else contextlib.nullcontext():
            work(params)
    except (ConfigError, InputError, WorkspaceBusy) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    return 0
