"""The compiled descriptor matching of the full-size look (finetuner/dedup/descriptors.py): OpenCV's cross-checked
brute-force matches, the same pairs in the same order."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetuner.dedup.descriptors import mutual_nearest
from tests.dedup.test_full_size import page, turned


def opencv(p: np.ndarray, q: np.ndarray) -> list[tuple[int, int]]:
    return [(m.queryIdx, m.trainIdx) for m in cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(p, q)]


def ours(p: np.ndarray, q: np.ndarray) -> list[tuple[int, int]]:
    mine, theirs = mutual_nearest(p, q)
    return list(zip(mine.tolist(), theirs.tolist()))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 50), m=st.integers(1, 50), distinct=st.integers(1, 6), flips=st.booleans(), seed=st.integers(0, 99)
)
def test_the_matches_opencv_cross_checks_ties_included(n: int, m: int, distinct: int, flips: bool, seed: int) -> None:
    # few distinct descriptors: most distances tie, and which of several equals wins must be OpenCV's choice
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (distinct, 32), dtype=np.uint8)
    p, q = pool[rng.integers(0, distinct, n)], pool[rng.integers(0, distinct, m)]
    if flips:  # and some near ties
        p = p ^ (rng.random(p.shape) < 0.02).astype(np.uint8)
    assert ours(p, q) == opencv(p, q)


def test_the_matches_of_a_page_and_its_scan_are_opencvs() -> None:
    orb = cv2.ORB_create(2000)
    original, scan = (np.asarray(image.convert("L")) for image in (page(3), turned(page(3))))
    (_, p), (_, q) = orb.detectAndCompute(original, None), orb.detectAndCompute(scan, None)
    matches = ours(p, q)
    assert len(matches) > 500 and matches == opencv(p, q)


@pytest.mark.parametrize(("n", "m"), [(0, 5), (5, 0), (0, 0)])
def test_no_descriptors_no_matches(n: int, m: int) -> None:
    mine, theirs = mutual_nearest(np.zeros((n, 32), np.uint8), np.zeros((m, 32), np.uint8))
    assert len(mine) == len(theirs) == 0
