"""The shape check for graphics: copies of a drawn letter pass, look-alike designs of it do not, photos are not
graphics, and the verifier applies the check only when it is on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from finetuner.config import VerifyConfig
from finetuner.dedup.audit import margin, verify_tradeoff
from finetuner.dedup.candidates import Verified
from finetuner.dedup.hashing import hash_images
from finetuner.dedup.shape import CAPTION_AGREEMENT, MAX_ANISOTROPY, clipped_alike, graphic, shape_agreement
from finetuner.dedup.verify import Verdicts, VerifyRule, verify
from finetuner.demo.synthetic_photos import photo


def letter(leg=0.85, bowl=0.5, stroke=14, shift=(0, 0), scale=1.0, size=48) -> Image.Image:
    """An R drawn at 4x and reduced (anti-aliased like a rendered font): stem, bowl and a leg whose end and the bowl's
    height set the design."""
    big = 4 * size
    image = Image.new("L", (big, big), 235)
    draw = ImageDraw.Draw(image)

    def s(v: float) -> int:
        return int(v * scale)

    x0, top = 50 + 4 * shift[0], 30 + 4 * shift[1]
    bottom, mid = top + s(130), top + s(130 * bowl)
    width = s(stroke)
    draw.line([(x0, top), (x0, bottom)], fill=20, width=width)
    draw.arc([x0 - s(40), top, x0 + s(80), mid], -90, 90, fill=20, width=width)
    draw.line([(x0, top), (x0 + s(40), top)], fill=20, width=width)
    draw.line([(x0, mid - width // 2), (x0 + s(40), mid - width // 2)], fill=20, width=width)
    draw.line([(x0 + s(30), mid), (x0 + s(130 * leg) - s(40), bottom)], fill=20, width=width)
    return image.resize((size, size), Image.LANCZOS).convert("RGB")


def thumb(image: Image.Image) -> np.ndarray:
    return hash_images([image], ["phash"]).thumbs[0]


def cell(seed: int, size: int = 192) -> Image.Image:
    """A bright textured cell on a culture dish's grey, low-contrast grain (like scikit-image's `cell`): most of the
    frame lies within a few grey levels of its border, as texture rather than one tone."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), 3)
    grain /= grain.std()
    blob = np.exp(-((x - 0.65) ** 2 + (y - 0.6) ** 2) / 0.006)
    image = 120 + 3 * grain + blob * (70 + 10 * grain)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB")


SQUARE = (1.0, 1.0)


def test_letters_are_graphics_and_photos_are_not():
    thumbs = np.stack([thumb(letter()), thumb(photo(3, (96, 72))), thumb(photo(4, (96, 72))), thumb(cell(2))])
    assert graphic(thumbs).tolist() == [True, False, False, False]


@pytest.mark.parametrize("seed", [2, 4, 5])
def test_a_crop_of_a_low_contrast_photo_is_a_copy(seed):
    """Its grain is fine detail the refit cannot match across a crop's rescale (the shape check scored these copies
    0.89 to 0.96): the photo is left to the verifier's main rule, which accepts the crop."""
    image = cell(seed)
    cropped = image.crop((0, 0, 182, 182))
    verdict = verify(thumb(image), thumb(cropped), aspect=SQUARE)
    assert verdict.accepted and verdict.rule == "aligned", verdict


@pytest.mark.parametrize(
    "copy",
    [
        letter(shift=(2, 1), scale=1.04),  # placed and sized a little differently, as a re-render or rescale
        letter().filter(ImageFilter.GaussianBlur(0.8)),  # softer edges, not moved ones
        letter().resize((64, 64), Image.BICUBIC),  # the same image at another resolution
    ],
    ids=["shifted-rescaled", "blurred", "upscaled"],
)
def test_copies_of_a_letter_pass_the_shape_check(copy):
    verdict = verify(thumb(letter()), thumb(copy), aspect=SQUARE)
    assert verdict.accepted and verdict.rule == "shape", verdict
    assert verdict.detail_similarity >= 0.98 and "affine refit" in verdict.transform


@pytest.mark.parametrize(
    "design", [dict(leg=0.9), dict(bowl=0.47), dict(stroke=17), dict(leg=0.92, stroke=12)], ids=str
)
def test_look_alike_designs_are_rejected_by_the_shape_check_alone(design):
    a, b = thumb(letter()), thumb(letter(**design))
    verdict = verify(a, b, aspect=SQUARE)
    assert not verdict.accepted and verdict.rule == "shape", verdict
    without = verify(a, b, VerifyRule(min_shape_similarity=-1), aspect=SQUARE)
    assert without.accepted and without.rule == "aligned", without  # what the check is there for


