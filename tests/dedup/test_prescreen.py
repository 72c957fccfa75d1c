"""The 16x16 look before alignment: real edits pass it, unrelated pictures are rejected without being aligned."""

from __future__ import annotations

import numpy as np

from finetuner.config import parse_params
from finetuner.dedup import candidates
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.verify import VerifyRule, best_signal
from finetuner.demo.synthetic_photos import photo
from tests.dedup.test_verify import BASE, COPIES, thumb

THRESHOLD = parse_params({}).dedup.verify.prescreen_similarity


def test_real_edits_pass_and_unrelated_photos_do_not() -> None:
    others = [photo(s, (160, 120)) for s in (12, 13, 14, 15)]
    thumbs = np.stack([thumb(i) for i in (BASE, *COPIES.values(), *others)])
    n = 1 + len(COPIES)
    j = np.arange(1, len(thumbs))
    signals = [best_signal(thumbs[0], thumbs[k]) for k in j]
    score = prescreen(thumbs, np.zeros(len(j), np.int64), j, signals)
    kept = dict(zip(j.tolist(), (score >= THRESHOLD).tolist()))
    assert all(kept[k] for k in range(1, n)), dict(zip(COPIES, score[: n - 1]))
    assert not any(kept[k] for k in range(n, len(thumbs))), score[n - 1 :]


def test_screened_candidates_are_rejected_unaligned_and_copies_still_accepted(monkeypatch) -> None:
    thumbs = np.stack([thumb(i) for i in (BASE, COPIES["mirror"], photo(12, (160, 120)))])
    a, b = np.array([0, 0]), np.array([1, 2])
    signal = np.array(["full~mirror", "full~full"], dtype=object)
    aligned = []
    real = candidates.verify_pairs
    monkeypatch.setattr(candidates, "verify_pairs", lambda t, i, *rest: aligned.append(len(i)) or real(t, i, *rest))
    flat = np.zeros(3, bool)
    rows = candidates.decide(thumbs, a, b, signal, flat, None, VerifyRule(), THRESHOLD)
    assert rows[0][0] and rows[0][1] == "aligned"  # the mirror copy is verified and accepted
    assert not rows[1][0] and rows[1][1] == "prescreen" and rows[1][2] < THRESHOLD
    assert aligned == [1]  # only the copy reached the verifier
    # a near-blank frame is never screened (any two correlate by chance or not at all): the pixel rule decides it
    aligned.clear()
    candidates.decide(thumbs, a, b, signal, np.array([False, False, True]), None, VerifyRule(), THRESHOLD)
    assert aligned == [2]


def test_whole_frames_are_shrunk_as_opencv_does() -> None:
    """The block-mean shortcut for whole frames gives OpenCV's area resize to the last bit."""
    from finetuner.dedup.prescreen import _unit_regions

    thumbs = np.random.default_rng(3).integers(0, 256, (40, 64, 64), dtype=np.uint8)
    trims = [(0, 64, 0, 64)] * len(thumbs)
    images, boxes = np.arange(len(thumbs)), np.zeros(len(thumbs), np.int64)
    fast = _unit_regions(thumbs, trims, np.zeros(len(thumbs), bool), images, boxes)
    opencv = _unit_regions(thumbs, trims, np.ones(len(thumbs), bool), images, boxes)  # each region through cv2
    assert np.array_equal(fast, opencv)
