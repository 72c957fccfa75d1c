"""A candidate's signal: the view pair that proposed it ("full~crop90": the full frame of a met the 90% centre crop of
b; a hash method's name, "phash", for the whole frames), parsed once per distinct signal however many pairs share it
(`signal_codes`); and pairs proposed through a turned view (finetuner/dedup/views.py TURNS, or TILTS: 10 degrees) put
on a stack with that image turned as its view was, so the verifier aligns them as it aligns unturned ones
(`unturned`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from finetuner.dedup.views import CORNERS, TILT_CENTRE, TILT_DEGREES, TILTS, TURNED, TURNS, tilted

CODES = 1 + max(TURNED.values())  # a view's turn code: 0 as it lies, 1-3 quarter turns, then the tilts
SIDEWAYS = [TURNS["rot90"], TURNS["rot270"]]  # the codes of the quarter turns that swap width and height


@dataclass(frozen=True)
class Unturned:
    """Pairs on a stack of their own images, with turned views (TURNS, TILTS) undone: a turned side's image replaced by
    its turned copy, and its view by the whole frame, so a pair proposed as "rot90~full" or "tilt10~full" is aligned
    as "full~full" is. `i`, `j` index `thumbs` (and `colours`, `aspect`); `turns` holds each pair's turn code (CODES:
    quarter turns, then the tilts) of a and of b."""

    thumbs: np.ndarray
    i: np.ndarray
    j: np.ndarray
    signals: list[str]
    colours: np.ndarray | None
    aspect: np.ndarray | None
    turns: np.ndarray

    def noted(self, transform: np.ndarray) -> np.ndarray:
        """Each turned pair's `transform` prefixed with its turns."""
        out = np.asarray(transform, dtype=object).copy()
        for k in np.flatnonzero(self.turns.any(axis=1)).tolist():
            turned = " and ".join(f"{name} turned {_degrees(t):g} degrees" for name, t in zip("ab", self.turns[k]) if t)
            out[k] = f"{turned}: {out[k]}"
        return out


def _degrees(code: int) -> float:
    """The turn a view's code stands for: quarter turns (views.TURNS) or a tilt (views.TILTS)."""
    return TILT_DEGREES.get(code, 90.0 * code)


