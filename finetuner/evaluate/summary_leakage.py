"""The leakage and pictures sections of `reports/summary.md`, rendered from `reports/leakage.json` and file names.

Pure rendering, tolerant like `finetuner.evaluate.summary_sections`: an absent report or picture reads "not available".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetuner.evaluate.leakage import LABELS
from finetuner.evaluate.report_format import NOT_AVAILABLE, fmt, table


def leakage_section(report: Mapping[str, Any] | None, pairs_picture: str | None) -> list[str]:
    """What a careless split would have reported, beside the leak-free figure and the from-scratch baseline."""
    lines = ["## What a careless split would have reported", ""]
    if not report or not report.get("enabled"):
        return [
            *lines,
            "Comparisons off (`evaluate.leakage.naive` / `.scratch` in params.yaml)."
            if report
            else f"Leakage report (reports/leakage.json): {NOT_AVAILABLE}.",
        ]
    metric = report.get("metric", "macro_f1")
    models = report.get("models") or {}
    rows = [
        [
            LABELS.get(name, name),
            entry.get("trained_on"),
            fmt((entry.get("own_test") or {}).get(metric)),
            fmt((entry.get("leak_free_test") or {}).get(metric)),
        ]
        for name, entry in models.items()
    ]
    lines.append(table(["model", "trained on", f"{metric}, its own test", f"{metric}, leak-free test"], rows))
    inflation = (report.get("inflation") or {}).get(metric)
    if inflation is not None:
        leaks = (models.get("naive") or {}).get("leaks") or {}
        lines += [
            "",
            f"The naive split (random by image) reports {fmt(models['naive']['own_test'].get(metric))}; "
            f"on test units it never saw, the same model scores "
            f"{fmt(models['naive']['leak_free_test'].get(metric))}: inflated by {inflation:+.3f}. "
            f"{fmt(leaks.get('test_images_with_same_unit_in_train'))} of its {fmt(leaks.get('test_images'))} "
            "test images had a photo of the same specimen or a near duplicate in its train split.",
        ]
    gain = (report.get("pretraining_gain") or {}).get(metric)
    if gain is not None:
        lines += ["", f"Pretrained backbone vs random initialisation, same recipe and split: {gain:+.3f} {metric}."]
    lines += [
        "",
        "These figures are scored by the evaluate stage after `models/best.pt` was fixed, counted in "
        "`reports/test_ledger.json`, and never used to choose anything (`reports/leakage.json`).",
    ]
    if pairs_picture:
        lines += ["", f"![near duplicates a naive split separated]({pairs_picture})"]
    return lines


def pictures_section(pictures: Mapping[str, str | None]) -> list[str]:
    """Sample test images with their labels and the per-stage training curves."""
    lines = ["## Pictures", ""]
    for caption in ("test samples", "training curves"):
        target = pictures.get(caption)
        lines += [f"![{caption}]({target})" if target else f"{caption}: {NOT_AVAILABLE}", ""]
    return lines[:-1]
