"""The `train_head` stage. Run by DVC as `python -m tasks.train_head` (see dvc.yaml); not built yet: it fails saying so."""
from __future__ import annotations

import sys

from tasks.common import not_built, run_stage


def main() -> int:
    return run_stage("train_head", not_built("train_head", 5))


if __name__ == "__main__":
    sys.exit(main())
