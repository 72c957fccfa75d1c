"""Candidate views and the verifier on made-up pairs: a crop, a mirror, a letterbox, a caption bar, near-blank images,
two photos of one scene, unrelated photos; and the per-image candidate cap."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from finetuner.dedup import trims, views
from finetuner.dedup.align import band_boxes, signal_boxes
from finetuner.dedup.candidates import merge_candidates
from finetuner.dedup.hashing import hash_files, hash_images
from finetuner.dedup.neighbours import hamming
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.refit import PHOTO_MAX_TURN, REFIT_MAX_TURN, max_turns, refit
from finetuner.dedup.trims import trim_box
from finetuner.dedup.verify import VerifyRule, best_signal, verify, verify_pairs
from finetuner.dedup.view_search import Candidates, nearest_per_image, subset, view_candidates
from finetuner.dedup.views import CORNERS, TILT_MARGIN, VIEWS, allowed_combos, square_boxes, view_hashes
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes


def thumb(image: Image.Image) -> np.ndarray:
    return hash_images([image], ["phash"]).thumbs[0]


def crop(image: Image.Image, left=0.0, top=0.0, right=0.0, bottom=0.0) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), w - round(right * w), h - round(bottom * h)))


def letterbox(image: Image.Image) -> Image.Image:
    w, h = image.size
    canvas = Image.new("RGB", (w, int(h * 1.4)), (0, 0, 0))
    canvas.paste(image, (0, int(h * 0.2)))
    return canvas


def caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle([0, int(h * 0.88), w, h], fill=(15, 15, 15))
    ImageDraw.Draw(out).text((8, int(h * 0.9)), "copyright 2024", fill=(250, 250, 250))
    return out


def near_blank(colour: tuple[int, int, int], seed: int, slope: float = 0.0) -> Image.Image:
    """A plain frame with sensor noise; `slope` adds a faint left-to-right shading (grey levels across the frame)."""
    rng = np.random.default_rng(seed)
    shading = (np.linspace(-0.5, 0.5, 160) * slope)[None, :, None]
    field = np.zeros((120, 160, 3)) + np.array(colour) + shading + rng.normal(0, 1.5, (120, 160, 1))
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


def scene(objects_seed: int, angle: float) -> Image.Image:
    """One place photographed twice: the same background, people moved, the camera turned a little."""
    background = photo(7, (200, 150))
    rng = np.random.default_rng(objects_seed)
    draw = ImageDraw.Draw(background)
    for _ in range(5):
        x, y = rng.uniform(20, 180), rng.uniform(20, 130)
        draw.ellipse([x - 14, y - 22, x + 14, y + 22], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return crop(background.rotate(angle, resample=Image.Resampling.BICUBIC), 0.08, 0.08, 0.08, 0.08)


BASE = photo(11, (160, 120))
COPIES = {
    "crop 10% one side": crop(BASE, right=0.10),
    "crop up to 10% each side": crop(BASE, 0.07, 0.03, 0.02, 0.09),
    "mirror": ImageOps.mirror(BASE),
    "letterbox": letterbox(BASE),
    "caption bar": caption(BASE),
    "rescale + brightness": Image.eval(BASE.resize((96, 72)), lambda v: min(255, int(v * 1.2))),
}


def test_a_whole_frame_is_compared_whole_opposite_a_cut_and_inside_its_bars_otherwise() -> None:
    """A cut (crop90, bottom90, a corner, the centre square) is a box of the whole frame, margins included, and was
    hashed against the whole frame: opposite one, "full" and "mirror" name the whole frame. Opposite a whole frame
    or the trimmed one, a whole frame is compared inside its bars, where a letterboxed copy matches it."""
    trim_a, trim_b = (4, 60, 3, 61), (0, 58, 3, 61)  # a page's margins; its copy cut at the top
    whole = (0, 64, 0, 64)
    assert signal_boxes("bottom90~full", trim_a, trim_b)[:2] == ((6, 64, 0, 64), whole)
    assert signal_boxes("mirror~crop90", trim_a, trim_b)[:3] == (whole, (3, 61, 3, 61), True)
    assert signal_boxes("full~full", trim_a, trim_b)[:2] == (trim_a, trim_b)
    assert signal_boxes("full~trim", trim_a, trim_b)[:2] == (trim_a, trim_b)
    assert {views.whole_frame(v, "crop80") for v in ("full", "mirror")} == {"full"}
    assert views.whole_frame("trim", "crop80") == "trim" and views.whole_frame("crop80", "full") == "crop80"


@pytest.mark.parametrize("kind", sorted(COPIES))
def test_verifier_accepts_real_edits(kind: str) -> None:
    verdict = verify(thumb(BASE), thumb(COPIES[kind]))
    assert verdict.accepted, verdict
    assert verdict.rule == "aligned"
    if kind == "mirror":
        assert "mirror" in verdict.transform


def texture(seed: int, sigma: float = 3.0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Fine texture over coarser shading (grass, gravel): its views line up only where the crop does."""
    rng = np.random.default_rng(seed)
    field = sum(
        cv2.GaussianBlur(rng.normal(0, 1, size[::-1]).astype(np.float32), (0, 0), s) * s for s in (sigma, 4 * sigma)
    )
    return Image.fromarray(np.clip(128 + field / field.std() * 45, 0, 255).astype(np.uint8)).convert("RGB")


def test_a_crop_beyond_a_scale_and_a_shift_is_refitted(monkeypatch) -> None:
    """Mirrored after a crop of 7% off one side and the bottom: no view pair and no uniform placement lines the two
    up (the proportions changed); the affine refit does, and only the refit."""
    original = texture(0)
    copy = ImageOps.mirror(crop(original, left=0.07, bottom=0.07))
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "refit" in verdict.transform and "mirror" in verdict.transform, verdict
    monkeypatch.setattr("finetuner.dedup.searches.refit", lambda *args: None)
    monkeypatch.setattr("finetuner.dedup.searches._place_frames", lambda *args: None)  # which finds it another way
    assert not verify(thumb(original), thumb(copy)).accepted
    assert not verify(thumb(original), thumb(texture(1))).accepted


@pytest.mark.parametrize("corner", ["bottom right", "top left"])
def test_a_corner_crop_is_found_by_placing_the_whole_frames(corner: str, monkeypatch) -> None:
    """10% off two sides at a corner: every view pair is 5-10% off the crop, too far for the local search to start;
    the two whole frames place one inside the other."""
    original = texture(1)
    copy = crop(original, right=0.1, bottom=0.1) if corner == "bottom right" else crop(original, left=0.1, top=0.1)
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and verdict.transform.startswith("full of a = full of b, b in a"), verdict
    assert not verify(thumb(original), thumb(texture(2))).accepted
    monkeypatch.setattr("finetuner.dedup.searches._place_frames", lambda *args: None)
    assert not verify(thumb(original), thumb(copy)).accepted


def test_a_copy_trimmed_otherwise_is_compared_where_both_trims_agree(monkeypatch) -> None:
    """A dark, faintly grained top (a night sky) is content on the original and a bar on its lower-contrast copy: the
    trimmed frames are then 8 to 12 rows apart, and only the comparisons across the two trims (inside both, or one
    whole frame with the other inside its bars) line them up."""
    rng = np.random.default_rng(3)
    original = thumb(texture(1, sigma=2.0)).astype(np.float32)
    original[:12] = 40 + rng.normal(0, 4.5, (12, 64))
    copy = original.mean() + (original - original.mean()) * 0.6
    original, copy = (np.clip(x, 0, 255).astype(np.uint8) for x in (original, copy))
    assert trim_box(original) == (0, 64, 0, 64) and trim_box(copy)[0] >= 8, trim_box(copy)
    verdict = verify(original, copy)
    assert verdict.accepted and verdict.transform.startswith("identity, ") and "bars" in verdict.transform, verdict
    monkeypatch.setattr("finetuner.dedup.searches.untrimmed", lambda *args: None)
    assert not verify(original, copy).accepted


def test_a_mirrored_copy_trimmed_otherwise_is_compared_mirrored() -> None:
    """As above, on a mirrored copy: the two frames' trims differ, and what both keep is compared with the copy
    mirrored back, by the verifier and by the prescreen's look (both compared the frames unmirrored, and refused
    scikit-image's mirrored cell culture, whose faint bottom edge passed for a bar on the copy alone, at 0.01)."""
    rng = np.random.default_rng(3)
    original = thumb(texture(1, sigma=2.0)).astype(np.float32)
    original[:12] = 40 + rng.normal(0, 4.5, (12, 64))
    copy = (original.mean() + (original - original.mean()) * 0.6)[:, ::-1]
    original, copy = (np.clip(x, 0, 255).astype(np.uint8) for x in (original, copy))
    assert trim_box(original) == (0, 64, 0, 64) and trim_box(copy)[0] >= 8, trim_box(copy)
    pair, signal = np.stack([original, copy]), ["full~mirror"]
    verdict = verify_pairs(pair, np.array([0]), np.array([1]), signal).row(0)
    assert verdict.accepted and verdict.transform.startswith("mirror: identity, "), verdict
    assert prescreen(pair, np.array([0]), np.array([1]), signal)[0] >= 0.9
    assert not verify_pairs(pair, np.array([0]), np.array([1]), ["full~full"]).row(0).accepted  # unmirrored: no copy


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_a_cropped_mirror_image_is_found_when_its_signal_named_no_mirror(seed: int) -> None:
    """A nearly symmetric picture hashes about as close to its mirrored copy unmirrored as mirrored, so the candidate
    can name no mirror ("full~full"); the whole frames are then also placed mirrored. A stranger placed so is not."""
    arr = np.asarray(photo(seed, (160, 120)), np.float32)
    picture = Image.fromarray((0.75 * arr + 0.25 * arr[:, ::-1]).astype(np.uint8))
    copy = ImageOps.mirror(crop(picture, left=0.07, top=0.03))
    verdict = verify_pairs(np.stack([thumb(picture), thumb(copy)]), np.array([0]), np.array([1]), ["full~full"]).row(0)
    assert verdict.accepted and verdict.transform.startswith("mirror: "), verdict
    other = np.asarray(photo(seed + 50, (160, 120)), np.float32)
    stranger = ImageOps.mirror(crop(Image.fromarray((0.75 * other + 0.25 * arr[:, ::-1]).astype(np.uint8)), left=0.07))
    pair = np.stack([thumb(picture), thumb(stranger)])
    assert not verify_pairs(pair, np.array([0]), np.array([1]), ["full~full"]).row(0).accepted


