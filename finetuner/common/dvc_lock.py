"""Reading dvc.lock: the content hash DVC recorded for a stage's dependency (the data version a run used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from finetuner import layout


def locked_dep_hash(project_dir: str | Path, stage: str, path: str) -> str | None:
    """The hash dvc.lock records for dependency `path` of `stage` (`<md5>.dir` for a folder); None when the lock,
    the stage or the dependency is absent, or the lock cannot be read (then nothing is known about the version)."""
    try:
        lock: Any = yaml.safe_load((Path(project_dir) / layout.DVC_LOCK).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    for dep in ((lock.get("stages") or {}).get(stage) or {}).get("deps") or []:
        if isinstance(dep, dict) and Path(dep.get("path", "")) == Path(path):
            return dep.get("md5") or dep.get("hash") or dep.get("etag")
    return None
