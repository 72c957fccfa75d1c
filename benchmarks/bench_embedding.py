"""Benchmark of the dedup stage's optional embedding signal on the demo world: what it finds, and what it costs.

The demo world photographs each specimen from several views: new photos of one thing, which hashes do not join.
With specimens as the truth, this prints for each backbone (the demo backbone from `make demo-data`, and a random
one for contrast): recall of same-specimen photo pairs, precision of the pairs only the embeddings found, and the
size guard's work. Speed, each with a baseline measured in the same run and the ratio:
1. the whole stage with the embedding signal, cold, vs the stage with hashes only, cold (the price of the signal);
2. the stage again after 5% more images vs cold (only new contents are embedded);
3. the exact blockwise similarity search vs a numpy loop of one dot-product row per image (same pairs).
Run: `python benchmarks/bench_embedding.py` (about 2 minutes on 2 cores; `make demo-data` first for the backbone).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetuner.common.stage import read_csv, write_csv  # noqa: E402
from finetuner.config import parse_params  # noqa: E402
from finetuner.dedup import stage as dedup  # noqa: E402
from finetuner.dedup.similarity import normalize, similar_pairs  # noqa: E402
from finetuner.demo.copies import BROKEN_KINDS  # noqa: E402
from finetuner.demo.world import DEMO_SPEC, build_world  # noqa: E402

COLUMNS = ("path", "label", "group", "status", "reason", "sha256", "width", "height")


def write_world(root: Path, seed: int) -> tuple[list[dict], dict[str, str]]:
    """The demo world's usable files under root/data/raw/images and a manifest; returns rows and path -> kind."""
    world = build_world(seed, DEMO_SPEC, batch=1)
    rows, kinds = [], {}
    for file in world.files:
        if file.kind in BROKEN_KINDS:
            continue
        path = root / "data/raw/images" / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.data)
        rows.append(
            {
                "path": file.path,
                "label": file.label,
                "group": file.group,
                "status": "ok",
                "reason": "",
                "sha256": hashlib.sha256(file.data).hexdigest(),
                "width": 0,
                "height": 0,
            }
        )
        kinds[file.path] = file.kind
    write_csv(root / dedup.MANIFEST, rows, COLUMNS)
    return rows, kinds


def quality(root: Path, rows: list[dict], kinds: dict[str, str]) -> str:
    group = {r["path"]: r["group"] for r in rows}
    photos = [r["path"] for r in rows if kinds[r["path"]] == "photo"]
    truth = {(a, b) for a in photos for b in photos if a < b and group[a] == group[b]}
    pairs = read_csv(root / dedup.PAIRS_CSV, required=("path_a", "path_b", "method"))
    found = {(p["path_a"], p["path_b"]) for p in pairs if p["method"] == "embedding"}
    on_photos = {p for p in found if p[0] in kinds and kinds[p[0]] == "photo" and kinds[p[1]] == "photo"}
    right = len(on_photos & truth)
    precision = right / len(on_photos) if on_photos else float("nan")
    return (
        f"{len(found)} embedding-only pairs; same-specimen photo pairs found {right}/{len(truth)} "
        f"(recall {right / len(truth):.1%}); precision on photo pairs {precision:.1%}"
    )


def run_stage(root: Path, weights: str | None, enabled: bool, threshold: float) -> tuple[float, dict]:
    params = parse_params(
        {"model": {"weights": weights}, "dedup": {"embedding": {"enabled": enabled, "min_similarity": threshold}}}
    )
    start = time.perf_counter()
    summary = dedup.run(params, root)
    return time.perf_counter() - start, summary