def test_a_copy_in_a_border_is_compared_whole_where_the_original_lost_a_dark_edge_to_its_trim(monkeypatch) -> None:
    """A dark, nearly flat right side (a night sky) passes for a bar on the original; on its copy in a grey border
    the trim stops at the border. Only the original's whole frame against the copy inside its border lines them up."""
    rng = np.random.default_rng(3)
    original = thumb(texture(1, sigma=2.0)).astype(np.float32)
    original[:, -14:] = 30 + rng.normal(0, 1.0, (64, 14))
    original = np.clip(original, 0, 255).astype(np.uint8)
    copy = np.full((64, 64), 150, np.uint8)
    copy[4:60, 4:60] = cv2.resize(original, (56, 56), interpolation=cv2.INTER_AREA)
    assert trim_box(original)[3] <= 52 and trim_box(copy) == (4, 60, 4, 60)
    verdict = verify(original, copy)
    assert verdict.accepted and "a's whole frame = b inside its bars" in verdict.transform, verdict
    assert not verify(thumb(texture(2, sigma=2.0)), copy).accepted  # a stranger in no border
    monkeypatch.setattr("finetuner.dedup.searches.untrimmed", lambda *args: None)
    assert not verify(original, copy).accepted


def repost(picture: Image.Image) -> Image.Image:
    """A landscape picture reposted in a square, over a blurred copy of itself stretched to fill it."""
    w, h = picture.size
    side = max(w, h)
    canvas = picture.resize((side, side)).filter(ImageFilter.GaussianBlur(side / 32))
    canvas.paste(picture, ((side - w) // 2, (side - h) // 2))
    return canvas


@pytest.mark.parametrize("picture", [photo(11, (320, 180)), texture(1, size=(320, 180))], ids=["photo", "texture"])
def test_a_repost_on_a_blurred_copy_of_itself_is_found_as_a_band(picture: Image.Image, monkeypatch) -> None:
    """The bars are no bars (no trim finds them) and the square frame stretches the picture by 78%: only comparing
    the picture with the band it fills in the canvas lines them up, and the blurred fill counts as bars."""
    aspect = (picture.size[0] / picture.size[1], 1.0)
    verdict = verify(thumb(picture), thumb(repost(picture)), aspect=aspect)
    assert verdict.accepted and "a band" in verdict.transform and verdict.overlap == 1.0, verdict
    assert not verify(thumb(picture), thumb(repost(photo(12, (320, 180)))), aspect=aspect).accepted
    monkeypatch.setattr("finetuner.dedup.searches._bands", lambda *args: None)
    assert not verify(thumb(picture), thumb(repost(picture)), aspect=aspect).accepted


def test_a_portrait_picture_in_a_wide_frame_is_found_as_a_standing_band() -> None:
    """The other way round: a portrait picture shown in a 16:9 frame over a blurred copy of itself stands in it as a
    vertical band, whichever of the two is image a."""
    picture = photo(11, (180, 320))
    w, h = picture.size
    frame = picture.resize((h * 16 // 9, h)).filter(ImageFilter.GaussianBlur(h / 32))
    frame.paste(picture, ((frame.size[0] - w) // 2, 0))
    aspect = (w / h, frame.size[0] / frame.size[1])
    for verdict in (
        verify(thumb(picture), thumb(frame), aspect=aspect),
        verify(thumb(frame), thumb(picture), aspect=aspect[::-1]),
    ):
        assert verdict.accepted and "a band" in verdict.transform, verdict


@pytest.mark.parametrize(
    ("seed", "box"),
    [(13, (64, 0, 320, 200)), (14, (0, 0, 256, 200)), (11, (0, 40, 320, 200)), (12, (0, 0, 320, 150))],
    ids=["left 20%", "right 20%", "top 20%", "bottom 25%"],
)
def test_a_crop_of_one_side_is_found_as_a_band_at_an_end(seed: int, box: tuple, monkeypatch) -> None:
    """A fifth or a quarter cut from one side: no view names it (the views cut a tenth) and the uniform placements
    stretch it. Its proportions say how much of the picture it keeps, and it lies at one end of the picture's
    canvas, whichever image is a; a picture of another seed is refused. Without the bands at the ends (the centred
    ones only), each was refused."""
    original = photo(seed, (320, 200))
    copy = original.crop(box)
    aspect = (original.size[0] / original.size[1], copy.size[0] / copy.size[1])
    for verdict in (
        verify(thumb(original), thumb(copy), aspect=aspect),
        verify(thumb(copy), thumb(original), aspect=aspect[::-1]),
    ):
        assert verdict.accepted and "at an end" in verdict.transform, verdict
    assert not verify(thumb(photo(seed + 20, (320, 200))), thumb(copy), aspect=aspect).accepted
    monkeypatch.setattr("finetuner.dedup.searches.BAND_STAGES", {7: (True, 1), 8: (False, 1)})
    assert not verify(thumb(original), thumb(copy), aspect=aspect).accepted


def test_a_graphic_cut_at_one_side_is_not_compared_as_a_band_at_an_end(monkeypatch) -> None:
    """A graphic's proportions are its design: a letter cut at one side is another (on the glyph set an O of one
    typeface passed for the top of another's Q, less its tail). Shapes drawn on white, cut a fifth at the left, are not
    compared as a band at the end of the whole; taken for a photograph they would be, and pass."""
    poster = Image.new("RGB", (320, 200), (255, 255, 255))
    rng = np.random.default_rng(0)
    for _ in range(6):
        x, y, w, h = (int(v) for v in (*rng.integers(0, (280, 160)), *rng.integers(15, 40, 2)))
        ImageDraw.Draw(poster).ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    copy, aspect = poster.crop((64, 0, 320, 200)), (1.6, 1.28)
    assert not verify(thumb(poster), thumb(copy), aspect=aspect).accepted
    monkeypatch.setattr("finetuner.dedup.searches.graphic", lambda stack: np.zeros(len(stack), bool))
    verdict = verify(thumb(poster), thumb(copy), aspect=aspect)
    assert verdict.accepted and "at an end" in verdict.transform, verdict


def test_a_band_lies_at_the_start_the_middle_or_the_end_of_its_canvas() -> None:
    """A content 0.8 as wide as the other's stands in its canvas as a vertical band of 51 of 64 columns: at the
    left, centred or at the right; a wider content lies across a narrower canvas as a horizontal band likewise."""
    whole = np.array([[0, 64, 0, 64]])
    for at, columns in ((0, (0, 51)), (1, (6, 57)), (2, (13, 64))):
        boxes_a, boxes_b, found = band_boxes(whole, whole, [1.6], [1.28], on_narrower=False, at=at)
        assert found.all() and boxes_b.tolist() == [[0, 64, 0, 64]] and boxes_a.tolist() == [[0, 64, *columns]]
        boxes_a, boxes_b, found = band_boxes(whole, whole, [1.6], [1.28], on_narrower=True, at=at)
        assert found.all() and boxes_a.tolist() == [[0, 64, 0, 64]] and boxes_b.tolist() == [[*columns, 0, 64]]


def test_refit_recovers_a_stretch_and_refuses_a_turn() -> None:
    rng = np.random.default_rng(3)
    p = cv2.GaussianBlur(rng.normal(128, 40, (64, 64)).astype(np.float32), (0, 0), 2.0)
    move = np.float32([[0.95, 0.0, 1.5], [0.0, 1.0, -1.0]])  # p's pixel x shows in q at move @ (x, 1)
    q = cv2.warpAffine(p, move, (64, 64), borderMode=cv2.BORDER_REFLECT)
    fitted = refit(p, q)
    assert fitted is not None
    warp, inside, note = fitted
    assert np.abs(warp - move).max() < 0.05, warp
    assert inside.mean() > 0.9 and "refit" in note
    turned = cv2.warpAffine(p, cv2.getRotationMatrix2D((32, 32), 8.0, 1.0), (64, 64), borderMode=cv2.BORDER_REFLECT)
    assert refit(p, turned) is None  # a turn of 8 degrees is not a crop


def straightened(image: Image.Image, degrees: float) -> Image.Image:
    """A scan or a print photographed again and straightened by hand: turned a little, the corners cut away."""
    return crop(image.rotate(degrees, resample=Image.Resampling.BICUBIC), 0.05, 0.05, 0.05, 0.05)


def drawing() -> Image.Image:
    """Line art on white paper: a graphic."""
    image = Image.new("RGB", (160, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(40, 100), (60, 20), (80, 20), (100, 100), (85, 100), (70, 45), (55, 100)], fill=(20, 20, 20))
    draw.line([(110, 30), (140, 90)], fill=(20, 20, 20), width=6)
    return image


@pytest.mark.parametrize("degrees", [3.0, -2.5])
def test_a_photograph_turned_a_few_degrees_is_refitted(degrees: float, monkeypatch) -> None:
    """A copy of a fine texture turned 2.5-3 degrees passes only through a refit that turns it back; at the
    graphics' 1.5 degrees it would not."""
    original = texture(0)
    copy = straightened(original, degrees)
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "turned" in verdict.transform, verdict
    monkeypatch.setattr("finetuner.dedup.refit.PHOTO_MAX_TURN", REFIT_MAX_TURN)
    assert not verify(thumb(original), thumb(copy)).accepted


def cropped_to_fit(image: Image.Image, degrees: float) -> Image.Image:
    """`image` turned and cut to the largest box of its proportions inside the turned frame, as an augmentation saved
    to disk or a photograph straightened in an editor leaves it: no corners of the canvas show."""
    w, h = image.size
    turn = np.radians(abs(degrees))
    scale = 1.0 / (np.cos(turn) + max(w / h, h / w) * np.sin(turn))
    cw, ch = round(w * scale), round(h * scale)
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC).crop(box)


@pytest.mark.parametrize("degrees", [-7.0, 8.0])
def test_a_photograph_turned_several_degrees_and_cropped_to_fit_is_refitted(degrees: float, monkeypatch) -> None:
    """Turned 7-8 degrees, a photograph is found only through a refit that may turn it back more than 5 degrees (on
    its squashed 4:3 thumbnail the turn reads 7.1-7.3), while another photograph turned alike stays apart."""
    original, other = photo(11, (640, 480)), photo(12, (640, 480))
    copy = cropped_to_fit(original, degrees)
    verdict = verify(thumb(original), thumb(copy), aspect=(4 / 3, copy.width / copy.height))
    assert verdict.accepted and "turned" in verdict.transform, verdict
    assert not verify(thumb(other), thumb(copy), aspect=(4 / 3, copy.width / copy.height)).accepted
    monkeypatch.setattr("finetuner.dedup.refit.PHOTO_MAX_TURN", np.radians(5.0))
    monkeypatch.setattr("finetuner.dedup.searches.PHOTO_MAX_TURN", np.radians(5.0))
    verdict = verify(thumb(original), thumb(copy), aspect=(4 / 3, copy.width / copy.height))
    assert not verdict.accepted or verdict.transform.startswith("a turned"), verdict  # else on a tilted view only


def test_a_refit_turned_past_five_degrees_must_agree_in_fine_detail_as_a_copy_does(monkeypatch) -> None:
    """Look-alikes (one star on one patterned ground, a dot placed elsewhere) refit onto each other turned 6-10 degrees
    at 0.95-0.98 in detail; a copy turned 7 degrees agrees at 0.99 or more. A picture that differs from the original in
    two spots, turned 7 degrees, passes at the refit's own 0.9 but not at WIDE_TURN_MIN_DETAIL."""
    original = photo(17, (640, 480))
    spotted = original.copy()
    draw = ImageDraw.Draw(spotted)
    draw.ellipse([380, 130, 420, 170], fill=(230, 120, 90))
    draw.ellipse([130, 310, 170, 350], fill=(60, 90, 200))
    copy, other = cropped_to_fit(original, -7.0), cropped_to_fit(spotted, -7.0)
    aspect = (4 / 3, copy.width / copy.height)
    assert verify(thumb(original), thumb(copy), aspect=aspect).accepted
    assert not verify(thumb(original), thumb(other), aspect=aspect).accepted
    monkeypatch.setattr("finetuner.dedup.searches.WIDE_TURN_MIN_DETAIL", 0.9)
    verdict = verify(thumb(original), thumb(other), aspect=aspect)
    assert verdict.accepted and "turned" in verdict.transform, verdict


@pytest.mark.parametrize("degrees", [12.0, -12.0, 15.0])
def test_a_photograph_turned_ten_degrees_or_more_is_found_through_a_tilted_view(degrees: float) -> None:
    """Turned 12-15 degrees and cropped to fit, a copy's whole frame hashes far from its original's, and a refit from
    the frames as they lie would have to turn too far: its original's frame turned 10 degrees (views.TILTS) is near it,
    and the verifier aligns the copy on that turned frame, then refits what is left of the turn."""
    original = photo(17, (640, 480))
    copy = Image.open(io.BytesIO(to_jpeg_bytes(cropped_to_fit(original, degrees))))
    a, b, aspect = thumb(original), thumb(copy), (4 / 3, copy.width / copy.height)
    signal = best_signal(a, b, aspect)
    assert "tilt" in signal, signal
    verdict = verify(a, b, aspect=aspect)
    assert verdict.accepted and "turned" in verdict.transform, verdict
    stranger = cropped_to_fit(photo(18, (640, 480)), degrees)
    assert not verify(a, thumb(stranger), aspect=(4 / 3, stranger.width / stranger.height)).accepted


@pytest.mark.parametrize("degrees", [12.0, -12.0])
def test_a_photograph_turned_with_the_canvas_corners_showing_is_found_through_a_tilted_view(degrees, monkeypatch):
    """Turned 12 degrees inside its own canvas, black corners and all (as torchvision's RandomRotation saves it), a
    copy's centre is its original's frame turned 10 degrees and enlarged to fit: the tilted view meets the centre
    crop (views.TILT_CENTRE), and the verifier places the pair from that centre, then refits the last 2 degrees. The
    whole frames, placed at 0.9-0.95 of each other, do not reach a wide picture's centre at 0.77; another photograph
    turned alike stays apart."""
    original = photo(17, (640, 360))
    copy = Image.open(io.BytesIO(to_jpeg_bytes(original.rotate(degrees, resample=Image.Resampling.BICUBIC))))
    a, b, aspect = thumb(original), thumb(copy), (16 / 9, 16 / 9)
    signal = best_signal(a, b, aspect)
    assert "tilt" in signal and views.TILT_CENTRE in signal, signal
    verdict = verify(a, b, aspect=aspect)
    assert verdict.accepted and "turned" in verdict.transform, verdict
    stranger = photo(18, (640, 360)).rotate(degrees, resample=Image.Resampling.BICUBIC)
    assert not verify(a, thumb(stranger), aspect=aspect).accepted
    monkeypatch.setattr("finetuner.dedup.searches.TILT_CENTRE", "none")  # placed as whole frames
    assert not verify(a, b, aspect=aspect).accepted


def test_a_refused_candidate_is_decided_again_on_its_tilted_view_pair(tmp_path: Path, monkeypatch) -> None:
    """Turned 7 degrees inside its canvas, a copy's closest view pair is a cut against a cut (its tilted view pair,
    2 bits apart, counts TILT_MARGIN bits farther), which names an alignment 7 degrees off, and is refused: the stage
    decides it again on the tilted view pair, which places it. A stranger turned alike stays apart."""
    from finetuner.config import parse_params
    from finetuner.dedup import candidates
    from finetuner.dedup.detect import verified_files

    original = photo(0, (640, 360))
    files = []
    for name, image in [
        ("original", original),
        ("copy", original.rotate(7.0, resample=Image.Resampling.BICUBIC)),
        ("stranger", photo(1, (640, 360)).rotate(7.0, resample=Image.Resampling.BICUBIC)),
    ]:
        files.append(tmp_path / f"{name}.jpg")
        files[-1].write_bytes(to_jpeg_bytes(image))
    aspect = np.full(3, 16 / 9)

    def accepted() -> dict[tuple[int, int], str]:
        found = verified_files(files, parse_params({}).dedup, workers=1, aspect=aspect)
        keep = np.flatnonzero(found.verdicts.accepted)
        return {(int(found.a[k]), int(found.b[k])): str(found.signal[k]) for k in keep}

    pairs = accepted()
    assert list(pairs) == [(0, 1)] and "tilt" in pairs[0, 1] and views.TILT_CENTRE in pairs[0, 1], pairs
    monkeypatch.setattr(
        candidates, "_tilted_retry", lambda judge, hashes, flat, a, b, found, verdicts, radius: (found, verdicts)
    )
    assert accepted() == {}  # decided on its closest view pair alone


def test_a_graphic_is_never_paired_through_a_tilted_view() -> None:
    """Line art turned 12 degrees matches its original through a tilted view, as a slanted letter matches an upright
    one of another typeface: where either image is a graphic the refit turns 1.5 degrees at most, and a tilted view
    is not taken."""
    original = drawing()
    turned = cropped_to_fit(original, 12.0)
    thumbs = np.stack([thumb(original), thumb(turned)])
    aspect = np.array([4 / 3, turned.width / turned.height])
    verdict = verify_pairs(thumbs, np.array([0]), np.array([1]), ["tilt10~full"], aspect=aspect).row(0)
    assert not verdict.accepted and verdict.transform.startswith("a turned 10 degrees"), verdict
    assert verdict.similarity > 0.99 and verdict.detail_similarity > 0.98  # as alike as a photograph's copy


def test_a_tilted_view_pair_proposes_a_pair_only_where_no_other_view_pair_is_as_close() -> None:
    """A picture on a plain ground (a product shot) hashes as near its tilted view as its cropped copy's views do: the
    signal, which names the alignment the verifier starts from, must be the crop's."""
    found = merge_candidates(
        [
            Candidates(
                np.array([0, 2]), np.array([1, 3]), np.array(["tilt10~full", "tilt-10~full"], object), np.array([3, 2])
            ),
            Candidates(
                np.array([0, 2]),
                np.array([1, 3]),
                np.array(["crop90~full", "phash"], object),
                np.array([3 + TILT_MARGIN - 1, 2 + TILT_MARGIN + 1]),
            ),
        ]
    )
    assert found.signal.tolist() == ["crop90~full", "tilt-10~full"] and found.distance.tolist() == [8, 2]


def test_only_two_photographs_may_be_refitted_turned_beyond_a_graphics_limit() -> None:
    """A letter turned a little matches a slanted one of another typeface: where either image is a graphic the
    refit keeps to REFIT_MAX_TURN."""
    original = photo(11, (320, 240))
    thumbs = np.stack([thumb(original), thumb(straightened(original, 4.0)), thumb(drawing())])
    turns = max_turns(thumbs, np.array([0, 0, 2]), np.array([1, 2, 2]))
    assert turns.tolist() == [PHOTO_MAX_TURN, REFIT_MAX_TURN, REFIT_MAX_TURN]
    assert PHOTO_MAX_TURN > REFIT_MAX_TURN


def test_rescaled_fine_texture_read_from_files_is_accepted(tmp_path: Path) -> None:
    """The thumbnails of a file and of its 60% copy must show the same detail: decoded at 1/8 scale the copy (and a
    60-row original) would be upsampled to 64 rows and their fine texture would no longer correlate."""
    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.normal(0, 1, (480, 640)).astype(np.float32), (0, 0), 1.0)
    texture = Image.fromarray(np.clip(128 + field / field.std() * 40, 0, 255).astype(np.uint8)).convert("RGB")
    paths = [tmp_path / "texture.jpg", tmp_path / "texture_60.jpg"]
    paths[0].write_bytes(to_jpeg_bytes(texture))
    paths[1].write_bytes(to_jpeg_bytes(texture.resize((384, 288), Image.Resampling.BILINEAR)))
    thumbs = hash_files(paths, ["phash"], workers=1).thumbs
    verdict = verify_pairs(thumbs, np.array([0]), np.array([1]), ["full~full"]).row(0)
    assert verdict.accepted and verdict.detail_similarity > 0.95, verdict


def test_verifier_rejects_unrelated_and_scene_retakes() -> None:
    assert not verify(thumb(BASE), thumb(photo(12, (160, 120)))).accepted
    first, second = scene(1, 0.0), scene(2, 4.0)
    verdict = verify(thumb(first), thumb(second))
    assert not verdict.accepted, verdict  # same place, other moment: not a copy
    assert verify(thumb(first), thumb(first.resize((120, 90)))).accepted  # while a copy of either still is


def test_near_blank_images_need_a_pixel_match() -> None:
    grey, shaded, darker = near_blank((120, 120, 125), 0), near_blank((120, 120, 125), 1, 40), near_blank((100,) * 3, 1)
    for other in (shaded, darker):  # alike to every hash, yet other pictures
        verdict = verify(thumb(grey), thumb(other))
        assert verdict.rule == "low-detail" and not verdict.accepted, verdict
    assert verify(thumb(grey), thumb(near_blank((120, 120, 125), 2))).accepted  # the same one, re-shot noise


def test_a_shaded_low_detail_frame_matches_its_brighter_copy_only() -> None:
    """A smooth wallpaper (shading, no fine detail) and its copy 1.3x brighter are one picture; the gain that maps
    them is no licence for plain frames of two shades, or for the same shading turned another way."""
    y, x = np.mgrid[0:120, 0:160]
    shading = 60 + 0.5 * x + 0.3 * y
    wallpaper = Image.fromarray(shading.astype(np.uint8)).convert("RGB")
    brighter = Image.fromarray(np.clip(shading * 1.3, 0, 255).astype(np.uint8)).convert("RGB")
    verdict = verify(thumb(wallpaper), thumb(brighter))
    assert verdict.rule == "low-detail" and verdict.accepted and "gain 1.3" in verdict.transform, verdict
    turned = Image.fromarray((60 + 0.3 * x + 0.5 * y).astype(np.uint8)).convert("RGB")
    assert not verify(thumb(wallpaper), thumb(turned)).accepted
    assert not verify(thumb(near_blank((100,) * 3, 0)), thumb(near_blank((130,) * 3, 0))).accepted


def test_each_view_meets_its_edit() -> None:
    """Each candidate signal: the edited copy's full view lands within a few bits of the original's matching view."""
    images = [
        BASE,
        ImageOps.mirror(BASE),
        crop(BASE, right=0.10),
        crop(BASE, bottom=0.10),
        crop(BASE, *[0.1] * 4),
        letterbox(BASE),
        crop(BASE, left=0.15, bottom=0.15),
        crop(BASE, right=0.15, top=0.15),
    ]
    views = view_hashes(np.stack([thumb(i) for i in images]))
    # (view of the original, view of the copy, which copy): trimming applies to the letterboxed copy
    meets = [
        ("mirror", "full", 1),
        ("left90", "full", 2),
        ("top90", "full", 3),
        ("crop80", "full", 4),
        ("full", "trim", 5),
        ("topright85", "full", 6),
        ("bottomleft85", "full", 7),
    ]
    for mine, theirs, copy in meets:
        close = hamming(views[mine][:1], views[theirs][copy : copy + 1])[0]
        assert close <= 4, (mine, theirs)
        assert hamming(views["full"][:1], views["full"][copy : copy + 1])[0] > close  # the view brings them together


def test_trim_box_finds_bars_and_leaves_photos_whole() -> None:
    top, bottom, left, right = trim_box(thumb(letterbox(BASE)))
    assert (left, right) == (0, 64) and 8 <= top <= 11 and 53 <= bottom <= 56
    assert trim_box(thumb(BASE)) == (0, 64, 0, 64)


def test_trim_box_strips_the_line_where_a_mat_blends_into_the_picture(monkeypatch) -> None:
    """A mat whose edge falls inside a thumbnail pixel leaves a line between mat and picture: it goes with the mat.
    A letter's first row on its paper is no such line (only part of it is ink) and stays."""
    w, h = BASE.size
    matted = Image.new("RGB", (w + 18, h + 14), (255, 255, 255))
    matted.paste(BASE, (9, 7))
    t = thumb(matted)
    stripped = trim_box(t)
    tee = Image.new("RGB", (96, 96), (245, 245, 240))
    ImageDraw.Draw(tee).rectangle([20, 17, 75, 26], fill=(20, 20, 20))
    ImageDraw.Draw(tee).rectangle([43, 17, 52, 80], fill=(20, 20, 20))
    letter = trim_box(thumb(tee))
    monkeypatch.setattr(trims, "_blend_line", lambda lines, runs, flat_std: np.zeros(len(lines), np.int64))
    top, bottom, left, right = trim_box(t)
    assert stripped[:2] == (top + 1, bottom - 1) and stripped[2] in (left, left + 1), (stripped, trim_box(t))
    assert t[top, 32] - t[top + 1, 32] > 30 and t[top, 32] < 250  # that line: neither mat nor picture
    assert trim_box(thumb(tee)) == letter


def captioned(image: Image.Image, share: float, above: bool = True) -> Image.Image:
    """The picture with a meme's caption panel added above or below: white, `share` of the result's height, big black
    text across it."""
    w, h = image.size
    panel = round(h * share / (1 - share))
    out = Image.new("RGB", (w, h + panel), (255, 255, 255))
    out.paste(image, (0, panel if above else 0))
    top = 0 if above else h
    ImageDraw.Draw(out).text((w // 20, top + panel // 4), "WHEN THE TEST SET", fill=(0, 0, 0), font_size=panel // 3)
    return out


@pytest.mark.parametrize("above", [True, False], ids=["above", "below"])
def test_trim_box_strips_a_caption_panel_with_its_text(above: bool, monkeypatch) -> None:
    top, bottom, left, right = trim_box(thumb(captioned(BASE, 0.25, above)))
    assert (left, right) == (0, 64) and (top, bottom) == ((16, 64) if above else (0, 48))
    monkeypatch.setattr(trims, "PANEL_PLAIN", 2.0)  # bars only: the trim stops at the text
    top, bottom, _, _ = trim_box(thumb(captioned(BASE, 0.25, above)))
    assert top < 8 and bottom > 56


def test_a_low_contrast_edge_is_no_caption_panel() -> None:
    """A dim photograph's edge (the moon's) has columns flat enough for a bar (std 2-3) between slightly busier ones:
    it is not drawn plain, so no panel reaches past them."""
    rng = np.random.default_rng(0)
    t = thumb(BASE).copy()
    t[:, :12] = np.clip(115 + rng.normal(0, 2.0, (64, 12)), 0, 255).astype(np.uint8)
    t[:, 5:7] = np.clip(115 + rng.normal(0, 6.0, (64, 2)), 0, 255).astype(np.uint8)
    assert trim_box(t)[2] == 5  # the flat columns before the busier ones, as a bar
    t[:, :5], t[:, 7:12] = 115, 115  # drawn plain: a panel with marks, stripped whole
    assert trim_box(t)[2] == 12


def test_a_captioned_copy_is_found_inside_its_panel(monkeypatch) -> None:
    ratio = BASE.size[0] / BASE.size[1]
    copy = thumb(captioned(BASE, 0.25))
    verdict = verify(thumb(BASE), copy, aspect=(ratio, ratio * 0.75))
    assert verdict.accepted and "inside its bars" in verdict.transform, verdict
    monkeypatch.setattr(trims, "PANEL_PLAIN", 2.0)  # no panel: the picture is then a band at the copy's end
    verdict = verify(thumb(BASE), copy, aspect=(ratio, ratio * 0.75))
    assert verdict.accepted and "at an end" in verdict.transform, verdict
    monkeypatch.setattr("finetuner.dedup.searches.BAND_STAGES", {7: (True, 1), 8: (False, 1)})
    assert not verify(thumb(BASE), copy, aspect=(ratio, ratio * 0.75)).accepted


def caption_over(image: Image.Image) -> Image.Image:
    """A dark caption bar over the picture's foot (15% of its height), its letters filling most of its lines."""
    out = image.copy()
    w, h = out.size
    top = round(h * 0.85)
    ImageDraw.Draw(out).rectangle([0, top, w, h], fill=(15, 15, 15))
    ImageDraw.Draw(out).text((8, top + 2), "Holiday 2024 - do not share", fill=(250, 250, 250), font_size=14)
    return out


def standing(seed: int) -> Image.Image:
    """A product shot whose product stands on the frame's foot: a photo cut to a tall ellipse on a plain ground."""
    out = Image.new("RGB", (200, 150), (248, 248, 246))
    mask = Image.new("L", out.size, 0)
    ImageDraw.Draw(mask).ellipse([60, 15, 140, 190], fill=255)
    out.paste(photo(seed, out.size), (0, 0), mask)
    return out


def test_a_caption_panel_whose_letters_fill_most_of_its_lines_is_trimmed(monkeypatch) -> None:
    """At 64x64 the bar's 10 lines hold 3 plain ones: counted by lines it was no panel; its pixels are mostly the
    bar's shade."""
    t = thumb(caption_over(standing(3)))
    assert trim_box(t) == (6, 54, 0, 64)
    band = t[54:].astype(np.float64)
    assert (band.std(axis=1) < trims.PANEL_STD).sum() < trims.PANEL_PLAIN * len(band)
    assert (np.abs(band - band[-1].mean()) < trims.BAR_TOLERANCE).mean() >= trims.PANEL_PLAIN
    monkeypatch.setattr(trims, "PANEL_PLAIN", 2.0)  # no panel: the bar's last line alone is stripped
    assert trim_box(t) == (6, 63, 0, 64)


def test_a_product_shot_with_a_caption_over_its_foot_is_its_copy(monkeypatch) -> None:
    """The caption cuts the product short, so its content inside the trim has other proportions than the original's
    (29% apart): the shape check compares the two whole frames instead, less the caption band. Another product under
    the same caption is no copy."""
    ratio = (4 / 3, 4 / 3)
    for seed in (3, 5, 8):
        verdict = verify(thumb(caption_over(standing(seed))), thumb(standing(seed)), aspect=ratio)
        assert verdict.accepted and verdict.rule == "shape", (seed, verdict)
        whole = "less the bottom band, compared as whole frames (one trim stripped a caption)"
        assert verdict.transform.endswith(whole), verdict
        assert not verify(thumb(caption_over(standing(seed + 20))), thumb(standing(seed)), aspect=ratio).accepted
    monkeypatch.setattr("finetuner.dedup.second_looks._panel_stripped", lambda *args: False)
    verdict = verify(thumb(caption_over(standing(3))), thumb(standing(3)), aspect=ratio)
    assert not verdict.accepted and "proportions changed by 29%" in verdict.transform, verdict


def test_a_caption_whose_text_reaches_the_picture_is_trimmed_and_its_product_found(monkeypatch) -> None:
    """The same caption over the product shot twice the size: its text is smaller than the bar, and sits on the line
    where the picture starts, with no plain line of the bar after it. The panel runs through the last line mostly of
    the bar's shade before the picture; the copy is then found through the whole frames, another product is not.
    Stripped only to its plain lines, the copy's content keeps the text and is refused for its proportions."""
    ratio = (4 / 3, 4 / 3)
    for seed in (3, 5):
        shot = standing(seed).resize((400, 300))
        copy = thumb(caption_over(shot))
        assert trim_box(copy) == (6, 54, 0, 64)
        assert verify(copy, thumb(shot), aspect=ratio).accepted
        assert not verify(
            thumb(caption_over(standing(seed + 20).resize((400, 300)))), thumb(shot), aspect=ratio
        ).accepted
    monkeypatch.setattr(trims, "PANEL_LINES", 64)
    assert trim_box(copy) == (6, 59, 0, 64)
    assert not verify(copy, thumb(shot), aspect=ratio).accepted


def test_candidates_then_verdicts_on_a_small_collection() -> None:
    images = [
        BASE,
        *COPIES.values(),
        photo(12, (160, 120)),
        photo(13, (160, 120)),
        near_blank((90, 90, 90), 0),
        near_blank((95, 92, 90), 1),
    ]
    thumbs = np.stack([thumb(i) for i in images])
    found = view_candidates(view_hashes(thumbs), np.zeros(len(images), bool), 12)
    pairs = set(zip(found.i.tolist(), found.j.tolist()))
    copies = range(1, 1 + len(COPIES))
    assert all((0, k) in pairs for k in copies)  # every copy is proposed against the original
    verdicts = verify_pairs(thumbs, found.i, found.j, list(found.signal))
    accepted = {p for p, ok in zip(zip(found.i.tolist(), found.j.tolist()), verdicts.accepted) if ok}
    assert {(0, k) for k in copies} <= accepted
    assert all(i in copies or i == 0 for pair in accepted for i in pair)  # nothing else joins


def test_nearest_per_image_keeps_each_images_closest() -> None:
    i, j = np.array([0, 0, 0, 1, 2]), np.array([1, 2, 3, 2, 3])
    found = Candidates(i, j, np.array(["full~full"] * 5, dtype=object), np.array([5, 1, 3, 2, 9]))
    kept = subset(found, nearest_per_image(found, 4, 1))
    # 0's closest is 2 (d 1); 1's is 2 (d 2); 2's is 0; 3's is 0 (d 3): pair (2, 3) at d 9 is nobody's closest
    assert set(zip(kept.i.tolist(), kept.j.tolist())) == {(0, 2), (1, 2), (0, 3)}
    # by another key (lower is closer): 0's and 1's closest is each other, 2's and 3's too
    kept = subset(found, nearest_per_image(found, 4, 1, key=np.array([0.1, 0.5, 0.4, 0.3, 0.2])))
    assert set(zip(kept.i.tolist(), kept.j.tolist())) == {(0, 1), (2, 3)}


def test_the_cap_keeps_the_hash_nearest_too_where_the_look_ranks_a_copy_last(monkeypatch) -> None:
    """Images 0 and 1, copies, each have 29 other candidates (the cap is 20). Their pair is nearest in hash bits but
    looks least alike (where many pictures share a frame, the frame decides the 16x16 look): the cap keeps it among
    the hash-nearest, between photographs; between graphics, where hash bits favour twin designs, it does not."""
    from finetuner.dedup import look_cap

    i = np.r_[0, np.zeros(29, np.int64), np.ones(29, np.int64)]
    j = np.r_[1, np.arange(2, 31), np.arange(31, 60)]
    found = Candidates(i, j, np.array(["full~full"] * len(i), dtype=object), np.r_[2, np.full(58, 9)])
    looks = np.r_[0.90, np.tile(np.linspace(0.99, 0.95, 29), 2)]
    order = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j))}
    look_of = lambda a, b, signal: looks[[order[(int(x), int(y))] for x, y in zip(a, b)]]  # noqa: E731
    photos = np.random.default_rng(0).integers(0, 256, (60, 64, 64)).astype(np.uint8)
    keep, _ = look_cap.capped_by_look(found, photos, np.arange(60), np.zeros(60, bool), 20, look_of)
    assert keep[0]
    graphics = np.full((60, 64, 64), 255, np.uint8)
    graphics[:, 20:40, 28:36] = 0  # a bar on white paper: graphics rank by their look alone
    keep, _ = look_cap.capped_by_look(found, graphics, np.arange(60), np.zeros(60, bool), 20, look_of)
    assert not keep[0]
    monkeypatch.setattr(look_cap, "HASH_NEAREST", 0)
    keep, _ = look_cap.capped_by_look(found, photos, np.arange(60), np.zeros(60, bool), 20, look_of)
    assert not keep[0]  # the look alone ranks it last at both ends


def test_the_cap_ranks_a_tilted_view_against_a_centre_last(monkeypatch) -> None:
    """Images 0 and 1, copies, each have 29 other candidates (the cap is 20), all proposed by a tilted view against
    the other's centre (views.TILT_CENTRE) and looking more alike than the copies do: prints turned on one table meet
    each other's centres so. Those rank last, and the copies' pair is kept; ranked by their look, it was dropped."""
    from finetuner.dedup import look_cap

    i = np.r_[0, np.zeros(29, np.int64), np.ones(29, np.int64)]
    j = np.r_[1, np.arange(2, 31), np.arange(31, 60)]
    signals = np.array(["full~full", *["tilt10~crop80"] * 58], dtype=object)
    found = Candidates(i, j, signals, np.full(59, 9))
    looks = np.r_[0.95, np.full(58, 0.99)]
    order = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(i, j))}
    look_of = lambda a, b, signal: looks[[order[(int(x), int(y))] for x, y in zip(a, b)]]  # noqa: E731
    photos = np.random.default_rng(0).integers(0, 256, (60, 64, 64)).astype(np.uint8)
    monkeypatch.setattr(look_cap, "HASH_NEAREST", 0)
    keep, _ = look_cap.capped_by_look(found, photos, np.arange(60), np.zeros(60, bool), 20, look_of)
    assert keep[0]
    found = Candidates(i, j, np.array(["full~full", *["tilt10~full"] * 58], dtype=object), np.full(59, 9))
    keep, _ = look_cap.capped_by_look(found, photos, np.arange(60), np.zeros(60, bool), 20, look_of)
    assert not keep[0]  # a tilted view against a whole frame ranks by its look


def test_the_cap_ranks_near_blank_candidates_by_how_alike_they_look() -> None:
    """Near-blank fields 58 and 59, copies, each have 29 other candidates (the cap is 20), all at hash distance 0: the
    hash bits of a plain field are its noise's, or all alike. The cap ranks them by the difference of their colour
    thumbnails, so the copy is kept; by hash distance, ties went by index and it was dropped at both ends."""
    from finetuner.dedup import look_cap

    i = np.r_[np.arange(0, 29), 58, np.arange(29, 58)]
    j = np.r_[np.full(29, 58), 59, np.full(29, 59)]
    found = Candidates(i, j, np.array(["full~full"] * len(i), dtype=object), np.zeros(len(i), np.int64))
    thumbs = np.full((60, 64, 64), 100, np.uint8)
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 200, (60, 1, 1, 3)).repeat(16, axis=1).repeat(16, axis=2).astype(np.uint8)
    colours[59] = colours[58] + 1  # the copy: a level lighter
    flat = np.ones(60, bool)
    keep, _ = look_cap.capped_by_look(found, thumbs, np.arange(60), flat, 20, colours=colours)
    assert keep[29]
    keep, _ = look_cap.capped_by_look(found, thumbs, np.arange(60), flat, 20, colours=np.repeat(colours[:1], 60, 0))
    assert not keep[29]  # all alike: ties by index, as by hash distance


