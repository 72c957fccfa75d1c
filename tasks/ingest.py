"""The `ingest` stage. Run by DVC as `python -m tasks.ingest` (see dvc.yaml); not built yet: it fails saying so."""
from __future__ import annotations

import sys

from tasks.common import not_built, run_stage


def main() -> int:
    return run_stage("ingest", not_built("ingest", 2))


if __name__ == "__main__":
    sys.exit(main())
