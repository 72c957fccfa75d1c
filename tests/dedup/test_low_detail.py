"""The low-detail rule (finetuner/dedup/low_detail.py) on made-up smooth pictures: a wallpaper of soft shapes is
found through heavy JPEG, a contrast change and a crop by its shading; two wallpapers, two plain ramps and two
faintly vignetted blank pages are not matched by theirs; a heavily blurred copy matches its original blurred to
match."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from finetuner.dedup import low_detail, trims
from finetuner.dedup.hashing import hash_images
from finetuner.dedup.low_detail import SHADING, low_detail_verdicts
from finetuner.dedup.verify import VerifyRule, verify, verify_pairs


def thumb(image: Image.Image) -> np.ndarray:
    return hash_images([image], ["phash"]).thumbs[0]


def wallpaper(seed: int) -> Image.Image:
    """A smooth desktop background: a colour ramp under a few soft blobs, no fine detail."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320] / 320.0
    angle = rng.uniform(0, 2 * np.pi)
    field = 90 + 50 * (np.cos(angle) * x + np.sin(angle) * y)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.15, 0.4)
        field += rng.uniform(-25, 25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    rgb = np.stack([field, field * 0.8 + 20, field * 0.6 + 60], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def grey(field: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(np.clip(field, 0, 255)[..., None], 3, axis=2).astype(np.uint8))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def centre(image: Image.Image, keep: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
    return image.crop((dx, dy, w - dx, h - dy))


WALLPAPER = wallpaper(1)


@pytest.mark.parametrize(
    ("edit", "overlap"),
    [
        (lambda im: jpeg(im, 15), 1.0),
        (lambda im: ImageEnhance.Contrast(im).enhance(0.6), 1.0),
        (lambda im: centre(im, 0.8), 0.64),
        (lambda im: centre(im, 0.8).transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.64),
    ],
    ids=["jpeg15", "contrast06", "crop10each", "crop10each-mirrored"],
)
def test_a_smooth_wallpaper_is_found_by_its_shading(edit, overlap: float) -> None:
    """Each edit moves the frames more than the pixel match allows (heavy JPEG bands a smooth ramp, a contrast
    change is a gain and an offset, a crop rescales the shading); the shading match undoes it."""
    verdict = verify(thumb(WALLPAPER), thumb(edit(WALLPAPER)))
    assert verdict.rule == "low-detail" and verdict.accepted, verdict
    assert verdict.transform.startswith("shading matches") and verdict.overlap == pytest.approx(overlap), verdict


def test_no_crop_below_min_overlap_is_tried() -> None:
    """At min_overlap 0.7 the 80% crop (0.64 of the frame) is not a try. Smooth shading tolerates some zoom: the
    90% crop, or the frame, may still match it."""
    verdict = verify(thumb(WALLPAPER), thumb(centre(WALLPAPER, 0.8)), VerifyRule(min_overlap=0.7))
    assert verdict.overlap >= 0.7 and "80%" not in verdict.transform, verdict


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_two_wallpapers_are_not_matched_by_their_shading(seed: int) -> None:
    verdict = verify(thumb(WALLPAPER), thumb(wallpaper(seed)))
    assert verdict.rule == "low-detail" and not verdict.accepted, verdict


def test_two_plain_ramps_are_not_matched_though_a_tone_change_maps_one_onto_the_other() -> None:
    """Two clear skies: each a plain ramp, so a gain and an offset fit one to the other exactly. The ramp says nothing
    about which picture it is; only shading beyond a plane does."""
    y = np.mgrid[0:240, 0:320][0]
    thumbs = np.stack([thumb(grey(60 + 0.4 * y)), thumb(grey(100 + 0.25 * y))])
    accepted, _, _, how, _ = low_detail_verdicts(thumbs, np.array([0]), np.array([1]), VerifyRule())
    assert not accepted[0], how[0]
    views = low_detail._Views.of(thumbs, np.array([[0, 64, 0, 64]] * 2))
    p, q = views.centred[0, 0], views.centred[1, 0]
    gain = (p * q).sum() / (p * p).sum()
    assert np.abs(q - gain * p).mean() < 0.5 and 0.5 < gain < 0.8  # a gain and an offset map one onto the other...
    assert views.off_plane.max() < 0.5 * views.spread.min()  # ...and neither shows more than its ramp


def test_faint_shading_is_no_evidence() -> None:
    """Two blank pages from one scanner share its faint vignetting (less than SHADING x flat_max_difference): matched
    by a tone change, every page would be a copy of every other."""
    y, x = np.mgrid[0:240, 0:320]
    vignette = -4 * (((x - 160) / 160) ** 2 + ((y - 120) / 120) ** 2)
    page, other = grey(235 + vignette), grey(225 + 1.2 * vignette)
    spread = np.abs(thumb(page) - thumb(page).mean()).mean()
    assert spread < SHADING * VerifyRule().flat_max_difference
    verdict = verify(thumb(page), thumb(other))
    assert verdict.rule == "low-detail" and not verdict.accepted, verdict


def mat(image: Image.Image, share: float = 0.055) -> Image.Image:
    """The picture in a white mat (whose edge falls inside a thumbnail pixel: the trim strips the blended line)."""
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    canvas = Image.new("RGB", (w + 2 * dx, h + 2 * dy), (255, 255, 255))
    canvas.paste(image, (dx, dy))
    return canvas


def test_two_smooth_pictures_in_one_white_mat_are_not_copies(monkeypatch) -> None:
    """The mat is all the two share. Left on the content, the line where each picture blends into its mat was the
    one fine detail in either, and the two correlated through it (bench v2's only false pair)."""
    first, second = thumb(mat(wallpaper(3))), thumb(mat(wallpaper(4)))
    assert not verify(first, second).accepted
    monkeypatch.setattr(trims, "_blend_line", lambda lines, runs, flat_std: np.zeros(len(lines), np.int64))
    assert verify(first, second).accepted  # what the blended line did


def test_a_smooth_picture_in_a_mat_is_found_by_the_shading_inside_it(monkeypatch) -> None:
    """The pixel match compares the content inside the mat with the other's frame; without that, the shading match
    compares the content inside the bars too, against the other's content or its frame (a smooth picture's own edge
    can pass for a bar)."""
    matted, resized = thumb(mat(wallpaper(3))), thumb(wallpaper(3).resize((200, 150)))
    verdict = verify(matted, resized)
    assert verdict.accepted and verdict.transform.startswith("content inside the bars: identity"), verdict
    monkeypatch.setattr(low_detail, "_bars", lambda thumbs, *args: np.zeros(len(thumbs), bool))
    verdict = verify(matted, resized)
    assert verdict.accepted and "content inside the bars of a = frame of b" in verdict.transform, verdict


def soft_shapes(seed: int) -> Image.Image:
    """A smooth picture of ten soft blobs on a faint ramp: low detail, but shading that moves with the frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320] / 320.0
    field = 110 + 30 * x
    for _ in range(10):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.06, 0.12)
        field += rng.uniform(-25, 25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return grey(field)


def test_a_crop_from_one_side_is_matched_as_the_search_proposed_it() -> None:
    """A smooth picture cut by 10% on its right is what the search's `left90` view of the original shows: that view
    pair is tried too, on whole frames (a smooth picture's edge can pass for a bar, so its trim says nothing)."""
    picture = soft_shapes(1)
    copy = picture.crop((0, 0, 288, 240))
    thumbs, aspect = np.stack([thumb(picture), thumb(copy)]), np.array([320 / 240, 288 / 240])
    verdicts = {
        signal: verify_pairs(thumbs, np.array([0]), np.array([1]), [signal], VerifyRule(), aspect).row(0)
        for signal in ("left90~full", "full~full")
    }
    proposed, plain = verdicts["left90~full"], verdicts["full~full"]
    assert proposed.accepted and proposed.transform.startswith("shading matches: left90 of a = full of b"), proposed
    assert proposed.overlap == pytest.approx(0.9, abs=0.01)
    assert plain.rule == "low-detail" and not plain.accepted, plain  # the frames as they are do not line up
    other = np.stack([thumb(soft_shapes(7)), thumb(copy)])
    assert not verify_pairs(other, np.array([0]), np.array([1]), ["left90~full"], VerifyRule(), aspect).accepted[0]


def test_a_plain_field_matches_its_letterboxed_copy_inside_the_bars_and_a_plain_fields_box_is_no_bar() -> None:
    """A plain field's letterboxed copy differs from it by its bars as frames; inside them the two match pixel for
    pixel (and a field of another shade, letterboxed alike, does not). A plain field's trim is a box on its own
    ground, not a bar: a faint ramp and a flat field, refused as frames, are not compared there (its centre is about
    as flat as the field, and matched so)."""
    from tests.dedup.test_verify import letterbox, near_blank

    field = thumb(near_blank((120, 120, 120), 0))
    boxed = letterbox(near_blank((120, 120, 120), 2))
    aspect = (4 / 3, boxed.size[0] / boxed.size[1])
    verdict = verify(field, thumb(boxed), aspect=aspect)
    assert verdict.accepted and verdict.transform.startswith("content inside the bars"), verdict
    assert not verify(field, thumb(letterbox(near_blank((126, 126, 126), 2))), aspect=aspect).accepted
    for slope in (6, 8):
        ramp = thumb(near_blank((120, 120, 120), 1, slope=slope))
        assert (trims.trim_boxes(np.stack([field, ramp])) != (0, 64, 0, 64)).any(axis=1).all()
        verdict = verify(field, ramp)
        assert not verdict.accepted and "inside" not in verdict.transform, verdict


def test_two_letterboxed_plain_fields_do_not_match_through_a_gain_their_bars_pin(monkeypatch) -> None:
    """Bars are shading: a brightness gain fits two letterboxed plain fields of other shades (the bars black either
    way), as the frames' pixel match and as the search's proposed views on the frames. Where an image shows bars,
    its frame takes no gain and a proposed view may not reach into them: the contents inside decide, where a
    letterboxed ramp and its brightened copy still match through a gain."""
    from tests.dedup.test_verify import letterbox, near_blank

    dark, light = letterbox(near_blank((100, 100, 100), 0)), letterbox(near_blank((140, 140, 140), 1))
    y, x = np.mgrid[0:120, 0:160] / 160.0
    ramp, brighter = (grey(level + slope * x) for level, slope in ((90.0, 30.0), (120.0, 40.0)))
    aspect = (dark.size[0] / dark.size[1],) * 2
    assert not verify(thumb(dark), thumb(light), aspect=aspect).accepted
    verdict = verify(thumb(letterbox(ramp)), thumb(letterbox(brighter)), aspect=aspect)
    assert verdict.accepted and verdict.transform.startswith("content inside the bars: identity, gain 1.3"), verdict
    monkeypatch.setattr(low_detail, "_bars", lambda thumbs, *args: np.zeros(len(thumbs), bool))
    verdict = verify(thumb(dark), thumb(light), aspect=aspect)
    assert verdict.accepted and "gain 1.4" in verdict.transform, verdict  # what the bars did


def radial(centre: tuple[float, float], base, slope, seed: int) -> Image.Image:
    """A radial glow: each channel base + slope x the distance from `centre` (x across, y down, in widths), with
    sensor noise."""
    y, x = np.mgrid[0:360, 0:480] / 480.0
    field = np.asarray(base) + np.hypot(x - centre[0], y - centre[1])[..., None] * np.asarray(slope)
    field = field + np.random.default_rng(seed).normal(0, 2.0, (360, 480, 1))
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


def test_two_radial_glows_about_nearby_centres_are_not_matched_by_their_shading(monkeypatch) -> None:
    """A cone of shading nearly fits another about a centre 5% of the width away, once one is cropped to 80% and a
    tone change applied (residual 0.8 grey levels, within a small share of the shading and of its departure from a
    plane): two different pictures of the blank set. The residual must also be within the shading's departure from
    its best-fitting quadratic surface (BEYOND_BOWL_SHARE), as a copy's is."""
    first = radial((0.766, 0.62), (95.6, 196.6, 47.4), (-94.3, -49.5, 86.7), 0)
    second = radial((0.713, 0.606), (67.1, 108.0, 68.9), (-91.9, -66.9, 36.1), 1)
    assert not verify(thumb(first), thumb(second), aspect=(4 / 3, 4 / 3)).accepted
    verdict = verify(thumb(first), thumb(jpeg(first, 15)), aspect=(4 / 3, 4 / 3))
    assert verdict.accepted, verdict
    monkeypatch.setattr(low_detail, "BEYOND_BOWL_SHARE", 99.0)
    verdict = verify(thumb(first), thumb(second), aspect=(4 / 3, 4 / 3))
    assert verdict.accepted and verdict.transform.startswith("shading matches"), verdict


def test_a_smooth_wallpaper_under_a_caption_bar_matches_it_less_the_caption(monkeypatch) -> None:
    """A dark caption bar over a smooth picture's foot moves the frames far apart (10-13 grey levels on average), and
    its trim, the picture less the caption, is no content resized: compared as they lie, less the caption, the two
    match pixel for pixel. Another wallpaper under the same caption does not."""
    from tests.dedup.test_verify import caption

    aspect = (4 / 3, 4 / 3)
    for seed in (1, 2):
        original, copy = thumb(wallpaper(seed)), thumb(caption(wallpaper(seed)))
        verdict = verify(original, copy, aspect=aspect)
        assert verdict.accepted and verdict.transform.startswith("less the caption, as they lie"), verdict
        top, bottom, left, right = trims.trim_box(copy)  # the caption's trim box, on both frames
        assert bottom == 56 and verdict.overlap == pytest.approx((bottom - top) * (right - left) / 64**2), verdict
        assert not verify(original, thumb(caption(wallpaper(seed + 10))), aspect=aspect).accepted
    monkeypatch.setattr(low_detail, "caption_panels", lambda thumbs, trims, images: np.zeros(len(thumbs), bool))
    assert not verify(thumb(wallpaper(1)), thumb(caption(wallpaper(1))), aspect=aspect).accepted


def in_colour(a: Image.Image, b: Image.Image):
    """`verify` of two images, colours and all."""
    batch = hash_images([a, b], ["phash"])
    aspect = (a.width / a.height, b.width / b.height)
    return verify(batch.thumbs[0], batch.thumbs[1], aspect=aspect, colours=(batch.colours[0], batch.colours[1]))


def test_two_glows_of_one_hue_each_are_not_taken_for_a_toned_copy_of_one_another() -> None:
    """Two radial glows of the blank set, a vivid blue and a greyish lilac, match in shading once mirrored (gain
    1.05), and each is of one hue throughout, its chroma following its shading as a toned (sepia) copy's follows its
    brightness. Their mean hues lie 15 degrees apart, so the toned allowance passed them at any saturation. Two
    low-detail images get no such allowance; the blue glow's copies, warmer or paler ones too, are still found."""
    blue = radial((0.539, 0.791), (134.2, 89.4, 206.2), (-21.1, 81.2, 100.1), 0)
    lilac = radial((0.462, 0.786), (134.2, 121.1, 130.2), (31.8, 42.4, 101.1), 1)
    verdict = in_colour(blue, lilac)
    assert not verdict.accepted and verdict.rule == "colour", verdict
    warm = Image.fromarray(np.clip(np.asarray(blue, np.float32) * [1.1, 1.0, 0.85], 0, 255).astype(np.uint8))
    for copy in (
        jpeg(blue, 30),
        blue.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        centre(blue, 0.8),
        warm,
        ImageEnhance.Color(blue).enhance(0.5),
    ):
        verdict = in_colour(blue, copy)
        assert verdict.accepted and verdict.rule == "low-detail", verdict


def spots(seed: int, size: int = 240) -> Image.Image:
    """A retina's or a slide's kind of picture: dark spots on a smooth, faintly shaded orange ground. Blurred by a
    few percent of its width, its spots fade into the ground and the copy is low-detail while the original is not."""
    rng = np.random.default_rng(seed)
    x = np.mgrid[0:size, 0:size][1] / size
    ground = 150 + 10 * np.cos(2 * np.pi * (x * rng.uniform(0.3, 0.8) + rng.uniform(0, 1)))
    image = Image.fromarray(np.stack([ground, ground * 0.6, ground * 0.3], axis=-1).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(3, 8)]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(60, 30, 20))
    return image


@pytest.mark.parametrize(("seed", "percent"), [(0, 6), (2, 10)])
def test_a_heavily_blurred_copy_matches_its_original_blurred_to_match(seed: int, percent: int, monkeypatch) -> None:
    """A blur of 6-10% of the width leaves a picture of small spots low-detail, 4-6 grey levels from its original
    pixel for pixel: the original's spots are no difference the copy could show. The sharper of the pair blurred by
    one of DEBLUR_SIGMAS matches it within a grey level; another picture of spots, blurred or not, stays apart."""

    def in_colour(a: Image.Image, b: Image.Image):
        batch = hash_images([a, b], ["phash"])
        return verify(batch.thumbs[0], batch.thumbs[1], colours=(batch.colours[0], batch.colours[1]))

    def blurred(image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(image.width * percent / 100))

    original, other = spots(seed), spots(seed + 10)
    verdict = in_colour(original, blurred(original))
    assert verdict.accepted and verdict.rule == "low-detail", verdict
    assert verdict.transform.startswith("the sharper blurred by"), verdict
    assert not in_colour(original, blurred(other)).accepted
    assert not in_colour(blurred(original), blurred(other)).accepted
    monkeypatch.setattr("finetuner.dedup.low_detail.DEBLUR_SIGMAS", ())
    assert not in_colour(original, blurred(original)).accepted


def test_the_block_means_bound_leaves_out_no_pair_the_pixels_would_match(monkeypatch) -> None:
    """`_blurred_match` compares pixel for pixel only the pairs whose block means lie within flat_max_difference:
    the mean difference of block means is never more than the pixels', so it matches what comparing every pair
    matches, at every sigma."""
    pictures = [spots(seed) for seed in range(4)]
    images = pictures + [p.filter(ImageFilter.GaussianBlur(p.width * 0.08)) for p in pictures]
    thumbs = np.stack([thumb(image) for image in images])
    i, j = np.triu_indices(len(images), 1)
    matched, difference, _ = low_detail._blurred_match(thumbs, i, j, VerifyRule())
    monkeypatch.setattr(low_detail, "COARSE", 1)  # blocks of one pixel: no pair left out
    assert matched.sum() == 4
    every = low_detail._blurred_match(thumbs, i, j, VerifyRule())
    assert (every[0] == matched).all() and np.allclose(every[1][matched], difference[matched])
