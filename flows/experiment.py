"""A finetune run with overrides is one DVC experiment: recorded by DVC, and the workspace left as it was.

    snapshot params.yaml, dvc.lock and every output the pipeline declares (uncached ones by copy)
    write the overrides into params.yaml (as `dvc exp run -S` does), run the stages through DVC
    `dvc exp save`: params and metrics in `dvc exp show`, the outputs in DVC's cache, `dvc exp apply` adopts it
    put params.yaml, dvc.lock and the outputs back (uncached from the copy, cached by `dvc checkout`)

So the next scheduled run, and anyone reading the workspace, sees params.yaml as committed, never a leftover.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from finetuner import layout
from flows.dvc_cli import dvc_command, stream_command
from flows.workspace import PARAMS_FILE, apply_overrides, check_overrides

log = logging.getLogger("finetuner.flows")

LOCK_FILE = str(layout.DVC_LOCK)
_OUTPUT_KINDS = ("outs", "metrics", "plots")


def declared_outputs(project: Path) -> dict[str, bool]:
    """Every output path of every stage in dvc.yaml, mapped to whether DVC caches it."""
    document = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8")) or {}
    outputs: dict[str, bool] = {}
    for stage in (document.get("stages") or {}).values():
        for kind in _OUTPUT_KINDS:
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    ((path, options),) = entry.items()
                    outputs[path] = (options or {}).get("cache", True)
                else:
                    outputs[str(entry)] = True
    return outputs


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def workspace_restored(project: Path, log_to: logging.Logger | logging.LoggerAdapter = log) -> Iterator[None]:
    """On exit (success or failure), put params.yaml, dvc.lock and every declared output back as they were."""
    outputs = declared_outputs(project)
    copied = [PARAMS_FILE, LOCK_FILE, *(path for path, cached in outputs.items() if not cached)]
    absent = {path for path in [*copied, *outputs] if not (project / path).exists()}
    with tempfile.TemporaryDirectory(prefix="finetuner-snapshot-") as snapshot:
        for path in copied:
            if path not in absent:
                _copy(project / path, Path(snapshot) / path)
        try:
            yield
        finally:
            for path in [*copied, *outputs]:
                if path in absent or path in copied:
                    _remove(project / path)
            for path in copied:
                if path not in absent:
                    _copy(Path(snapshot) / path, project / path)
            if (project / LOCK_FILE).exists():  # cached outputs back to the versions dvc.lock names
                stream_command(dvc_command("checkout", "--force", "--quiet"), project, log_to, 3600)
            log_to.info("workspace restored: params.yaml, dvc.lock and the outputs are as before the experiment")


def save_experiment(project: Path, name: str, log_to: logging.Logger | logging.LoggerAdapter = log) -> None:
    """`dvc exp save` the workspace as experiment `name`, untracked uncached outputs (metrics, plots) included."""
    include = [path for path, cached in declared_outputs(project).items() if not cached and (project / path).exists()]
    include.append(LOCK_FILE)
    command = dvc_command("exp", "save", "--force", "--name", name, *[arg for p in include for arg in ("-I", p)])
    stream_command(command, project, log_to, 3600)
    log_to.info("recorded as DVC experiment %r: `dvc exp show` lists it, `dvc exp apply %s` adopts it", name, name)


@contextlib.contextmanager
def one_run_experiment(
    project: Path, overrides: Mapping[str, Any], name: str, log_to: logging.Logger | logging.LoggerAdapter = log
) -> Iterator[None]:
    """Apply `overrides` for the enclosed pipeline run only; save it as DVC experiment `name` if it succeeds."""
    check_overrides(project, overrides)  # a bad key or value fails here, before anything is touched
    with workspace_restored(project, log_to):
        apply_overrides(project, overrides)
        yield
        save_experiment(project, name, log_to)
