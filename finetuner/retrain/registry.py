"""The champion's files: the registry of retrain decisions, the promoted checkpoint and its card.

`reports/retrain_registry.jsonl` is append-only history (one JSON line per decision, each chained to the previous
one by `champion.registry_line`); `models/champion.pt` and `models/champion.md` are replaced atomically on a
promotion. Called by the `retrain` flow (flows/retrain.py); the decision itself is `finetuner.retrain.champion.decide`.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from finetuner import layout
from finetuner.common.stage import atomic_path, write_text
from finetuner.retrain.champion import KEPT, NO_NEW_DATA, PROMOTED, last_line, parse_registry, registry_line, render_card

log = logging.getLogger("finetuner.retrain")

REGISTRY = layout.RETRAIN_REGISTRY
CHAMPION = layout.CHAMPION
CARD = layout.CHAMPION_CARD
CHALLENGER = layout.BEST_MODEL
SCORES_DIR = layout.RETRAIN_SCORES


class RegistryError(RuntimeError):
    """The champion registry is damaged; the message names the file, the line and what to do."""


def read_registry(project: Path) -> list[dict[str, Any]]:
    """Every decision so far; a damaged registry stops the flow (its decisions must not be silently lost)."""
    path = project / REGISTRY
    if not path.exists():
        return []
    try:
        return parse_registry(path.read_text(encoding="utf-8"), str(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{exc}. Restore {path} from a backup or git, or move it aside to start a new "
                            "record (the next run then promotes its challenger as the first champion)") from None


def append_record(project: Path, record: dict[str, Any]) -> None:
    """Add one decision to the registry; the file is rewritten atomically, so it is never half a line long."""
    path = project / REGISTRY
    read_registry(project)  # never append to a damaged record
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, existing + registry_line(record, last_line(existing)) + "\n")


def install_champion(project: Path, record: dict[str, Any]) -> None:
    """Copy the challenger to the champion's fixed path and write its card, each atomically."""
    with atomic_path(project / CHAMPION) as tmp:
        shutil.copyfile(project / CHALLENGER, tmp)
    write_text(project / CARD, render_card(record, _checkpoint_info(project / CHAMPION)))


def _checkpoint_info(path: Path) -> dict[str, Any] | None:
    from finetuner.train.checkpoint import CheckpointError, load_pipeline_checkpoint  # torch is slow to import

    try:
        checkpoint = load_pipeline_checkpoint(path)
    except CheckpointError as exc:
        log.warning("the champion card lacks checkpoint details: %s", exc)
        return None
    return {key: value for key, value in checkpoint.items() if key not in ("state_dict", "optimizer", "scheduler")}


def decision_markdown(record: dict[str, Any]) -> str:
    """The Prefect artifact of one decision: a small table a person reads in the UI."""
    title = {PROMOTED: "challenger promoted", KEPT: "champion kept", NO_NEW_DATA: "no new data: training skipped"}
    rows = [
        ("decision", record["decision"]),
        ("reason", record["reason"]),
        ("data version", f"`{record['data_version']}`"),
        (f"champion {record['metric']}", record["champion_score"]),
        (f"challenger {record['metric']}", record["challenger_score"]),
        ("min_gain", record["min_gain"]),
        ("registry", f"`{REGISTRY}`"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# retrain: {title[record['decision']]}\n\n| | |\n|---|---|\n{table}\n"
