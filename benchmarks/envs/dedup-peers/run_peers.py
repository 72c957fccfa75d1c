"""Runs the peer near-duplicate tools on one folder, in this benchmark-only environment; prints JSON to stdout.

Usage: `.venv/bin/python run_peers.py FOLDER` -> {"tool": {"pairs": [[name_a, name_b], ...], "seconds": s}, ...}
File names are relative to FOLDER. Called by benchmarks/bench_dedup_quality.py; never imported by the pipeline.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path


def imagededup_pairs(folder: Path, method: str, threshold: int) -> list[list[str]]:
    from imagededup import methods

    hasher = getattr(methods, method)(verbose=False)
    encodings = hasher.encode_images(image_dir=str(folder))
    found = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=threshold)
    return sorted({tuple(sorted((a, b))) for a, others in found.items() for b in others})


def cleanvision_pairs(folder: Path) -> list[list[str]]:
    from cleanvision import Imagelab

    lab = Imagelab(data_path=str(folder))
    lab.find_issues({"near_duplicates": {}}, verbose=False)
    pairs = set()
    for members in lab.info["near_duplicates"]["sets"]:
        names = sorted(Path(m).name for m in members)
        pairs.update((a, b) for k, a in enumerate(names) for b in names[k + 1:])
    return sorted(pairs)


def main() -> int:
    folder = Path(sys.argv[1])
    logging.disable(logging.WARNING)
    runs = {"imagededup PHash (<=10)": lambda: imagededup_pairs(folder, "PHash", 10),
            "imagededup DHash (<=10)": lambda: imagededup_pairs(folder, "DHash", 10),
            "cleanvision": lambda: cleanvision_pairs(folder)}
    out = {}
    for name, run in runs.items():
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # their progress output would corrupt our JSON
            pairs = run()
        out[name] = {"pairs": [list(p) for p in pairs], "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