def test_near_blank_copies_whose_hash_bits_differ_are_proposed_by_their_colour_layout() -> None:
    """A plain field's hash bits are its sensor noise's, which JPEG 40 smooths away: the field and its copy lie 32 bits
    apart, no view's candidates; its letterboxed copy's trim view is that noise too. `plain_candidates` proposes
    near-blank images (and images whose content inside bars is near-blank) near in colour layout, as they are or
    mirrored, and the pixel rule accepts both copies, the letterboxed one inside its bars. A field of other colours
    and the photograph are not proposed, and a pair the views found keeps its view signal."""
    from finetuner.config import parse_params
    from finetuner.dedup.blank_candidates import PLAIN_SIGNAL, plain_candidates
    from finetuner.dedup.candidates import verified_pairs
    from finetuner.dedup.hashing import view_key

    field, ramp = near_blank((90, 96, 110), 0), near_blank((120, 110, 100), 1, slope=12)
    again = Image.open(io.BytesIO(to_jpeg_bytes(field, 40))).convert("RGB")
    images = [field, again, ramp, ImageOps.mirror(ramp), near_blank((110, 96, 90), 2), photo(5, (160, 120))]
    images.append(letterbox(near_blank((90, 96, 110), 3)))
    batch = hash_images(images, ["phash", "dhash"])
    batch.hashes.update({view_key(name): values for name, values in view_hashes(batch.thumbs).items()})
    low, full = batch.detail < 8.0, batch.hashes[view_key("full")]
    trimmed = batch.hashes[view_key("trim")] != full
    assert low[:5].all() and not low[5:].any() and trimmed[6] and hamming(full[:1], full[1:2])[0] > 12
    views = view_candidates({name: batch.hashes[view_key(name)] for name in VIEWS}, low, 12)
    assert set(zip(views.i.tolist(), views.j.tolist())) == {(2, 3)}  # the mirrored ramp: its shading sets its bits

    def proposed(taken: Candidates, colours: bool = True) -> set:
        images = batch.colours if colours else batch.thumbs
        found = plain_candidates(batch.thumbs, images, low, trimmed, full, taken, 8.0)
        assert set(found.signal) <= {PLAIN_SIGNAL}
        return set(zip(found.i.tolist(), found.j.tolist()))

    assert proposed(views) == {(0, 1), (0, 6), (1, 6)}
    assert {(0, 1), (0, 6), (1, 6)} <= proposed(views, colours=False)  # grey layouts, where no colours are kept
    assert (2, 3) in proposed(subset(views, np.zeros(1, bool)))  # proposed too when the views had not
    config = parse_params({}).dedup
    verified = verified_pairs(
        batch.hashes,
        batch.detail,
        batch.thumbs,
        batch.ok,
        ("phash", "dhash"),
        8,
        8.0,
        config.verify,
        1,
        colours=batch.colours,
    )
    signal = {(a, b): s for a, b, s in zip(verified.a.tolist(), verified.b.tolist(), verified.signal)}
    accepted = {pair for pair, ok in zip(signal, verified.verdicts.accepted) if ok}
    assert accepted == {(0, 1), (0, 6), (1, 6), (2, 3)}  # (1, 6) may come from a whole-frame hash
    assert signal[0, 1] == signal[0, 6] == PLAIN_SIGNAL and signal[2, 3] == "full~mirror"
    letterboxed = np.flatnonzero((verified.a == 0) & (verified.b == 6))
    assert "content inside the bars" in verified.verdicts.transform[letterboxed[0]]


