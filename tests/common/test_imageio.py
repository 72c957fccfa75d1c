"""imageio: odd-but-valid files decode to the right RGB picture; broken ones are classified, never crash."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from finetuner.common.imageio import BOMB, ImageCheckError, check_image, load_rgb, to_rgb
from tests.odd_images import BROKEN, VALID, H, W, animated_gif, encode, palette_transparent_png, png16, rgba_png


@pytest.mark.parametrize("name", sorted(VALID))
def test_odd_but_valid_files_are_accepted(name):
    data, (width, height), fmt = VALID[name]
    info = check_image(data)
    assert (info.width, info.height, info.format) == (width, height, fmt)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_are_classified(name):
    data, reason = BROKEN[name]
    with pytest.raises(ImageCheckError) as caught:
        check_image(data)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_source_modes_are_reported():
    assert check_image(VALID["cmyk.jpg"][0]).mode == "CMYK"
    assert check_image(png16()).mode.startswith("I")
    assert check_image(animated_gif()).n_frames == 3


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(to_rgb(image))


def test_transparency_is_composited_on_white():
    assert (_rgb(palette_transparent_png()) == 255).all()  # fully transparent red -> white
    blue_half = _rgb(rgba_png())[0, 0]
    assert blue_half[2] == 255 and 120 <= blue_half[0] <= 135


def test_sixteen_bit_is_scaled_not_clipped():
    grey = _rgb(png16())[..., 0].astype(int)
    assert grey.max() > 150  # clipping 16-bit values to 8 bits would give a flat 255; dropping bits, 0
    assert grey.min() == 0 and len(np.unique(grey)) > 50


def test_animated_gif_is_read_at_its_first_frame(tmp_path):
    path = tmp_path / "a.gif"
    path.write_bytes(animated_gif())
    assert tuple(np.asarray(load_rgb(path))[0, 0]) == (255, 0, 0)


def test_exif_rotation_applies_on_load(tmp_path):
    path = tmp_path / "r.jpg"
    path.write_bytes(VALID["rotated.jpg"][0])
    assert load_rgb(path).size == (H, W)


@pytest.mark.parametrize("limit", [W * H - 1, W * H // 3])  # PIL warns above the limit, errors above twice it
def test_decompression_bomb_is_refused_and_limit_restored(limit):
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageCheckError) as caught:
        check_image(encode(Image.new("RGB", (W, H)), "PNG"), max_pixels=limit)
    assert caught.value.reason == BOMB
    assert before == Image.MAX_IMAGE_PIXELS


def test_image_at_the_limit_is_accepted():
    assert check_image(encode(Image.new("RGB", (W, H)), "PNG"), max_pixels=W * H).width == W
