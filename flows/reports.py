"""What the flows show in the Prefect UI: summaries of the files the stages wrote, as Prefect artifacts.

Reading only, from the project's `reports/` folder; nothing here computes a metric the stages did not write.
"""
from __future__ import annotations

import base64
import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

log = logging.getLogger("finetuner.flows")

TRAIN_STAGES = ("train_head", "train_partial", "train_full")
SUMMARY_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "n_test")


def metrics_table_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """reports/metrics.json as table rows: the overall metrics first, then one row per class."""
    rows = [{"scope": "overall", "metric": key, "value": metrics[key]} for key in SUMMARY_KEYS if key in metrics]
    per_class = metrics.get("per_class") or {}
    if isinstance(per_class, dict):
        for label, values in per_class.items():
            if isinstance(values, dict):
                rows += [{"scope": str(label), "metric": name, "value": value} for name, value in values.items()]
    return rows


def best_stage_metrics(reports_dir: Path) -> list[dict[str, Any]]:
    """The best value of every per-epoch metric each training stage logged (DVCLive TSVs under reports/train/).

    Losses are minimised, everything else maximised; the step of the best epoch is kept so it can be found again.
    """
    rows: list[dict[str, Any]] = []
    for stage in TRAIN_STAGES:
        for tsv in sorted((reports_dir / "train" / stage).rglob("*.tsv")):
            with tsv.open(newline="", encoding="utf-8") as handle:
                records = list(csv.DictReader(handle, delimiter="\t"))
            if not records:
                continue
            name = [column for column in records[0] if column not in ("step", "timestamp")][-1]
            values = [(float(r[name]), r.get("step", "")) for r in records if _is_number(r.get(name))]
            if not values:
                continue
            pick = min if "loss" in tsv.stem else max
            value, step = pick(values, key=lambda pair: pair[0])
            metric = tsv.relative_to(reports_dir / "train" / stage).with_suffix("").as_posix()
            rows.append({"stage": stage, "metric": metric.removeprefix("plots/metrics/"), "best": value, "step": step})
    return rows


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def inline_images(markdown: str, reports: Path) -> str:
    """`![x](file.png)` links to files in reports/ become data URLs: the Prefect UI shows the pictures themselves."""
    def embed(match: re.Match[str]) -> str:
        path = reports / match.group(2)
        if not path.is_file() or "/" in match.group(2):
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"

    return _IMAGE.sub(embed, markdown)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def publish_finetune_artifacts(project_dir: Path) -> dict[str, Any]:
    """Create the finetune run's artifacts; return the test metrics (empty when evaluate wrote none)."""
    reports = project_dir / "reports"
    metrics_file = reports / "metrics.json"
    metrics: dict[str, Any] = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    summary_file = reports / "summary.md"
    if summary_file.exists():
        summary = summary_file.read_text(encoding="utf-8")
    else:
        overall = ", ".join(f"{key} {metrics[key]}" for key in SUMMARY_KEYS if key in metrics) or "no test metrics"
        summary = f"# finetune\n\nTest split: {overall}.\n\nReports in `{reports}`.\n"
    create_markdown_artifact(inline_images(summary, reports), key="finetune-summary",
                             description="reports/summary.md of this run")
    leakage = _read_json(reports / "leakage.json")
    if leakage.get("enabled"):
        create_table_artifact(leakage.get("table") or [], key="finetune-leakage",
                              description="reports/leakage.json: each model's figure on its own test and on the "
                                          "leak-free test (never used to select)")
    if metrics:
        create_table_artifact(metrics_table_rows(metrics), key="finetune-test-metrics", description="reports/metrics.json")
    else:
        log.warning("no %s: the test metrics table was not created", metrics_file)
    stage_rows = best_stage_metrics(reports)
    if stage_rows:
        create_table_artifact(stage_rows, key="finetune-stage-best", description="best per-epoch value per stage")
    create_link_artifact(reports.resolve().as_uri(), link_text=str(reports), key="finetune-reports")
    return metrics
