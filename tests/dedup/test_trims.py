"""The content box inside a frame's borders (finetuner/dedup/trims.py): a second layer, a plain ground inside bars."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from finetuner.config import parse_params
from finetuner.dedup import trims
from finetuner.dedup.decide import decide
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.trims import trim_box
from finetuner.dedup.verify import VerifyRule
from finetuner.demo.synthetic_photos import photo
from tests.dedup.test_verify import thumb

PRESCREEN = parse_params({}).dedup.verify.prescreen_similarity


def product(seed: int, ground: tuple[int, int, int] = (248, 248, 246)) -> Image.Image:
    """A product shot: a photo cut to an ellipse, on a plain studio ground with margins all round."""
    out = Image.new("RGB", (200, 150), ground)
    mask = Image.new("L", out.size, 0)
    ImageDraw.Draw(mask).ellipse([45, 30, 155, 120], fill=255)
    out.paste(photo(seed, out.size), (0, 0), mask)
    return out


def pillarbox(image: Image.Image, shade: int = 0) -> Image.Image:
    """The picture on a wider canvas of bars of one shade (a 16:9 frame around a 4:3 picture)."""
    w, h = image.size
    canvas = Image.new("RGB", (h * 16 // 9, h), (shade, shade, shade))
    canvas.paste(image, ((canvas.width - w) // 2, 0))
    return canvas


def content(image: Image.Image) -> np.ndarray:
    """The thumbnail's content inside its trim box, resized back to 64x64: what the trim view hashes."""
    t = thumb(image)
    top, bottom, left, right = trim_box(t)
    region = Image.fromarray(t[top:bottom, left:right])
    return np.asarray(region.resize((64, 64), Image.Resampling.BILINEAR), np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_bars_around_a_plain_ground_are_stripped_with_the_ground() -> None:
    shot = product(3)
    boxed = pillarbox(shot)
    # one layer (the bars) leaves the white ground, which the original trims away: two different boxes
    one = tuple(trims._layer_boxes(thumb(boxed)[None], trims.FLAT_STD)[0].tolist())
    assert one[2] > 0 and one[3] < 64 and one[0] == 0, one
    inner = trim_box(thumb(boxed))
    assert inner[0] > 0 and inner[2] > one[2] and inner[3] < one[3], (inner, one)
    assert correlation(content(boxed), content(shot)) > 0.9


def test_no_second_layer_where_the_bars_shade_runs_on_inside() -> None:
    # a dark picture edge next to black bars is the picture, not a ground: the inside's edge is within
    # NEST_CONTRAST of the bar's shade
    dark = photo(5, (200, 150))
    ImageDraw.Draw(dark).rectangle([0, 0, 40, 150], fill=(14, 14, 14))
    t = thumb(pillarbox(dark))
    assert trim_box(t) == tuple(trims._layer_boxes(t[None], trims.FLAT_STD)[0].tolist())


def test_no_second_layer_inside_bars_around_a_near_blank_frame() -> None:
    rng = np.random.default_rng(0)
    field = np.zeros((150, 200, 3)) + 120 + np.linspace(-6, 6, 200)[None, :, None] + rng.normal(0, 1, (150, 200, 1))
    field[:, :30] = 110  # a flat strip at its left edge: part of the frame, not a ground (the frame is near-blank)
    plain = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    t = thumb(pillarbox(plain, shade=255))
    assert trim_box(t) == tuple(trims._layer_boxes(t[None], trims.FLAT_STD)[0].tolist())


def test_a_letterboxed_product_shot_is_decided_as_its_copy_and_another_product_is_not() -> None:
    # one layer: the 16x16 look compares the product's own box with the bars' white ground and product (0.2-0.5,
    # below the prescreen's 0.6), so the copy was rejected unaligned
    shot, other = product(3), product(8)
    thumbs = np.stack([thumb(shot), thumb(pillarbox(shot)), thumb(pillarbox(other))])
    a, b, signals = np.array([0, 0]), np.array([1, 2]), np.array(["full~trim", "full~trim"], dtype=object)
    assert prescreen(thumbs, a[:1], b[:1], list(signals[:1]))[0] > 0.9
    verdicts = decide(thumbs, a, b, signals, np.zeros(3, bool), None, VerifyRule(), PRESCREEN)
    assert verdicts.accepted.tolist() == [True, False], verdicts.transform
