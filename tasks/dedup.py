"""The `dedup` stage entry: `python -m tasks.dedup` (dvc.yaml). Hashes, pairs, units and reports: the stage body in
finetuner/dedup/stage.py."""

from __future__ import annotations

import sys

from finetuner.dedup.stage import main

if __name__ == "__main__":
    sys.exit(main())
