"""The `dedup` stage. Run by DVC as `python -m tasks.dedup` (see dvc.yaml), from the repository root.

`run` reads the manifest's usable rows (finetuner/dedup/usable.py), finds near-duplicate pairs among their distinct
contents (hashed once, cached by sha256 in data/cache/dedup so grown data decodes only new files; candidates
verified: finetuner/dedup/detect.py), adds exact copies and, with dedup.embedding.enabled, pairs of similar backbone
embeddings (finetuner/dedup/embedding.py), runs the guards (finetuner/dedup/guards.py), joins the kept pairs and
declared groups into leakage units, and writes data/interim/near_duplicates.csv, data/interim/units.csv,
reports/dedup.json and reports/dedup.html.
"""

from __future__ import annotations

import base64
import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from finetuner import layout
from finetuner.common.imageio import to_rgb
from finetuner.common.memory import with_collector_paused
from finetuner.common.stage import log_run, run_stage, split_run_facts, write_csv, write_json, write_text
from finetuner.config import DedupConfig, Params
from finetuner.dedup.candidates import EVIDENCE
from finetuner.dedup.detect import ContentFiles, Found, hash_contents, hash_pairs
from finetuner.dedup.embedding import HashedContents, embedding_signal
from finetuner.dedup.guards import blank_copies, guard_clusters, guard_designs, guard_units
from finetuner.dedup.hash_cache import PreviewCache
from finetuner.dedup.hashing import resolve_workers
from finetuner.dedup.report import pair_record, paths_to_preview, summarize
from finetuner.dedup.report_page import render_html
from finetuner.dedup.units import assign_units, components, exact_duplicate_pairs, explain_units
from finetuner.dedup.usable import Usable, aspects, read_usable, small_images_note

log = logging.getLogger("finetuner.dedup")

MANIFEST = layout.MANIFEST
PAIRS_CSV = layout.NEAR_DUPLICATES
UNITS_CSV = layout.UNITS
REPORT_JSON = layout.DEDUP_REPORT
REPORT_HTML = layout.DEDUP_PAGE
CACHE_DIR = layout.DEDUP_CACHE
RUN_FACTS = (("counts", "newly_hashed"), ("embedding", "newly_embedded"))  # logs/dedup.jsonl, not the reports
THUMB = 96
EMBEDDING_RANK = 65.0  # guard order key of embedding pairs: after every Hamming distance (0..64)


def thumbnail_b64(path: Path) -> str | None:
    try:
        with Image.open(path) as opened:
            opened.draft("RGB", (THUMB, THUMB))  # JPEG: decode at the smallest scale still >= the thumbnail
            image = to_rgb(opened)
    except Exception:  # noqa: BLE001 - a preview is a convenience; the report says "no preview" instead
        return None
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Linked:
    """Every pair found, before the guards, between rows i < j of the usable images: exact copies first, then the
    hash pairs (verified), then embedding pairs."""

    i: np.ndarray
    j: np.ndarray
    method: np.ndarray
    shown: list  # near_duplicates.csv's distance: Hamming for hash pairs, 1 - cosine similarity for embedding pairs
    evidence: list[dict]
    order: np.ndarray  # the guards' key, closest first: exact copies, hash pairs by distance, embedding pairs last
    forced: np.ndarray  # exact copies: never cut by the size and unit guards
    twin_prone: np.ndarray  # decided by a rule twins pass as copies (candidates.TWIN_PRONE): the design guard weighs
    exact: tuple[np.ndarray, np.ndarray]  # the exact copies' (first row, copy)


def link(usable: Usable, found: Found, emb_a: np.ndarray, emb_b: np.ndarray, similarity: np.ndarray) -> Linked:
    """Exact copies, the contents' pairs (`found`, between the rows standing for them) and embedding pairs, as rows."""
    a, b = usable.rep_rows[found.a], usable.rep_rows[found.b]
    ex_a, ex_b = exact_duplicate_pairs(usable.shas)
    n_exact, n_emb = len(ex_a), len(emb_a)
    return Linked(
        i=np.concatenate([ex_a, np.minimum(a, b), np.minimum(emb_a, emb_b)]),
        j=np.concatenate([ex_b, np.maximum(a, b), np.maximum(emb_a, emb_b)]),
        method=np.concatenate(
            [np.full(n_exact, "exact", dtype=object), found.method, np.full(n_emb, "embedding", dtype=object)]
        ),
        shown=[0] * n_exact + found.distance + [round(1.0 - float(s), 4) for s in similarity.tolist()],
        evidence=[{}] * n_exact + found.evidence + [{}] * n_emb,
        # embedding pairs after hash pairs: weaker evidence
        order=np.concatenate([np.zeros(n_exact), found.order, EMBEDDING_RANK + 1.0 - similarity]),
        forced=np.r_[np.ones(n_exact, bool), np.zeros(len(a) + n_emb, bool)],
        twin_prone=np.r_[np.zeros(n_exact, bool), found.twin_prone, np.zeros(n_emb, bool)],
        exact=(ex_a, ex_b),
    )