def test_nearest_per_image_ranks_ties_as_a_three_key_sort_does() -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(2, 40))
        pairs = np.unique(np.sort(rng.integers(0, n, (int(rng.integers(0, 300)), 2)), axis=1), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]].reshape(-1, 2)
        found = Candidates(pairs[:, 0], pairs[:, 1], np.empty(len(pairs), object), rng.integers(0, 13, len(pairs)))
        key = rng.integers(0, 4, len(pairs)) / 4 if trial % 2 else None  # many ties, or the hash distances
        ranked = key if key is not None else found.distance
        ends, others = np.r_[found.i, found.j], np.r_[found.j, found.i]
        order = np.lexsort((others, np.r_[ranked, ranked], ends))  # by image, then key, then the other image
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order)) - np.searchsorted(ends[order], ends[order])
        k = len(pairs)
        expected = (rank[:k] < 2) | (rank[k:] < 2)
        assert np.array_equal(nearest_per_image(found, n, 2, key), expected)


def test_grown_collection_searches_new_pairs_only_and_matches_a_cold_search(tmp_path: Path, monkeypatch) -> None:
    """Candidates cached by content: after images are added (and the order changes), the capped candidates equal
    a cold search's, and only the new images' pairs are searched for."""
    from finetuner.config import parse_params
    from finetuner.dedup import candidates as dedup_verify

    images = [BASE, *COPIES.values(), *(photo(s, (160, 120)) for s in (12, 13, 14)), near_blank((90, 90, 90), 0)]
    batch = hash_images(images, ["phash", "dhash"])
    batch.hashes.update({f"view-{k}": v for k, v in view_hashes(batch.thumbs).items()})
    low = batch.detail < 8.0
    shas = [f"{k:064d}" for k in range(len(images))]
    config = parse_params({}).dedup.verify
    old = np.arange(len(images) - 1, 2, -1)  # first in another order (pairs and view pairs swap), then 3 more

    def search(rows: np.ndarray, cache) -> set:
        found = dedup_verify.searched_candidates(
            {m: h[rows] for m, h in batch.hashes.items()},
            low[rows],
            ("phash", "dhash"),
            8,
            config,
            1,
            None if cache is None else [shas[r] for r in rows],
            cache,
        )
        return {(int(rows[i]), int(rows[j]), s) for i, j, s in zip(found.i, found.j, found.signal)}

    search(old, tmp_path)
    queried = []
    real = dedup_verify.radius_pairs_between
    monkeypatch.setattr(dedup_verify, "radius_pairs_between", lambda q, h, r: queried.append(len(q)) or real(q, h, r))
    everything = np.arange(len(images))
    grown = search(everything, tmp_path)
    assert grown == search(everything, None)
    assert queried == [3, 3]  # each hash method searched from the 3 new images only