def test_a_wider_letter_is_another_design():
    """Stretched 8% wide, the letter still passes the verifier's proportions limit (max_stretch) and its detail
    agrees after the refit, but a refit that changes proportions is no copy of a graphic."""
    narrow = letter()
    wide = narrow.resize((52, 48), Image.LANCZOS).crop((2, 0, 50, 48))
    verdict = verify(thumb(narrow), thumb(wide), aspect=SQUARE)
    assert not verdict.accepted and verdict.rule == "shape", verdict
    anisotropy = float(verdict.transform.split("anisotropy ")[1].split(",")[0])
    assert verdict.detail_similarity >= 0.98 and anisotropy > MAX_ANISOTROPY, verdict  # refused for its proportions


def test_shape_agreement_ignores_what_a_crop_cut_away():
    whole = np.asarray(letter(size=64).convert("L"), np.float32)
    cropped = np.asarray(letter(size=64).convert("L").crop((0, 0, 58, 64)).resize((64, 64)), np.float32)
    score, anisotropy, how = shape_agreement(whole, cropped)
    assert score >= 0.98 and anisotropy < 0.12, how
    assert shape_agreement(whole, np.full_like(whole, 235.0))[0] < 0.5  # a blank page has no shape in common


def test_margin_measures_shape_rows_against_their_own_threshold():
    config = VerifyConfig()
    verdicts = Verdicts(
        np.array([False, True]),
        np.array(["shape", "aligned"], dtype=object),
        np.array([0.97, 0.97]),
        np.array([0.95, 0.95]),
        np.array([1.0, 1.0]),
        np.array(["", ""], dtype=object),
    )
    found = Verified(np.array([0, 1]), np.array([1, 2]), np.array(["full~full"] * 2), np.zeros(2), verdicts)
    assert margin(found, config).round(4).tolist() == [round(0.95 - config.min_shape_similarity, 4), 0.04]


def test_tradeoff_row_at_the_threshold_is_the_verdicts_as_they_are():
    config = VerifyConfig()  # min_similarity 0.93
    verdicts = Verdicts(
        np.array([True, True, False, False, True, False]),
        np.array(["aligned", "aligned", "aligned", "shape", "low-detail", "aligned"], dtype=object),
        np.array([0.97, 0.94, 0.91, 0.96, 0.99, 0.95]),
        np.array([0.9, 0.9, 0.9, 0.95, 0.0, 0.9]),
        np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        np.array([""] * 6, dtype=object),
    )
    # the last row was rejected although similar enough (its proportions were stretched): no threshold brings it back
    found = Verified(np.arange(6), np.arange(6) + 6, np.array(["full~full"] * 6), np.zeros(6), verdicts)
    pairs = {row["min_similarity"]: row["pairs"] for row in verify_tradeoff(12, found, config)}
    assert pairs == {0.87: 4, 0.9: 4, 0.93: 3, 0.95: 2, 0.97: 2}, pairs


def test_a_caption_bar_across_a_graphic_leaves_a_copy():
    """The rest of the frame agrees to CAPTION_AGREEMENT once the bar's band is left out; a look-alike design does not
    get that far (test_look_alike_designs_are_rejected_by_the_shape_check_alone runs the same path)."""
    page = Image.new("RGB", (64, 64), (235, 235, 235))
    page.paste(letter(), (8, 2))
    captioned = page.copy()
    draw = ImageDraw.Draw(captioned)
    draw.rectangle([0, 56, 64, 64], fill=(20, 20, 20))
    draw.text((4, 55), "(c) 2024", fill=(250, 250, 250))
    verdict = verify(thumb(page), thumb(captioned), aspect=SQUARE)
    assert verdict.accepted and verdict.rule == "shape" and "less the bottom band" in verdict.transform, verdict
    assert verdict.detail_similarity >= CAPTION_AGREEMENT


