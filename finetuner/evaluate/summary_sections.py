"""The data, near-duplicate and split sections of `reports/summary.md`, rendered from the stages' own reports.

Pure rendering from the dicts the `ingest`, `dedup` and `split` stages write (`reports/ingest.json`, `dedup.json`,
`split.json`), in the order a reviewer asks: what data, how much of it is the same thing twice, was it split
without leaks. Every figure is looked up tolerantly: an absent report or key reads "not available", never a crash,
because the held-out test figures matter more than any summary line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetuner.evaluate.report_format import NOT_AVAILABLE, fmt, get, size, table

SPLITS = ("train", "val", "test")


def _by_count(counts: Any) -> str:
    """`{"truncated": 1, "empty file": 2}` -> "empty file: 2, truncated: 1" (largest first)."""
    if not isinstance(counts, Mapping) or not counts:
        return "none"
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def data_section(ingest: Mapping[str, Any] | None) -> list[str]:
    """Files, usable, quarantined by reason, groups, metadata problems, classes too small, usable per class."""
    lines = ["## Data", ""]
    if ingest is None:
        return [*lines, f"Ingest report (reports/ingest.json): {NOT_AVAILABLE}."]
    quarantined = get(ingest, "by_status", "quarantined")
    lines += [
        f"- Files: {fmt(ingest.get('n_files'))}; usable: {fmt(get(ingest, 'by_status', 'ok'))}; "
        f"quarantined: {fmt(quarantined)}" + (f" ({_by_count(ingest.get('by_reason'))})" if quarantined else ""),
        f"- Declared groups: {fmt(ingest.get('n_groups'))} (usable images by group source: "
        f"{_by_count(ingest.get('by_group_source'))})",
        f"- Metadata problems: {fmt(size(get(ingest, 'metadata', 'problems')))}",
    ]
    too_small = ingest.get("classes_too_small")
    if too_small is None:
        lines.append(f"- Classes too small: {NOT_AVAILABLE}")
    elif not too_small:
        lines.append("- Classes too small: none")
    else:
        lines.append(f"- Classes too small: {len(too_small)}")
        lines += [f"  - {c.get('label')}: {'; '.join(c.get('problems') or [])}" for c in too_small]
    by_class = ingest.get("by_class")
    if isinstance(by_class, Mapping) and by_class:
        rows = [[label, get(counts, "ok"), get(counts, "quarantined")] for label, counts in by_class.items()]
        lines += ["", table(["class", "usable images", "quarantined"], rows)]
    return lines


def _largest_unit(dedup: Mapping[str, Any]) -> int | None:
    sizes = dedup.get("units_by_size")
    if not isinstance(sizes, Mapping) or not sizes:
        return None
    return max(int(key) for key in sizes)


def dedup_section(dedup: Mapping[str, Any] | None, review_page: str | None) -> list[str]:
    """Pairs by method, clusters, leakage units, the largest of each, cross-group pairs, the guards' cuts."""
    lines = ["## Near duplicates", ""]
    if dedup is None:
        return [*lines, f"Near-duplicate report (reports/dedup.json): {NOT_AVAILABLE}."]
    counts = dedup.get("counts") or {}
    see = f"; see [{review_page}]({review_page})" if review_page else ""
    lines += [
        f"- Pairs: {fmt(counts.get('pairs'))} ({_by_count(counts.get('pairs_by_method'))}) "
        f"among {fmt(counts.get('images'))} usable images",
        f"- Clusters: {fmt(counts.get('clusters'))}; largest: {fmt(dedup.get('largest_cluster_size'))} images",
        f"- Leakage units (declared groups joined by near-duplicate pairs): {fmt(counts.get('units'))}; "
        f"largest: {fmt(_largest_unit(dedup))} images",
        f"- Pairs joining different declared groups: {fmt(counts.get('cross_group_pairs'))}"
        f" (their groups become one unit{see})",
        f"- Pairs cut by the size guard (dedup.max_cluster_size = "
        f"{fmt(get(dedup, 'settings', 'max_cluster_size'))}): {fmt(counts.get('pairs_cut_by_size_guard'))}",
    ]
    if counts.get("pairs_cut_by_unit_guard"):
        lines.append(
            f"- Pairs cut by the unit share guard (dedup.max_unit_share = "
            f"{fmt(get(dedup, 'settings', 'max_unit_share'), 2)}): {fmt(counts['pairs_cut_by_unit_guard'])}"
        )
    if counts.get("pairs_cut_by_design_guard"):
        lines.append(
            "- Twin designs cut by the design guard (look-alike graphics or blank frames between groups that share "
            f"no more than chance gives): {fmt(counts['pairs_cut_by_design_guard'])}{see}"
        )
    if counts.get("unreadable"):
        lines.append(f"- Images that could not be hashed: {counts['unreadable']}")
    lines += [f"- Warning: {warning}" for warning in dedup.get("warnings") or []]
    return lines


