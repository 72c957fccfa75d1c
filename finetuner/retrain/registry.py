"""The champion's files: the registry of retrain decisions, the promoted checkpoint and its card.

`reports/retrain_registry.jsonl` is append-only history (one JSON line per decision, each chained to the previous
one by `champion.registry_line`); `models/champion.pt` and `models/champion.md` are replaced atomically on a
promotion. A promotion survives a kill at any moment: the challenger is first copied to models/champion.pending.pt,
then the decision (with that copy's sha256) is appended to the registry, which is the commit point, then the card and
models/champion.pt are written; `finish_interrupted_promotion` completes a recorded one. Called by the `retrain`
flow (flows/retrain.py); the decision itself is `finetuner.retrain.champion.decide`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

from finetuner import layout
from finetuner.common.stage import atomic_path, write_text
from finetuner.retrain.champion import (
    KEPT,
    NO_NEW_DATA,
    PROMOTED,
    last_line,
    parse_registry,
    registry_line,
    render_card,
)

log = logging.getLogger("finetuner.retrain")

REGISTRY = layout.RETRAIN_REGISTRY
CHAMPION = layout.CHAMPION
CARD = layout.CHAMPION_CARD
CHALLENGER = layout.BEST_MODEL
SCORES_DIR = layout.RETRAIN_SCORES
PENDING = layout.CHAMPION_PENDING


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
        raise RegistryError(
            f"{exc}. Restore {path} from a backup or git, or move it aside to start a new "
            "record (the next run then promotes its challenger as the first champion)"
        ) from None


def append_record(project: Path, record: dict[str, Any]) -> None:
    """Add one decision to the registry; the file is rewritten atomically, so it is never half a line long."""
    path = project / REGISTRY
    read_registry(project)  # never append to a damaged record
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, existing + registry_line(record, last_line(existing)) + "\n")


def stage_promotion(project: Path) -> str:
    """Copy the challenger to models/champion.pending.pt (atomically); returns the copy's sha256 for the registry."""
    with atomic_path(project / PENDING) as tmp:
        shutil.copyfile(project / CHALLENGER, tmp)
    return _sha256(project / PENDING)


def install_champion(project: Path, record: dict[str, Any]) -> None:
    """Make the recorded promotion real: the card, then models/champion.pt from the pending copy, each atomically.

    The card goes first: until the champion file is replaced, the next run sees the decision as unfinished and
    redoes both, so a card never describes a champion that is not the one installed after a completed run."""
    write_text(project / CARD, render_card(record, _checkpoint_info(project / PENDING)))
    with atomic_path(project / CHAMPION) as tmp:
        shutil.copyfile(project / PENDING, tmp)
    (project / PENDING).unlink()


def finish_interrupted_promotion(project: Path, history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Install the champion the registry's last promotion chose when a killed run did not get to it; returns that
    decision if it had to be finished. Raises RegistryError when the chosen champion can be found nowhere."""
    promoted = [record for record in history if record["decision"] == PROMOTED]
    expected = promoted[-1].get("champion_sha256") if promoted else None  # records from before it was kept: none
    pending = project / PENDING
    if expected is None or ((project / CHAMPION).exists() and _sha256(project / CHAMPION) == expected):
        pending.unlink(missing_ok=True)  # staged by a run killed before it recorded its decision: decided again
        return None
    if not pending.exists() or _sha256(pending) != expected:
        raise RegistryError(
            f"{project / REGISTRY}: its last promotion chose a champion with sha256 {expected}, but "
            f"neither {project / CHAMPION} nor {pending} is that file. Restore models/champion.pt "
            "from a backup, or move the registry aside to start a new record"
        )
    log.warning("finishing the promotion of %s recorded by an interrupted run", promoted[-1]["time"])
    install_champion(project, promoted[-1])
    return promoted[-1]


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
