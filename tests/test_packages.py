"""Each finetuner subpackage exports its public names lazily: every one resolves, and importing a package is cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["common", "ingest", "dedup", "split", "train", "evaluate", "retrain", "demo"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_and_unknown_names_are_refused(name):
    package = importlib.import_module(f"finetuner.{name}")
    assert package.__doc__ and package.__all__
    for exported in package.__all__:
        assert getattr(package, exported) is not None, f"finetuner.{name}.{exported}"
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


def test_importing_the_packages_does_not_import_torch():
    # A stage importing one light module (config, layout, ingest) must not pay torch's import time.
    code = (
        "import sys, finetuner.config, finetuner.layout; "
        + "; ".join(f"import finetuner.{name}" for name in PACKAGES)
        + "; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
