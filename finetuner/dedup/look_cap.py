"""The per-image candidate cap (`dedup.verify.candidates_per_image`; finetuner/dedup/candidates.py applies it before
the candidates are decided): an image with more candidates than the cap keeps those that look most alike at 16x16
(finetuner/dedup/prescreen.py), not those nearest in hash bits, since among twin designs a clone's hashes are no nearer
than a dozen look-alikes'. Near-blank images' candidates rank by how little their colour thumbnails differ, and a
crowded photograph keeps its HASH_NEAREST nearest in hash bits too. The looks are cached per pair (`cached_looks`), so a
grown collection ranks again without looking again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from finetuner.dedup.align import resized
from finetuner.dedup.frames import plain
from finetuner.dedup.pair_cache import LookCache, pair_keys
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.shape import is_graphic
from finetuner.dedup.signals import per_signal, signal_centred, tilted_signals
from finetuner.dedup.view_search import Candidates, nearest_per_image, subset

# Besides the candidates that look most alike, a crowded photograph keeps this many nearest in hash bits, whatever they
# look like: where many images share one frame (a quarter of the framed set in one white mat), the frame dominates
# the 16x16 look, and a copy cut 5% at two sides, which its signal aligns a few percent off, looks less alike than
# other pictures in the same mat (0.92, 34th of 48). Not a crowded graphic: among twin designs (letters of many
# typefaces) hash bits favour look-alikes
HASH_NEAREST = 3


def capped_by_look(
    found: Candidates,
    thumbs: np.ndarray,
    hashed: np.ndarray,
    flat: np.ndarray,
    per_image: int,
    look_of: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    aspect: np.ndarray | None = None,
    colours: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(keep, looks): the per-image cap (`dedup.verify.candidates_per_image`) and, for the pairs kept, their 16x16
    look (finetuner/dedup/prescreen.py; NaN where not computed). An image with more candidates than the cap keeps
    those that look most alike, not those nearest in hash bits: among twin designs (letters of many typefaces) the
    hashes of a clone are no nearer than those of a dozen look-alikes (on the glyph set the hash-nearest 20 held 283 of
    598 clone pairs, the best-looking 20 held 516). Pairs with a near-blank image, which the look does not judge, rank
    by how little their 16x16 `colours` (else their grey thumbnails) differ, as they are or mirrored: a plain field's
    hash bits are its noise's, or all alike (among 300 smooth fields and their copies, 189 candidates an image, recall
    was 0.31 with them ranked by hash distance, 0.69 so). Each image's HASH_NEAREST candidates nearest in hash bits
    are kept too, but a crowded graphic's. `look_of(a, b, signal)`: the looks of content pairs (default: computed from
    `thumbs` and `aspect`; the stage reads them from a cache)."""
    n = len(hashed)
    count = np.bincount(found.i, minlength=n) + np.bincount(found.j, minlength=n)
    crowded = count > per_image
    a, b = hashed[found.i], hashed[found.j]
    looks = np.full(len(found.i), np.nan)
    judged = np.flatnonzero((crowded[found.i] | crowded[found.j]) & ~flat[a] & ~flat[b])
    look_of = look_of or (lambda x, y, signal: prescreen(thumbs, x, y, signal, aspect))
    looks[judged] = look_of(a[judged], b[judged], found.signal[judged])
    key = np.where(np.isnan(looks), found.distance / 64.0, 1.0 - looks)
    blank = np.flatnonzero((crowded[found.i] | crowded[found.j]) & (flat[a] | flat[b]))
    key[blank] = _plain_difference(thumbs if colours is None else colours, a[blank], b[blank])
    drawn, busy = np.zeros(n, bool), np.flatnonzero(crowded)  # a crowded graphic ranks by its look alone
    drawn[busy] = is_graphic(plain(thumbs[hashed[busy]])) if len(busy) else False
    # a graphic turned 10 degrees is another design (a slanted letter), which the verifier refuses: ranked last
    key[tilted_signals(found.signal) & (drawn[found.i] | drawn[found.j])] = np.inf
    # a tilted view against the other's centre, the weakest signal, last too: prints turned on one table meet each
    # other's centres so, and took a true pair's place on the print set
    key[per_signal(found.signal, signal_centred)] = np.inf
    keep = nearest_per_image(found, n, per_image, key)
    photos = np.flatnonzero(~drawn[found.i] & ~drawn[found.j])
    keep[photos] |= nearest_per_image(subset(found, photos), n, HASH_NEAREST)
    return keep, looks[keep]


def _plain_difference(images: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair, the mean absolute difference of images[a] and images[b] (grey or colour thumbnails) at 16x16, as
    they are or mirrored, whichever is less, as a share of 255: how near-blank frames rank, whose hash bits are their
    noise's."""
    if len(a) == 0:
        return np.zeros(0)
    seen, at = np.unique(np.r_[a, b], return_inverse=True)
    x_at, y_at = np.split(at, 2)
    small = np.stack([resized(image, (16, 16)) for image in np.asarray(images[seen])]).astype(np.float32)
    out = np.empty(len(a))
    for s in range(0, len(a), 4096):
        p, q = small[x_at[s : s + 4096]], small[y_at[s : s + 4096]]
        axes = tuple(range(1, p.ndim))
        out[s : s + len(p)] = np.minimum(np.abs(p - q).mean(axis=axes), np.abs(p - q[:, :, ::-1]).mean(axis=axes))
    return out / 255.0


def cached_looks(thumbs, shas: list[str], cache: LookCache, aspect: np.ndarray | None = None) -> Callable:
    """`look_of` for `capped_by_look` that computes only the looks `cache` lacks, and keeps them: a grown collection
    ranks its crowded images' candidates again, most of them pairs it ranked before."""

    def look_of(a: np.ndarray, b: np.ndarray, signal: np.ndarray) -> np.ndarray:
        keys = pair_keys(shas, a, b, signal)
        at, known = cache.get(keys)
        looks = known["look"]
        todo = np.flatnonzero(at < 0)
        if len(todo):
            looks[todo] = prescreen(thumbs, a[todo], b[todo], signal[todo], aspect)
            cache.add(keys[todo], {"look": looks[todo]})
            cache.save()
        return looks

    return look_of
