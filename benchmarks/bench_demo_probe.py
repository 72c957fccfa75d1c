"""Does the demo backbone transfer? A linear probe of its features on the demo world (target >= 0.80 macro F1).

Run after `make demo-data`: `.venv/bin/python benchmarks/bench_demo_probe.py [--backbone models/demo_backbone.pt]`.
The demo world's photos (params.yaml seed, as `make demo-data` writes them, planted copies and broken files left
out) are split by specimen, 70% to fit and 30% to score, so no specimen is on both sides; the frozen backbone embeds
them at `data.image_size` with its own preprocessing, and a multinomial logistic regression (scikit-learn, on
standardised features) is fitted on one side and scored on the other. Baseline, same run: the same probe on a
randomly initialised backbone. Prints both, their ratio, and whether the 0.80 target is met (exit 1 if not).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetuner.common.stage import load_params  # noqa: E402
from finetuner.demo.copies import decode  # noqa: E402
from finetuner.demo.world import DEMO_SPEC, build_world  # noqa: E402
from finetuner.train.engine import pick_runtime  # noqa: E402
from finetuner.train.features import extract_features  # noqa: E402
from finetuner.train.models import build_model  # noqa: E402

TARGET = 0.80


def probe_f1(weights: str | None, arch: str, size: int, images: list, labels: np.ndarray, fit: np.ndarray) -> float:
    """Macro F1 on the held-out specimens of a logistic regression on the frozen backbone's features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    torch.manual_seed(0)
    built = build_model(arch, int(labels.max()) + 1, weights, size)
    pixels = torch.from_numpy(np.stack([built.preprocessing.to_uint8(image) for image in images]))
    features = extract_features(built.model, arch, pixels, built.preprocessing, pick_runtime("cpu"), 128).numpy()
    scaler = StandardScaler().fit(features[fit])
    model = LogisticRegression(C=0.5, max_iter=3000).fit(scaler.transform(features[fit]), labels[fit])
    return float(f1_score(labels[~fit], model.predict(scaler.transform(features[~fit])), average="macro"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="models/demo_backbone.pt")
    args = parser.parse_args()
    if not Path(args.backbone).is_file():
        print(f"{args.backbone}: not found; run `make demo-data` first", file=sys.stderr)
        return 2
    params = load_params()
    photos = [f for f in build_world(params.seed, DEMO_SPEC).files if f.kind == "photo"]
    classes = sorted({f.label for f in photos})
    labels = np.array([classes.index(f.label) for f in photos])
    groups = sorted({f.group for f in photos})
    held = set(np.random.default_rng(params.seed).permutation(groups)[: round(0.3 * len(groups))].tolist())
    fit = np.array([f.group not in held for f in photos])
    images = [decode(f.data) for f in photos]
    began = time.perf_counter()
    ours = probe_f1(args.backbone, params.model.arch, params.data.image_size, images, labels, fit)
    took = time.perf_counter() - began
    baseline = probe_f1(None, params.model.arch, params.data.image_size, images, labels, fit)
    print(
        f"linear probe, demo world ({fit.sum()} photos fitted, {(~fit).sum()} of other specimens scored), "
        f"{params.model.arch} at {params.data.image_size} px"
    )
    print(f"  ours ({args.backbone}): macro F1 {ours:.3f}  ({took:.1f} s)")
    print(f"  baseline (random initialisation): macro F1 {baseline:.3f}")
    print(
        f"  ratio: {ours / max(baseline, 1e-9):.2f}x; target >= {TARGET:.2f}: {'met' if ours >= TARGET else 'NOT met'}"
    )
    return 0 if ours >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
