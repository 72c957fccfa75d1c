"""The dedup stage's report: a JSON-ready summary and an HTML page of thumbnails a person can look at.

`summarize` counts images, contents, pairs by method, clusters by size, the pairs the size guard cut, every pair
that joins two different declared groups (a labelling or collection problem users want to see), the rejected
candidates nearest the verifier's cut-off, the giant units with the pairs that bridge them, and, with the embedding
signal on, its trade-off table and the pairs only it found. `render_html` shows each of these as tables whose rows
hold the two images side by side (inline base64 JPEG thumbnails) and the evidence: signal, similarity, overlap,
transform.
Pure: thumbnails come in as a dict path -> base64 string; writing the files is finetuner/dedup/stage.py's job.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CLUSTERS_SHOWN = 10
MAX_MEMBERS_SHOWN = 16
MAX_CUT_SHOWN = 50
MAX_ACCEPTED_SHOWN = 200  # accepted pairs in the page, least similar first (the ones worth a look)
MAX_CROSS_SHOWN = 200  # two declared groups joined, a row each, in the page (the JSON keeps every pair)
EVIDENCE_SHOWN = ("signal", "similarity", "detail_similarity", "overlap", "transform", "colour")


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


def _img(path: str, thumbs: Mapping[str, str]) -> str:
    """An image and its path; `thumbs` maps a path to its thumbnail's class in the page's style (`_thumb_styles`)."""
    label = html.escape(path)
    if path not in thumbs:
        return f'<figure><div class="missing">no preview</div><figcaption>{label}</figcaption></figure>'
    return (
        f'<figure><div class="thumb {thumbs[path]}" role="img" aria-label="{label}"></div>'
        f"<figcaption>{label}</figcaption></figure>"
    )


def _thumb_styles(thumbs: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """(style rules, path -> class): each thumbnail (base64 JPEG) is written into the page once, as a class's
    background, however many pairs and clusters show it (a copy in 15 pairs was 30 copies of its thumbnail: on 713
    photos, 980 thumbnails of 361 images made 2.7 of the page's 2.9 MB)."""
    names = {path: f"t{k}" for k, path in enumerate(sorted(thumbs))}
    rules = "".join(f".{names[p]}{{background-image:url(data:image/jpeg;base64,{thumbs[p]})}}" for p in sorted(thumbs))
    return rules, names


def _pairs_section(
    title: str, pairs: Sequence[Mapping[str, Any]], thumbs: Mapping[str, str], note: str, total: int | None = None
) -> list[str]:
    """A table, one pair per row: both images side by side, then how it was found and the verifier's evidence.
    `total`: how many there are where `pairs` shows some of them."""
    count = len(pairs) if total is None else total
    out = [f"<h2>{html.escape(title)} ({count})</h2>", f"<p>{html.escape(note)}</p>"]
    if not pairs:
        return out
    extra = [
        c for c in ("pairs_between_groups", "images_cut_off", "cut_by", *EVIDENCE_SHOWN) if any(c in p for p in pairs)
    ]
    head = ["image a", "image b", "method", "distance", "groups", *extra]
    out.append("<table class='pairs'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for p in pairs:
        cells = [
            _img(p["path_a"], thumbs),
            _img(p["path_b"], thumbs),
            html.escape(str(p["method"])),
            html.escape(str(p["distance"])),
            html.escape(f"{p['group_a'] or '-'} / {p['group_b'] or '-'}"),
        ]
        cells += [html.escape("" if p.get(c) is None else str(p[c])) for c in extra]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def _tradeoff_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    key = "min_similarity" if "min_similarity" in rows[0] else "radius"
    title = (
        "verifier threshold (dedup.verify.min_similarity)"
        if key == "min_similarity"
        else "Hamming radius (dedup.max_distance)"
    )
    note = (
        "<p>The row at the threshold is the verdicts as they are. Looser rows add the candidates rejected only for "
        "similarity without running the stretch limit or the shape and surround checks on them: an upper bound.</p>"
        if key == "min_similarity"
        else ""
    )
    out = [
        f"<h2>Trade-off: {title} vs pairs and largest cluster (before the size guard)</h2>{note}",
        f"<table><tr><th>{key}</th><th>pairs</th><th>clusters</th><th>largest cluster</th></tr>",
    ]
    out += [
        f"<tr><td>{r[key]}</td><td>{r['pairs']}</td><td>{r['clusters']}</td><td>{r['largest_cluster']}</td></tr>"
        for r in rows
    ]
    return out + ["</table>"]


def _giant_units_section(summary: Mapping[str, Any], thumbs: Mapping[str, str]) -> list[str]:
    units = summary.get("giant_units", [])
    share = summary["settings"].get("explain_unit_share")
    out = [
        f"<h2>Giant units ({len({u['unit'] for u in units})})</h2>",
        f"<p>Units holding more than {share} of a class's images. Each is declared groups joined by "
        "near-duplicate pairs; the pairs below bridge it (removing one cuts off the images shown), or, when no "
        "single pair does, are its weakest links. Check them: a wrong pair here is why a split is lopsided or "
        "refused.</p>",
    ]
    by_unit: dict[str, list[Mapping[str, Any]]] = {}
    for entry in units:  # an entry per unit and class: a unit of groups that span classes is giant in several
        by_unit.setdefault(entry["unit"], []).append(entry)
    for name, entries in by_unit.items():
        first = entries[0]
        classes = ", ".join(
            f"{e['images_of_class']} of class {html.escape(str(e['class']))} ({e['share_of_class']:.0%})"
            for e in entries
        )
        out.append(
            f"<h3>{html.escape(name)}: {first['images']} images, {first['links_between_groups']} links between "
            f"groups; {classes}</h3>"
        )
        out += _pairs_section("Bridging pairs", first["bridges"], thumbs, "largest cut first")[2:]
    return out


PAGE_STYLE = (
    "body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:4px;width:110px;"
    "vertical-align:top}.thumb{width:96px;height:96px;background-color:#eee;background-size:contain;"
    "background-position:center;background-repeat:no-repeat}"
    "figcaption{font-size:10px;word-break:break-all}.cluster{border:1px solid #ccc;margin:6px 0;"
    "padding:4px}.missing{width:96px;height:96px;background:#fdd}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}table.pairs td{text-align:left;"
    "vertical-align:top;font-size:12px}.warning{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px}"
)


def render_html(summary: Mapping[str, Any], thumbs: Mapping[str, str]) -> str:
    """A self-contained page (no external files) showing what the numbers in the summary are about."""
    counts = summary["counts"]
    styles, thumbs = _thumb_styles(thumbs)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dedup report</title><style>"
        + PAGE_STYLE
        + styles
        + "</style></head><body>",
        "<h1>Near-duplicate report</h1>",
        *(f'<p class="warning">{html.escape(w)}</p>' for w in summary.get("warnings", [])),
        "<table>"
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_plain(v))}</td></tr>" for k, v in counts.items()
        )
        + "</table>",
        *_tradeoff_table(summary["tradeoff"]),
    ]
    parts += _embedding_section(summary, thumbs)
    parts.append(f"<h2>Largest clusters (of {counts['clusters']})</h2>")
    for index, cluster in enumerate(summary["largest_clusters"]):
        parts.append(
            f'<div class="cluster"><p>cluster {index + 1}</p>' + "".join(_img(p, thumbs) for p in cluster) + "</div>"
        )
    cross = summary.get("cross_group_shown", [])
    parts += _pairs_section(
        "Pairs joining different declared groups",
        cross,
        thumbs,
        "Each such pair merges two groups into one unit; check the labels or the collection. A row per two groups "
        f"joined: their most similar pair, and how many pairs join them. {len(cross)} of "
        f"{summary.get('group_pairs_joined', len(cross))} pairs of groups shown (at most {MAX_CROSS_SHOWN}, those "
        "joined by the most pairs first); every pair is in reports/dedup.json (cross_group_pairs).",
        total=counts["cross_group_pairs"],
    )
    parts += _guard_sections(summary, thumbs)
    parts += _giant_units_section(summary, thumbs)
    parts += _pairs_section(
        "Accepted pairs, least similar first",
        summary.get("accepted_shown", []),
        thumbs,
        f"Shown: up to {MAX_ACCEPTED_SHOWN} pairs the verifier accepted, those nearest the "
        "cut-off first. Unrelated images here mean the dedup.verify thresholds are too loose.",
    )
    parts += _pairs_section(
        "Rejected candidates nearest the cut-off",
        summary.get("nearest_rejected", []),
        thumbs,
        "Proposed by a hash signal, rejected by the verifier, closest to passing first. Copies "
        "here mean the dedup.verify thresholds are too strict.",
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _guard_sections(summary: Mapping[str, Any], thumbs: Mapping[str, str]) -> list[str]:
    """The pairs the guards cut: by cluster size or unit share, and twin designs by the design guard."""
    parts: list[str] = []
    guarded, twins = cut_shown(summary)
    parts += _pairs_section(
        "Pairs cut by the cluster size guard or the unit share guard",
        guarded,
        thumbs,
        f"Shown: up to {MAX_CUT_SHOWN}. These images may still be near-duplicates in different "
        "units; raise dedup.max_cluster_size (cut_by empty) or dedup.max_unit_share to link them.",
        total=summary["counts"]["pairs_cut_by_size_guard"] + summary["counts"]["pairs_cut_by_unit_guard"],
    )
    parts += _pairs_section(
        "Twin designs: look-alike graphics and blank frames cut by the design guard",
        twins,
        thumbs,
        f"Shown: up to {MAX_CUT_SHOWN}. Graphics that pass every check but look like graphics of other groups too "
        "(the same letter in two typefaces), between two groups that share no more than chance gives to be one "
        "design copied, and blank frames that three or more groups hold (a black frame in every video); raise "
        "dedup.max_design_chance, or set dedup.min_design_share to 0 (off), to link them.",
        total=summary["counts"].get("pairs_cut_by_design_guard", 0),
    )
    return parts


def embedding_only_pairs(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return summary.get("embedding", {}).get("pairs_shown", [])


def _embedding_section(summary: Mapping[str, Any], thumbs: Mapping[str, str]) -> list[str]:
    section = summary.get("embedding", {})
    if not section.get("enabled"):
        return ["<p>Embedding signal: off (dedup.embedding.enabled).</p>"]
    parts = [
        f"<h2>Embedding signal: {html.escape(str(section['arch']))}, weights {html.escape(str(section['weights']))}"
        "</h2><p>Trade-off: cosine similarity vs embedding pairs and largest cluster with the hash pairs "
        "(before the size guard)</p>",
        "<table><tr><th>min similarity</th><th>pairs</th><th>of which join two declared groups</th>"
        "<th>clusters</th><th>largest cluster</th></tr>",
    ]
    for row in section["tradeoff"]:
        parts.append(
            f"<tr><td>{row['min_similarity']}</td><td>{row['pairs']}</td><td>{row['cross_group_pairs']}</td>"
            f"<td>{row['clusters']}</td><td>{row['largest_cluster']}</td></tr>"
        )
    parts.append("</table>")
    pairs = embedding_only_pairs(summary)
    parts += _pairs_section(
        "Pairs only the embeddings found",
        pairs,
        thumbs,
        f"Shown: up to {MAX_CUT_SHOWN}, closest first; distance is 1 - cosine similarity. "
        "New photographs of one thing belong here; unrelated images mean min_similarity is "
        "too loose.",
    )
    return parts


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


def _plain(value: Any) -> str:
    """A count or a small mapping as text a person reads ("phash: 3, exact: 1"), never a Python dict literal."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return str(value)
