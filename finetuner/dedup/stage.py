"""The `dedup` stage. Run by DVC as `python -m tasks.dedup` (see dvc.yaml), from the repository root.

Reads the manifest's usable rows, hashes each distinct content once (cached by sha256 in data/cache/dedup, so grown
data decodes only new files), finds exact and near-duplicate pairs (and, with dedup.embedding.enabled, pairs of
similar backbone embeddings: finetuner/dedup/embedding.py), guards against chaining, and writes
data/interim/near_duplicates.csv, data/interim/units.csv, reports/dedup.json and reports/dedup.html.
"""

from __future__ import annotations

import base64
import io
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from finetuner import layout
from finetuner.common.imageio import to_rgb
from finetuner.common.memory import with_array_memory, with_collector_paused
from finetuner.common.stage import log_run, read_csv, run_stage, split_run_facts, write_csv, write_json, write_text
from finetuner.config import DedupConfig, Params
from finetuner.dedup.candidates import EVIDENCE, TWIN_PRONE, nearest_rejected, verified_pairs, verify_tradeoff
from finetuner.dedup.embedding import HashedContents, embedding_signal
from finetuner.dedup.hash_cache import HashCache, PreviewCache
from finetuner.dedup.hashing import DECODE_SIZE, HASH_SIZE, hash_files, resolve_workers, view_key
from finetuner.dedup.report import pair_record, paths_to_preview, render_html, summarize
from finetuner.dedup.units import (
    PairRule,
    apply_rule,
    assign_units,
    components,
    exact_duplicate_pairs,
    explain_units,
    find_pairs,
    guard_clusters,
    guard_designs,
    guard_units,
    tradeoff,
)
from finetuner.dedup.verify import detail_levels
from finetuner.dedup.view_search import search_loader
from finetuner.dedup.views import VIEWS

log = logging.getLogger("finetuner.dedup")

MANIFEST = layout.MANIFEST
PAIRS_CSV = layout.NEAR_DUPLICATES
UNITS_CSV = layout.UNITS
REPORT_JSON = layout.DEDUP_REPORT
REPORT_HTML = layout.DEDUP_PAGE
CACHE_DIR = layout.DEDUP_CACHE
RUN_FACTS = (("counts", "newly_hashed"), ("embedding", "newly_embedded"))  # logs/dedup.jsonl, not the reports
TRADEOFF_EXTRA = 4  # the report shows radii up to max_distance + 4
THUMB = 96
EMBEDDING_RANK = 65.0  # guard order key of embedding pairs: after every Hamming distance (0..64)


def pair_rule(config: DedupConfig) -> PairRule:
    return PairRule(
        methods=tuple(config.methods),
        max_distance=config.max_distance,
        require_agreement=config.require_agreement,
        low_info_std=config.low_info_std,
        low_info_max_distance=config.low_info_max_distance,
    )


@with_array_memory  # the batch is copied into the cache, gathered back out: 80 MiB each at 20k (common/memory.py)
def hash_contents(
    images_dir: Path,
    paths: list[str],
    shas: list[str],
    methods: tuple[str, ...],
    cache_dir: Path,
    workers: int,
    views: bool = False,
    view_radius: int = -1,
):
    """Hashes, detail and (with `views`: view hashes, thumbnails) per content, decoding only contents the cache
    lacks; returns (hashes, detail, ok, (thumbs, colour thumbnails) or None, n_new). When the view search that follows
    (at `view_radius`) will run compiled, its code is loaded while the workers decode."""
    names = methods + (tuple(view_key(v) for v in VIEWS) if views else ())
    cache = HashCache(cache_dir, names, HASH_SIZE, DECODE_SIZE, thumbs=views)
    missing = cache.missing(shas)
    log.info("hashing %d of %d distinct contents (%d cached)", len(missing), len(shas), len(shas) - len(missing))
    start = time.perf_counter()
    batch = hash_files(
        [images_dir / paths[k] for k in missing],
        methods,
        workers,
        views=VIEWS if views else (),
        meanwhile=search_loader(len(shas), len(missing), view_radius) if views else None,
    )
    good = [k for k, ok in zip(missing, batch.ok.tolist()) if ok]
    if missing:
        seconds = time.perf_counter() - start
        log.info("hashed %d files in %.1f s (%d unreadable)", len(missing), seconds, len(missing) - len(good))
    cache.add(
        [shas[k] for k in good],
        {m: batch.hashes[m][batch.ok] for m in names},
        batch.detail[batch.ok],
        batch.thumbs[batch.ok],
        batch.colours[batch.ok],
    )
    cache.save()
    hashes, detail, ok = cache.lookup(shas)
    return hashes, detail, ok, (cache.thumbs(shas), cache.colours(shas)) if views else None, len(missing)


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


