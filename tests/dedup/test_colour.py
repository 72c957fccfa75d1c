"""The colour check: a product photographed in another colour is not a copy; a copy with its colours edited as a whole
(grey, sepia, saturation, white balance, a slight hue turn, brightness, a caption bar) still is."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from finetuner.common.stage import write_csv
from finetuner.config import VerifyConfig, parse_params
from finetuner.dedup import colour_checks
from finetuner.dedup import stage as dedup
from finetuner.dedup.audit import margin
from finetuner.dedup.candidates import Verified
from finetuner.dedup.colour import colour_fit, colour_planes, equalized_fit
from finetuner.dedup.hashing import hash_images
from finetuner.dedup.retouched import _colour_contents, _hue_turn
from finetuner.dedup.verify import LOW_DETAIL_COLOUR_FIT, Verdicts, VerifyRule, verify
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes
from tests.dedup.test_low_detail import jpeg
from tests.dedup.test_surround import disc, soft
from tests.tasks.test_dedup import COLUMNS, add_image

WIDE = (4 / 3, 4 / 3)
SQUARE = (1.0, 1.0)


def product(hue: float, seed: int = 3) -> Image.Image:
    """A shirt-like object of one hue (0-1) on a light, softly shaded backdrop, with folds and a printed logo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320] / 320.0
    backdrop = 225 - 25 * y + rng.normal(0, 2, (240, 320))
    image = Image.fromarray(np.clip(np.dstack([backdrop] * 3), 0, 255).astype(np.uint8))
    mask = Image.new("L", (320, 240), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon([(90, 40), (230, 40), (290, 90), (250, 120), (240, 210), (80, 210), (70, 120), (30, 90)], fill=255)
    folds = Image.fromarray((150 + 60 * np.sin(x * 40 + y * 9) * np.cos(y * 13)).clip(0, 255).astype(np.uint8))
    planes = (Image.new("L", (320, 240), round(hue * 255) % 256), Image.new("L", (320, 240), 190), folds)
    hsv = Image.merge("HSV", planes)
    image.paste(hsv.convert("RGB"), (0, 0), mask.filter(ImageFilter.GaussianBlur(1)))
    ImageDraw.Draw(image).ellipse([140, 90, 180, 130], fill=(245, 245, 240), outline=(20, 20, 20), width=3)
    return image


def hue_turned(image: Image.Image, degrees: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    turn = round(degrees / 360 * 256)
    return Image.merge("HSV", (h.point(lambda k: (k + turn) % 256), s, v)).convert("RGB")


def decide(a: Image.Image, b: Image.Image, rule: VerifyRule | None = None, aspect: tuple[float, float] = WIDE):
    batch = hash_images([a, b], ["phash"])
    rule = rule or VerifyRule()
    return verify(batch.thumbs[0], batch.thumbs[1], rule, aspect, colours=(batch.colours[0], batch.colours[1]))


def sepia(image: Image.Image) -> Image.Image:
    grey = np.asarray(image.convert("L"), np.float32)[..., None]
    return Image.fromarray(np.clip(grey * np.array([1.07, 0.95, 0.75]) + [12, 4, -6], 0, 255).astype(np.uint8))


# CSS's sepia(1) (and most photo apps' sepia filter): its red and green channels clip on bright pixels
CSS_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def css_sepia(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float64) @ CSS_SEPIA.T, 0, 255)


def warmer(image: Image.Image) -> Image.Image:
    warm = np.asarray(image, np.float32) * [1.08, 1.0, 0.88] + [6, 0, -4]
    return Image.fromarray(np.clip(warm, 0, 255).astype(np.uint8))


def caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    ImageDraw.Draw(out).rectangle([0, 212, 320, 240], fill=(250, 250, 250))
    ImageDraw.Draw(out).text((8, 218), "SPRING SALE -30%", fill=(10, 10, 10))
    return out


EDITS = {
    "grey": lambda i: i.convert("L").convert("RGB"),
    "sepia": sepia,
    "saturated": lambda i: ImageEnhance.Color(i).enhance(1.7),
    "faded": lambda i: ImageEnhance.Color(i).enhance(0.5),
    "warmer": warmer,
    "hue turned 15 degrees": lambda i: hue_turned(i, 15),
    "brighter": lambda i: ImageEnhance.Brightness(i).enhance(1.25),
    "caption": caption,
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("picture", ["product", "photo"])
def test_copies_with_colours_edited_as_a_whole_are_accepted(edit: str, picture: str) -> None:
    if (picture, edit) == ("product", "sepia"):
        pytest.skip(
            "a sepia copy of a red product (the two hues more than one turn apart) looks like it in another colour"
        )
    original = product(0.02) if picture == "product" else photo(11, (320, 240))
    verdict = decide(original, EDITS[edit](original))
    assert verdict.accepted, (edit, verdict)


@pytest.mark.parametrize("seed", range(3))
def test_a_sepia_copy_of_a_bright_picture_fits_where_its_channels_clip(seed: int) -> None:
    """Most of a bright picture's pixels clip in a sepia filter's red and green: its tone bends with brightness,
    which a linear fit in luma explained 0.02 of."""
    bright = np.random.default_rng(seed).integers(140, 256, (1, 16, 16, 3))
    assert (bright @ CSS_SEPIA.T > 255).any(axis=-1).mean() > 0.5
    assert colour_fit(colour_planes(bright), colour_planes(css_sepia(bright))).item() == 1.0


@pytest.mark.parametrize("hue", [0.06, 0.1])
def test_a_sepia_copy_of_a_picture_of_one_warm_hue_is_a_copy(hue: float) -> None:
    original = product(hue)
    assert decide(original, Image.fromarray(css_sepia(original).astype(np.uint8))).accepted


def test_a_sepia_copy_of_a_blue_picture_is_taken_for_another() -> None:
    """A toned copy of a picture of one hue looks like the same shot in another colour; only a hue within one turn
    of a filter's is taken for a copy."""
    original = product(0.6)
    verdict = decide(original, Image.fromarray(css_sepia(original).astype(np.uint8)))
    assert not verdict.accepted and verdict.rule == "colour", verdict


@pytest.mark.parametrize("other_hue", [0.33, 0.6, 0.8])
def test_a_product_in_another_colour_is_rejected_by_the_colour_check_alone(other_hue: float) -> None:
    red, other = product(0.02), product(other_hue)
    verdict = decide(red, other)
    assert not verdict.accepted and verdict.rule == "colour" and verdict.colour < 0.5, verdict
    assert "colours differ" in verdict.transform
    assert decide(red, other, VerifyRule(min_colour_fit=-1)).accepted  # the grey verifier alone links them


def test_a_photo_with_its_hues_turned_round_is_not_a_copy() -> None:
    original = photo(11, (320, 240))
    assert decide(original, hue_turned(original, 90)).rule == "colour"  # the grey structure still agrees
    assert not decide(original, hue_turned(original, 180)).accepted


@pytest.mark.parametrize("seed", [7, 21])
def test_a_photo_with_its_hues_turned_30_degrees_is_compared_with_its_grey_turned_alike(seed: int) -> None:
    """A hue turn brightens some colours and darkens others: as the frames are, these two copies' grey correlates
    0.84-0.91 with the original's."""
    original = photo(seed, (320, 240))
    verdict = decide(original, hue_turned(original, 30))
    assert verdict.accepted and "hues turned +" in verdict.transform, verdict


@pytest.mark.parametrize("degrees", [-30, 15, 120])
def test_the_turn_of_hues_is_measured_from_the_colour_thumbnails(degrees: float) -> None:
    original = photo(7, (320, 240))
    batch = hash_images([original, hue_turned(original, degrees)], ["phash"])
    full = np.array([[0, 64, 0, 64]] * 2)
    a, b = (_colour_contents(batch.colours, np.array([k]), full[:1]) for k in (0, 1))
    assert abs(np.degrees(_hue_turn(a, b)[0]) - degrees) < 3


def test_two_plain_frames_of_other_colours_are_not_copies() -> None:
    noise = np.random.default_rng(0).normal(0, 1.0, (120, 160, 1))

    def plain(rgb):
        return Image.fromarray(np.clip(np.zeros((120, 160, 3)) + rgb + noise, 0, 255).astype(np.uint8))

    red, green = plain((200, 90, 90)), plain((70, 158, 70))  # about one grey level apart
    assert decide(red, plain((200, 90, 90))).accepted
    verdict = decide(red, green)
    assert not verdict.accepted and verdict.rule == "colour", verdict


def near_blank(luma: float, cb, cr, seed: int = 0) -> Image.Image:
    """A near-blank 320x240 field of the given luma and chroma (levels about 128; arrays vary across it) with sensor
    noise."""
    noise = np.random.default_rng(seed).normal(0, 1.0, (240, 320))
    ycc = np.stack(np.broadcast_arrays(luma + noise, 128 + np.asarray(cb), 128 + np.asarray(cr)), axis=-1)
    return Image.fromarray(np.clip(ycc, 0, 255).astype(np.uint8), "YCbCr").convert("RGB")


def test_two_flat_colours_are_each_one_edit_of_the_other_both_ways() -> None:
    """One way, a pale blue is a vivid red made grey and then tinted within MAX_SHIFT; the other way, no edit takes the
    pale blue to the red. `both_ways` (the low-detail pairs') asks for both."""
    red, blue = planes(-4.0, 57.0), planes(18.0, -10.0)
    assert colour_fit(red, blue).item() > 0.9
    assert colour_fit(red, blue, both_ways=True).item() < 0.3
    for copy in (planes(-3.0, 45.0), planes(0.0, 0.0), planes(-4.0, 57.0)):  # paler, grey, the same
        assert colour_fit(red, copy, both_ways=True).item() == 1.0


def test_two_near_blank_fields_of_other_colours_are_not_copies() -> None:
    """Near-blank frames agree in grey whatever they show, so colour decides them, held to one copy's edit each way
    and to LOW_DETAIL_COLOUR_FIT, and two plain ones to one colour (PLAIN_SHIFT). A vivid red field and a pale blue
    one of the same grey passed as a grey copy tinted (0.94 one way); a flat blue-green field and one whose hue
    drifts from green to yellow-green, 60 degrees of hue away, at 0.58. A grey field and one tinted 5 levels fit 0.64:
    refused as `low-detail-colour`, which the report judges by its fit less LOW_DETAIL_COLOUR_FIT. Their copies
    pass."""
    ramp = np.linspace(-1.0, 1.0, 320)[None, :]
    red, blue = near_blank(100, -4, 57), near_blank(100, 18, -10, seed=1)
    teal, drifting = near_blank(132, -12, -51), near_blank(132, -70 + 9 * ramp, -20 + 12 * ramp, seed=1)
    grey, tinted = near_blank(120, 0, 0), near_blank(120, 3, 4, seed=1)
    for a, b, rule in ((red, blue, "colour"), (teal, drifting, "colour"), (grey, tinted, "low-detail-colour")):
        verdict = decide(a, b)
        assert not verdict.accepted and verdict.rule == rule, verdict
        assert decide(a, b, VerifyRule(min_colour_fit=-1)).accepted  # grey alone links them
    refused = Verdicts(
        np.array([False]),
        np.array(["low-detail-colour"], dtype=object),
        np.array([0.99]),
        np.array([0.0]),
        np.array([1.0]),
        np.array([""], dtype=object),
        np.array([verdict.colour]),
    )
    found = Verified(np.array([0]), np.array([1]), np.array(["dhash"]), np.array([3]), refused)
    assert margin(found, VerifyConfig())[0] == pytest.approx(verdict.colour - LOW_DETAIL_COLOUR_FIT)  # below 0
    assert verdict.colour - LOW_DETAIL_COLOUR_FIT < 0 < verdict.colour - VerifyConfig().min_colour_fit
    for image in (red, blue, teal, drifting, grey, tinted):
        verdict = decide(image, jpeg(image, 40))
        assert verdict.accepted and verdict.rule == "low-detail", verdict


def test_two_plain_fields_are_copies_only_in_one_colour(monkeypatch) -> None:
    """Two plain fields of one grey are as alike as their mean colours: one of another tint, or a copy tinted warmer
    (a white balance edit), is another field of that colour, as a brightened one is another shade. Their chroma may
    differ by what a re-encode moves it (PLAIN_SHIFT), not by a copy's colour edit (MAX_SHIFT, and any saturation):
    within that, a field 8 levels off in chroma passed. Where the fields show shading, their warmer copies pass."""
    from finetuner.dedup import colour

    field, other = near_blank(120, 4, -6), near_blank(120, -2, 0, seed=1)
    warmer = Image.fromarray(np.clip(np.asarray(field, np.float32) * [1.1, 1.0, 0.85], 0, 255).astype(np.uint8))
    assert decide(field, jpeg(field, 40)).accepted and decide(field, field.resize((160, 120))).accepted
    for copy in (other, warmer):
        verdict = decide(field, copy)
        assert not verdict.accepted and verdict.rule in ("colour", "low-detail-colour"), verdict
    wallpaper = smooth_purple(1)
    warm_wallpaper = Image.fromarray(
        np.clip(np.asarray(wallpaper, np.float32) * [1.1, 1.0, 0.85], 0, 255).astype(np.uint8)
    )
    verdict = decide(wallpaper, warm_wallpaper)
    assert verdict.accepted and verdict.rule == "low-detail", verdict
    monkeypatch.setattr(colour, "PLAIN_SHIFT", colour.MAX_SHIFT)  # held to one colour edit, as before
    assert decide(field, other).accepted


def smooth_purple(seed: int) -> Image.Image:
    """A smooth wallpaper in saturated purple-reds: a ramp under a few soft blobs, no fine detail."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320] / 320.0
    field = 90 + 50 * (0.8 * x + 0.6 * y)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.15, 0.4)
        field = field + rng.uniform(-25, 25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    rgb = np.stack([field + 50, 0.4 * field, 0.7 * field + 10], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_smooth_picture_and_its_letterboxed_copy_are_compared_in_colour_inside_the_bars(seed: int) -> None:
    """The shading match finds the copy inside its bars; the colour check compares the same regions. Over the whole
    frames the black bars leave 0.08-0.14 of the chroma explained, and the copy was refused as `colour`."""
    image = smooth_purple(seed)
    boxed = Image.new("RGB", (320, 320))
    boxed.paste(image, (0, 40))
    batch = hash_images([image, boxed], ["phash"])
    assert colour_fit(colour_planes(batch.colours[:1]), colour_planes(batch.colours[1:])).item() < 0.2
    verdict = decide(image, boxed, aspect=(4 / 3, 1.0))
    assert verdict.accepted and verdict.rule == "low-detail" and verdict.colour > 0.95, verdict
    assert "content inside the bars" in verdict.transform


def test_colour_fit_has_no_evidence_where_an_image_carries_no_colour() -> None:
    rng = np.random.default_rng(1)
    colourful = colour_planes(rng.integers(0, 256, (2, 16, 16, 3)))
    grey = colour_planes(np.repeat(rng.integers(0, 256, (2, 16, 16, 1)), 3, axis=3))
    assert colour_fit(colourful, grey).tolist() == [1.0, 1.0]  # a grey image says nothing about colours
    assert colour_fit(colourful[:1], colourful[1:]).item() < 0.3  # two random colour fields do not fit
    assert colour_fit(colourful, colourful * 0.5 + 5).min() > 0.99  # a global edit does


def planes(cb: np.ndarray | float, cr: np.ndarray | float) -> np.ndarray:
    """One 16x16 region's colour planes: a mid-grey luma ramp and the given chroma."""
    luma = np.linspace(60.0, 200.0, 16)[None, :].repeat(16, axis=0)
    return np.stack(np.broadcast_arrays(luma, cb, cr), axis=-1)[None]


def test_a_side_without_colour_structure_is_held_to_the_others_mean_colour() -> None:
    """A flat side (grey, or one tint throughout) fits a colourful one only where its mean colour is one edit of the
    other's: it passed whatever its colour while the other side had some structure."""
    rng = np.random.default_rng(4)
    blues = planes(40 + rng.normal(0, 8, (16, 16)), -20 + rng.normal(0, 8, (16, 16)))  # a picture of blues
    for flat in (planes(2.0, 40.0), planes(-30.0, -25.0)):  # maroon; green
        assert colour_fit(blues, flat).item() < 0.3 and colour_fit(flat, blues).item() < 0.3
    for flat in (planes(0.0, 0.0), planes(30.0, -15.0), planes(-6.0, 8.0)):  # grey; bluish; a faint warm tint
        assert colour_fit(blues, flat).item() == colour_fit(flat, blues).item() == 1.0


def test_a_flat_tinted_picture_is_no_copy_of_a_colourful_one_alike_in_grey() -> None:
    grey = np.asarray(photo(5, (320, 240)).convert("L"), np.float32)
    drift = np.linspace(-1.0, 1.0, 320)[None, :] * np.linspace(-1.0, 1.0, 240)[:, None]

    def coloured(cb, cr) -> Image.Image:
        ycc = np.stack(np.broadcast_arrays(grey, 128 + np.asarray(cb), 128 + np.asarray(cr)), axis=-1)
        return Image.fromarray(np.clip(ycc, 0, 255).astype(np.uint8), "YCbCr").convert("RGB")

    blues = coloured(35 + 15 * drift, -15 - 10 * drift)  # hues drifting from blue to cyan
    verdict = decide(blues, coloured(0.0, 35.0))  # the same grey in one flat red
    assert not verdict.accepted and verdict.rule == "colour", verdict
    assert decide(blues, coloured(0.0, 35.0), VerifyRule(min_colour_fit=-1)).accepted  # grey alone links them
    assert decide(blues, coloured(0.0, 0.0)).accepted  # a grey copy
    assert decide(blues, coloured(6.0, -4.0)).accepted  # a grey copy faintly tinted


def in_hues(grey: np.ndarray, several: bool) -> Image.Image:
    """A grey picture coloured: with several hues (turning across it), or with one muted purple-red whose colour
    follows its brightness, as a toned copy's does."""
    if several:
        hue = np.linspace(0, 150, grey.shape[1])[None, :].repeat(grey.shape[0], axis=0)
        hsv = np.stack([hue, np.full_like(grey, 110), grey], axis=-1).astype(np.uint8)
        return Image.fromarray(hsv, "HSV").convert("RGB")
    return Image.fromarray(np.clip(np.stack([grey * 1.12 + 10, grey * 0.8, grey + 6], -1), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(("seeds", "mix"), [((1, 2), 0.4), ((3, 4), 0.3), ((5, 6), 0.5), ((7, 8), 0.4)], ids=str)
def test_inside_a_frame_colours_agreeing_only_as_a_toned_copys_leave_the_grey_at_the_verifiers_bar(
    seeds, mix, monkeypatch
):
    """Two pictures in one disc whose grey agrees inside it at 0.85-0.93 (the surround check's bar, not the
    verifier's), one of several hues, the other of one muted hue that follows its brightness: the colour check
    takes the second for a toned copy of the first, which is no evidence of one. (Most such pairs are also refused
    for their shading inside the frame, surround.shading_apart; without that, the toned rule alone.)"""
    first, second = (np.asarray(soft(seed).convert("L"), np.float32) for seed in seeds)
    a, b = disc(in_hues(first, several=True)), disc(in_hues((1 - mix) * first + mix * second, several=False))
    assert not decide(a, b, aspect=SQUARE).accepted
    monkeypatch.setattr("finetuner.dedup.surround.BEYOND_SHADING", float("inf"))
    verdict = decide(a, b, aspect=SQUARE)
    assert not verdict.accepted and verdict.rule == "toned" and "toned copy" in verdict.transform, verdict
    assert 0.85 <= verdict.similarity < 0.93
    monkeypatch.setattr("finetuner.dedup.colour_checks._toned_in_frame", lambda *args: None)
    without = decide(a, b, aspect=SQUARE)
    assert without.accepted and without.rule == "frame" and without.colour == 1.0, without
    refused = Verdicts(
        np.array([False]),
        np.array(["toned"], dtype=object),
        np.array([verdict.similarity]),
        np.array([0.9]),
        np.array([1.0]),
        np.array([""], dtype=object),
    )
    found = Verified(np.array([0]), np.array([1]), np.array(["full~full"]), np.array([3]), refused)
    assert margin(found, VerifyConfig())[0] == pytest.approx(verdict.similarity - 0.93)  # short of the verifier's bar
    sepia_copy = disc(Image.fromarray(css_sepia(in_hues(first, several=True)).astype(np.uint8)))
    monkeypatch.undo()
    assert decide(a, sepia_copy, aspect=SQUARE).accepted  # a toned copy agrees as a copy does


def muted(image: Image.Image) -> Image.Image:
    """A picture whose red channel spans a narrow band of middle tones and whose blue stays dark: equalizing each
    channel on its own changes its colours far beyond one global colour edit."""
    x = np.asarray(image, np.float32) / 255.0
    return Image.fromarray((np.array([110, 20, 10]) + x * np.array([40, 230, 60])).clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", [3, 11, 21])
def test_a_copy_equalized_channel_by_channel_is_compared_on_its_equalized_colours(seed: int, monkeypatch) -> None:
    """Pillow's ImageOps.equalize (and torchvision's) equalizes each channel on its own; seed 3's grey agrees only
    over local contrast, where a toned copy's allowance is no evidence, and its equalized colours are."""
    original = muted(photo(seed, (320, 240)))
    copy = ImageOps.equalize(original)
    verdict = decide(original, copy)
    assert verdict.accepted and "colours alike once each channel is equalized" in verdict.transform, verdict
    monkeypatch.setattr(colour_checks, "EQUALIZED_MIN_FIT", 2.0)  # no fit reaches it: the colour check as it was
    verdict = decide(original, copy)
    assert not verdict.accepted and verdict.rule in ("colour", "toned"), verdict


@pytest.mark.parametrize("seed", [11, 21])
@pytest.mark.parametrize("degrees", [120, 240])
def test_a_twin_in_other_colours_is_no_copy_with_its_channels_equalized(seed: int, degrees: int) -> None:
    original = muted(photo(seed, (320, 240)))
    twin = hue_turned(original, degrees)
    for a, b in ((original, twin), (ImageOps.equalize(original), twin), (original, ImageOps.equalize(twin))):
        verdict = decide(a, b)
        assert not verdict.accepted and "equalized" not in verdict.transform, verdict


def test_pictures_that_equalize_to_grey_have_no_equalized_colours_to_agree_in() -> None:
    """A grey or sepia copy's channels all rank its pixels as its luma does: equalized, it is grey, and so is every
    equalized region's mean colour; a picture in other colours must not pass through that."""
    original = product(0.02)
    batch = hash_images([original, sepia(original), original.convert("L").convert("RGB"), product(0.6)], ["phash"])
    planes = colour_planes(batch.colours)
    for toned in (1, 2):
        assert equalized_fit(planes[toned : toned + 1], planes[3:]).item() == 0.0
    assert equalized_fit(planes[:1], planes[:1]).item() == 1.0  # colours of its own: itself
    assert equalized_fit(planes[:1], planes[3:]).item() < 0.1  # the same shirt in blue


def test_the_stage_keeps_a_shirt_apart_from_the_same_shot_in_blue(tmp_path: Path) -> None:
    rows: list[dict] = []
    red = product(0.02)
    add_image(tmp_path, rows, "shirt/red.jpg", to_jpeg_bytes(red), "red")
    add_image(tmp_path, rows, "shirt/red_small.jpg", to_jpeg_bytes(red.resize((240, 180))), "red-reposted")
    add_image(tmp_path, rows, "shirt/blue.jpg", to_jpeg_bytes(product(0.6)), "blue")
    write_csv(tmp_path / dedup.MANIFEST, rows, COLUMNS)
    summary = dedup.run(parse_params({"data": {"workers": 1}}), tmp_path)
    with (tmp_path / dedup.PAIRS_CSV).open(newline="") as handle:
        pairs = {(p["path_a"], p["path_b"]): p for p in csv.DictReader(handle)}
    assert set(pairs) == {("shirt/red.jpg", "shirt/red_small.jpg")}
    assert float(pairs["shirt/red.jpg", "shirt/red_small.jpg"]["colour"]) > 0.9  # the evidence column
    rejected = [p for p in summary["nearest_rejected"] if "shirt/blue.jpg" in (p["path_a"], p["path_b"])]
    assert rejected and {p["rule"] for p in rejected} == {"colour"} and all(p["colour"] < 0.5 for p in rejected)


def test_a_copy_brightened_past_white_is_compared_on_its_colours_clipped_alike(monkeypatch) -> None:
    """Brightened 2.5x, each channel clips where it reaches white, so the copy's colours bend toward white by amounts
    no one global colour edit explains; its original's colours clipped by the same map as its grey agree. A twin in
    other colours, brightened or not, agrees in grey that way too, and not in colour."""
    original = photo(8, (320, 240))
    copy = ImageEnhance.Brightness(original).enhance(2.5)
    verdict = decide(original, copy)
    assert verdict.accepted and "colours alike once clipped alike" in verdict.transform, verdict
    for degrees in (120, 240):
        twin = hue_turned(original, degrees)
        for a, b in ((original, ImageEnhance.Brightness(twin).enhance(2.5)), (twin, copy)):
            verdict = decide(a, b)
            assert not verdict.accepted and "clipped alike (" not in verdict.transform, verdict
    unclipped = lambda thumbs, colours, trims, i, *rest: np.zeros(len(i), bool)  # noqa: E731 - the check as it was
    monkeypatch.setattr(colour_checks, "_clipped", unclipped)
    verdict = decide(original, copy)
    assert not verdict.accepted and verdict.rule == "colour", verdict