def dense_unique(values: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` of non-negative integers below `bound`, by marking the ones that occur
    (no sort): the (image, view) keys of a crowded collection's candidates are tens of millions of small integers."""
    present = np.zeros(bound, bool)
    present[values] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[values]


SHARED_SIGNALS = 4096  # distinct string objects among a collection's signals: a few hundred view pairs and methods


def signal_codes(signals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct signals sorted, each signal's index among them): `np.unique(signals as str, return_inverse=True)`.
    A collection's candidates carry a few dozen signal strings, each shared by reference among thousands of pairs, so
    the strings' objects are told apart by identity (integers) and only the distinct ones compared as text: 0.2 s for
    2.6M glyph candidates, where sorting them as text took 6.4 s."""
    signals = signals if isinstance(signals, np.ndarray) and signals.dtype == object else np.asarray(signals, object)
    signals = signals.ravel()
    ids = np.fromiter(map(id, signals), np.int64, len(signals))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if len(first) > SHARED_SIGNALS:  # strings made one per pair after all: compared as text
        labels, code = np.unique(np.asarray(signals, dtype=str), return_inverse=True)
        return labels, code.ravel()
    texts = [str(signals[k]) for k in first.tolist()]
    labels = sorted(set(texts))
    place = {text: k for k, text in enumerate(labels)}
    return np.array(labels, dtype=str), np.array([place[t] for t in texts], np.int64)[inverse.ravel()]


def signal_views(signal: str) -> tuple[str, str]:
    """The (view of a, view of b) a candidate's signal names ("full~crop90"); a hash method's name ("phash") compares
    the whole frames."""
    va, vb = signal.split("~") if "~" in signal else ("full", "full")
    return va, vb


def signal_mirrored(signal: str) -> bool:
    """Whether exactly one of the signal's two views is mirrored ("full~mirror": b is a's mirror image)."""
    va, vb = signal_views(signal)
    return (va == "mirror") != (vb == "mirror")


def signal_cornered(signal: str) -> bool:
    """Whether either of the signal's two views is a corner (`CORNERS`): one picture zoomed into a corner of the
    other, an alignment held to the refit's thresholds (verify.py), which a closer whole-frame hash therefore keeps
    its place before (candidates.py)."""
    return bool(set(signal_views(signal)) & set(CORNERS))


def signal_tilted(signal: str) -> bool:
    """Whether either of the signal's two views is tilted (views.TILTS): one frame turned 10 degrees."""
    return bool(set(signal_views(signal)) & TILTS.keys())


def signal_centred(signal: str) -> bool:
    """Whether the signal pairs a tilted view with the other's centre (views.TILT_CENTRE): a copy turned with the
    canvas's corners showing."""
    return signal_tilted(signal) and TILT_CENTRE in signal_views(signal)


def per_signal(signals: Sequence[str], test: Callable[[str], bool]) -> np.ndarray:
    """`test` of each signal, as a boolean array, each distinct signal parsed once."""
    labels, code = signal_codes(signals)
    out = np.array([test(label) for label in labels.tolist()], bool)
    return out[code.ravel()] if len(labels) else np.zeros(0, bool)


def tilted_signals(signals: Sequence[str]) -> np.ndarray:
    """`signal_tilted` of each signal."""
    return per_signal(signals, signal_tilted)


def mirrored_signals(signals: Sequence[str]) -> np.ndarray:
    """`signal_mirrored` of each signal."""
    return per_signal(signals, signal_mirrored)


def unturned(thumbs, i, j, signals: Sequence[str], colours=None, aspect=None) -> Unturned:
    """`Unturned` of pairs (thumbs[i[k]], thumbs[j[k]]) proposed by `signals[k]`; colour thumbnails and aspect ratios
    (width / height: a quarter turn inverts it) follow the grey thumbnails. The stack holds the images the pairs use,
    each once (the inputs themselves where that is all of them, unturned), then the turned copies: one copy of what
    is needed, since on a VM the first touch of fresh memory costs about as much as the verifier's arithmetic on it.
    Each distinct signal (a few dozen) is parsed once, not each pair's."""
    labels, code = signal_codes(signals)
    views = [signal_views(label) for label in labels.tolist()]
    turns = np.array([[TURNED.get(v, 0) for v in pair] for pair in views], np.int64).reshape(len(views), 2)
    turns = turns[code.ravel()]
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    aspect = None if aspect is None else np.asarray(aspect, np.float64)
    n = len(thumbs)
    # (turn code, image) keys sorted: the plain images come first, then each turn's copies
    keys, place = dense_unique(np.r_[turns[:, 0] * n + i, turns[:, 1] * n + j], CODES * n)
    turn, images = np.divmod(keys, n)
    whole = [  # per label: turned views undone, other signals as they are
        "~".join("full" if v in TURNED else v for v in pair) if {*pair} & TURNED.keys() else label
        for label, pair in zip(labels.tolist(), views)
    ]
    plain = np.asarray(whole, dtype=object)[code.ravel()].tolist()
    arrays = isinstance(thumbs, np.ndarray) and (colours is None or isinstance(colours, np.ndarray))
    if arrays and len(keys) == n and not turn.any():  # every image, none turned: the inputs as they are
        return Unturned(thumbs, i, j, plain, colours, aspect, turns)
    a, b = np.split(place.ravel(), 2)
    ratio = None if aspect is None else aspect[images]
    stack = _turned_stack(thumbs, images, turn, ratio)
    tinted = None if colours is None else _turned_stack(colours, images, turn, ratio)
    if aspect is not None:
        aspect = np.where(np.isin(turn, SIDEWAYS), 1.0 / aspect[images], aspect[images])
    return Unturned(stack, a, b, plain, tinted, aspect, turns)


def _turned_stack(images, rows: np.ndarray, turn: np.ndarray, aspect: np.ndarray | None = None) -> np.ndarray:
    """images[rows[k]] turned as turn code turn[k] says (a quarter turn, or a tilt: views.TURNED), for rows sorted by
    code, as one fresh array. `images`: an array, or a lazy stack that reads the rows it is asked for
    (hash_cache.Thumbs); `aspect`: the rows' width / height, which a tilt keeps."""
    if isinstance(images, np.ndarray):
        out = np.empty((len(rows), *images.shape[1:]), images.dtype)
        np.take(images, rows, axis=0, out=out, mode="clip")  # mode "raise" would copy through a buffer
    else:
        out = images[rows]
    bounds = np.searchsorted(turn, [np.arange(1, CODES), np.arange(2, CODES + 1)])
    for code, (start, stop) in enumerate(zip(*bounds), start=1):
        if stop == start:
            continue
        if code in TILT_DEGREES:
            out[start:stop] = tilted(
                out[start:stop], TILT_DEGREES[code], None if aspect is None else aspect[start:stop]
            )
        else:
            out[start:stop] = np.rot90(out[start:stop], code, axes=(1, 2))
    return out
