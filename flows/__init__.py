"""Prefect flows that put the DVC stages in order (see flows/finetune.py, flows/retrain.py, flows/serve.py)."""

import os

# Prefect's client sends usage events unless DO_NOT_TRACK is set; our machines are often offline and private.
os.environ.setdefault("DO_NOT_TRACK", "1")
