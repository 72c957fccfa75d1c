"""The dedup stage's report: a JSON-ready summary of what the stage found, and which of it the page shows.

`summarize` counts images, contents, pairs by method, clusters by size, the pairs the size guard cut, every pair
that joins two different declared groups (a labelling or collection problem users want to see), the rejected
candidates nearest the verifier's cut-off, the giant units with the pairs that bridge them, and, with the embedding
signal on, its trade-off table and the pairs only it found. finetuner/dedup/report_page.py renders it as a page;
`paths_to_preview` names the images the page shows. Pure: writing the files is finetuner/dedup/stage.py's job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CLUSTERS_SHOWN = 10
MAX_MEMBERS_SHOWN = 16
MAX_CUT_SHOWN = 50
MAX_ACCEPTED_SHOWN = 200  # accepted pairs in the page, least similar first (the ones worth a look)
MAX_CROSS_SHOWN = 200  # two declared groups joined, a row each, in the page (the JSON keeps every pair)


def pair_record(
    path_a: str, path_b: str, method: str, distance: int | float, group_a: str, group_b: str
) -> dict[str, Any]:
    """A pair as the report holds it; `distance` is Hamming (int) for hash pairs, cosine (float) for embedding ones."""
    return {
        "path_a": path_a,
        "path_b": path_b,
        "method": method,
        "distance": distance,
        "group_a": group_a,
        "group_b": group_b,
    }


def summarize(
    *,
    n_images: int,
    n_contents: int,
    n_hashed: int,
    kept: Sequence[Mapping[str, Any]],
    cut: Sequence[Mapping[str, Any]],
    clusters: Sequence[Sequence[str]],
    units: Sequence[str],
    tradeoff: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    unreadable: Sequence[str],
    embedding: Mapping[str, Any] | None = None,
    rejected: Sequence[Mapping[str, Any]] = (),
    giant_units: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything reports/dedup.json holds; `clusters` are lists of paths, largest first. `warnings`: what the run
    logged about its inputs that its reader should know (too many candidates per image, small images without
    groups)."""
    cross = [p for p in kept if p["group_a"] and p["group_b"] and p["group_a"] != p["group_b"]]
    unit_sizes = Counter(Counter(units).values())
    return {
        "settings": dict(settings),
        "warnings": list(warnings),
        "counts": {
            "images": n_images,
            "distinct_contents": n_contents,
            "newly_hashed": n_hashed,
            "pairs": len(kept),
            "pairs_by_method": dict(sorted(Counter(p["method"] for p in kept).items())),
            "pairs_cut_by_size_guard": sum(1 for p in cut if "cut_by" not in p),
            "pairs_cut_by_unit_guard": sum(1 for p in cut if p.get("cut_by") == "unit share guard"),
            "pairs_cut_by_design_guard": sum(1 for p in cut if p.get("cut_by") == "design guard"),
            "cross_group_pairs": len(cross),
            "clusters": len(clusters),
            "units": len(set(units)),
            "unreadable": len(unreadable),
        },
        "clusters_by_size": {str(k): v for k, v in sorted(Counter(len(c) for c in clusters).items())},
        "units_by_size": {str(k): v for k, v in sorted(unit_sizes.items())},
        "largest_clusters": [list(c[:MAX_MEMBERS_SHOWN]) for c in clusters[:MAX_CLUSTERS_SHOWN]],
        "largest_cluster_size": len(clusters[0]) if clusters else 1,
        "cross_group_pairs": list(cross),
        "cut_pairs": list(cut),
        "tradeoff": list(tradeoff),
        "unreadable": list(unreadable),
        "embedding": _with_shown_pairs(embedding, kept),
        "nearest_rejected": list(rejected),
        "giant_units": list(giant_units),
        "accepted_shown": _least_similar(kept),
        **_cross_shown(cross),
    }


def _cross_shown(cross: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`cross_group_shown`: a row per two declared groups that pairs join, for the page: their most similar pair (an
    exact copy first) and `pairs_between_groups`, groups joined by the most pairs first, up to MAX_CROSS_SHOWN; and
    `group_pairs_joined`, how many two groups there are. Copies of one picture filed under three patients are three
    rows, not one per pair of copies: on 20,000 photos filed one group each, every one of 33,331 pairs crossed groups,
    and a row per pair made a page of 218 MB."""
    joined: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for p in cross:
        joined.setdefault(tuple(sorted((p["group_a"], p["group_b"]))), []).append(p)
    rows = []
    for key, pairs in joined.items():
        best = min(pairs, key=lambda p: (p["method"] != "exact", -p.get("similarity", 0.0), p["path_a"], p["path_b"]))
        rows.append((-len(pairs), key, dict(best) | {"pairs_between_groups": len(pairs)}))
    shown = [row for _, _, row in sorted(rows, key=lambda r: r[:2])[:MAX_CROSS_SHOWN]]
    return {"cross_group_shown": shown, "group_pairs_joined": len(joined)}


def _least_similar(kept: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Verified pairs, least similar first: the accepted side of the cut-off, for the page (up to a limit)."""
    verified = [p for p in kept if p["method"] == "verified"]
    ranked = sorted(verified, key=lambda p: (p.get("similarity", 1.0), p["path_a"], p["path_b"]))
    return ranked[:MAX_ACCEPTED_SHOWN]


def _with_shown_pairs(embedding: Mapping[str, Any] | None, kept: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The embedding section plus the kept embedding-only pairs, closest first (up to MAX_CUT_SHOWN)."""
    if not embedding or not embedding.get("enabled"):
        return {"enabled": False}
    ours = sorted(
        (p for p in kept if p["method"] == "embedding"), key=lambda p: (p["distance"], p["path_a"], p["path_b"])
    )
    return {**embedding, "pairs": len(ours), "pairs_shown": ours[:MAX_CUT_SHOWN]}


def embedding_only_pairs(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return summary.get("embedding", {}).get("pairs_shown", [])


def cut_shown(summary: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The page's cut pairs, up to MAX_CUT_SHOWN of each: those the size and unit guards cut, and the twin designs
    the design guard cut (a section of their own: their remedy is another key)."""
    guarded = [p for p in summary["cut_pairs"] if p.get("cut_by") != "design guard"]
    twins = [p for p in summary["cut_pairs"] if p.get("cut_by") == "design guard"]
    return guarded[:MAX_CUT_SHOWN], twins[:MAX_CUT_SHOWN]


def paths_to_preview(summary: Mapping[str, Any]) -> list[str]:
    """Every path the HTML page shows, so the stage decodes only those."""
    paths = {p for cluster in summary["largest_clusters"] for p in cluster}
    bridges = [p for unit in summary.get("giant_units", []) for p in unit["bridges"]]
    for p in [
        *summary.get("cross_group_shown", []),
        *(p for shown in cut_shown(summary) for p in shown),
        *embedding_only_pairs(summary),
        *summary.get("accepted_shown", []),
        *summary.get("nearest_rejected", []),
        *bridges,
    ]:
        paths.update((p["path_a"], p["path_b"]))
    return sorted(paths)
