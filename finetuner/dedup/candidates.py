"""The dedup stage's verified pairs: candidate signals propose, the verifier decides (dedup.verify.enabled).

Candidates are image pairs with some view of one (full, mirror, centre and one-sided crops, letterbox-trimmed:
finetuner/dedup/views.py) within `dedup.verify.candidate_distance` bits of some view of the other, plus pairs within
`dedup.max_distance` under any configured hash method, plus near-blank images near in colour layout
(finetuner/dedup/blank_candidates.py); each image's `candidates_per_image` closest are kept
(finetuner/dedup/look_cap.py). Every candidate is then decided (finetuner/dedup/decide.py: a 16x16 look, then
finetuner/dedup/verify.py) on the cached thumbnails, so no file is decoded again. The report's audit of the verifier's
cut-off is finetuner/dedup/audit.py. Called by finetuner/dedup/detect.py.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetuner.common.memory import with_array_memory
from finetuner.config import VerifyConfig
from finetuner.dedup.blank_candidates import plain_candidates
from finetuner.dedup.decide import decide
from finetuner.dedup.decoding import DECODE_SIZE
from finetuner.dedup.full_size import full_size_looks
from finetuner.dedup.hashing import PIXELS, view_key
from finetuner.dedup.look_cap import cached_looks, capped_by_look
from finetuner.dedup.neighbours import hamming, radius_pairs, radius_pairs_between
from finetuner.dedup.pair_cache import CandidateCache, LookCache, VerdictCache, pair_keys
from finetuner.dedup.refit import PHOTO_MAX_TURN, max_turns
from finetuner.dedup.shape import LOOK_ALIKE_MARGIN
from finetuner.dedup.signals import (
    per_signal,
    signal_codes,
    signal_cornered,
    signal_tilted,
    signal_views,
    tilted_signals,
)
from finetuner.dedup.verify import VERIFIER, Verdicts, VerifyRule
from finetuner.dedup.view_search import Candidates, subset, view_candidates
from finetuner.dedup.views import VIEW_BOXES, VIEWS, allowed_combos, view_margin

log = logging.getLogger("finetuner.dedup")
# Candidate pairs per image, on average, past which a collection is crowded: many images within the search radius of
# each other, so the pairs searched and looked at grow with the square of its size (7 per image on 869 real photos, 5
# on 20,000 synthetic ones; 356 on 7,319 letters of 132 typefaces; 2,000 on 4,000 scans of one blank slide, where
# the stage takes 24 s and 2.2 GB)
CROWDED = 100

EVIDENCE = ("signal", "rule", "similarity", "detail_similarity", "overlap", "transform", "colour")
# Verdict rules whose evidence a twin passes as well as a copy: two designs of one letter (the shape check), two
# blank frames (the pixel rule for near-blank images). The design guard weighs their pairs by groups instead
TWIN_PRONE = ("shape", "low-detail")
# Bump when the signal a pair keeps changes for the same hashes (cached candidates are then searched again): 2 a view
# pair other than a corner's before a hash method's (`_views_first`), 3 a tilted view against the centre crops too
# (views.TILT_CENTRE)
SIGNALS = 3


def verify_rule(config: VerifyConfig) -> VerifyRule:
    return VerifyRule(
        min_similarity=config.min_similarity,
        min_detail_similarity=config.min_detail_similarity,
        min_overlap=config.min_overlap,
        max_stretch=config.max_stretch,
        low_detail=config.low_detail,
        flat_max_difference=config.flat_max_difference,
        min_shape_similarity=config.min_shape_similarity,
        min_colour_fit=config.min_colour_fit,
    )


@dataclass(frozen=True)
class Verified:
    """Every candidate pair (content indices a < b), the signal that proposed it, its distance, and its verdict."""

    a: np.ndarray
    b: np.ndarray
    signal: np.ndarray
    distance: np.ndarray
    verdicts: Verdicts
    warnings: tuple[str, ...] = ()  # what the run should tell its user (also logged): too many candidates per image

    def look_alikes(self, min_shape_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        """Pairs that look alike by a rule twins pass as copies (TWIN_PRONE), which designs other groups share
        (guards.guard_designs): graphics the shape check scored as copies or within LOOK_ALIKE_MARGIN of it, accepted
        or not, and near-blank images the pixel rule matched."""
        v = self.verdicts
        near = (v.rule == "shape") & (v.detail_similarity >= min_shape_similarity - LOOK_ALIKE_MARGIN)
        near |= (v.rule == "low-detail") & v.accepted
        return self.a[near], self.b[near]

    def evidence_rows(self, ks: np.ndarray) -> list[dict]:
        """`evidence` of many candidates, column by column (35k kept pairs at 20k: one dict per pair is the cost)."""
        v = self.verdicts
        columns = [self.signal, v.rule, v.similarity, v.detail_similarity, v.overlap, v.transform]
        kinds = [object, object, np.float64, np.float64, np.float64, object]  # .tolist(): Python str and float
        values = [np.asarray(c, dtype=kind)[ks].tolist() for c, kind in zip(columns, kinds)]
        colour = np.asarray(v.colour, np.float64)[ks]
        values.append(np.where(np.isnan(colour), None, colour).tolist())  # blank where the colour check did not look
        return [dict(zip(EVIDENCE, row)) for row in zip(*values)]

    def evidence(self, k: int) -> dict:
        """The near_duplicates.csv evidence columns of candidate k."""
        return self.evidence_rows(np.array([k]))[0]


def candidate_pairs(
    hashes: dict[str, np.ndarray],
    low_detail: np.ndarray,
    methods: tuple[str, ...],
    max_distance: int,
    config: VerifyConfig,
    workers: int,
    new: np.ndarray | None = None,
) -> Candidates:
    """View candidates and configured-hash candidates (indices into the given arrays), closest signal per pair,
    before the per-image cap. With `new` (a mask), only pairs touching a new content."""
    views = {name: hashes[view_key(name)] for name in VIEWS}
    parts = [view_candidates(views, low_detail, config.candidate_distance, workers, new=new)]
    for method in methods:
        if new is None:
            pairs = radius_pairs(hashes[method], max_distance, workers)
        else:
            queries = np.flatnonzero(new)
            pairs = radius_pairs_between(hashes[method][queries], hashes[method], max_distance)
            pairs = np.sort(np.stack([queries[pairs[:, 0]], pairs[:, 1]], axis=1), axis=1)
            pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0).reshape(-1, 2)
        signal = np.empty(len(pairs), object)
        signal[:] = method  # one string shared by every pair (np.full makes one each; signals.signal_codes)
        parts.append(
            Candidates(
                pairs[:, 0], pairs[:, 1], signal, hamming(hashes[method][pairs[:, 0]], hashes[method][pairs[:, 1]])
            )
        )
    return merge_candidates(_views_first(parts, len(low_detail)))


def _views_first(parts: list[Candidates], n: int) -> list[Candidates]:
    """The view candidates (`parts[0]`) and the hash methods' (the rest, whole frames), less the methods' pairs that a
    view pair other than a corner's found too: its signal says where the two overlap, where a whole-frame hash a bit
    or two closer says only "whole frames". A page cut 10% at the top, found by dhash at 3 bits and as "bottom90~full"
    at 4, looked like its original only where the signal put the two (0.99 at 16x16, 0.80 as whole frames), so under
    the per-image cap other pages of its layout took its place. A corner view's alignment is held to the refit's
    thresholds (look-alike designs meet near them in a corner), so where a whole-frame hash is closer, the pair starts
    from the whole frames (a corner crop then places there exactly)."""
    views = parts[0]
    corner = per_signal(views.signal, lambda s: signal_cornered(s) or signal_tilted(s))
    taken = (views.i.astype(np.int64) * n + views.j)[~corner]
    return [views] + [subset(p, np.flatnonzero(~np.isin(p.i.astype(np.int64) * n + p.j, taken))) for p in parts[1:]]


def merge_candidates(parts: list[Candidates]) -> Candidates:
    """One row per pair: the closest signal (stable: earlier parts win ties, so views before methods), by pair."""
    i, j, d = (
        np.concatenate([np.asarray(getattr(p, f), dtype=np.int64) for p in parts]) for f in ("i", "j", "distance")
    )
    signal = np.concatenate([np.asarray(p.signal, dtype=object) for p in parts])
    labels, code = signal_codes(signal) if len(signal) else (np.zeros(0, str), np.zeros(0, np.int64))
    margin = np.array([view_margin(*signal_views(s)) for s in labels.tolist()], np.int64)
    rank = d + (margin[code] if len(labels) else 0)  # as view_search._closest ranks a tilted view pair
    n, m = int(max(i.max(initial=-1), j.max(initial=-1))) + 1, int(rank.max(initial=0)) + 1
    if n * n * m < 2**62 and d.min(initial=0) >= 0:  # (pair, distance) as one int64: one stable sort, not lexsort's
        key = (i * n + j) * m + rank  # three keys over every row (views, phash and dhash: 24M rows for 4,000 frames)
        order = np.argsort(key, kind="stable")
        pair = key[order] // m
        first = np.r_[True, pair[1:] != pair[:-1]] if len(order) else np.zeros(0, bool)
    else:  # past an int64 key (hundreds of millions of images)
        order = np.lexsort((rank, j, i))
        si, sj = i[order], j[order]
        first = np.r_[True, (si[1:] != si[:-1]) | (sj[1:] != sj[:-1])] if len(order) else np.zeros(0, bool)
    head = order[first]  # each pair's first row in that order: its closest, the earliest part on a tie
    return Candidates(i[head], j[head], signal[head], d[head])


def searched_candidates(
    hashes: dict[str, np.ndarray],
    low_detail: np.ndarray,
    methods: tuple[str, ...],
    max_distance: int,
    config: VerifyConfig,
    workers: int,
    shas: list[str] | None,
    cache_dir: Path | None,
) -> Candidates:
    """`candidate_pairs`, before the per-image cap (`capped_by_look`). With `shas` and `cache_dir`, they are cached by
    content: a grown collection searches only pairs touching its new contents and reuses the others."""
    if shas is None or cache_dir is None:
        return candidate_pairs(hashes, low_detail, methods, max_distance, config, workers)
    setting = (methods, max_distance, config.candidate_distance, DECODE_SIZE, PIXELS, VIEWS, VIEW_BOXES, SIGNALS)
    cache = CandidateCache(cache_dir, repr(setting))
    known, old = cache.pairs(shas, low_detail)
    if known.all():
        found = old
    else:  # a cold search (nothing known) probes each pair once; a grown one probes from the new contents only
        fresh = candidate_pairs(
            hashes, low_detail, methods, max_distance, config, workers, new=None if not known.any() else ~known
        )
        found = merge_candidates([fresh, old])
        cache.save(shas, low_detail, ~known, fresh)
    return found


@with_array_memory  # large arrays in small pages, freed memory reused (finetuner/common/memory.py)
def verified_pairs(
    hashes: dict[str, np.ndarray],
    detail: np.ndarray,
    thumbs: np.ndarray,
    ok: np.ndarray,
    methods: tuple[str, ...],
    max_distance: int,
    low_info_std: float,
    config: VerifyConfig,
    workers: int,
    aspect: np.ndarray | None = None,
    shas: list[str] | None = None,
    cache_dir: Path | None = None,
    colours: np.ndarray | None = None,
    files: Sequence[Path] | None = None,
) -> Verified:
    """Candidates among the hashed contents, each decided by the verifier; indices are content positions.
    `aspect`: width / height per content (NaN where unknown), so no alignment may stretch an image. With `shas`
    and `cache_dir`, candidates and verdicts are cached per content pair: a grown collection searches and verifies
    only the pairs touching its new contents. `colours`: the colour thumbnails of the verifier's colour check (None:
    grey alone decides). `files`: each content's file, for a second look at full size at large graphics the shape
    check refused (finetuner/dedup/full_size.py; None: the thumbnails alone decide)."""
    hashed = np.flatnonzero(ok)
    found = _proposed(
        hashes, detail, thumbs, colours, hashed, methods, max_distance, low_info_std, config, workers, shas, cache_dir
    )
    searched = len(found.i)
    crowded = crowded_note(searched, len(hashed), config.candidate_distance)
    if crowded:
        log.warning("%s", crowded)
    flat = detail < low_info_std  # near-blank frames correlate by chance or not at all: the verifier's pixel rule
    caching = shas is not None and cache_dir is not None
    looks_cache = LookCache(cache_dir, repr((VERIFIER, DECODE_SIZE))) if caching else None
    look_of = cached_looks(thumbs, shas, looks_cache, aspect) if caching else None
    keep, looks = capped_by_look(found, thumbs, hashed, flat, config.candidates_per_image, look_of, aspect, colours)
    found = subset(found, keep)
    a, b = hashed[found.i], hashed[found.j]
    rule = verify_rule(config)
    # the thumbnails a verdict was made on depend on the decode size too, and the verdicts on the verifier's code
    cache = (
        VerdictCache(
            cache_dir, repr((VERIFIER, rule, DECODE_SIZE, config.prescreen_similarity, low_info_std, files is not None))
        )
        if caching
        else None
    )
    judge = _Judge(thumbs, flat, aspect, rule, config.prescreen_similarity, workers, colours, files, shas, cache)
    beyond = f"; {searched - len(a)} more beyond {config.candidates_per_image} per image not verified"
    verdicts = judge(a, b, found.signal, looks, note=beyond)
    found, verdicts = _tilted_retry(judge, hashes, flat, a, b, found, verdicts, config.candidate_distance)
    return Verified(a, b, found.signal, found.distance, verdicts, (crowded,) if crowded else ())


@dataclass(frozen=True)
class _Judge:
    """Verdicts of candidate pairs, read from the verdict cache where decided in an earlier run, else decided (and
    kept there)."""

    thumbs: np.ndarray
    flat: np.ndarray
    aspect: np.ndarray | None
    rule: VerifyRule
    prescreen_similarity: float
    workers: int
    colours: np.ndarray | None
    files: Sequence[Path] | None
    shas: list[str] | None
    cache: VerdictCache | None

    def __call__(self, a, b, signal, looks, what: str = "candidate pairs", note: str = "") -> Verdicts:
        """The verdicts of pairs (a, b) proposed by `signal`, with their 16x16 `looks` where known (else NaN); the
        log names them `what`, and adds `note`."""
        cache = self.cache
        ratio = np.full(len(self.flat), np.nan) if self.aspect is None else self.aspect
        keys = pair_keys(self.shas, a, b, signal, ratio) if cache else None
        at, known = cache.get(keys) if cache else (np.full(len(a), -1), None)
        todo = np.flatnonzero(at < 0)
        log.info(
            "verifying %d of %d %s (%d decided in earlier runs%s)", len(todo), len(a), what, len(a) - len(todo), note
        )
        start = time.perf_counter()
        verdicts = decide(
            self.thumbs,
            a[todo],
            b[todo],
            signal[todo],
            self.flat,
            self.aspect,
            self.rule,
            self.prescreen_similarity,
            self.workers,
            looks[todo],
            self.colours,
        )
        if self.files is not None:
            verdicts = full_size_looks(
                self.files, self.thumbs, a[todo], b[todo], verdicts, self.rule, self.workers, signal[todo]
            )
        if len(todo):
            seconds = time.perf_counter() - start
            log.info("verified %d pairs in %.1f s: %d accepted", len(todo), seconds, verdicts.accepted.sum())
        return _with_known(verdicts, todo, known, len(a), cache, None if keys is None else keys[todo])


def tilted_alternatives(
    hashes: dict[str, np.ndarray], flat: np.ndarray, a: np.ndarray, b: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """(signal, distance) per pair (a, b): its closest view pair with a tilted view (views.TILTS) that may propose a
    candidate, within `radius` bits; "" where none (or either image is near-blank: it has no tilted views)."""
    signal = np.full(len(a), "", dtype=object)
    distance = np.full(len(a), radius + 1, np.int64)
    for (x, y), allowed in zip(itertools.product(VIEWS, VIEWS), allowed_combos(VIEWS).tolist()):
        label = f"{x}~{y}"
        if allowed and signal_tilted(label):
            d = hamming(hashes[view_key(x)][a], hashes[view_key(y)][b])
            closer = d < distance
            distance[closer], signal[closer] = d[closer], label
    signal[flat[a] | flat[b]] = ""
    return signal, distance


def _tilted_retry(
    judge: _Judge, hashes, flat, a, b, found: Candidates, verdicts: Verdicts, radius: int
) -> tuple[Candidates, Verdicts]:
    """(candidates, verdicts), refused candidates that a tilted view pair names too decided again on that pair: a
    tilted pair counts TILT_MARGIN bits farther when a pair's signal is chosen (views.view_margin), so a copy turned 7
    degrees with the canvas's corners showing was proposed by a centre crop against a centre crop, an alignment 7
    degrees off, and refused, where its tilted view pair aligns it. Where the alignment itself accepts the second time
    (rule "aligned"), that verdict and its signal replace the first; not where a frame rule or the low-detail rule
    would: a disc turned 10 degrees is the same disc, a print's border meets another print's, and two soft glows, one
    turned, agree in shading (81 false pairs on the smooth framed set, 36 on the blank set, with every rule)."""
    refused = np.flatnonzero(~verdicts.accepted & ~tilted_signals(found.signal))
    alt, distance = tilted_alternatives(hashes, flat, a[refused], b[refused], radius)
    named = np.flatnonzero(alt != "")
    # a graphic is never paired through a tilted view (verify.verify_pairs): on the glyph set 25,944 letters' refused
    # candidates had a tilted view pair, all refused again
    named = named[max_turns(judge.thumbs, a[refused[named]], b[refused[named]]) >= PHOTO_MAX_TURN]
    again, alt, distance = refused[named], alt[named], distance[named]
    if len(again) == 0:
        return found, verdicts
    second = judge(a[again], b[again], alt, np.full(len(again), np.nan), "refused candidates on a tilted view pair")
    by = np.flatnonzero(second.accepted & (second.rule == "aligned"))
    won = again[by]
    log.info("%d refused candidates accepted on a tilted view pair by the alignment", len(won))
    signal, dist = found.signal.copy(), found.distance.copy()
    signal[won], dist[won] = alt[by], distance[by]
    columns = {f: np.array(getattr(verdicts, f), copy=True) for f in VerdictCache.FIELDS}
    for f in VerdictCache.FIELDS:
        columns[f][won] = np.asarray(getattr(second, f))[by]
    return Candidates(found.i, found.j, signal, dist), Verdicts(*(columns[f] for f in VerdictCache.FIELDS))


def _proposed(
    hashes, detail, thumbs, colours, hashed, methods, max_distance, low_info_std, config, workers, shas, cache_dir
) -> Candidates:
    """The candidates of the contents `hashed` (positions among all), before the per-image cap: the hash and view
    search's (cached per pair with `shas` and `cache_dir`) and the near-blank images' by colour layout."""
    low = detail[hashed] < low_info_std
    found = searched_candidates(
        {name: values[hashed] for name, values in hashes.items()},
        low,
        methods,
        max_distance,
        config,
        workers,
        None if shas is None else [shas[k] for k in hashed],
        cache_dir,
    )
    images = thumbs if colours is None else colours
    full = hashes[view_key("full")][hashed]
    trimmed = hashes[view_key("trim")][hashed] != full
    plain_found = plain_candidates(thumbs, images, low, trimmed, full, found, low_info_std, at=hashed)
    return merge_candidates([found, plain_found]) if len(plain_found.i) else found


def crowded_note(searched: int, n: int, radius: int) -> str | None:
    """A warning when the candidates pass CROWDED per image: time and memory then grow with the square of n."""
    if searched <= CROWDED * max(n, 1):
        return None
    return (
        f"{searched} candidate pairs among {n} images, {searched / max(n, 1):.0f} per image: many images lie within "
        f"dedup.verify.candidate_distance ({radius} bits) of each other, so time and memory grow with the square of "
        "the collection. Look-alike designs (letters, icons, forms of one template) need a lower candidate_distance; "
        "many shots of one blank or static scene are copies at any radius, better thinned out before dedup"
    )


def _with_known(
    fresh: Verdicts,
    todo: np.ndarray,
    known: dict | None,
    n: int,
    cache: VerdictCache | None,
    keys: np.ndarray | None,
) -> Verdicts:
    """The verdicts of all n candidates: `fresh` ones at `todo` (added to `cache` under `keys`), `known` (read from
    the cache) at the others."""
    columns = {f: np.asarray(getattr(fresh, f), dtype=t) for f, t in zip(VerdictCache.FIELDS, VerdictCache.TYPES)}
    if cache:
        cache.add(keys, columns)
        cache.save()
    out = known or VerdictCache.blank(n)
    for f in VerdictCache.FIELDS:
        out[f][todo] = columns[f]
    return Verdicts(*(out[f] for f in VerdictCache.FIELDS))