def grow(root: Path, rows: list[dict], kinds: dict[str, str]) -> None:
    """5% more images: copies of existing files with one trailing byte (new content, the same picture)."""
    extra = []
    for row in rows[: max(1, len(rows) // 20)]:
        source = root / "data/raw/images" / row["path"]
        target = source.with_name("grown_" + source.name)
        data = source.read_bytes() + b"\0"
        target.write_bytes(data)
        extra.append(
            {
                **row,
                "path": target.relative_to(root / "data/raw/images").as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        kinds[extra[-1]["path"]] = "grown"
    write_csv(root / dedup.MANIFEST, rows + extra, COLUMNS)


def search_vs_loop(vectors: np.ndarray, threshold: float) -> None:
    start = time.perf_counter()
    i, j, _ = similar_pairs(vectors, threshold)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    unit = normalize(vectors)
    loop = set()
    for a in range(len(unit)):
        sims = unit[a + 1 :] @ unit[a]
        loop.update((a, a + 1 + int(b)) for b in np.flatnonzero(sims >= np.float32(threshold)))
    base = time.perf_counter() - start
    same = len(loop ^ set(zip(i.tolist(), j.tolist())))
    print(
        f"[3] similarity search over {len(unit):,} x {unit.shape[1]}: ours {ours * 1000:.1f} ms; row-loop baseline "
        f"{base * 1000:.1f} ms; ratio {base / ours:.1f}x; pairs differing {same} (float rounding at the threshold)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="models/demo_backbone.pt", help="the backbone to judge (a checkpoint)")
    parser.add_argument("--min-similarity", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not Path(args.weights).is_file():
        print(f"{args.weights} not found: run `make demo-data` first (it pretrains the demo backbone)")
        return 2
    root = Path(tempfile.mkdtemp(prefix="bench-embedding-"))
    try:
        rows, kinds = write_world(root, args.seed)
        print(
            f"demo world: {len(rows)} usable images, {sum(k == 'photo' for k in kinds.values())} photos of "
            f"{len({r['group'] for r in rows})} specimens; threshold {args.min_similarity}"
        )
        import torchvision  # noqa: F401 - imported once up front, so no timing below includes it

        shutil.rmtree(root / "data/cache", ignore_errors=True)
        t_hash, _ = run_stage(root, args.weights, False, args.min_similarity)
        shutil.rmtree(root / "data/cache", ignore_errors=True)
        t_cold, summary = run_stage(root, args.weights, True, args.min_similarity)
        print(
            f"[1] stage with embeddings, cold: ours {t_cold:.2f} s; hashes-only stage, cold: {t_hash:.2f} s; "
            f"ratio {t_cold / t_hash:.1f}x (the price of the signal)"
        )
        print(
            "    trade-off in reports/dedup.json: "
            + ", ".join(
                f"{r['min_similarity']}: {r['pairs']} pairs / largest cluster {r['largest_cluster']}"
                for r in summary["embedding"]["tradeoff"]
            )
        )
        for threshold in sorted({args.min_similarity, 0.97, 0.99}):
            _, summary = run_stage(root, args.weights, True, threshold)  # embeddings cached: only the search reruns
            print(
                f"    demo backbone at {threshold}: {quality(root, rows, kinds)}; cut by the size guard "
                f"{summary['counts']['pairs_cut_by_size_guard']}"
            )
        grow(root, rows, kinds)
        t_grow, grown = run_stage(root, args.weights, True, args.min_similarity)
        print(
            f"[2] after 5% more images: ours {t_grow:.2f} s, {grown['embedding']['newly_embedded']} of "
            f"{grown['counts']['distinct_contents']} contents embedded; cold baseline {t_cold:.2f} s; ratio "
            f"{t_grow / t_cold:.2f} (the rest is fixed cost: loading and fingerprinting the backbone, the report)"
        )
        write_csv(root / dedup.MANIFEST, rows, COLUMNS)
        search_vs_loop(np.random.default_rng(0).normal(size=(4000, 512)).astype(np.float32), 0.2)
        shutil.rmtree(root / "data/cache", ignore_errors=True)
        try:
            run_stage(root, None, True, args.min_similarity)
            print(f"    random backbone at {args.min_similarity}: {quality(root, rows, kinds)}")
        except ValueError as exc:  # a backbone that joins everything is refused by name
            print(f"    random backbone at {args.min_similarity}: refused: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
