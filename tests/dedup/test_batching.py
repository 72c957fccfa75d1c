"""The fast paths of dedup's per-image work find what the plain ones do: fixed views hashed as matrix products equal
a resize and a DCT per view, integer trim statistics equal float ones, and verdicts and prescreen scores do not
depend on how many images or pairs are batched together."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import scipy.fftpack
from PIL import ImageOps

from finetuner.dedup import candidates, searches, signals, trims, view_search, views
from finetuner.dedup import prescreen as prescreen_module
from finetuner.dedup import verify as verify_module
from finetuner.dedup.hashing import bits_to_uint64
from finetuner.dedup.neighbours import sorted_unique
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.verify import best_signal, verify_pairs
from finetuner.demo.synthetic_photos import photo
from tests.dedup.test_verify import BASE, COPIES, near_blank, thumb


def collection() -> np.ndarray:
    images = [BASE, *COPIES.values(), ImageOps.mirror(photo(12, (160, 120))), photo(13, (90, 120))]
    images += [near_blank((90, 90, 90), 0), near_blank((95, 92, 90), 1)]
    return np.stack([thumb(i) for i in images])


def reference_view_hash(t: np.ndarray, view: str) -> int:
    """The definition: the view's region resized to 32x32 by area, mirrored for the mirror view, imagehash's DCT; a
    turned view is the whole frame of the turned thumbnail."""
    if view in views.TURNS:
        t, view = np.rot90(t, views.TURNS[view]), "full"
    if view in views.TILTS:  # turned 10 degrees either way, enlarged until no corner of the canvas shows
        t, view = views.tilted(t[None], views.TILT_DEGREES[views.TILTS[view]])[0], "full"
    (top, bottom, left, right), mirrored = views.view_box(view, trims.trim_box(t))
    region = t[top:bottom, left:right].astype(np.float32)
    small = cv2.resize(region[:, ::-1] if mirrored else region, (32, 32), interpolation=cv2.INTER_AREA)
    low = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8].ravel()
    return int(bits_to_uint64((low > np.median(low))[None])[0])


def test_view_hashes_equal_a_resize_and_dct_per_view() -> None:
    thumbs = collection()
    hashes = views.view_hashes(thumbs)
    for name in views.VIEWS:
        expected = [reference_view_hash(t, name) for t in thumbs]
        assert hashes[name].tolist() == expected, name


def test_trim_boxes_equal_float_statistics() -> None:
    thumbs = collection()
    stripes = np.arange(64) % 2
    top, bottom, mat = thumbs.copy(), thumbs.copy(), thumbs.copy()
    top[:, :9] = 20 + 5 * stripes  # a dark bar with noise of std 2.5: flat (below FLAT_STD)
    bottom[:, -9:] = 20 + 6 * stripes  # std exactly 3.0: the boundary, not flat
    mat[:, :, -5:] = 200  # a plain mat on the right
    found = [trims.trim_box(t) for t in np.concatenate([top, bottom, mat])]
    assert (
        found[0] == (9, 64, 0, 64) and found[len(thumbs)] == (0, 64, 0, 64) and found[2 * len(thumbs)] == (0, 64, 0, 59)
    )
    for t in np.concatenate([thumbs, top, bottom, mat]):
        expected = []
        for lines in (t, t[::-1], t.T, t.T[::-1]):
            rows = lines[: int(64 * trims.MAX_TRIM)].astype(np.float64)
            flat = (rows.std(axis=1) < trims.FLAT_STD) & (
                np.abs(rows.mean(axis=1) - rows[0].mean()) < trims.BAR_TOLERANCE
            )
            expected.append(len(flat) if flat.all() else int(np.argmin(flat)))
        found = tuple(trims._layer_boxes(t[None], trims.FLAT_STD)[0].tolist())  # one layer (trim_box: up to two)
        box = (expected[0], 64 - expected[1], expected[2], 64 - expected[3])
        found, box = ((0, 64, 0, 64) if b - a < 16 or d - c < 16 else (a, b, c, d) for a, b, c, d in (found, box))
        assert found == box


def test_verdicts_and_prescreen_do_not_depend_on_batch_sizes(monkeypatch) -> None:
    thumbs = collection()
    i, j = np.triu_indices(len(thumbs), k=1)
    signals = [best_signal(thumbs[a], thumbs[b]) for a, b in zip(i, j)]
    whole, score = verify_pairs(thumbs, i, j, signals), prescreen(thumbs, i, j, signals)
    assert whole.accepted[: len(COPIES)].all()  # the original with each of its copies
    for module, name in (
        (verify_module, "PAIR_CHUNK"),
        (verify_module, "IMAGE_CHUNK"),
        (searches, "IMAGE_CHUNK"),
        (prescreen_module, "CHUNK"),
        (trims, "CHUNK"),
    ):
        monkeypatch.setattr(module, name, 3)
    small = verify_pairs(thumbs, i, j, signals, chunk=4)
    for field in ("accepted", "rule", "similarity", "detail_similarity", "overlap", "transform"):
        assert np.array_equal(getattr(small, field), getattr(whole, field)), field
    assert np.array_equal(prescreen(thumbs, i, j, signals), score)


def test_decide_in_threads_and_processes_gives_the_serial_verdicts(monkeypatch) -> None:
    from finetuner.dedup import decide as deciding
    from finetuner.dedup.verify import VerifyRule

    thumbs = collection()
    i, j = np.triu_indices(len(thumbs), k=1)
    signal = np.array([best_signal(thumbs[a], thumbs[b]) for a, b in zip(i, j)], dtype=object)
    flat = np.zeros(len(thumbs), bool)
    flat[-2:] = True  # the two near-blank frames
    serial = deciding.decide(thumbs, i, j, signal, flat, None, VerifyRule(), 0.5)
    monkeypatch.setattr(deciding, "MIN_PER_THREAD", 5)  # every worker gets slices

    def rows(verdicts) -> list:
        return [verdicts.row(k) for k in range(len(verdicts))]

    # forked workers, each reading the inherited arguments
    assert rows(deciding.decide(thumbs, i, j, signal, flat, None, VerifyRule(), 0.5, workers=3)) == rows(serial)
    args = (thumbs, i, j, signal, flat, None, VerifyRule(), 0.5, None, None)
    assert rows(deciding._decide_in_threads(args, 3)) == rows(serial)  # where processes cannot fork
    assert deciding._SHARED == ()  # nothing kept alive in this process after the workers are done
    assert serial.accepted.any() and not serial.accepted.all()
    assert {"prescreen", "aligned", "low-detail"} <= set(serial.rule)


def test_signal_codes_equal_numpy_unique_of_the_strings(monkeypatch) -> None:
    shared = np.array(["full~crop90", "mirror", "phash"], dtype=object)[[0, 1, 0, 2, 2, 0]]  # shared by reference
    rebuilt = np.array(["".join(("full", "~crop90")), "mirror"], dtype=object)  # equal text, other string objects
    for many in (signals.SHARED_SIGNALS, 1):  # ...and past the count of shared strings: compared as text
        monkeypatch.setattr(signals, "SHARED_SIGNALS", many)
        for given in (shared, np.r_[shared, rebuilt], list(shared), np.zeros(0, object)):
            labels, code = signals.signal_codes(given)
            expected, inverse = np.unique(np.asarray(list(given), dtype=str), return_inverse=True)
            assert labels.tolist() == expected.tolist() and code.tolist() == inverse.ravel().tolist()


def test_dense_unique_equals_numpy_unique() -> None:
    rng = np.random.default_rng(1)
    for values in (rng.integers(0, 50, 400), rng.integers(0, 5, 3), np.array([49]), np.zeros(0, np.int64)):
        keys, inverse = signals.dense_unique(values, 50)
        expected, where = np.unique(values, return_inverse=True)
        assert keys.tolist() == expected.tolist() and inverse.tolist() == where.ravel().tolist()


def test_sorted_unique() -> None:
    codes = np.array([7, 3, 7, 0, 3, 9], dtype=np.int64)
    assert sorted_unique(codes).tolist() == [0, 3, 7, 9]
    assert sorted_unique(np.zeros(0, np.int64)).tolist() == []


def test_verdict_cache_round_trips_newest_wins_and_ignores_other_layouts(tmp_path, caplog) -> None:
    from finetuner.dedup.pair_cache import VerdictCache, pair_keys

    shas = [hashlib.sha256(bytes([k])).hexdigest() for k in range(4)] + ["not-hex"]
    signal = np.array(["full~mirror", "phash", "phash", "phash"], dtype=object)
    keys = pair_keys(shas, np.array([0, 0, 0, 4]), np.array([1, 2, 3, 2]), signal, np.array([1.5, np.nan, 1.0, 2, 1]))
    assert len({tuple(k) for k in keys.tolist()}) == 4
    # the same pair under another signal or another aspect ratio is another key; the same inputs, the same key
    assert not np.array_equal(keys[1], pair_keys(shas, [0], [2], ["dhash"], [1.5, 1, 1, 1, 1])[0])
    assert not np.array_equal(keys[1], pair_keys(shas, [0], [2], ["phash"], [1.5001, 1, 1, 1, 1])[0])
    assert np.array_equal(keys[1], pair_keys(shas, [0], [2], ["phash"], [1.5, 7, 1.0, np.nan, 1])[0])

    def columns(*rows):
        return {f: np.array(c, dtype=t) for f, c, t in zip(VerdictCache.FIELDS, zip(*rows), VerdictCache.TYPES)}

    rows = [
        (True, "aligned", 0.97, 0.8, 1.0, "mirror: full of a = full of b", 0.93),
        (False, "prescreen", 0.2, 0.2, 0.0, "", 1.0),
    ]
    cache = VerdictCache(tmp_path, "setting")
    cache.add(keys[:2], columns(*rows))
    cache.save()
    again = VerdictCache(tmp_path, "setting")
    at, got = again.get(keys[[1, 0, 2]])
    assert (at >= 0).tolist() == [True, True, False]
    assert [tuple(got[f][k] for f in VerdictCache.FIELDS) for k in (0, 1)] == [rows[1], rows[0]]
    newer = (True, "low-detail", 0.99, 0.99, 1.0, "", 1.0)
    again.add(keys[[1, 3]], columns(newer, rows[0]))
    again.save()
    at, got = VerdictCache(tmp_path, "setting").get(keys)
    assert (at >= 0).tolist() == [True, True, False, True]
    assert [got["rule"][k] for k in (0, 1, 3)] == ["aligned", "low-detail", "aligned"] and got["accepted"][1]
    assert VerdictCache(tmp_path, "other setting").find(keys).tolist() == [-1] * 4
    old_layout = {f: v.astype(bytes) if v.dtype == object else v for f, v in columns(rows[0]).items()}
    cache.shards.append({"key": np.array(["a|b|full~mirror"], dtype="S20"), **old_layout})
    with caplog.at_level("WARNING"):
        at, _ = VerdictCache(tmp_path, "setting").get(keys)
    assert "another layout" in caplog.text and (at[[0, 1, 3]] >= 0).all()


def test_cached_looks_equal_computed_ones_and_are_computed_once(tmp_path, monkeypatch) -> None:
    from finetuner.dedup import look_cap
    from finetuner.dedup.pair_cache import LookCache

    thumbs = collection()
    shas = [hashlib.sha256(bytes([k])).hexdigest() for k in range(len(thumbs))]
    a, b = np.array([0, 0, 1, 2, 3]), np.array([1, 2, 3, 4, 5])
    signal = np.array(["full~full", "full~mirror", "full~crop90", "full~full", "full~full"], dtype=object)
    plain = look_cap.prescreen(thumbs, a, b, signal)
    computed = []
    real = look_cap.prescreen
    monkeypatch.setattr(look_cap, "prescreen", lambda t, x, y, s, r: computed.append(len(x)) or real(t, x, y, s, r))
    first = look_cap.cached_looks(thumbs, shas, LookCache(tmp_path, "s"))(a[:3], b[:3], signal[:3])
    again = look_cap.cached_looks(thumbs, shas, LookCache(tmp_path, "s"))(a, b, signal)
    assert np.allclose(first, plain[:3]) and np.allclose(again, plain)
    assert computed == [3, 2]  # the second call computed only the two pairs the cache lacked


def test_local_order_puts_the_pairs_of_linked_images_together() -> None:
    from finetuner.dedup.correlation import local_order

    place = np.random.default_rng(0).permutation(200)  # 50 groups of 4 copies, scattered over the collection
    groups = place.reshape(50, 4)
    i, j = (
        np.concatenate([g[list(side)] for g in groups])
        for side in zip(*[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])
    )
    order = local_order(200, i, j)
    assert sorted(order.tolist()) == list(range(len(i)))

    def images_per_chunk(o: np.ndarray) -> list[int]:
        return [len(np.unique(np.r_[i[o[s : s + 6]], j[o[s : s + 6]]])) for s in range(0, len(o), 6)]

    assert images_per_chunk(order) == [4] * 50  # each chunk of 6 pairs is one group's
    assert sum(images_per_chunk(np.lexsort((j, i)))) > 400  # in index order, chunks mix groups


def brute_force_view_candidates(hashes: dict, low_detail: np.ndarray, radius: int) -> dict:
    """{(i, j): (distance, signal)}: every view of i against every view of j that may pair (low-detail images with
    their whole-frame views only), the closest (a tilted view pair views.TILT_MARGIN bits farther), ties to view
    order."""
    names = [v for v in views.VIEWS if v in hashes]
    allowed = views.allowed_combos(names).reshape(len(names), len(names))
    out = {}
    n = len(low_detail)
    for i in range(n):
        for j in range(i + 1, n):
            for x, vx in enumerate(names):
                for y, vy in enumerate(names):
                    detail_views = [low_detail[k] and v in views.DETAIL_VIEWS for k, v in ((i, vx), (j, vy))]
                    if not allowed[x, y] or any(detail_views):
                        continue
                    distance = int(np.bitwise_count(hashes[vx][i] ^ hashes[vy][j]))
                    tilt = views.view_margin(vx, vy)
                    key = (distance + tilt, x * len(names) + y, distance)
                    if distance <= radius and key < out.get((i, j), (key[0] + 1, 0, 0)):
                        out[(i, j)] = key
    return {pair: (d, f"{names[c // len(names)]}~{names[c % len(names)]}") for pair, (_, c, d) in out.items()}


def test_view_candidates_equal_brute_force_with_untrimmed_images_searched_once() -> None:
    """An image with no border to trim has a trim hash equal to its full one: it is searched once, and the candidates
    (closest view pair and distance each) are those of every view against every view."""
    rng = np.random.default_rng(5)
    n = 12
    hashes = {name: rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) for name in views.VIEWS}
    untrimmed = np.arange(n) % 3 != 0  # 0, 3, 6, 9 have borders
    hashes["trim"][untrimmed] = hashes["full"][untrimmed]
    near = lambda h, bits: h ^ np.uint64(sum(1 << b for b in bits))  # noqa: E731
    hashes["full"][1] = near(hashes["trim"][0], (1, 7, 40))  # a letterboxed 0 and its content: trim~full
    hashes["crop90"][4] = near(hashes["full"][2], (3, 9))  # untrimmed 2: full~crop90 (trim~crop90 may not pair)
    hashes["full"][5] = near(hashes["full"][4], (5,))  # untrimmed 4: full~full (trim~full ties, and loses)
    hashes["trim"][4] = hashes["full"][4]
    hashes["rot90"][7] = near(hashes["mirror"][8], (2, 30, 50, 61))
    hashes["tilt10"][9] = near(hashes["crop80"][6], (4, 20))  # 9 turned with its corners showing: tilt~centre
    low = np.isin(np.arange(n), [10, 11])
    hashes["mirror"][11] = near(hashes["full"][10], (0,))
    hashes["crop80"][11] = hashes["full"][10]  # a low-detail image's crops take no part
    for radius in (4, 8, 12):
        found = view_search.view_candidates(hashes, low, radius)
        got = dict(zip(zip(found.i.tolist(), found.j.tolist()), zip(found.distance.tolist(), found.signal)))
        assert got == brute_force_view_candidates(hashes, low, radius)
    assert got[(0, 1)] == (3, "trim~full") and got[(2, 4)] == (2, "full~crop90") and got[(4, 5)] == (1, "full~full")
    assert got[(7, 8)] == (4, "rot90~mirror") and got[(10, 11)] == (1, "full~mirror")
    assert got[(6, 9)] == (2, "crop80~tilt10")


def test_view_candidates_reduced_block_by_block_equal_brute_force(monkeypatch) -> None:
    """A crowded collection (frames of one scene: every view of every image near every other) is found through many
    view pairs per image pair; they are reduced to each pair's closest as the search's blocks come, whatever how often
    the kept keys are compacted; searched from new images only, the pairs with one of them come out the same."""
    rng = np.random.default_rng(8)
    n = 40
    centre = rng.integers(0, 2**63, dtype=np.uint64)
    flips = lambda: np.bitwise_or.reduce(np.uint64(1) << rng.integers(0, 64, (n, 2)).astype(np.uint64), axis=1)  # noqa: E731
    hashes = {name: centre ^ flips() for name in views.VIEWS}
    low = np.zeros(n, bool)
    expected = brute_force_view_candidates(hashes, low, 6)
    for compact_at in (view_search.COMPACT_AT, 1):
        monkeypatch.setattr(view_search, "COMPACT_AT", compact_at)
        found = view_search.view_candidates(hashes, low, 6, workers=2)
        got = dict(zip(zip(found.i.tolist(), found.j.tolist()), zip(found.distance.tolist(), found.signal)))
        assert got == expected and len(got) == n * (n - 1) // 2
    new = np.arange(n) >= 30  # a grown collection: only the pairs with a new image are searched, as they were cold
    found = view_search.view_candidates(hashes, low, 6, new=new)
    got = dict(zip(zip(found.i.tolist(), found.j.tolist()), zip(found.distance.tolist(), found.signal)))
    assert got == {pair: value for pair, value in expected.items() if new[list(pair)].any()}


@pytest.mark.parametrize("wide", [False, True])
def test_merged_candidates_keep_each_pairs_closest_signal_earlier_parts_winning_ties(wide: bool, monkeypatch) -> None:
    """As a three-key sort (pair, distance, part order) would: pairs repeated across parts and within one, ties."""
    rng = np.random.default_rng(11)
    parts = []
    for name in ("view", "phash", "dhash"):
        k = 400
        i, j = rng.integers(0, 30, k), rng.integers(0, 30, k)
        i, j = np.minimum(i, j), np.maximum(i, j) + 1
        parts.append(
            view_search.Candidates(i, j, np.array([f"{name}{x}" for x in range(k)], object), rng.integers(0, 5, k))
        )
    if wide:  # the three-key sort itself, as for keys past an int64
        monkeypatch.setattr(candidates.np, "argsort", lambda *args, **kwargs: pytest.fail("the int64 key was used"))
        parts[0] = view_search.Candidates(parts[0].i, parts[0].j, parts[0].signal, parts[0].distance - 10)
    got = candidates.merge_candidates(parts)
    rows = [(a, b, d, p, s) for p, c in enumerate(parts) for a, b, d, s in zip(c.i, c.j, c.distance, c.signal)]
    best = {}
    for a, b, d, p, s in rows:
        if (a, b) not in best or (d, p) < best[(a, b)][:2]:
            best[(a, b)] = (d, p, s)
    assert list(zip(got.i.tolist(), got.j.tolist())) == sorted(best)
    assert [(d, s) for d, s in zip(got.distance.tolist(), got.signal)] == [
        (best[k][0], best[k][2]) for k in sorted(best)
    ]
