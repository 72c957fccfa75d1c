"""Kill every stage at several points and check the rerun: the figures of the README's "What survives what" table.

For each of the seven stages and each kill point (a subprocess SIGKILLed right after its Nth file write landed,
or with its Nth file written to a temporary name but not yet renamed), starting from a finished reference run of
the tiny test project: remove the stage's outputs (as `dvc repro` does), run the stage killed, remove its outputs
again, rerun it, and compare every output byte for byte with the reference. Prints a markdown table.

    python benchmarks/kill_matrix.py [--points 3]

Not run by `make bench` (it is a fault matrix, not a benchmark): about a minute per training-stage kill on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fault_project import (  # noqa: E402
    STAGES,
    differences,
    make_project,
    outputs,
    remove_outputs,
    run_in_process,
    run_subprocess,
)

# File writes (atomic renames) each stage makes on the tiny project when its caches already exist.
WRITES = {"ingest": 2, "dedup": 7, "split": 7, "train_head": 7, "train_partial": 5, "train_full": 6, "evaluate": 7}


def kill_points(writes: int, count: int) -> list[str]:
    """The first write before its rename, the middle one after, the last before, the one before last after."""
    points = [f"before:{1}", f"after:{max(1, writes // 2)}", f"before:{writes}", f"after:{max(1, writes - 1)}"]
    return list(dict.fromkeys(points))[:count]


def reference_run(base: Path) -> tuple[Path, dict[str, bytes], float]:
    root = make_project(base / "reference")
    began = time.perf_counter()
    for stage in STAGES:
        assert run_in_process(root, stage) == 0, stage
    return root, outputs(root), time.perf_counter() - began


def forced_rerun_identical(root: Path, expected: dict[str, bytes], base: Path) -> list[str]:
    copy = base / "rerun"
    shutil.copytree(root, copy)
    for stage in STAGES:
        remove_outputs(copy, stage)
        assert run_in_process(copy, stage) == 0, stage
    return differences(outputs(copy), expected)


def kill_and_rerun(root: Path, expected: dict[str, bytes], base: Path, stage: str, point: str) -> tuple[bool, str]:
    copy = base / f"{stage}-{point.replace(':', '')}"
    shutil.copytree(root, copy)
    remove_outputs(copy, stage)
    code = run_subprocess(copy, stage, point)
    remove_outputs(copy, stage)
    if run_in_process(copy, stage) != 0:
        return False, "rerun failed"
    diff = differences(outputs(copy), expected)
    shutil.rmtree(copy)
    killed = "killed" if code == -signal.SIGKILL else "finished before the point"
    return not diff, f"{killed}; {'identical' if not diff else 'differs: ' + ', '.join(diff[:3])}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4, help="kill points per stage (at most 4)")
    parser.add_argument("--stages", nargs="*", default=list(STAGES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-matrix-") as tmp:
        base = Path(tmp)
        root, expected, seconds = reference_run(base)
        print(f"reference run: {len(expected)} output files in {seconds:.0f} s", flush=True)
        diff = forced_rerun_identical(root, expected, base)
        print(f"forced rerun of every stage: {'byte-identical' if not diff else 'differs: ' + ', '.join(diff)}")
        print("\n| stage | kill point | rerun equals reference | detail |\n|---|---|---|---|", flush=True)
        totals = {}
        for stage in args.stages:
            for point in kill_points(WRITES[stage], args.points):
                ok, detail = kill_and_rerun(root, expected, base, stage, point)
                totals.setdefault(stage, []).append(ok)
                print(f"| {stage} | {point} | {'yes' if ok else 'NO'} | {detail} |", flush=True)
        print("\n| stage | kills survived |\n|---|---|")
        for stage, results in totals.items():
            print(f"| {stage} | {sum(results)}/{len(results)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
