"""The `train_partial` stage. Run by DVC as `python -m tasks.train_partial` (see dvc.yaml); not built yet: it fails saying so."""
from __future__ import annotations

import sys

from tasks.common import not_built, run_stage


def main() -> int:
    return run_stage("train_partial", not_built("train_partial", 5))


if __name__ == "__main__":
    sys.exit(main())
