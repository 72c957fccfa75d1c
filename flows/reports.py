"""What the flows show in the Prefect UI: the files the stages wrote, as Prefect artifacts that render there.

Reading only, from the project's `reports/` folder; nothing here computes a metric the stages did not write.
The UI cannot reach files on this machine, so pictures are embedded (data URIs) and reports shown as content.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from finetuner import layout

log = logging.getLogger("finetuner.flows")

TRAIN_STAGES = layout.TRAINING_STAGES
SUMMARY_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "n_test")
JSON_REPORTS = tuple(path.name for path in (layout.INGEST_REPORT, layout.DEDUP_REPORT, layout.SPLIT_REPORT))
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
# Pictures above this size stay links: a markdown artifact is stored in the server's database.
MAX_EMBED_BYTES = 2_000_000


def metrics_table_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """reports/metrics.json as table rows: the overall metrics first, then one row per class."""
    rows = [{"scope": "overall", "metric": key, "value": metrics[key]} for key in SUMMARY_KEYS if key in metrics]
    per_class = metrics.get("per_class") or {}
    if isinstance(per_class, dict):
        for label, values in per_class.items():
            if isinstance(values, dict):
                rows += [{"scope": str(label), "metric": name, "value": value} for name, value in values.items()]
    return rows


def embed_local_files(markdown: str, base: Path) -> str:
    """Pictures referenced by relative path become data URIs; other relative links name the file's full path."""

    def replace(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            return match.group(0)  # already a URL or an anchor
        path = (base / target).resolve()
        kind = _IMAGE_TYPES.get(path.suffix.lower())
        if bang and kind and path.is_file() and path.stat().st_size <= MAX_EMBED_BYTES:
            return f"![{text}](data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')})"
        return f"{text} (`{path}`)"

    return _LINK.sub(replace, markdown)


def stage_table_rows(reports_dir: Path, select: str = "macro_f1") -> list[dict[str, Any]]:
    """One row per training stage at its best validation epoch (by `select`): epochs 1-based as in the logs people
    read, the validation and train figures of that epoch, and the peak learning rate each block was given."""
    rows: list[dict[str, Any]] = []
    for stage in TRAIN_STAGES:
        metrics_dir = reports_dir / layout.TRAIN_REPORTS.name / stage / "plots" / "metrics"
        series = {
            tsv.relative_to(metrics_dir).with_suffix("").as_posix(): _read_series(tsv)
            for tsv in sorted(metrics_dir.rglob("*.tsv"))
        }
        chosen = series.get(f"val/{select}")
        if not chosen:
            skipped = _skipped(reports_dir / layout.TRAIN_REPORTS.name / stage / "metrics.json")
            rows.append(
                {
                    "stage": stage,
                    "epochs": 0 if skipped else None,
                    "note": "skipped (epochs: 0)" if skipped else f"no val/{select} log",
                }
            )
            continue
        step = max(chosen, key=lambda item: (chosen[item], -item))  # the first epoch reaching the best value
        row: dict[str, Any] = {"stage": stage, "epochs": len(chosen), "best epoch": step + 1}
        for name in (f"val/{select}", "val/accuracy", "val/loss", "train/loss"):
            if step in series.get(name, {}):
                row[name] = round(series[name][step], 4)
        for name, values in series.items():
            if name.startswith("lr/"):
                row[f"peak {name}"] = float(f"{max(values.values()):.3g}")
        rows.append(row)
    return rows


def _read_series(tsv: Path) -> dict[int, float]:
    with tsv.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle, delimiter="\t"))
    series: dict[int, float] = {}
    for record in records:
        value = [v for k, v in record.items() if k not in ("step", "timestamp")][-1:]
        try:
            series[int(record["step"])] = float(value[0])
        except (KeyError, ValueError, IndexError, TypeError):
            continue
    return series


def _skipped(metrics_file: Path) -> bool:
    try:
        return json.loads(metrics_file.read_text(encoding="utf-8")).get("epochs") == 0
    except (OSError, ValueError, AttributeError):
        return False


def read_leakage(reports: Path) -> dict[str, Any]:
    """reports/leakage.json when the comparisons ran (`enabled`), else {} (off, absent or unreadable)."""
    leakage = _read_json(reports / layout.LEAKAGE.name)
    return leakage if leakage.get("enabled") else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def reports_markdown(reports_dir: Path) -> str:
    """The model card and the scalar figures of the ingest, dedup and split reports, as one page."""
    parts = [f"# Reports\n\nFolder: `{reports_dir.resolve()}`\n"]
    card = reports_dir / layout.MODEL_CARD.name
    if card.is_file():
        parts.append(embed_local_files(card.read_text(encoding="utf-8"), reports_dir))
    for name in JSON_REPORTS:
        path = reports_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        lines = [f"## {name}", "", "| key | value |", "|---|---|"]
        lines += [f"| {key} | {_cell(value)} |" for key, value in data.items()] if isinstance(data, dict) else []
        parts.append("\n".join(lines) + "\n")
    return "\n\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
        return inner if inner and len(inner) <= 200 else f"{len(value)} entries (see the file)"
    if isinstance(value, list):
        return f"{len(value)} items (see the file)"
    return str(value).replace("|", "\\|")


def publish_finetune_artifacts(
    project_dir: Path, select: str = "macro_f1", experiment: str | None = None
) -> dict[str, Any]:
    """Create the finetune run's artifacts; return the test metrics (empty when evaluate wrote none)."""
    reports = project_dir / layout.REPORTS
    metrics_file = project_dir / layout.METRICS
    metrics: dict[str, Any] = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    summary_file = project_dir / layout.SUMMARY
    if summary_file.exists():
        summary = embed_local_files(summary_file.read_text(encoding="utf-8"), reports)
    else:
        overall = ", ".join(f"{key} {metrics[key]}" for key in SUMMARY_KEYS if key in metrics) or "no test metrics"
        summary = f"# finetune\n\nTest split: {overall}.\n\nReports in `{reports}`.\n"
    if experiment:
        summary = (
            f"> DVC experiment `{experiment}`: the workspace was left as it was; "
            f"`dvc exp apply {experiment}` adopts this run.\n\n{summary}"
        )
    create_markdown_artifact(summary, key="finetune-summary", description="reports/summary.md of this run")
    leakage = read_leakage(reports)
    if leakage:
        create_table_artifact(
            leakage.get("table") or [],
            key="finetune-leakage",
            description="reports/leakage.json: each model's figure on its own test and on the "
            "leak-free test (never used to select)",
        )
    if metrics:
        create_table_artifact(
            metrics_table_rows(metrics), key="finetune-test-metrics", description="reports/metrics.json"
        )
    else:
        log.warning("no %s: the test metrics table was not created", metrics_file)
    create_table_artifact(
        stage_table_rows(reports, select),
        key="finetune-stages",
        description="each training stage at its best validation epoch (1-based), peak rates",
    )
    create_markdown_artifact(reports_markdown(reports), key="finetune-reports", description="model card and reports")
    return metrics
