"""The `split` stage entry: `python -m tasks.split` (dvc.yaml), and `python -m tasks.split audit` (the leak audit
alone, nothing written). The leakage-aware, sticky split itself: finetuner/split/stage.py."""

from __future__ import annotations

import sys

from finetuner.split.stage import main

if __name__ == "__main__":
    sys.exit(main())
