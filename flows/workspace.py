"""Project-level helpers for the flows: the workspace lock and params.yaml overrides.

One DVC workspace can host one pipeline run at a time (DVC itself refuses a second `dvc repro` with a lock error).
The flows take `workspace_lock` first, so an overlapping run waits its turn instead of failing halfway, and a
`dvc repro` started beside a flow run is refused at its first stage, naming the flow run; the `retrain/nightly`
deployment additionally has a Prefect concurrency limit of 1.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML  # DVC's own YAML library: a round trip keeps params.yaml's comments and layout

from finetuner import layout
from finetuner.common import workspace_lock as lock
from finetuner.common.stage import atomic_path, load_params_and_data, read_params_yaml
from finetuner.config import ConfigError, Params, parse_params

log = logging.getLogger("finetuner.flows")

PARAMS_FILE = layout.PARAMS_FILE
WorkspaceBusy = lock.WorkspaceBusy  # re-exported: the flows' callers catch it from here


class NoImages(ValueError):
    """The project has no input images: nothing to train on, and waiting or retrying will not change that."""


def require_images(project_dir: str | Path) -> Params:
    """The validated params, once data/raw/images holds at least one file; raises NoImages (or ConfigError)."""
    from tasks.ingest import no_images_message

    params = read_params(project_dir)[0]
    images = Path(project_dir) / params.data.raw_dir / layout.RAW_IMAGES
    if not images.is_dir():
        raise NoImages(no_images_message(images, "no such folder"))
    if not any(path.is_file() for path in images.rglob("*")):  # stops at the first file
        raise NoImages(no_images_message(images, "no files in it"))
    return params


@contextlib.contextmanager
def workspace_lock(project_dir: str | Path, timeout_s: float = 6 * 3600, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the project's workspace for this flow run, waiting up to `timeout_s` for another run to finish (a queue).

    Stages this run starts through DVC inherit its token and run under it; anything else (a `dvc repro` or a stage
    run by hand) is refused at once, naming this flow run (finetuner/common/workspace_lock.py).
    """
    with lock.workspace_lock(project_dir, _this_run(), wait_s=timeout_s, poll_s=poll_s):
        yield


def _this_run() -> str:
    try:
        from prefect.runtime import flow_run

        return f"Prefect flow run {flow_run.flow_name}/{flow_run.name} ({flow_run.id})"
    except Exception:  # noqa: BLE001 (outside a flow run the name is simply unknown)
        return "a flow run"


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
    return load_params_and_data(Path(project_dir) / PARAMS_FILE, check_files=True)


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
    read_params_yaml(path)  # YAML errors and duplicate keys as a ConfigError naming the line, before ruamel
    document = _round_trip_yaml().load(path.read_text(encoding="utf-8"))
    for key, value in overrides.items():
        set_dotted(document, key, value)
    source = f"{path} with overrides {dict(overrides)}" if overrides else str(path)
    return document, parse_params(_plain(document), source=source, root=Path(project_dir).resolve())


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