@pytest.mark.parametrize("widen, accepted", [(1.15, True), (1.5, True), (1.9, True), (2.2, False)])
def test_a_copy_resized_to_another_shape_is_a_copy_up_to_twice_as_wide(widen: float, accepted: bool) -> None:
    """A 4:3 photo squashed into a square or stretched to a wide screen is the same picture (dedup.verify.max_stretch
    0.7, about 2x); further than that the alignment is refused."""
    original = photo(5, (160, 120))
    resized = original.resize((int(160 * widen), 120))
    verdict = verify(thumb(original), thumb(resized), aspect=(160 / 120, 160 * widen / 120))
    assert verdict.accepted == accepted and verdict.similarity > 0.99, verdict


def watermarked(image: Image.Image, text: str = "SAMPLE") -> Image.Image:
    """A semi-transparent white word across the middle, a quarter of the height tall."""
    w, h = image.size
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((w // 6, h // 3), text, fill=(255, 255, 255, 110), font_size=h // 4)
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def test_a_watermarked_copy_is_found_with_what_the_mark_covers_left_out(monkeypatch) -> None:
    from finetuner.dedup import verify as verifier

    def faint(seed: int) -> Image.Image:  # a low-contrast texture (gravel, the moon): the mark outshines it
        return ImageEnhance.Contrast(texture(seed)).enhance(0.3)

    original = faint(5)
    copy = watermarked(original)
    verdict = verify(thumb(original), thumb(copy), aspect=(4 / 3, 4 / 3))
    assert verdict.accepted and "disagree most left out" in verdict.transform, verdict
    assert not verify(thumb(faint(6)), thumb(copy), aspect=(4 / 3, 4 / 3)).accepted  # a stranger under the mark
    monkeypatch.setattr(verifier, "OVERDRAWN_REACH", 2.0)  # without the stage, the mark hides the copy
    assert not verify(thumb(original), thumb(copy), aspect=(4 / 3, 4 / 3)).accepted


def relit(image: Image.Image, field) -> Image.Image:
    """`image` times a light field `field(x, y)` over coordinates 0..1."""
    pixels = np.asarray(image, np.float64)
    h, w = pixels.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.clip(pixels * field(x / w, y / h)[..., None], 0, 255).astype(np.uint8))


LIGHTS = {
    "vignette": lambda x, y: 1 - 1.4 * ((x - 0.5) ** 2 + (y - 0.5) ** 2),  # corners at 30% less light
    "light from the left": lambda x, y: 1.1 - 0.6 * x,
}


@pytest.mark.parametrize("light", LIGHTS)
def test_a_vignetted_or_side_lit_copy_is_found_with_its_light_fitted(light: str, monkeypatch) -> None:
    from finetuner.dedup import retouched

    original = photo(3, (320, 240))
    copy = relit(original, LIGHTS[light])
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "lit alike by a smooth light field" in verdict.transform, verdict
    assert not verify(thumb(photo(4, (320, 240))), thumb(copy)).accepted
    monkeypatch.setattr(retouched, "RELIT_MIN_SIMILARITY", 1.01)  # without the stage, the light hides the copy
    monkeypatch.setattr(retouched, "TONE_REACH_DETAIL", 2.0)  # (and local contrast, which also evens out the light)
    assert not verify(thumb(original), thumb(copy)).accepted


def staged(images: list[Image.Image], stage):
    """`Best` after one of the verifier's searches (`stage`, e.g. retouched.relit) on its own, on the first image paired
    with each other one, whatever they scored before."""
    from finetuner.dedup.verdicts import Best

    thumbs = np.stack([thumb(image) for image in images])
    n = len(images) - 1
    best = Best(np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n), np.full(n, "none", object))
    i, j = np.zeros(n, np.int64), np.arange(1, n + 1)
    stage(best, thumbs, views.trim_boxes(thumbs), i, j, None, VerifyRule(), np.arange(n))
    return best