def product_shot(seed: int, w: int = 320, h: int = 240) -> Image.Image:
    """A catalogue's product shot: a photo cut to a smooth outline on a nearly white studio ground, in a soft shadow.
    Half the frame is the plain ground, so the verifier takes it for a graphic."""
    mask = Image.new("L", (w, h), 0)
    turns = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    radius = h * 0.33 * (1 + 0.2 * np.sin(3 * turns + seed))
    outline = [(w / 2 + 1.2 * r * np.cos(t), h / 2 + r * np.sin(t)) for r, t in zip(radius, turns)]
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    shadow = mask.filter(ImageFilter.GaussianBlur(7)).point(lambda v: v // 2)
    studio, shade = Image.new("RGB", (w, h), (248, 248, 246)), Image.new("RGB", (w, h), (170, 170, 168))
    ground = Image.composite(shade, studio, shadow)
    return Image.composite(photo(seed, (w, h)), ground, mask)


def brightened(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.3)


@pytest.mark.parametrize("seed", [2, 3, 6, 8, 9, 10, 11])
def test_a_brightened_product_shot_is_a_copy(seed):
    """Brightened 1.3x, the ground and the shadow's light edge clip to white, which moves the edges the refit fits to
    and flattens the shading the original keeps there: each of these copies scored 0.91-0.98 before the original was
    compared with its tones clipped as the copy's."""
    shot = product_shot(seed)
    verdict = verify(thumb(shot), thumb(brightened(shot)), aspect=(4 / 3, 4 / 3))
    assert verdict.accepted and verdict.rule == "shape" and "tones clipped as the other's" in verdict.transform, verdict


@pytest.mark.parametrize("design", [dict(leg=0.9), dict(bowl=0.47), dict(stroke=17)], ids=str)
def test_a_brightened_look_alike_design_is_still_another_design(design):
    """A letter on light paper brightened until the paper clips: its tones matched, its strokes still differ."""
    verdict = verify(thumb(letter()), thumb(brightened(letter(**design))), aspect=SQUARE)
    assert not verdict.accepted and verdict.rule == "shape", verdict
    copy = verify(thumb(letter()), thumb(brightened(letter())), aspect=SQUARE)
    assert copy.accepted and copy.rule == "shape", copy


def test_tones_are_matched_only_where_one_image_is_clipped_and_the_other_is_not():
    light = np.asarray(product_shot(2).convert("L"), np.float32)
    assert not list(clipped_alike(light, light))  # neither clipped
    bright = np.asarray(brightened(product_shot(2)).convert("L"), np.float32)
    (p, q, how), *others = clipped_alike(light, bright)
    assert not others and q is bright and "a's tones" in how
    assert np.mean(p >= 253) > 0.3 and np.mean(light >= 253) < 0.002  # the original's ground now clips as the copy's
    paper = np.full((64, 64), 255.0, np.float32)
    paper[20:40, 20:40] = 30.0
    ink = paper.copy()
    ink[10:50, 30:34] = 30.0
    assert not list(clipped_alike(paper, ink))  # two drawings on one white: their strokes are not remapped


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_a_product_shot_resized_to_another_shape_is_a_copy(seed):
    """A 4:3 shot resized to a square: its product is 25% narrower, past what a graphic's own proportions may change,
    but the whole file was resized, frame onto frame, and on the squashed thumbnails it is the original."""
    shot = product_shot(seed)
    square = shot.resize((240, 240), Image.LANCZOS)
    verdict = verify(thumb(shot), thumb(square), aspect=(4 / 3, 1.0))
    assert verdict.accepted and verdict.rule == "shape" and "the whole file resized" in verdict.transform, verdict
    stranger = verify(thumb(product_shot(seed + 20)), thumb(square), aspect=(4 / 3, 1.0))
    assert not stranger.accepted, stranger


def test_a_letter_drawn_wider_on_a_canvas_of_one_shape_is_another_design():
    """Two designs of a letter on canvases of one shape, one drawn 25% wider: the proportions changed inside the
    frames, not with them, so the stretch is the design's."""
    narrow = letter()
    wide = narrow.resize((60, 48), Image.LANCZOS).crop((6, 0, 54, 48))
    verdict = verify(thumb(narrow), thumb(wide), aspect=SQUARE)
    assert not verdict.accepted and verdict.rule == "shape", verdict
    assert "the whole file resized" not in verdict.transform, verdict


@pytest.mark.parametrize("seed", [12, 18])
def test_a_product_shot_cut_into_at_one_side_is_a_copy(seed):
    """Cut 15% at the top, into the product: the regions are placed as a uniform scale of the squashed thumbnails
    and refitted, and the refit's warp takes back the stretch that placement implies. The shape check measures the
    proportions of the whole map, the refit's warp included (0.07-0.09 when it was left out)."""
    shot = product_shot(seed)
    w, h = shot.size
    cut = shot.crop((0, 36, w, h))
    verdict = verify(thumb(shot), thumb(cut), aspect=(w / h, w / (h - 36)))
    assert verdict.accepted and verdict.rule == "shape" and "refit" in verdict.transform, verdict


def test_the_shape_check_counts_a_warp_the_regions_were_placed_by():
    """A letter drawn 15% wider, warped back onto the narrower one by an earlier refit, agrees with it as it lies: the
    proportions the check judges are those of the whole map, the earlier warp included."""
    narrow = np.asarray(letter(size=64).convert("L"), np.float32)
    wide = cv2.resize(narrow, (74, 64), interpolation=cv2.INTER_AREA)[:, 5:69]  # the letter 15% wider, centred
    back = np.array([[74 / 64, 0, -5], [0, 1, 0]], np.float32)  # wide's pixel for each of narrow's
    placed = cv2.warpAffine(
        wide, back, (64, 64), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    score, anisotropy, _ = shape_agreement(narrow, placed)
    assert score >= 0.98 and anisotropy <= MAX_ANISOTROPY  # as it lies: the stretch is hidden in the placement
    score, anisotropy, _ = shape_agreement(narrow, placed, frames=((1.0, 1.0), (1.0, 1.0), back[:, :2]))
    assert anisotropy > MAX_ANISOTROPY, anisotropy