@dataclass(frozen=True)
class Cuts:
    """Per linked pair: cut by the design guard, cut by the unit share guard, and kept (joining units)."""

    design: np.ndarray
    unit: np.ndarray
    keep: np.ndarray


def guard(
    config: DedupConfig,
    usable: Usable,
    linked: Linked,
    alike: tuple[np.ndarray, np.ndarray],
    thumbnails: tuple[np.ndarray, np.ndarray] | None,
    ok: np.ndarray,
) -> Cuts:
    """The guards of finetuner/dedup/guards.py in turn, each on the pairs the one before kept: twin designs first,
    then the cluster size, then the unit share (a pair the size guard cut joins nothing)."""
    i, j, order, forced = linked.i, linked.j, linked.order, linked.forced
    rows = usable.rep_rows
    design = guard_designs(
        usable.declared,
        i,
        j,
        linked.twin_prone,
        rows[alike[0]],
        rows[alike[1]],
        config.min_design_share,
        config.max_design_chance,
    )
    if config.min_design_share > 0:  # blank frames many groups hold (the design guard's key turns this off too)
        ex_a, ex_b = linked.exact
        design[: len(ex_a)] = blank_copies(usable.declared, rows, ex_a, ex_b, thumbnails, ok, config.verify.low_detail)
    keep = ~design
    keep[keep] = guard_clusters(len(usable.paths), i[keep], j[keep], order[keep], forced[keep], config.max_cluster_size)
    unit = np.zeros(len(i), dtype=bool)
    edges = np.flatnonzero(keep)
    unit[edges] = ~guard_units(
        usable.groups,
        usable.labels,
        i[edges],
        j[edges],
        order[edges],
        forced[edges],
        config.max_unit_share,
        config.max_cluster_size,
    )
    return Cuts(design=design, unit=unit, keep=keep & ~unit)


def pair_records(usable: Usable, linked: Linked, cuts: Cuts) -> list[dict]:
    """One report row per linked pair: the pair, its evidence and, where a guard reported it, which one."""
    paths, declared = usable.paths, usable.declared
    return [
        pair_record(paths[x], paths[y], str(m), d, declared[x], declared[y])
        | e
        | ({"cut_by": "unit share guard"} if u else {"cut_by": "design guard"} if t else {})
        for x, y, m, d, e, u, t in zip(
            linked.i.tolist(),
            linked.j.tolist(),
            linked.method,
            linked.shown,
            linked.evidence,
            cuts.unit.tolist(),
            cuts.design.tolist(),
        )
    ]


@with_collector_paused  # 2 full collections in a grown run on 21,000 images: 1.55 -> 1.49 s paused (common/memory.py)
def run(params: Params, root: Path = Path(".")) -> dict:
    """The whole stage under `root`; returns the summary written to reports/dedup.json."""
    config = params.dedup
    images_dir = root / params.data.raw_dir / layout.RAW_IMAGES
    usable = read_usable(root / MANIFEST)
    paths, rep_rows = usable.paths, usable.rep_rows
    small = small_images_note(usable) if config.verify.enabled else None
    if small:
        log.warning("%s", small)
    workers = resolve_workers(params.data.workers)
    hashes, detail, ok, thumbnails, n_new = hash_contents(
        images_dir,
        [paths[k] for k in rep_rows],
        usable.contents,
        tuple(config.methods),
        root / CACHE_DIR,
        workers,
        views=config.verify.enabled,
        view_radius=config.verify.candidate_distance,
    )
    found = hash_pairs(
        params,
        hashes,
        detail,
        thumbnails,
        ok,
        aspects([usable.rows[k] for k in rep_rows]),
        workers,
        usable.contents,
        root / CACHE_DIR,
        ContentFiles(images_dir, paths, rep_rows),
    )
    hashed = HashedContents(
        images_dir, paths, usable.declared, usable.contents, rep_rows, detail, ok, workers, root / CACHE_DIR
    )
    emb_a, emb_b, similarity, embedding = embedding_signal(params, hashed, found.a, found.b)
    linked = link(usable, found, emb_a, emb_b, similarity)
    cuts = guard(config, usable, linked, found.alike, thumbnails, ok)
    records = pair_records(usable, linked, cuts)
    kept = kept_by_path(records, linked, cuts.keep)
    units = assign_units(paths, usable.groups, linked.i[cuts.keep], linked.j[cuts.keep])
    summary = summarize(
        n_images=len(paths),
        n_contents=len(usable.contents),
        n_hashed=n_new,
        kept=kept,
        cut=cut_records(records, linked.order, cuts.keep),
        clusters=[[paths[k] for k in c] for c in components(len(paths), linked.i[cuts.keep], linked.j[cuts.keep])],
        units=units,
        tradeoff=found.tradeoff,
        settings=config.model_dump(mode="json"),
        unreadable=[paths[rep_rows[k]] for k in np.flatnonzero(~ok).tolist()],
        embedding=embedding,
        rejected=rejected_records(usable, found),
        giant_units=explain(usable, units, linked, records, cuts.keep, config.explain_unit_share),
        warnings=[*([small] if small else []), *found.warnings],
    )
    write_outputs(root, images_dir, kept, paths, units, summary, usable.shas)
    return summary


