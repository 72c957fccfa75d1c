"""The dedup stage's HTML page (reports/dedup.html), from the summary finetuner/dedup/report.py makes: tables whose
rows hold the two images side by side (inline base64 JPEG thumbnails) and the evidence (signal, similarity, overlap,
transform), so a person can check the pairs the numbers count. Self-contained: no external files. Pure: thumbnails
come in as a dict path -> base64 string.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from finetuner.dedup.report import MAX_ACCEPTED_SHOWN, MAX_CROSS_SHOWN, MAX_CUT_SHOWN, cut_shown, embedding_only_pairs

EVIDENCE_SHOWN = ("signal", "similarity", "detail_similarity", "overlap", "transform", "colour")


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


def _plain(value: Any) -> str:
    """A count or a small mapping as text a person reads ("phash: 3, exact: 1"), never a Python dict literal."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return str(value)
