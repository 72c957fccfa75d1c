"""The 16x16 look before alignment: real edits pass it, unrelated pictures are rejected without being aligned."""

from __future__ import annotations

import cv2
import numpy as np

from finetuner.config import parse_params
from finetuner.dedup import decide as deciding
from finetuner.dedup.prescreen import prescreen, textured
from finetuner.dedup.verify import VerifyRule, best_signal, verify
from finetuner.demo.synthetic_photos import photo
from tests.dedup.test_verify import BASE, COPIES, crop, texture, thumb

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
    real = deciding.verify_pairs
    monkeypatch.setattr(
        deciding, "verify_pairs", lambda t, i, *rest, **kw: aligned.append(len(i)) or real(t, i, *rest, **kw)
    )
    flat = np.zeros(3, bool)
    verdicts = deciding.decide(thumbs, a, b, signal, flat, None, VerifyRule(), THRESHOLD)
    assert verdicts.accepted[0] and verdicts.rule[0] == "aligned"  # the mirror copy is verified and accepted
    rejected = verdicts.row(1)
    assert not rejected.accepted and rejected.rule == "prescreen" and rejected.similarity < THRESHOLD
    assert rejected.transform == f"16x16 correlation {rejected.similarity:.2f}"
    assert aligned == [1]  # only the copy reached the verifier
    # a near-blank frame is never screened (any two correlate by chance or not at all): the pixel rule decides it
    aligned.clear()
    deciding.decide(thumbs, a, b, signal, np.array([False, False, True]), None, VerifyRule(), THRESHOLD)
    assert aligned == [2]


def test_regions_are_shrunk_as_one_opencv_call_per_region_does() -> None:
    """Stacking the regions cut by one box into one tall resize gives the pixels of one area resize per region, for
    every view's box and for trimmed frames of any size."""
    from finetuner.dedup import prescreen as module
    from finetuner.dedup.views import square_boxes, view_box

    rng = np.random.default_rng(3)
    thumbs = rng.integers(0, 256, (60, 64, 64), dtype=np.uint8)
    trims = np.tile([0, 64, 0, 64], (len(thumbs), 1))
    tops, bottoms, lefts = rng.integers(0, 19, 20), rng.integers(45, 65, 20), rng.integers(0, 19, 20)
    trims[::3] = np.stack([tops, bottoms, lefts, np.full(20, 61)], 1)  # trimmed frames of many sizes
    aspect = np.exp(rng.uniform(-0.8, 0.8, len(thumbs)))  # wide, tall and near-square images: their centre squares
    squares = square_boxes(aspect, len(thumbs))
    images = np.r_[np.arange(60), rng.integers(0, 60, 200)]
    boxes = np.r_[np.zeros(60, np.int64), rng.integers(0, len(module.BOXES), 200)]
    expected = np.empty((len(images), 16, 16), np.float32)
    for k, (x, box) in enumerate(zip(images.tolist(), boxes.tolist())):
        (top, bottom, left, right), _ = view_box(module.BOXES[box], tuple(trims[x]), aspect[x])
        region = thumbs[x][top:bottom, left:right].astype(np.float32)
        expected[k] = cv2.resize(region, (16, 16), interpolation=cv2.INTER_AREA)
    parts = np.stack([expected[:, module.BAND :], expected[:, : -module.BAND]], axis=1)
    parts -= parts.mean(axis=(2, 3), keepdims=True)
    norm = np.sqrt((parts * parts).sum(axis=(2, 3), keepdims=True))
    expected = np.divide(parts, norm, out=np.zeros_like(parts), where=norm > 1e-3)
    assert np.array_equal(module._unit_regions(thumbs, trims, squares, images, boxes), expected)
    assert (boxes == module.BOXES.index("square")).sum() > 5


def test_textures_are_told_from_pictures() -> None:
    pictures = [BASE, *COPIES.values(), photo(12, (160, 120))]
    surfaces = [texture(0, sigma=1.0), texture(1, sigma=1.0), crop(texture(2, sigma=1.0), 0.05, 0.0, 0.0, 0.08)]
    found = textured(np.stack([thumb(i) for i in (*pictures, *surfaces)]))
    assert not found[: len(pictures)].any() and found[len(pictures) :].all(), found
    assert textured(np.zeros((0, 64, 64), np.uint8)).shape == (0,)


def test_a_cropped_texture_is_verified_though_its_look_is_no_evidence() -> None:
    """At 16x16 a fine texture is noise, so its copy cropped and resized back fails the look like a stranger; it is
    verified (and placed) all the same, and accepted, while another texture is still rejected."""
    original = texture(0, sigma=1.0)
    copy = crop(original, 0.06, 0.02, 0.03, 0.08).resize(original.size)
    thumbs = np.stack([thumb(i) for i in (original, copy, texture(5, sigma=1.0))])
    a, b = np.array([0, 0]), np.array([1, 2])
    signal = np.array([best_signal(thumbs[0], thumbs[1]), best_signal(thumbs[0], thumbs[2])], dtype=object)
    assert (prescreen(thumbs, a, b, list(signal)) < THRESHOLD).all()  # the look alone would reject both
    verdicts = deciding.decide(thumbs, a, b, signal, np.zeros(3, bool), None, VerifyRule(), THRESHOLD)
    assert verdicts.accepted[0] and verdicts.rule[0] == "aligned", verdicts.row(0)
    assert not verdicts.accepted[1] and verdicts.rule[1] == "aligned", verdicts.row(1)