def rejected_records(usable: Usable, found: Found) -> list[dict]:
    """The rejected candidates nearest the verifier's cut-off, as report rows."""
    paths, rows = usable.paths, usable.rep_rows
    return [
        pair_record(*sorted((paths[rows[x]], paths[rows[y]])), "rejected", d, "", "") | e
        for x, y, d, e in found.rejected
    ]


def cut_records(records: list[dict], order: np.ndarray, keep: np.ndarray) -> list[dict]:
    """The cut pairs' records, closest first (only they are sorted: a few of tens of thousands)."""
    cut = ((o, r) for o, r, k in zip(order.tolist(), records, keep) if not k)
    return [r for _, r in sorted(cut, key=lambda t: (t[0], t[1]["path_a"], t[1]["path_b"]))]


def records_kept(records: list[dict], keep: np.ndarray) -> list[dict]:
    return [r for r, k in zip(records, keep) if k]


def kept_by_path(records: list[dict], linked: Linked, keep: np.ndarray) -> list[dict]:
    """The kept pairs' records ordered by (path_a, path_b): the usable rows are in path order, so by their rows (i, j),
    one numpy sort instead of Python comparing 35,000 pairs of paths."""
    at = np.flatnonzero(keep)
    return [records[k] for k in at[np.lexsort((linked.j[at], linked.i[at]))].tolist()]


def explain(
    usable: Usable, units: list[str], linked: Linked, records: list[dict], keep: np.ndarray, share: float
) -> list[dict]:
    """Giant units with the kept pairs that bridge them, as report rows (pair records plus images cut off). A pair's
    strength, which ranks the weakest links of a unit without bridges: its aligned similarity, embedding pairs 0."""
    strength = np.array([r.get("similarity", 1.0) if r["method"] != "embedding" else 0.0 for r in records])
    kept = records_kept(records, keep)
    out = []
    for unit in explain_units(
        usable.labels, usable.groups, units, linked.i[keep], linked.j[keep], strength[keep], share
    ):
        bridges = [kept[e] | {"images_cut_off": cut} for e, cut in unit.pop("bridges")]
        out.append(unit | {"bridges": bridges})
    return out


def write_outputs(
    root: Path, images_dir: Path, kept: list[dict], paths: list[str], units: list[str], summary: dict, shas: list[str]
) -> None:
    write_csv(root / PAIRS_CSV, kept, (*layout.PAIR_COLUMNS, *EVIDENCE))
    write_csv(root / UNITS_CSV, ({"path": p, "unit": u} for p, u in zip(paths, units)), layout.UNIT_COLUMNS)
    # Cache hits depend on earlier runs, not on the inputs: they go to the untracked run log, not the reports.
    tracked, facts = split_run_facts(summary, RUN_FACTS)
    write_json(root / REPORT_JSON, tracked)
    sha_of = dict(zip(paths, shas))
    cache = PreviewCache(root / CACHE_DIR, THUMB)  # a rerun shows mostly the same pairs: decode each file once
    thumbs = {}
    for p in paths_to_preview(tracked):
        if (t := cache.get(sha_of[p]) or thumbnail_b64(images_dir / p)) is not None:
            thumbs[p] = cache.put(sha_of[p], t)
    cache.save()
    write_text(root / REPORT_HTML, render_html(tracked, thumbs))
    log_run(root, "dedup", facts)
    counts = summary["counts"]
    log.info(
        "dedup: %d images, %d pairs kept, cut %d by the size guard, %d by the unit share guard, %d twin designs; "
        "%d cross-group, %d units",
        counts["images"],
        counts["pairs"],
        counts["pairs_cut_by_size_guard"],
        counts["pairs_cut_by_unit_guard"],
        counts["pairs_cut_by_design_guard"],
        counts["cross_group_pairs"],
        counts["units"],
    )


def main() -> int:
    return run_stage("dedup", lambda params: run(params))


if __name__ == "__main__":
    sys.exit(main())