def test_a_light_field_makes_no_other_picture_or_repainted_region_agree() -> None:
    """The stage on its own (retouched.relit): a smooth field fits a vignette, not another picture, nor half of one
    picture painted darker."""
    from finetuner.dedup import retouched

    original = photo(11, (320, 240))
    repainted = np.asarray(original).copy()
    repainted[60:180, 80:200] //= 2
    images = [original, relit(original, LIGHTS["vignette"]), photo(12, (320, 240)), Image.fromarray(repainted)]
    best = staged(images, retouched.relit)
    assert best.stage.tolist() == [10, 0, 0], best.how


def clahe(image: Image.Image, clip: float = 4.0, tiles: int = 8) -> Image.Image:
    """CLAHE's local equalisation of the grey of `image`, as microscope and X-ray images are often given."""
    grey = np.asarray(image.convert("L"))
    return Image.fromarray(cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(grey)).convert("RGB")


def grey_photo(seed: int) -> Image.Image:
    return photo(seed, (320, 240)).convert("L").convert("RGB")


def test_a_copy_with_its_tones_remapped_locally_is_found_over_local_contrast(monkeypatch) -> None:
    from finetuner.dedup import retouched

    original = grey_photo(3)
    copy = clahe(original)
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "over its local contrast" in verdict.transform, verdict
    assert not verify(thumb(grey_photo(13)), thumb(copy)).accepted
    monkeypatch.setattr(retouched, "TONE_REACH_DETAIL", 2.0)  # without the stage, the new levels hide the copy
    assert not verify(thumb(original), thumb(copy)).accepted