def _split_table(split: Mapping[str, Any]) -> str:
    """One row per split: images, units, achieved (target) fraction, then images per class."""
    per_split = split.get("per_split") or {}
    per_class = split.get("per_class") or {}
    classes = list(per_class)
    rows = []
    for name in SPLITS:
        row = per_split.get(name) or {}
        fraction = f"{fmt(row.get('fraction'), 3)} ({fmt(row.get('target'), 2)})"
        rows.append(
            [
                name,
                row.get("images"),
                row.get("units"),
                fraction,
                *[get(per_class, label, name, "images") for label in classes],
            ]
        )
    # Units never span splits, so the units of all splits add up.
    units = [r[2] for r in rows]
    total_units = sum(units) if all(isinstance(u, int) for u in units) else None
    rows.append(
        [
            "**all**",
            get(split, "images", "placed"),
            total_units,
            "",
            *[get(per_class, label, "images") for label in classes],
        ]
    )
    return table(["split", "images", "units", "fraction (target)", *classes], rows)


def _leak_lines(split: Mapping[str, Any]) -> list[str]:
    passed = get(split, "leak_check", "passed")
    verdict = NOT_AVAILABLE if passed is None else "passed" if passed else "**FAILED**"
    lines = [f"- Leak check (no group or near-duplicate cluster in two splits): {verdict}"]
    lines += [f"  - {problem}" for problem in get(split, "leak_check", "problems") or []]
    lines.append(
        f"- Leak bridges (images held out of every split to keep units apart): "
        f"{fmt(get(split, 'leak_bridges', 'count'))}"
    )
    audit = split.get("leak_audit")
    if isinstance(audit, Mapping) and audit.get("test_images"):
        share = audit.get("share_of_test_leaking")
        lines.append(
            f"- Leak audit: a {audit.get('split', 'naive per-image random split')} would have leaked "
            # Its own test set, drawn per image, differs in size from the real one (n_test): say whose count it is.
            f"{fmt(audit.get('test_images_with_same_unit_in_train'))} of the {audit['test_images']} test images it "
            f"draws "
            f"({'?' if share is None else f'{100 * share:.0f}%'}): an image of the same leakage unit in train "
            f"(same declared group: {fmt(audit.get('test_images_with_same_group_in_train'))}; "
            f"a near duplicate: {fmt(audit.get('test_images_with_near_duplicate_in_train'))})"
        )
    else:
        lines.append(f"- Leak audit (naive per-image random split): {NOT_AVAILABLE}")
    return lines


def split_section(split: Mapping[str, Any] | None) -> list[str]:
    """The split table, how far classes are from the target fractions, the leak check, bridges and audit."""
    lines = ["## Split", ""]
    if split is None:
        return [*lines, f"Split report (reports/split.json): {NOT_AVAILABLE}."]
    if split.get("per_split"):
        lines += [_split_table(split), ""]
    else:
        lines += [f"Images per split: {NOT_AVAILABLE}.", ""]
    lines.append(
        f"- Largest gap between a class's fraction and its target: {fmt(split.get('max_class_fraction_error'), 3)}"
    )
    images = split.get("images") or {}
    if images.get("sticky"):
        lines.append(f"- Images that kept their split from earlier runs: {images['sticky']}; new: {images.get('new')}")
    lines += _leak_lines(split)
    warnings: Sequence[str] = split.get("warnings") or []
    lines += [f"- Warning: {warning}" for warning in warnings]
    return lines