def detect_pairs(rule: PairRule, hashes: dict, detail: np.ndarray, ok: np.ndarray, workers: int):
    """Near pairs among the hashed contents at the configured radius, and the radius trade-off table."""
    hashed = np.flatnonzero(ok)
    subset = {m: h[hashed] for m, h in hashes.items()}
    # One search at a wider radius serves both the trade-off table and the pairs at the configured radius.
    wide = replace(rule, max_distance=min(64, rule.max_distance + TRADEOFF_EXTRA))
    wide_pairs = find_pairs(subset, detail[hashed], wide, workers)
    table = tradeoff(len(hashed), wide_pairs, detail[hashed], rule, range(0, wide.max_distance + 1))
    near = apply_rule(wide_pairs.i, wide_pairs.j, wide_pairs.distances, detail[hashed], rule)
    return hashed[near.i], hashed[near.j], near, table


@dataclass(frozen=True)
class Found:
    """Near-duplicate pairs between contents (indices a, b) found from the hashes, verified or by the hash rule."""

    a: np.ndarray
    b: np.ndarray
    method: np.ndarray  # "verified", or the hash rule's label such as "phash+dhash"
    distance: list  # Hamming distance of the signal that proposed the pair
    evidence: list[dict]  # the verifier's evidence columns ({} without the verifier)
    order: np.ndarray  # the size guard's key: closest (most similar) first
    tradeoff: list[dict]
    rejected: list[tuple[int, int, int, dict]]  # (a, b, distance, evidence) of rejected candidates nearest the cut-off
    twin_prone: np.ndarray  # per pair: decided by a rule twins pass as copies: the shape check, the pixel rule
    alike: tuple[np.ndarray, np.ndarray]  # look-alikes by those rules, accepted or not (Verified.look_alikes)


def hash_pairs(
    params: Params,
    hashes: dict,
    detail: np.ndarray,
    thumbnails: tuple[np.ndarray, np.ndarray] | None,
    ok: np.ndarray,
    aspect: np.ndarray,
    workers: int,
    shas: list[str],
    cache_dir: Path,
) -> Found:
    config, rule = params.dedup, pair_rule(params.dedup)
    if not config.verify.enabled:
        near_a, near_b, near, table = detect_pairs(rule, hashes, detail, ok, workers)
        return Found(
            near_a,
            near_b,
            near.method,
            near.distance.tolist(),
            [{}] * len(near_a),
            near.distance.astype(float),
            table,
            [],
            np.zeros(len(near_a), dtype=bool),
            (np.zeros(0, np.int64), np.zeros(0, np.int64)),
        )
    grey, colours = thumbnails  # the verifier's thumbnails, read from the hash cache where indexed
    found = verified_pairs(
        hashes,
        detail,
        grey,
        ok,
        rule.methods,
        rule.max_distance,
        config.low_info_std,
        config.verify,
        workers,
        aspect,
        shas,
        cache_dir,
        colours=colours,
    )
    kept = np.flatnonzero(found.verdicts.accepted)
    rejected = [
        (int(found.a[k]), int(found.b[k]), int(found.distance[k]), found.evidence(k))
        for k in nearest_rejected(found, config.verify).tolist()
    ]
    return Found(
        found.a[kept],
        found.b[kept],
        np.full(len(kept), "verified", dtype=object),
        found.distance[kept].tolist(),
        found.evidence_rows(kept),
        1.0 - found.verdicts.similarity[kept],
        verify_tradeoff(len(detail), found, config.verify),
        rejected,
        np.isin(found.verdicts.rule[kept], TWIN_PRONE),
        found.look_alikes(config.verify.min_shape_similarity),
    )


