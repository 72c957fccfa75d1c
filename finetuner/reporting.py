"""Markdown for people: the run summary (`reports/summary.md`) and the model card, rendered from plain dicts.

Pure rendering: the `evaluate` stage gathers the inputs (any of which may be missing) and writes the text. Every
optional input that is absent is shown as "not available" rather than omitted, so a reader knows it was looked for.
The summary follows the order a reviewer asks in: what data, was it leak-free, how did training go, what is the
held-out result, where are the pictures.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NOT_AVAILABLE = "not available"


def _fmt(value: Any) -> str:
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; pipes in cells are escaped so a label cannot break the layout."""
    def cell(value: Any) -> str:
        return _fmt(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _data_section(data: Mapping[str, Any] | None, dedup: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Data", ""]
    if data is None:
        lines.append(f"Manifest: {NOT_AVAILABLE}.")
    else:
        lines.append(table(["files", "usable", "quarantined"],
                           [[data.get("files"), data.get("usable"), data.get("quarantined")]]))
        reasons = data.get("quarantine_reasons") or {}
        if reasons:
            lines += ["", "Quarantined, by reason:", "",
                      table(["reason", "files"], sorted(reasons.items(), key=lambda item: -item[1]))]
        if data.get("ingest_report"):
            lines += ["", "Ingest report:", "", table(["measure", "value"], sorted(data["ingest_report"].items()))]
    lines += ["", "### Near duplicates", ""]
    if dedup is None:
        lines.append(f"Near-duplicate report: {NOT_AVAILABLE}.")
    else:
        lines.append(table(["measure", "value"], sorted(dedup.items())))
    return lines


def _split_section(split: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Split", ""]
    if split is None:
        return [*lines, f"Split report: {NOT_AVAILABLE}."]
    lines.append(table(["measure", "value"], [
        ["leak check", split.get("leak_check")],
        ["leak bridges (images held out of every split)", split.get("leak_bridges")],
    ]))
    counts: Mapping[str, Mapping[str, int]] = split.get("class_counts") or {}
    if counts:
        splits = list(counts)
        classes = sorted({label for per in counts.values() for label in per})
        rows = [[label, *[counts[s].get(label, 0) for s in splits]] for label in classes]
        rows.append(["**total**", *[sum(counts[s].values()) for s in splits]])
        lines += ["", "Images per class and split:", "", table(["class", *splits], rows)]
    return lines


def _training_section(training: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Training (validation split)", ""]
    if not training:
        return [*lines, f"Training records: {NOT_AVAILABLE}."]
    rows = [[t.get("stage"), t.get("metric"), t.get("value"), t.get("epoch"), t.get("source")] for t in training]
    return [*lines, table(["stage", "selection metric", "best value", "epoch", "from"], rows)]


def _test_section(test: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Held-out test", ""]
    if test is None:
        return [*lines, f"Test metrics: {NOT_AVAILABLE}."]
    checkpoint = test.get("checkpoint", {})
    lines.append(f"Model: best checkpoint from stage `{checkpoint.get('stage')}`, epoch {checkpoint.get('epoch')}.")
    lines += ["", table(["metric", "value"], [[key, test.get(key)] for key in
                                               ("n_test", "accuracy", "macro_f1", "balanced_accuracy", "ece")])]
    per_class = test.get("per_class") or {}
    if per_class:
        rows = [[name, v["precision"], v["recall"], v["f1"], v["support"]] for name, v in per_class.items()]
        lines += ["", table(["class", "precision", "recall", "f1", "support"], rows)]
    warning = (test.get("test_ledger") or {}).get("warning")
    if warning:
        lines += ["", f"> **Warning:** {warning}"]
    return lines


def render_summary(
    data: Mapping[str, Any] | None,
    dedup: Mapping[str, Any] | None,
    split: Mapping[str, Any] | None,
    training: Sequence[Mapping[str, Any]],
    test: Mapping[str, Any] | None,
    links: Mapping[str, str | None],
) -> str:
    """The whole summary. `links` maps a caption to a path relative to the summary (None: not available)."""
    lines = ["# Fine-tuning run summary", ""]
    lines += _data_section(data, dedup) + [""]
    lines += _split_section(split) + [""]
    lines += _training_section(training) + [""]
    lines += _test_section(test) + [""]
    confusion = links.get("confusion matrix")
    if confusion:
        lines += [f"![confusion matrix]({confusion})", ""]
    lines += ["## Links", ""]
    lines += [f"- {caption}: [{target}]({target})" if target else f"- {caption}: {NOT_AVAILABLE}"
              for caption, target in links.items()]
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
        f"# Model card: {checkpoint['arch']} fine-tuned on {len(classes)} classes", "",
        "## Model", "",
        table(["field", "value"], [
            ["architecture", checkpoint["arch"]],
            ["initial weights", weights_origin],
            ["selected from stage", checkpoint.get("stage")],
            ["epoch", checkpoint.get("epoch")],
            [f"validation {checkpoint.get('metric')}", checkpoint.get("value")],
            ["preprocessing", checkpoint.get("preprocessing")],
        ]), "",
        "## Classes (output index order)", "",
        table(["index", "class"], list(enumerate(classes))), "",
        "## Data", "",
        f"Data version (DVC hash of the raw data): `{_fmt(data_version)}`.", "",
        "## Held-out test", "",
        table(["metric", "value"], [[k, metrics.get(k)] for k in
                                    ("n_test", "accuracy", "macro_f1", "balanced_accuracy", "ece")]), "",
        "## Parameters", "",
    ]
    for section, values in params.items():
        lines += [f"- `{section}`: `{values}`"]
    lines += ["", "## Intended use and limits", "",
              "Predictions are only as good as the match between new images and the training data's classes, "
              "sources and preprocessing; images outside these classes still get one of them. Check the "
              "per-class figures and the reliability diagram before relying on confidences."]
    return "\n".join(lines) + "\n"
