"""Project-level helpers for the flows: the workspace lock and params.yaml overrides.

One DVC workspace can host one pipeline run at a time (DVC itself refuses a second `dvc repro` with a lock error).
The flows take `workspace_lock` first, so an overlapping run waits its turn instead of failing halfway; the
`retrain/nightly` deployment additionally has a Prefect concurrency limit of 1.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML  # DVC's own YAML library: a round trip keeps params.yaml's comments and layout

from finetuner.config import ConfigError, Params, parse_params
from tasks.common import atomic_path

log = logging.getLogger("finetuner.flows")

PARAMS_FILE = "params.yaml"
# Inside .dvc/tmp, which DVC already keeps out of git, so the lock never shows up as an untracked file.
LOCK_FILE = Path(".dvc") / "tmp" / "finetuner-workspace.lock"


class NoImages(ValueError):
    """The project has no input images: nothing to train on, and waiting or retrying will not change that."""


def require_images(project_dir: str | Path) -> Params:
    """The validated params, once data/raw/images holds at least one file; raises NoImages (or ConfigError)."""
    from tasks.ingest import no_images_message

    params = read_params(project_dir)[0]
    images = Path(project_dir) / params.data.raw_dir / "images"
    if not images.is_dir():
        raise NoImages(no_images_message(images, "no such folder"))
    if not any(path.is_file() for path in images.rglob("*")):  # stops at the first file
        raise NoImages(no_images_message(images, "no files in it"))
    return params


class WorkspaceBusy(RuntimeError):
    """Another flow run held the project's workspace for longer than this run was willing to wait."""


@contextlib.contextmanager
def workspace_lock(project_dir: str | Path, timeout_s: float = 6 * 3600, poll_s: float = 1.0) -> Iterator[None]:
    """Hold an exclusive OS lock on the project's workspace; wait up to `timeout_s` for it.

    An flock dies with its process, so a killed run never leaves a stale lock behind.
    """
    path = Path(project_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with path.open("a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"{project_dir}: another run held the workspace for over {timeout_s:g} s")
                if not announced:
                    log.info("waiting for another run to release the workspace %s", project_dir)
                    announced = True
                time.sleep(poll_s)
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, creating sections as needed (the `dvc exp run -S` key syntax)."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override key {key!r}: expected dotted section names such as 'stages.head.epochs'")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"override key {key!r}: {prefix} is a value, not a section")
        node = child
    node[parts[-1]] = value


def read_params(project_dir: str | Path) -> tuple[Params, dict[str, Any]]:
    """The project's params.yaml, validated, and as plain data (for the retrain registry)."""
    import yaml

    path = Path(project_dir) / PARAMS_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse_params(raw, source=str(path)), raw


def check_overrides(project_dir: str | Path, overrides: Mapping[str, Any]) -> Params:
    """params.yaml with dotted-key overrides applied, validated; nothing is written. Raises ConfigError."""
    return _overridden(project_dir, overrides)[1]


def apply_overrides(project_dir: str | Path, overrides: Mapping[str, Any]) -> Params:
    """Write dotted-key overrides into params.yaml, validated first, atomically, comments kept.

    Writing params.yaml (as `dvc exp run -S` does) is what makes DVC see and record the new values: the stages
    read params.yaml, and dvc.lock stores the values each stage ran with. Nothing is written when a value is bad.
    """
    document, params = _overridden(project_dir, overrides)
    if overrides:
        with atomic_path(Path(project_dir) / PARAMS_FILE) as tmp, tmp.open("w", encoding="utf-8") as handle:
            _round_trip_yaml().dump(document, handle)
        log.info("params.yaml updated with %s", dict(overrides))
    return params


def _overridden(project_dir: str | Path, overrides: Mapping[str, Any]) -> tuple[Any, Params]:
    path = Path(project_dir) / PARAMS_FILE
    document = _round_trip_yaml().load(path.read_text(encoding="utf-8"))
    for key, value in overrides.items():
        set_dotted(document, key, value)
    source = f"{path} with overrides {dict(overrides)}" if overrides else str(path)
    return document, parse_params(_plain(document), source=source)


def _round_trip_yaml() -> YAML:
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096  # keep one-line sections on one line
    # ruamel writes None as an empty value; `null` is what params.yaml says and what a reader expects.
    yaml_rt.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml_rt


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists, for validation."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
