"""The `split` stage. Run by DVC as `python -m tasks.split` (see dvc.yaml); not built yet: it fails saying so."""
from __future__ import annotations

import sys

from tasks.common import not_built, run_stage


def main() -> int:
    return run_stage("split", not_built("split", 4))


if __name__ == "__main__":
    sys.exit(main())
