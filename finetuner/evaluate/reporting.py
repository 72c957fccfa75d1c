"""Markdown for people: the run summary (`reports/summary.md`) and the model card, rendered from plain dicts.

Pure rendering: the `evaluate` stage gathers the inputs (any of which may be missing) and writes the text. Every
optional input that is absent is shown as "not available" rather than omitted, so a reader knows it was looked for.
The summary follows the order a reviewer asks in: what data, how much of it is near-duplicated, was it split
leak-free, how did training go, what is the held-out result, where are the pictures. The data, near-duplicate and
split sections live in `finetuner.evaluate.summary_sections`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetuner.evaluate.report_format import NOT_AVAILABLE, fmt, table
from finetuner.evaluate.summary_sections import data_section, dedup_section, split_section

__all__ = ["NOT_AVAILABLE", "render_model_card", "render_summary", "table"]

TEST_FIGURES = ("n_test", "accuracy", "macro_f1", "balanced_accuracy", "ece")


def _training_section(training: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each stage's best validation figure and epoch; a skipped stage says so and what it passed through."""
    lines = ["## Training (validation split)", ""]
    if not training:
        return [*lines, f"Training records: {NOT_AVAILABLE}."]
    rows = []
    for t in training:
        if "skipped" in t:
            rows.append([t.get("stage"), "", f"skipped ({t['skipped']})", "", t.get("source") or ""])
        elif t.get("value") is None:
            rows.append([t.get("stage"), "", NOT_AVAILABLE, "", ""])
        else:
            rows.append([t.get("stage"), t.get("metric"), t.get("value"), t.get("epoch"), t.get("source")])
    decisions = [
        f"- {t['decision']}" + (f"; rates {_rates(t['rates'])}" if t.get("rates") else "")
        for t in training
        if t.get("decision")
    ]
    return [
        *lines,
        table(["stage", "selection metric", "best value", "best epoch", "checkpoint"], rows),
        *(["", "Recipe decisions (models/<stage>/recipe.json):", *decisions] if decisions else []),
    ]


def _rates(rates: Mapping[str, Any]) -> str:
    return ", ".join(f"{block} {rate:.2g}" for block, rate in rates.items())


def _test_section(test: Mapping[str, Any] | None, links: Mapping[str, str | None]) -> list[str]:
    """The one held-out test: which model, the figures, per class, the confusion matrix and reliability."""
    lines = ["## Held-out test", ""]
    if test is None:
        return [*lines, f"Test metrics: {NOT_AVAILABLE}."]
    checkpoint = test.get("checkpoint", {})
    lines.append(
        f"Model: best checkpoint from stage `{checkpoint.get('stage')}`, epoch {checkpoint.get('epoch')} "
        f"(validation {checkpoint.get('metric')} {fmt(checkpoint.get('value'))})."
    )
    lines += ["", table(["metric", "value"], [[key, test.get(key)] for key in TEST_FIGURES])]
    per_class = test.get("per_class") or {}
    if per_class:
        rows = [[name, v["precision"], v["recall"], v["f1"], v["support"]] for name, v in per_class.items()]
        lines += ["", table(["class", "precision", "recall", "f1", "support"], rows)]
    warning = (test.get("test_ledger") or {}).get("warning")
    if warning:
        lines += ["", f"> **Warning:** {warning}"]
    confusion, reliability = links.get("confusion matrix"), links.get("reliability diagram")
    if confusion:
        lines += ["", f"![confusion matrix]({confusion})"]
    if reliability:
        lines += [
            "",
            f"Calibration: expected calibration error (ECE) {fmt(test.get('ece'))}; the reliability "
            "diagram shows where confidence and accuracy part.",
            "",
            f"![reliability diagram]({reliability})",
        ]
    return lines


def _links_section(links: Mapping[str, str | None]) -> list[str]:
    lines = ["## Links", ""]
    lines += [
        f"- {caption}: [{target}]({target})" if target else f"- {caption}: {NOT_AVAILABLE}"
        for caption, target in links.items()
    ]
    return [*lines, "- training curves: run `dvc plots show` (DVCLive logs under `reports/train/<stage>/`)"]


def render_summary(
    ingest: Mapping[str, Any] | None,
    dedup: Mapping[str, Any] | None,
    split: Mapping[str, Any] | None,
    training: Sequence[Mapping[str, Any]],
    test: Mapping[str, Any] | None,
    links: Mapping[str, str | None],
    extra: Sequence[str] = (),
) -> str:
    """The whole summary from the stages' reports (`reports/ingest.json`, `dedup.json`, `split.json` as parsed;
    None where absent), the training records and the test metrics. `links` maps a caption to a path relative to
    the summary (None: not available); "near-duplicate review page", "confusion matrix" and "reliability diagram"
    are also used in the text. `extra` lines (the leakage and pictures sections) go after the test."""
    lines = ["# Fine-tuning run summary", ""]
    lines += data_section(ingest) + [""]
    lines += dedup_section(dedup, links.get("near-duplicate review page")) + [""]
    lines += split_section(split) + [""]
    lines += _training_section(training) + [""]
    lines += _test_section(test, links) + [""]
    lines += [*extra, ""] if extra else []
    lines += _links_section(links)
    return "\n".join(lines) + "\n"


def render_model_card(
    checkpoint: Mapping[str, Any],
    weights_origin: str | None,
    data_version: str | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> str:
    """A short model card: what the model is, where its weights came from, what it was trained on, how it scored."""
    classes = sorted(checkpoint["class_to_idx"], key=checkpoint["class_to_idx"].get)
    lines = [
        f"# Model card: {checkpoint['arch']} fine-tuned on {len(classes)} classes",
        "",
        "## Model",
        "",
        table(
            ["field", "value"],
            [
                ["architecture", checkpoint["arch"]],
                ["initial weights", weights_origin],
                ["selected from stage", checkpoint.get("stage")],
                ["epoch", checkpoint.get("epoch")],
                [f"validation {checkpoint.get('metric')}", checkpoint.get("value")],
                ["preprocessing", checkpoint.get("preprocessing")],
            ],
        ),
        "",
        "## Classes (output index order)",
        "",
        table(["index", "class"], list(enumerate(classes))),
        "",
        "## Data",
        "",
        f"Data version (DVC hash of the raw data): `{fmt(data_version)}`.",
        "",
        "## Held-out test",
        "",
        table(["metric", "value"], [[k, metrics.get(k)] for k in TEST_FIGURES]),
        "",
        "## Parameters",
        "",
    ]
    for section, values in params.items():
        lines += [f"- `{section}`: `{values}`"]
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Predictions are only as good as the match between new images and the training data's classes, "
        "sources and preprocessing; images outside these classes still get one of them. Check the "
        "per-class figures and the reliability diagram before relying on confidences.",
    ]
    return "\n".join(lines) + "\n"
