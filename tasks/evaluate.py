"""The `evaluate` stage entry: `python -m tasks.evaluate` (dvc.yaml), the one held-out test of models/best.pt and
its reports, and `python -m tasks.evaluate --checkpoint PATH --out PATH.json` for the retrain flow's
champion/challenger scores. The stage body: finetuner/evaluate/stage.py."""

from __future__ import annotations

import sys

from finetuner.evaluate.stage import main

if __name__ == "__main__":
    sys.exit(main())
