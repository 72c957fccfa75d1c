"""The content box inside a frame's borders (finetuner/dedup/trims.py): a second layer, a plain ground inside bars."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.dedup_photoset import composed_edit, held_out_edit
from finetuner.config import parse_params
from finetuner.dedup import trims
from finetuner.dedup.decide import decide
from finetuner.dedup.detect import verified_files
from finetuner.dedup.hashing import hash_files
from finetuner.dedup.prescreen import prescreen
from finetuner.dedup.trims import trim_box
from finetuner.dedup.verify import VerifyRule
from finetuner.demo.synthetic_photos import photo
from tests.dedup.test_verify import thumb

PRESCREEN = parse_params({}).dedup.verify.prescreen_similarity
RNG = np.random.default_rng(0)  # the quality bench's templates draw other parts from it (not these: window, post)


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


def test_blended_lines_after_a_bar_one_or_two() -> None:
    """An edge softened over two lines goes with its bar; a picture's first line brightened a little by the decoder
    (a tenth of the bar) stays."""
    lines = np.full((1, 64, 64), 236, np.uint8)
    lines[0, :4], lines[0, 4], lines[0, 5] = 61, 74, 151  # a title bar, then its edge over two lines
    runs = trims._edge_runs(lines)
    assert runs.tolist() == [4] and trims._blend_line(lines, runs).tolist() == [2]
    picture = np.tile(np.linspace(40, 140, 64), (64, 1)).T.astype(np.uint8)  # rows of a picture, each one shade
    picture[:2], picture[2] = 255, 0.6 * 255 + 0.4 * picture[4]  # a white mat, its edge line
    picture[3] = 0.1 * 255 + 0.9 * picture[4]  # the picture's first line, a little brighter
    runs = trims._edge_runs(picture[None])
    assert runs.tolist() == [2] and trims._blend_line(picture[None], runs).tolist() == [1]


def test_a_picture_in_an_apps_window_is_trimmed_to_the_picture(tmp_path) -> None:
    """Decoded from JPEG the title bar's edge spreads over two lines, and the line of text below the picture makes the
    canvas under it a panel of the canvas's own shade: the picture is found inside both (before: only the bar and
    the panel were stripped, for all 6)."""
    files = []
    for seed in range(6):
        files.append(tmp_path / f"{seed}.jpg")
        held_out_edit(photo(seed, (480, 360)), "screenshot", RNG).save(files[-1], quality=90)
    thumbs = hash_files(files, ("phash",), workers=1).thumbs
    for t in thumbs:
        top, bottom, left, right = trim_box(t)
        # the picture: rows 0.133..0.733 and columns 0.074..0.741 of the window, 8.5-47 and 4.7-47.4 in 64 pixels
        assert 8 <= top <= 9 and 46 <= bottom <= 48 and 4 <= left <= 6 and 46 <= right <= 48, (top, bottom, left, right)


def test_no_second_layer_inside_a_letters_paper() -> None:
    """A letter's paper is bars of one shade on every side, none of them a panel: where a stroke's thin end leaves the
    line inside within the paper's shade, that is the letter, and nothing more is stripped (taking such a side as
    ground cut E, k, m, n, p, w, x and z of these by 1-8 pixels)."""
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        paper = Image.new("RGB", (96, 96), (250, 250, 250))
        ImageDraw.Draw(paper).text((20, 4), ch, fill=(10, 10, 10), font_size=80)
        t = thumb(paper)
        assert trim_box(t) == tuple(trims._layer_boxes(t[None], trims.FLAT_STD)[0].tolist()), ch


def test_a_picture_in_a_window_with_a_side_panel_is_trimmed_to_it_without_its_blended_edges() -> None:
    """Neither layer reaches it (the side panel and the folder names are no bars at the frame's edge); the picture is
    the solid region off the canvas, less the lines where it blends into the canvas. It lies at rows 10.7-55.5 and
    columns 13.9-58.7 of the thumbnail. (Seed 0's picture is canvas-bright along part of its edge, which reads as the
    canvas reaching into its box, as into a bold letter's bays: it is found as a picture by its textured inside.)"""
    for seed in range(5):
        top, bottom, left, right = trim_box(thumb(composed_edit(photo(seed, (480, 360)), "app_window", RNG)))
        assert 11 <= top <= 12 and 54 <= bottom <= 55 and 14 <= left <= 15 and 57 <= right <= 58, (
            top,
            bottom,
            left,
            right,
        )


def test_no_picture_box_on_a_letters_paper_or_a_photograph_with_a_white_sky() -> None:
    """A letter is no solid region; a photograph's white sky, taken for a ground, leaves the rest of it touching the
    frame's edges."""
    paper = Image.new("RGB", (96, 96), (250, 250, 250))
    ImageDraw.Draw(paper).text((20, 4), "M", fill=(10, 10, 10), font_size=80)
    t = thumb(paper)
    assert trims._picture_on_ground(t, 250) is None
    sky = photo(3, (200, 150))
    ImageDraw.Draw(sky).rectangle([0, 0, 200, 60], fill=(255, 255, 255))
    t = thumb(sky)
    assert trims._picture_on_ground(t, 255) is None


def test_a_picture_bright_along_its_edge_is_told_from_a_bold_letter_by_its_inside() -> None:
    """Ground reaching into the box from outside is a bold letter's bays (an N's notches) or a picture's own edge as
    bright as the ground (a patch of sky, a graphic's white stripe). The same notched region has a box when a
    photograph fills it, none when flat ink does; with a wider notch (past TEXTURED_BAYS) neither has."""
    texture = np.minimum(thumb(photo(5, (200, 150))), 230)

    def notched(inside: np.ndarray, top_width: int) -> np.ndarray:
        """`inside` in the box rows 8-55, columns 10-53 on a ground of 250, a wedge of ground cut 28 rows down from
        the box's top edge, `top_width` pixels wide there."""
        frame = np.full((64, 64), 250, np.uint8)
        frame[8:56, 10:54] = inside[8:56, 10:54]
        for row in range(28):
            frame[8 + row, 30 : 30 + max(1, top_width - top_width * row // 28)] = 250
        return frame

    ink = np.full((64, 64), 20, np.uint8)
    for width in (4, 6):  # bays 0.03 and 0.04 of the box
        assert trims.BAYS < 14 * width / (48 * 44) < trims.TEXTURED_BAYS
        assert trims._picture_on_ground(notched(ink, width), 250) is None
        assert trims._picture_on_ground(notched(texture, width), 250) == (9, 55, 11, 53)
    assert trims._picture_on_ground(notched(texture, 14), 250) is None  # 0.09


def test_bold_letters_with_bays_get_no_picture_box(monkeypatch) -> None:
    """Bold letters whose paper reaches into their box (E, M, N, m with an 8-pixel stroke) pass every other test of a
    picture on a ground; their ink of one shade refuses them (without that test each would get its box)."""

    def bold(ch: str) -> np.ndarray:
        paper = Image.new("RGB", (96, 96), (250, 250, 250))
        ImageDraw.Draw(paper).text((14, 2), ch, fill=(10, 10, 10), font_size=72, stroke_width=8, stroke_fill=(10,) * 3)
        return thumb(paper)

    letters = [bold(ch) for ch in "EMNm"]
    assert all(trims._picture_on_ground(t, 250) is None for t in letters)
    monkeypatch.setattr(trims, "SHADE_SHARE", 1.0)
    assert all(trims._picture_on_ground(t, 250) is not None for t in letters)


def test_pictures_in_a_post_or_a_window_are_found_and_told_apart(tmp_path) -> None:
    """Each picture, in a post and in a window, is found from its file (before, none: neither trim reached the
    picture); no two pictures pair."""
    files = []
    for seed in range(6):
        picture = photo(seed, (480, 360))
        post, window = (composed_edit(picture, kind, RNG) for kind in ("post", "app_window"))
        for name, image in (("orig", picture), ("post", post), ("window", window)):
            files.append(tmp_path / f"{seed}_{name}.jpg")
            image.save(files[-1], quality=90)
    aspect = np.array([Image.open(f).width / Image.open(f).height for f in files])
    found = verified_files(files, parse_params({}).dedup, workers=1, aspect=aspect)
    pairs = {(files[a].stem, files[b].stem) for a, b, ok in zip(found.a, found.b, found.verdicts.accepted) if ok}
    assert all(a.split("_")[0] == b.split("_")[0] for a, b in pairs), pairs
    assert sum((f"{s}_orig", f"{s}_post") in pairs for s in range(6)) == 6
    assert sum((f"{s}_orig", f"{s}_window") in pairs for s in range(6)) >= 5


def test_the_ground_is_the_border_shade_most_pixels_have_and_only_pictures_are_looked_at() -> None:
    """Of the shades whose +-3 window covers most of the border, the one most of its pixels have (a canvas of 240 is
    covered from 237 to 243), at either end of the range too; a frame whose border has no such shade, or whose
    marks off it are thin (a letter), is not looked at."""
    frames = np.full((5, 64, 64), 240, np.uint8)
    frames[0, 10:50, 10:50] = np.random.default_rng(0).integers(0, 200, (40, 40))  # a picture on the canvas
    frames[0, 0, :20] = 242  # a few pixels of the border a little off the canvas
    frames[1], frames[2] = 0, 255
    frames[1, 10:50, 10:50] = frames[2, 10:50, 10:50] = 128
    frames[3] = np.random.default_rng(1).integers(0, 256, (64, 64))  # no ground
    frames[4, 10:54, 30:33] = 20  # a thin stroke
    shades, looked = trims._grounds(frames)
    assert shades[:3].tolist() == [240, 0, 255] and looked.tolist() == [0, 1, 2]


def test_a_serif_beside_a_stem_on_paper_is_no_caption_panel() -> None:
    """A letter's serifs make the lines before its stem mostly paper with marks, then the stem drops the paper's share
    by more than half, as a caption's text does where the picture starts. But past them the rest of the frame is
    mostly paper again: no panel, the trim stops at the serifs. With a picture filling the rest, the same lines are a
    caption's text at the edge of its bar, and are stripped with it."""
    t = np.full((64, 64), 240, np.uint8)
    t[8:10, 10:22] = t[54:56, 10:22] = 20  # serifs, top and bottom, reaching left of the stem
    t[8:56, 14:18] = 20  # the stem
    assert trim_box(t)[2] == 10
    picture = t.copy()
    picture[:, 18:] = np.random.default_rng(0).integers(0, 120, (64, 46))  # a dark picture: the band is its caption
    assert trim_box(picture)[2] == 14
