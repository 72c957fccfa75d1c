"""The `train_full` stage. Run by DVC as `python -m tasks.train_full` (see dvc.yaml); not built yet: it fails saying so."""
from __future__ import annotations

import sys

from tasks.common import not_built, run_stage


def main() -> int:
    return run_stage("train_full", not_built("train_full", 5))


if __name__ == "__main__":
    sys.exit(main())