def glow(seed: int) -> Image.Image:
    """A faint fine texture over a bright glow on a dark ground: large areas of a tone, which CLAHE's tiles remap each
    in a way of its own."""
    fine = np.asarray(texture(seed, sigma=2.0).convert("L"), np.float32)
    y, x = np.mgrid[0 : fine.shape[0], 0 : fine.shape[1]] / max(fine.shape)
    field = 40 + 150 * np.exp(-((x - 0.35) ** 2 + (y - 0.4) ** 2) / 0.08)
    return Image.fromarray(np.clip(field + 0.35 * (fine - 128), 0, 255).astype(np.uint8)).convert("RGB")


def test_a_copy_equalised_in_large_tiles_passes_over_local_contrast_on_its_fine_detail(monkeypatch) -> None:
    from finetuner.dedup import retouched

    original = glow(1)
    copy = clahe(original, clip=4.0, tiles=4)
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "over its local contrast" in verdict.transform, verdict
    assert verdict.similarity < VerifyRule().min_similarity <= verdict.similarity + retouched.TONE_FINE_SLACK, verdict
    assert not verify(thumb(glow(11)), thumb(copy)).accepted
    monkeypatch.setattr(retouched, "TONE_FINE_SLACK", 0.0)  # the verifier's own similarity: the tiles hide the copy
    assert not verify(thumb(original), thumb(copy)).accepted


def test_a_heavily_blurred_copy_is_found_with_the_sharper_blurred_to_match(monkeypatch) -> None:
    from finetuner.dedup import retouched

    original, stranger = texture(1, sigma=1.5), texture(11, sigma=1.5)
    copy = original.filter(ImageFilter.GaussianBlur(8))
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and "sharper blurred by" in verdict.transform, verdict
    assert not verify(thumb(stranger), thumb(copy)).accepted
    assert not verify(thumb(stranger.filter(ImageFilter.GaussianBlur(8))), thumb(original)).accepted
    monkeypatch.setattr(retouched, "BLUR_REACH", 2.0)  # without the stage, the lost texture hides the copy
    assert not verify(thumb(original), thumb(copy)).accepted


@pytest.mark.parametrize("seed", [0, 3])
def test_a_photo_blurred_by_a_twelfth_of_its_width_is_found_blurred_to_match(seed: int, monkeypatch) -> None:
    """Blurred by 8% of its width, a photograph keeps its layout and loses its detail: the sharper blurred by up to
    2.4 thumbnail pixels is still sharper than the copy, by 3.4 or 4.8 it matches. Another photograph blurred alike
    stays apart."""
    from finetuner.dedup import retouched

    def blurred(image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(image.width * 0.08))

    original, stranger = photo(seed, (320, 240)), photo(seed + 50, (320, 240))
    verdict = verify(thumb(original), thumb(blurred(original)))
    assert verdict.accepted and verdict.transform.startswith("identity, the sharper blurred by"), verdict
    assert not verify(thumb(original), thumb(blurred(stranger))).accepted
    assert not verify(thumb(blurred(original)), thumb(blurred(stranger))).accepted
    monkeypatch.setattr(retouched, "BLUR_SIGMAS", (0.5, 0.8, 1.2, 1.7, 2.4))  # the ladder before 2026-12-07's end
    assert not verify(thumb(original), thumb(blurred(original))).accepted


def test_local_contrast_and_a_matched_blur_make_no_other_picture_agree() -> None:
    """The two stages on their own (retouched.retoned, retouched.deblurred), on every pair whatever it scored before:
    each takes its copy and no other picture, remapped or blurred alike or not (tones remapped: over local contrast and
    by rank)."""
    from finetuner.dedup import retouched

    original, other = grey_photo(11), grey_photo(12)
    best = staged([original, clahe(original), other, clahe(other)], retouched.retoned)
    assert best.stage.tolist() == [20, 0, 0], best.how
    for seed, stranger in ((2, 12), (3, 13)):  # by rank too
        original, other = photo(seed, (320, 240)), photo(stranger, (320, 240))
        best = staged([original, steep(original), other, steep(other)], retouched.retoned)
        assert best.stage.tolist() == [20, 0, 0] and best.how[0] == "identity, tones matched by rank", best.how
    fine, stranger = texture(2, sigma=1.5), texture(12, sigma=1.5)
    blurred = [image.filter(ImageFilter.GaussianBlur(8)) for image in (fine, stranger)]
    best = staged([fine, blurred[0], stranger, blurred[1]], retouched.deblurred)
    assert best.stage.tolist() == [21, 0, 0], best.how


