"""Kill the retrain flow at every file write and check the next run: the retrain row of README's "What survives what".

Three situations on the toy DVC project (tests/toy_dvc.py), each after `dvc repro` trained the challenger: the first
promotion (no champion yet), a later promotion (a better challenger) and a kept champion (a worse one). For each
write the decision makes (tests/fault_retrain.py: staged champion, registry line, card, champion), the flow is
SIGKILLed with that file written but not renamed ("before:N") and right after it landed ("after:N"), then run again;
the end state (champion bytes, card, registry decisions and scores) must equal that of an uninterrupted run.

    python benchmarks/kill_retrain.py ["later promotion" ...]   # all three situations by default

Not run by `make bench`: about 30 s per kill on 2 busy cores (a subprocess flow run and an in-process rerun).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows.retrain as retrain_module  # noqa: E402
from finetuner.retrain.registry import CARD, CHAMPION, PENDING, read_registry  # noqa: E402
from flows.retrain import retrain  # noqa: E402
from tests.fault_retrain import killed_retrain  # noqa: E402
from tests.toy_dvc import add_data, dvc, make_toy_project  # noqa: E402

# situation -> (quality of the new data's challenger, or None for the first run; writes its decision makes)
SITUATIONS = {"first promotion": (None, 4), "later promotion": (0.75, 4), "champion kept": (0.65, 1)}


def prepare(base: Path, situation: str) -> Path:
    """The project just before the retrain run that is killed: the challenger trained, nothing decided about it."""
    quality, _ = SITUATIONS[situation]
    project = make_toy_project(base / situation.replace(" ", "-"), quality=0.70)
    dvc(project, "repro")
    if quality is not None:
        retrain(project_dir=str(project))
        add_data(project, quality=quality, numbers=range(3, 4))
        dvc(project, "repro")
    return project


def end_state(project: Path) -> dict[str, Any]:
    """What a user relies on after the run, without what depends on when it ran. A run killed after its last write
    has finished its work, so the run after it finds no new data and says so; that line decides nothing."""
    registry = [
        {key: value for key, value in record.items() if key not in ("time", "previous_sha256")}
        for record in read_registry(project)
        if record["decision"] != "no_new_data"
    ]
    card = (project / CARD).read_text() if (project / CARD).exists() else None
    card = "\n".join(line for line in (card or "").splitlines() if not line.startswith("- promoted:"))
    champion = (project / CHAMPION).read_bytes() if (project / CHAMPION).exists() else None
    return {"registry": registry, "card": card, "champion": champion, "pending": (project / PENDING).exists()}


def kill_and_rerun(prepared: Path, point: str, expected: dict[str, Any], api_url: str) -> str:
    project = prepared.with_name(f"{prepared.name}-{point.replace(':', '')}")
    shutil.copytree(prepared, project)
    code, output = killed_retrain(project, point, api_url)
    if code != -signal.SIGKILL:
        return f"NO: not killed ({code}): {output[-300:]}"
    retrain(project_dir=str(project))
    found = end_state(project)
    wrong = [key for key in expected if found[key] != expected[key]]
    shutil.rmtree(project)
    return "yes" if not wrong else f"NO: {', '.join(wrong)} differ"


def main(argv: list[str] | None = None) -> int:
    chosen = (argv if argv is not None else sys.argv[1:]) or list(SITUATIONS)
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    retrain_module.run_pipeline = lambda project_dir: None  # `dvc repro` has run it; stage kills: kill_matrix.py
    totals = []
    with tempfile.TemporaryDirectory(prefix="kill-retrain-") as tmp, prefect_test_harness(server_startup_timeout=600):
        api_url = str(PREFECT_API_URL.value())
        print("| situation | kill point | next run ends as an uninterrupted one |\n|---|---|---|", flush=True)
        for situation in chosen:
            writes = SITUATIONS[situation][1]
            prepared = prepare(Path(tmp), situation)
            reference = prepared.with_name(f"{prepared.name}-reference")
            shutil.copytree(prepared, reference)
            retrain(project_dir=str(reference))
            expected = end_state(reference)
            for number in range(1, writes + 1):
                for point in (f"before:{number}", f"after:{number}"):
                    began = time.perf_counter()
                    result = kill_and_rerun(prepared, point, expected, api_url)
                    totals.append(result == "yes")
                    print(f"| {situation} | {point} | {result} ({time.perf_counter() - began:.0f} s) |", flush=True)
    print(f"\nkills survived: {sum(totals)}/{len(totals)}")
    return 0 if all(totals) else 1


if __name__ == "__main__":
    sys.exit(main())
