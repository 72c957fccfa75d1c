"""Near-duplicates among look-alikes: the demo world's planted copies vs the pairs between different specimens.

The demo world (finetuner/demo/world.py) renders specimens of six shape classes, several photos each, and plants exact
and near copies, half of them filed under another specimen (its `demo_truth.json` lists them). Specimens of one class
look alike, so this is a collection of twin designs: every accepted pair between two specimens that was not planted
is a false link, and one across groups merges their units. Scored for ours (candidate views + verifier, default
params) and, for reference, the hash rule alone: planted copies found (as direct pairs), other pairs across groups,
and how many units the groups and accepted pairs make against the groups and planted copies alone. Run:
`python benchmarks/bench_dedup_demo.py` (about a minute on 2 cores; the world is drawn into a temporary folder).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dedup_quality import hash_rule_only, ours  # noqa: E402

from finetuner.config import parse_params  # noqa: E402
from finetuner.demo.data import write_first_batch  # noqa: E402


def units(n: int, groups: list[str], pairs: np.ndarray) -> int:
    """Connected components of the images joined by their groups and by `pairs`."""
    ids = {g: n + k for k, g in enumerate(sorted(set(groups)))}
    i = np.r_[pairs[:, 0], np.arange(n)]
    j = np.r_[pairs[:, 1], [ids[g] for g in groups]]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n + len(ids),) * 2)
    labels = connected_components(graph, directed=False)[1]
    return len(np.unique(labels[:n]))


def report(name: str, pairs: np.ndarray, seconds: float, rows: list[dict], planted: set, n_planted_units: int) -> None:
    paths = [r["path"] for r in rows]
    groups = [r["group"] for r in rows]
    found = {frozenset((paths[a], paths[b])) for a, b in pairs.tolist()}
    cross = [(a, b) for a, b in pairs.tolist() if groups[a] != groups[b]]
    false_cross = sum(frozenset((paths[a], paths[b])) not in planted for a, b in cross)
    hits = sum(p in found for p in planted)
    print(
        f"{name:26s} planted copies found {hits}/{len(planted)}; pairs across groups {len(cross)}, of which not "
        f"planted (look-alike specimens) {false_cross}; units {units(len(rows), groups, pairs)} (groups and planted "
        f"copies alone: {n_planted_units}); {seconds:.1f} s"
    )


def main() -> int:
    seed = parse_params({}).seed
    with tempfile.TemporaryDirectory(prefix="bench-dedup-demo-") as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        write_first_batch(seed, root)
        with (root / "raw/metadata.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        truth = json.loads((root / "demo_truth.json").read_text())
        planted = {frozenset((p["copy"], p["original"])) for b in truth["batches"].values() for p in b["planted"]}
        broken = {p["path"] for b in truth["batches"].values() for p in b["broken"]}
        rows = [r for r in rows if r["path"] not in broken]  # ingest would set them aside
        print(
            f"demo world (seed {seed}): {len(rows)} readable photos drawn in {time.perf_counter() - start:.1f} s, "
            f"{len(planted)} planted copies"
        )
        index = {r["path"]: k for k, r in enumerate(rows)}
        planted_pairs = np.array([[index[a] for a in p] for p in planted if all(a in index for a in p)], np.int64)
        n_planted_units = units(len(rows), [r["group"] for r in rows], planted_pairs.reshape(-1, 2))
        paths = [str(root / "raw/images" / r["path"]) for r in rows]
        for name, run in (("ours (views + verifier)", ours), ("ours, hash rule only", hash_rule_only)):
            pairs, seconds = run(paths)
            report(name, pairs, seconds, rows, planted, n_planted_units)
    return 0


if __name__ == "__main__":
    sys.exit(main())