def steep(image: Image.Image, gamma: float = 4.0) -> Image.Image:
    """Each channel through one steep tone curve (a gamma of 4): the shadows crushed together, the highlights spread."""
    curve = np.clip((np.arange(256) / 255.0) ** gamma * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(curve[np.asarray(image)])


def found_alone(edit, seed: int, how: str, strangers: tuple[int, ...]) -> tuple[Image.Image, Image.Image]:
    """A photograph and its copy through `edit`: the verifier finds the copy (`how` in its transform), and no stranger
    against the copy, nor a stranger through the edit against the photograph."""
    original = photo(seed, (320, 240))
    copy = edit(original)
    verdict = verify(thumb(original), thumb(copy))
    assert verdict.accepted and how in verdict.transform, verdict
    for other in strangers:
        stranger = photo(other, (320, 240))
        assert not verify(thumb(stranger), thumb(copy)).accepted
        assert not verify(thumb(edit(stranger)), thumb(original)).accepted
    return original, copy


@pytest.mark.parametrize("seed", [2, 3, 6])
def test_a_copy_through_a_steep_tone_curve_is_found_with_its_tones_matched_by_rank(seed: int, monkeypatch) -> None:
    from finetuner.dedup import retouched

    original, copy = found_alone(steep, seed, "tones matched by rank", (4, 12, 13))
    monkeypatch.setattr(retouched, "tones_matched", lambda p, q: np.zeros_like(p))  # local contrast alone misses it
    assert not verify(thumb(original), thumb(copy)).accepted


def test_tones_matched_by_rank_undo_a_monotone_curve_and_keep_a_flat_area_flat() -> None:
    """A level of p takes the mean of q's values at its pixels' ranks: through any monotone curve, clipping or crushing
    levels together included, q itself; a flat area of p stays one value whatever q holds at its ranks."""
    from finetuner.dedup.retouched import tones_matched

    rng = np.random.default_rng(0)
    p = rng.integers(0, 256, (3, 32, 32)).astype(np.float32)
    for curve in (np.arange(256) ** 2 / 255.0, np.clip(2.0 * np.arange(256), 0, 255), np.arange(256) // 64 * 64.0):
        q = curve[p.astype(np.int64)].astype(np.float32)
        assert np.allclose(tones_matched(p, q), q)
    flat = np.full((1, 8, 8), 100.0, np.float32)
    matched = tones_matched(flat, rng.normal(128, 40, (1, 8, 8)).astype(np.float32))
    assert np.ptp(matched) == 0.0


def brightened(image: Image.Image, factor: float = 2.0) -> Image.Image:
    """Pillow's brightness: every channel times `factor`, clipped at white (a blown-out copy)."""
    return ImageEnhance.Brightness(image).enhance(factor)


@pytest.mark.parametrize("seed", [2, 4, 8])
def test_a_copy_brightened_past_white_is_found_with_its_tones_clipped_alike(seed: int, monkeypatch) -> None:
    from finetuner.dedup import retouched

    original, copy = found_alone(brightened, seed, "tones clipped alike", (12, 13))
    monkeypatch.setattr(retouched, "CLIP_REACH", 2.0)  # without the stage, the rank map finds it in grey...
    assert "tones matched by rank" in verify(thumb(original), thumb(copy)).transform
    monkeypatch.setattr(retouched, "TONE_REACH_DETAIL", 2.0)  # ...and without both, the lost highlights hide the copy
    assert not verify(thumb(original), thumb(copy)).accepted


def test_tones_clipped_alike_make_no_other_picture_agree() -> None:
    """The stage on its own (retouched.clipped), on every pair whatever it scored before: it takes the blown-out copy
    and no other picture, brightened alike or not; and it maps nothing where neither image is clipped (a darker
    copy)."""
    from finetuner.dedup import retouched

    for seed, other in ((2, 12), (8, 4)):
        original, stranger = photo(seed, (320, 240)), photo(other, (320, 240))
        best = staged([original, brightened(original), stranger, brightened(stranger)], retouched.clipped)
        assert best.stage.tolist() == [22, 0, 0], best.how
    best = staged([photo(2, (320, 240)), brightened(photo(2, (320, 240)), 0.8)], retouched.clipped)
    assert best.stage.tolist() == [0], best.how


def test_a_sepia_copy_is_no_copy_of_a_twin_in_other_colours_over_local_contrast(monkeypatch) -> None:
    """A sepia copy of a picture and the picture with its hues turned 120 degrees (a product in another colour)
    agree in grey over local contrast, and in colour only as a toned copy: that allowance is no evidence here."""
    from finetuner.dedup import colour_checks

    picture = np.asarray(photo(2, (320, 240)))
    grey = np.asarray(Image.fromarray(picture).convert("L"), np.float32)[..., None]
    sepia = Image.fromarray(np.clip(grey * [1.0, 0.89, 0.71] + [20, 10, 0], 0, 255).astype(np.uint8))
    hsv = np.asarray(Image.fromarray(picture).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + 85) % 256
    twin = Image.fromarray(hsv, "HSV").convert("RGB")
    batch = hash_images([sepia, twin], ("phash",))
    pair = (batch.thumbs[0], batch.thumbs[1])
    verdict = verify(*pair, colours=(batch.colours[0], batch.colours[1]))
    assert not verdict.accepted and verdict.rule == "toned" and "over local contrast" in verdict.transform, verdict
    monkeypatch.setattr(colour_checks, "_toned_in_frame", lambda *args: None)
    assert verify(*pair, colours=(batch.colours[0], batch.colours[1])).accepted


@pytest.mark.parametrize(
    "turn",
    [
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.FLIP_TOP_BOTTOM,
    ],
)
def test_a_turned_or_flipped_copy_is_found_through_a_turned_view(turn) -> None:
    original = photo(21, (320, 240))
    copy = Image.open(io.BytesIO(to_jpeg_bytes(original.transpose(turn))))  # turned, then saved again
    a, b = thumb(original), thumb(copy)
    signal = best_signal(a, b)
    assert any(v in signal for v in ("rot90", "rot180", "rot270")), signal
    aspect = (4 / 3, copy.size[0] / copy.size[1])
    verdict = verify(a, b, aspect=aspect)
    assert verdict.accepted and "turned" in verdict.transform, verdict
    stranger = photo(22, (320, 240)).transpose(turn)
    assert not verify(a, thumb(stranger), aspect=(4 / 3, stranger.size[0] / stranger.size[1])).accepted


def square_crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    return image.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))


@pytest.mark.parametrize("size", [(300, 200), (200, 300)])
def test_a_square_crop_of_a_wide_or_tall_photo_is_found_through_the_square_view(size) -> None:
    """Reposted cropped to a square (a third of a 3:2 photo cut away): only the original's centre square meets it."""
    original = photo(23, size)
    copy = Image.open(io.BytesIO(to_jpeg_bytes(square_crop(original))))
    a, b = thumb(original), thumb(copy)
    aspect = (size[0] / size[1], 1.0)
    assert best_signal(a, b, aspect) == "square~full"
    assert best_signal(a, b) != "square~full"  # without the shape there is no square view
    verdict = verify(a, b, aspect=aspect)
    assert verdict.accepted and verdict.transform.startswith("square of a = full of b"), verdict
    assert verdict.overlap == pytest.approx(2 / 3, abs=0.03)
    assert not verify(a, b, VerifyRule(min_overlap=0.7), aspect=aspect).accepted  # a third cut away: the user's call
    stranger = square_crop(photo(24, size))
    assert not verify(a, thumb(stranger), aspect=aspect).accepted


def test_a_square_crop_of_a_16_9_frame_is_a_copy_at_the_default_overlap() -> None:
    """A wide frame reposted as its centre square (a video frame, a screenshot, a wallpaper) keeps 9/16 of it: found
    at the default min_overlap, refused where a user asks the copy to keep 60% of each image."""
    original = photo(25, (320, 180))
    copy = Image.open(io.BytesIO(to_jpeg_bytes(square_crop(original))))
    a, b, aspect = thumb(original), thumb(copy), (16 / 9, 1.0)
    verdict = verify(a, b, aspect=aspect)
    assert verdict.accepted and verdict.transform.startswith("square of a = full of b"), verdict
    assert verdict.overlap == pytest.approx(9 / 16, abs=0.03)
    assert not verify(a, b, VerifyRule(min_overlap=0.6), aspect=aspect).accepted
    stranger = square_crop(photo(26, (320, 180)))
    assert not verify(a, thumb(stranger), aspect=aspect).accepted


def test_a_square_crop_of_a_picture_on_a_plain_canvas_is_taken_as_the_picture_in_its_canvas() -> None:
    """A picture in the middle of a wide shaded canvas (a page, a slide), cropped square: as the square view the crop
    aligns perfectly but keeps 40% of the frame, below min_overlap; shown as a band in the other's canvas, whose
    surround is plain, it covers all of the picture. The band must be taken though it scores no higher."""
    shading = np.linspace(60, 200, 500)[None, :, None] + np.linspace(0, 20, 200)[:, None, None]
    canvas = Image.fromarray(np.repeat(shading, 3, axis=2).astype(np.uint8))
    canvas.paste(photo(41, (150, 150)), (175, 25))
    verdict = verify(thumb(canvas), thumb(square_crop(canvas)), aspect=(2.5, 1.0))
    assert verdict.accepted and "a band" in verdict.transform and verdict.overlap == 1.0, verdict


def test_square_boxes_are_the_centre_square_in_true_proportions() -> None:
    boxes = square_boxes(np.array([16 / 9, 9 / 16, 1.05, np.nan, 2.0]), 5)
    assert boxes[0].tolist() == [0, 64, 14, 50]  # 64 * 9/16 = 36 columns
    assert boxes[1].tolist() == [14, 50, 0, 64]
    assert boxes[2].tolist() == boxes[3].tolist() == [0, 64, 0, 64]  # near-square, unknown: the whole frame
    assert boxes[4].tolist() == [0, 64, 16, 48]
    assert square_boxes(None, 2).tolist() == [[0, 64, 0, 64]] * 2


def test_the_square_view_is_searched_only_where_it_differs_and_only_against_whole_frames() -> None:
    from finetuner.dedup.views import VIEWS, allowed_combos

    allowed = dict(zip(((x, y) for x in VIEWS for y in VIEWS), allowed_combos(VIEWS).tolist()))
    assert allowed["square", "full"] and allowed["mirror", "square"]
    assert not allowed["square", "square"] and not allowed["square", "crop90"] and not allowed["trim", "square"]
    thumbs = np.stack([thumb(photo(25, (300, 200))), thumb(photo(26, (200, 200)))])
    views = view_hashes(thumbs, np.array([1.5, 1.0]))
    assert views["square"][0] != views["full"][0] and views["square"][1] == views["full"][1]


@pytest.mark.parametrize("corner", ["top left", "bottom right"])
def test_a_corner_crop_is_proposed_by_a_corner_view_and_accepted(corner: str) -> None:
    """15% cut from two sides: no centre or one-sided view lines up with it, the original's corner view does."""
    top, left = (0.0, 0.0) if corner == "top left" else (0.15, 0.15)
    copy = crop(BASE, left=left, top=top, right=0.15 - left, bottom=0.15 - top)
    aspect = (BASE.size[0] / BASE.size[1], copy.size[0] / copy.size[1])
    signal = best_signal(thumb(BASE), thumb(copy), aspect)
    assert signal == f"{corner.replace(' ', '')}85~full", signal
    verdict = verify(thumb(BASE), thumb(copy), aspect=aspect)
    assert verdict.accepted, verdict
    assert not verify(thumb(photo(12, (160, 120))), thumb(copy), aspect=aspect).accepted


def test_corner_views_pair_only_with_a_whole_frame() -> None:
    names = list(VIEWS)
    allowed = allowed_combos(names).reshape(len(names), len(names))
    for corner in CORNERS:
        partners = {names[k] for k in np.flatnonzero(allowed[names.index(corner)])}
        assert partners == {"full", "mirror"}, (corner, partners)


def test_turned_views_pair_only_with_a_whole_frame() -> None:
    from finetuner.dedup.views import TURNED, VIEWS, allowed_combos

    allowed = dict(zip(((x, y) for x in VIEWS for y in VIEWS), allowed_combos(VIEWS).tolist()))
    for turn in TURNED:
        assert allowed[turn, "full"] and allowed["mirror", turn]
        assert not allowed[turn, "crop90"] and not allowed[turn, turn] and not allowed["trim", turn]