@with_collector_paused  # 2 full collections in a grown run on 21,000 images: 1.55 -> 1.49 s paused (common/memory.py)
def run(params: Params, root: Path = Path(".")) -> dict:
    """The whole stage under `root`; returns the summary written to reports/dedup.json."""
    config = params.dedup
    images_dir = root / params.data.raw_dir / layout.RAW_IMAGES
    rows = read_csv(root / MANIFEST, required=("path", "group", "status", "sha256"))
    usable = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["path"])  # row order never matters
    paths, groups, shas = [r["path"] for r in usable], [r["group"] for r in usable], [r["sha256"] for r in usable]
    labels = [r.get("label", "") for r in usable]
    # Groups a user declared (metadata.csv or split.group_pattern), "" for none: ingest files an image without one as
    # its own group (group_source "image"), which joins the split's units alike but is no group a pair can cross
    declared = [r["group"] if r.get("group_source") != layout.IMAGE_GROUP else "" for r in usable]
    rep: dict[str, int] = {}  # content -> first row (in path order) holding it; copies are linked as `exact`
    for index, sha in enumerate(shas):
        rep.setdefault(sha, index)
    contents = list(rep)
    rep_rows = np.array([rep[s] for s in contents], dtype=np.int64)
    workers = resolve_workers(params.data.workers)
    hashes, detail, ok, thumbnails, n_new = hash_contents(
        images_dir,
        [paths[k] for k in rep_rows],
        contents,
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
        aspects([usable[k] for k in rep_rows]),
        workers,
        contents,
        root / CACHE_DIR,
    )
    hashed = HashedContents(images_dir, paths, declared, contents, rep_rows, detail, ok, workers, root / CACHE_DIR)
    emb_a, emb_b, similarity, embedding = embedding_signal(params, hashed, found.a, found.b)
    a, b = rep_rows[found.a], rep_rows[found.b]
    ex_a, ex_b = exact_duplicate_pairs(shas)
    i = np.concatenate([ex_a, np.minimum(a, b), np.minimum(emb_a, emb_b)])
    j = np.concatenate([ex_b, np.maximum(a, b), np.maximum(emb_a, emb_b)])
    n_exact, n_hash, n_emb = len(ex_a), len(a), len(emb_a)
    methods = np.concatenate(
        [np.full(n_exact, "exact", dtype=object), found.method, np.full(n_emb, "embedding", dtype=object)]
    )
    # near_duplicates.csv: Hamming distance for hash pairs, cosine distance (1 - similarity) for embedding pairs.
    shown = [0] * n_exact + found.distance + [round(1.0 - float(s), 4) for s in similarity.tolist()]
    evidence = [{}] * n_exact + found.evidence + [{}] * n_emb
    # The size guard takes exact copies first, then hash pairs closest first, then embedding pairs (weaker evidence).
    order = np.concatenate([np.zeros(n_exact), found.order, EMBEDDING_RANK + 1.0 - similarity])
    forced = np.r_[np.ones(n_exact, bool), np.zeros(n_hash + n_emb, bool)]
    design_cut = guard_designs(
        declared,
        i,
        j,
        np.r_[np.zeros(n_exact, bool), found.twin_prone, np.zeros(n_emb, bool)],
        rep_rows[found.alike[0]],
        rep_rows[found.alike[1]],
        config.min_design_share,
        config.max_design_chance,
    )
    if config.min_design_share > 0:  # blank frames many groups hold (the design guard's key turns this off too)
        design_cut[:n_exact] = blank_copies(declared, rep_rows, ex_a, ex_b, thumbnails, ok, config.verify.low_detail)
    keep = ~design_cut  # twin designs first: the guards below see only the pairs that may join units
    keep[keep] = guard_clusters(len(paths), i[keep], j[keep], order[keep], forced[keep], config.max_cluster_size)
    unit_cut = np.zeros(len(i), dtype=bool)
    kept_edges = np.flatnonzero(keep)  # pairs the size guard cut take no part: they join nothing
    unit_cut[kept_edges] = ~guard_units(
        groups,
        labels,
        i[kept_edges],
        j[kept_edges],
        order[kept_edges],
        forced[kept_edges],
        config.max_unit_share,
        config.max_cluster_size,
    )
    keep &= ~unit_cut
    records = [
        pair_record(paths[x], paths[y], str(m), d, declared[x], declared[y])
        | e
        | ({"cut_by": "unit share guard"} if u else {"cut_by": "design guard"} if t else {})
        for x, y, m, d, e, u, t in zip(
            i.tolist(), j.tolist(), methods, shown, evidence, unit_cut.tolist(), design_cut.tolist()
        )
    ]
    kept = sorted((r for r, k in zip(records, keep) if k), key=lambda r: (r["path_a"], r["path_b"]))
    cut = [
        r  # only the cut pairs are sorted (a few of tens of thousands)
        for _, r in sorted(
            ((o, r) for o, r, k in zip(order.tolist(), records, keep) if not k),
            key=lambda t: (t[0], t[1]["path_a"], t[1]["path_b"]),
        )
    ]
    units = assign_units(paths, groups, i[keep], j[keep])
    rejected = [
        pair_record(*sorted((paths[rep_rows[x]], paths[rep_rows[y]])), "rejected", d, "", "") | e
        for x, y, d, e in found.rejected
    ]
    strength = np.array([r.get("similarity", 1.0) if r["method"] != "embedding" else 0.0 for r in records])
    summary = summarize(
        n_images=len(paths),
        n_contents=len(contents),
        n_hashed=n_new,
        kept=kept,
        cut=cut,
        clusters=[[paths[k] for k in c] for c in components(len(paths), i[keep], j[keep])],
        units=units,
        tradeoff=found.tradeoff,
        settings=config.model_dump(mode="json"),
        unreadable=[paths[rep_rows[k]] for k in np.flatnonzero(~ok).tolist()],
        embedding=embedding,
        rejected=rejected,
        giant_units=explain(
            paths,
            labels,
            groups,
            units,
            i[keep],
            j[keep],
            strength[keep],
            records_kept(records, keep),
            config.explain_unit_share,
        ),
    )
    write_outputs(root, images_dir, kept, paths, units, summary, shas)
    return summary


