"""finetuner: fine-tune pretrained torchvision classifiers without leakage, reproducibly (README "Architecture").

One subpackage per pipeline stage (ingest, dedup, split, train, evaluate), plus retrain, demo, cli and common;
`layout` names every artifact, `config` validates params.yaml. Each subpackage exports its public names lazily
(`lazy_exports`), so importing one module never drags in torch through a package `__init__`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """(`__getattr__`, `__all__`) for a package whose public names live in its modules (`name -> module`).

    PEP 562: `from finetuner.dedup import hash_files` imports `finetuner.dedup.hashing` on first use. Code inside the
    project imports from the modules themselves, which keeps tests/test_dvc_deps.py's import closure exact.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    return __getattr__, sorted(exports)
