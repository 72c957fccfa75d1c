"""Deciding candidate pairs (finetuner/dedup/candidates.py): a 16x16 look first, then the verifier.

`decide` rejects unaligned the candidates whose look at 16x16 (finetuner/dedup/prescreen.py) is below
`prescreen_similarity` (unless a frame is near-blank, or an image is a texture, whose look says nothing) and hands the
rest to finetuner/dedup/verify.py. A verdict depends on its pair only, so with several workers slices of the
candidates are decided in forked processes, which inherit the arguments instead of having them pickled.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from finetuner.dedup.correlation import per_side
from finetuner.dedup.forking import fork_context
from finetuner.dedup.pair_cache import VerdictCache
from finetuner.dedup.prescreen import prescreen, textured
from finetuner.dedup.verify import Verdicts, VerifyRule, verify_pairs

# Candidates per worker: fewer are decided in one process. Forking two workers costs about 20 ms; a candidate the
# 16x16 look refuses costs about 15 us, one the verifier aligns 0.1-5 ms (0.06 ms a candidate on the 20k benchmark,
# 1.7 on the held-out photo set). At 2,048, a collection of 700 photos with 3,800 candidates was decided in one process
# in 6.6 s, in 4.0 s with two
MIN_PER_THREAD = 256
SLICES_PER_WORKER = 4  # slices of the candidates per process: slices differ in work, a worker done early takes another


def decide(
    thumbs: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    signal: np.ndarray,
    flat: np.ndarray,
    aspect: np.ndarray | None,
    rule: VerifyRule,
    prescreen_similarity: float,
    workers: int = 1,
    looks: np.ndarray | None = None,
    colours: np.ndarray | None = None,
) -> Verdicts:
    """Verdicts (accepted, rule, similarity, detail similarity, overlap, transform) of candidates (a, b): those
    whose 16x16 look (finetuner/dedup/prescreen.py; `looks` where already known, else NaN) is below
    `prescreen_similarity` are rejected unaligned, unless a frame is near-blank (`flat`); the rest are verified on
    their thumbnails. With `workers` > 1, slices of the candidates are decided in parallel processes (a verdict
    depends on its pair only)."""
    parts = max(1, min(workers, len(a) // MIN_PER_THREAD))
    if parts > 1:
        args = (thumbs, a, b, signal, flat, aspect, rule, prescreen_similarity, looks, colours)
        return _decide_in_processes(args, parts)
    score = np.full(len(a), np.inf)
    if looks is not None:
        score[~np.isnan(looks)] = looks[~np.isnan(looks)]
    if prescreen_similarity > -1 and len(a):
        screened = np.flatnonzero(~flat[a] & ~flat[b] & ~np.isfinite(score))
        score[screened] = prescreen(thumbs, a[screened], b[screened], signal[screened], aspect)
    thorough = _with_texture(thumbs, a, b, score < prescreen_similarity)
    todo = np.flatnonzero((score >= prescreen_similarity) | thorough)
    fresh = verify_pairs(  # on a stack of the verified candidates' images only (signals.unturned)
        thumbs, a[todo], b[todo], list(signal[todo]), rule, aspect, thorough=thorough[todo], colours=colours
    )
    rejected = np.flatnonzero(score < prescreen_similarity)  # by the look: its correlation is the evidence
    shown = np.array([round(c, 4) for c in score[rejected].tolist()], np.float64)
    columns = VerdictCache.blank(len(a))
    columns["rule"][:] = "prescreen"
    columns["colour"][:] = np.nan  # not looked at
    columns["similarity"][rejected] = columns["detail_similarity"][rejected] = shown
    columns["transform"][rejected] = [f"16x16 correlation {c:.2f}" for c in score[rejected].tolist()]
    for name, values in columns.items():
        values[todo] = getattr(fresh, name)
    return Verdicts(**columns)


def _with_texture(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Which candidates with a `low` look have a textured image (finetuner/dedup/prescreen.py): their look is no
    evidence. Only the images of low-look candidates are measured."""
    out = np.zeros(len(a), bool)
    where = np.flatnonzero(low)
    out[where] = np.logical_or(*per_side(textured, thumbs, a[where], b[where]))
    return out


def _joined(parts: list[Verdicts]) -> Verdicts:
    return Verdicts(*(np.concatenate([getattr(p, f) for p in parts]) for f in VerdictCache.FIELDS))


_SHARED: tuple = ()  # decide's arguments, inherited by forked workers instead of pickled to them


def _decide_slice(bounds: tuple[int, int], args: tuple | None = None) -> Verdicts:
    thumbs, a, b, signal, flat, aspect, rule, prescreen_similarity, looks, colours = args or _SHARED
    s, e = bounds
    cut = slice(s, e)
    looks = None if looks is None else looks[cut]
    return decide(
        thumbs, a[cut], b[cut], signal[cut], flat, aspect, rule, prescreen_similarity, looks=looks, colours=colours
    )


def _decide_in_threads(args: tuple, parts: int) -> Verdicts:
    cuts = np.linspace(0, len(args[1]), parts + 1).astype(int).tolist()
    with ThreadPoolExecutor(parts) as pool:
        return _joined(list(pool.map(lambda c: _decide_slice(c, args), zip(cuts, cuts[1:]))))


def _decide_in_processes(args: tuple, workers: int) -> Verdicts:
    """decide's slices in forked processes, which read the arguments from their copy of this module (nothing large
    is pickled). Threads share one interpreter: the verifier's many small numpy and OpenCV calls hold the GIL long
    enough that 2 threads decided 83k candidates in 2.1-2.4 s, 2 processes in 1.6-1.7 s (1 thread: 2.7 s); at 4k
    candidates, forking costs no more than the threads lose. Where processes cannot fork, threads."""
    context = fork_context()
    if context is None:
        return _decide_in_threads(args, workers)
    global _SHARED
    cuts = np.linspace(0, len(args[1]), workers * SLICES_PER_WORKER + 1).astype(int).tolist()
    _SHARED = args
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return _joined(list(pool.map(_decide_slice, zip(cuts, cuts[1:]))))
    finally:
        _SHARED = ()