def blank_copies(
    declared: list[str],
    rep_rows: np.ndarray,
    ex_a: np.ndarray,
    ex_b: np.ndarray,
    thumbnails: tuple[np.ndarray, np.ndarray] | None,
    ok: np.ndarray,
    low_detail: float,
) -> np.ndarray:
    """Per exact pair: does it join two declared groups through a near-blank image (its detail below
    dedup.verify.low_detail, the verifier's pixel rule) that three or more declared groups hold? A black frame in
    every video, a blank padding tile in every slide: copies by their bytes, twins by what they show, and through them
    every group would join one unit. They are cut whatever else the groups share: a blank shows nothing to leak, and
    groups that share more are joined by that. Without the verifier's thumbnails, none."""
    out = np.zeros(len(ex_a), dtype=bool)
    if thumbnails is None or not len(ex_a):
        return out
    content = np.searchsorted(rep_rows, ex_a)  # ex_a is each content's first row, and rep_rows those rows in order
    crossing = np.array([bool(declared[x] and declared[y] and declared[x] != declared[y]) for x, y in zip(ex_a, ex_b)])
    held = {}  # content -> the declared groups holding it, for the contents copied across groups
    for x, y, c in zip(ex_a[crossing].tolist(), ex_b[crossing].tolist(), content[crossing].tolist()):
        held.setdefault(c, set()).update((declared[x], declared[y]))
    looked = np.array(sorted(c for c, groups in held.items() if len(groups) >= 3 and ok[c]), dtype=np.int64)
    if len(looked):
        blank = looked[detail_levels(np.asarray(thumbnails[0][looked])) < low_detail]
        out = crossing & np.isin(content, blank)
    return out


def aspects(rows: list[dict]) -> np.ndarray:
    """width / height per manifest row, NaN where the manifest does not say (the verifier then skips that check)."""
    out = np.full(len(rows), np.nan)
    for k, row in enumerate(rows):
        try:
            width, height = float(row.get("width") or 0), float(row.get("height") or 0)
        except ValueError:
            continue
        if width > 0 and height > 0:
            out[k] = width / height
    return out


def records_kept(records: list[dict], keep: np.ndarray) -> list[dict]:
    return [r for r, k in zip(records, keep) if k]


def explain(
    paths: list[str],
    labels: list[str],
    groups: list[str],
    units: list[str],
    i: np.ndarray,
    j: np.ndarray,
    strength: np.ndarray,
    records: list[dict],
    share: float,
) -> list[dict]:
    """Giant units with the pairs that bridge them, as report rows (pair records plus images cut off)."""
    out = []
    for unit in explain_units(labels, groups, units, i, j, strength, share):
        bridges = [records[e] | {"images_cut_off": cut} for e, cut in unit.pop("bridges")]
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