def test_a_square_crop_is_looked_at_in_the_originals_centre_square() -> None:
    """A square crop of a 16:9 photo shows 56% of its width: against the whole frame it looks like a stranger, against
    the centre square (placed by the aspect ratio) like the copy it is."""
    from tests.dedup.test_verify import square_crop

    original = photo(31, (320, 180))
    thumbs = np.stack([thumb(original), thumb(square_crop(original)), thumb(photo(32, (180, 180)))])
    aspect = np.array([16 / 9, 1.0, 1.0])
    i, j, signals = np.array([0, 0]), np.array([1, 2]), ["square~full", "square~full"]
    looked, copy_whole = prescreen(thumbs, i, j, signals, aspect), prescreen(thumbs, i[:1], j[:1], ["full~full"])
    assert looked[0] >= THRESHOLD > max(looked[1], copy_whole[0]), (looked, copy_whole)


def test_a_page_cut_at_the_top_is_looked_at_in_its_originals_whole_frame() -> None:
    """A page cut 10% at the top is the bottom 90% of its original's whole frame, margins included, and that is the
    view pair its hashes matched by. Compared with the original's text inside its margins it looked like other pages
    of the layout, which outranked it under the per-image cap (0.88 against 0.92 here); as hashed, it looks like
    the copy it is."""
    from tests.dedup.test_full_size import cut_at_top, page

    pages = [page(k) for k in range(4)]  # forms of one layout
    thumbs = np.stack([thumb(pages[0]), thumb(cut_at_top(pages[0])), *(thumb(cut_at_top(p)) for p in pages[1:])])
    aspect = np.array([0.75, 600 / 720, *[600 / 720] * 3])
    j = np.arange(1, len(thumbs))
    looks = prescreen(thumbs, np.zeros(len(j), np.int64), j, ["bottom90~full"] * len(j), aspect)
    assert looks[0] >= 0.95 and looks[0] > looks[1:].max() + 0.03, looks


def test_a_copy_whose_edge_passed_for_a_bar_is_looked_at_as_whole_frames() -> None:
    """A dim picture's edge, flattened a little more by its copy's colour edit, passes for a bar on the copy only (a
    cell culture toned warmer): the two trimmed frames are then misaligned, and the look also compares the whole
    frames, as the verifier does."""
    rng = np.random.default_rng(0)
    original = thumb(BASE).astype(np.float64)
    original[44:] = 128 + rng.normal(0, 5, (20, 64))  # a dim, grainy lower edge: no bar
    copy = original.copy()
    copy[44:] = 128 + rng.normal(0, 1, (20, 64))  # the copy's edge: flat, taken for a bar
    thumbs = np.clip(np.stack([original, copy]), 0, 255).astype(np.uint8)
    score = prescreen(thumbs, np.array([0]), np.array([1]), ["full~full"])[0]
    trimmed = [
        cv2.resize(t[: 44 if k else 64].astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA)
        for k, t in enumerate(thumbs)
    ]
    assert np.corrcoef(trimmed[0].ravel(), trimmed[1].ravel())[0, 1] < THRESHOLD <= score


def test_a_picture_under_a_caption_over_a_quarter_of_it_is_looked_at_less_the_caption(monkeypatch) -> None:
    """A caption bar drawn over 30% of a picture leaves a trimmed content of other proportions than the original's:
    the trimmed frames, the whole frames and the signal's views all disagree (0.40-0.55 here). Over the captioned
    trim's box on both frames, as they lie, the two are the same picture; another picture under the same caption is
    not."""
    from benchmarks.dedup_photoset import caption_edit
    from finetuner.dedup import prescreen as screening

    cases = ((3, "overtop30"), (11, "overtop30"), (12, "overbot30"))
    for seed, kind in cases:
        original, other = thumb(photo(seed, (240, 160))), thumb(photo(seed + 20, (240, 160)))
        captioned = thumb(caption_edit(photo(seed, (240, 160)), kind, np.random.default_rng(0)))
        thumbs, i, j = np.stack([original, other, captioned]), np.array([0, 1]), np.array([2, 2])
        signals = [best_signal(thumbs[a], thumbs[b]) for a, b in zip(i, j)]
        looks = prescreen(thumbs, i, j, signals)
        assert looks[0] >= THRESHOLD > looks[1], (seed, kind, looks)
        assert verify(original, captioned, aspect=(1.5, 1.5)).accepted  # and the verifier takes it from there
        with monkeypatch.context() as patched:
            patched.setattr(screening, "_under_captions", lambda *args: np.zeros(len(args[-1])))
            assert prescreen(thumbs, i, j, signals)[0] < THRESHOLD, (seed, kind)
