"""The block look: every accepted pair of photographs must agree part by part (finetuner/dedup/second_looks.py
`_block_look`), not only as a whole. Two faint pictures on one grainy mount correlate through the mount's edge (its
paper is too grainy to be a plain frame, so the surround check never sees it); their blocks do not agree. A copy's
do, and a mirrored copy's once compared mirrored."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from finetuner.config import VerifyConfig
from finetuner.dedup.audit import margin
from finetuner.dedup.candidates import Verified
from finetuner.dedup.correlation import SMOOTH_SIGMA, block_agreement, block_agreements, block_parts, blur_each
from finetuner.dedup.surround import MIN_BLOCK_AGREEMENT, _inside, whole_inside
from finetuner.dedup.verify import Verdicts, verify
from tests.dedup.test_surround import thumb
from tests.dedup.test_verify import watermarked

ASPECT = 4 / 3


def faint(seed: int, amplitude: float = 12.0, size: tuple[int, int] = (192, 144)) -> Image.Image:
    """A low-contrast texture (gravel in fog, a pale tissue section): smooth noise of `amplitude` grey levels."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, (size[1] // 8, size[0] // 8))
    small = Image.fromarray(np.clip(110 + amplitude * coarse, 0, 255).astype(np.uint8))
    return small.resize(size, Image.Resampling.BICUBIC)


def mounted(picture: Image.Image, paper: int = 0) -> Image.Image:
    """`picture` on a bright mount of grainy paper (6 grey levels of grain: not flat enough to be a frame), centred."""
    rng = np.random.default_rng(1000 + paper)
    paper = Image.fromarray(np.clip(225 + rng.normal(0, 6, (180, 240)), 0, 255).astype(np.uint8))
    paper.paste(picture, (24, 18))
    return paper


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    data = io.BytesIO()
    image.convert("RGB").save(data, "JPEG", quality=quality)
    return Image.open(io.BytesIO(data.getvalue()))


@pytest.mark.parametrize("seeds", [(0, 1), (2, 3), (4, 5), (6, 7)], ids=str)
def test_different_faint_pictures_on_one_grainy_mount_are_refused_by_their_blocks(seeds, monkeypatch):
    a, b = (thumb(mounted(faint(seed))) for seed in seeds)
    verdict = verify(a, b, aspect=(ASPECT, ASPECT))
    assert not verdict.accepted and verdict.rule == "blocks", verdict
    assert verdict.similarity < MIN_BLOCK_AGREEMENT and "its parts disagree" in verdict.transform
    monkeypatch.setattr("finetuner.dedup.second_looks.MIN_BLOCK_AGREEMENT", -1.0)
    without = verify(a, b, aspect=(ASPECT, ASPECT))
    assert without.accepted and without.rule == "aligned", without  # through the mount they matched


EDITS = {
    "a smaller JPEG": lambda im: jpeg(im.resize((120, 90)), 20),
    "grain": lambda im: Image.fromarray(
        np.clip(np.asarray(im, np.float64) + np.random.default_rng(0).normal(0, 12, (180, 240)), 0, 255).astype(
            np.uint8
        )
    ),
    "5% cut at two sides": lambda im: im.crop((12, 9, 240, 180)),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(1.5)),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=str)
def test_a_mounted_pictures_copy_agrees_block_by_block(edit):
    original = mounted(faint(2))
    copy = EDITS[edit](original)
    verdict = verify(thumb(original), thumb(copy), aspect=(ASPECT, copy.size[0] / copy.size[1]))
    assert verdict.accepted, verdict


def lanczos(image: Image.Image) -> np.ndarray:
    """A 64x64 grey thumbnail by Pillow's Lanczos resize: its resampling lets the frames as they are pass here."""
    return np.asarray(image.convert("L").resize((64, 64), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_mirrored_copy_on_a_symmetric_mount_is_compared_mirrored(seed, monkeypatch):
    """The mount is symmetric, so the frames as they are pass without mirroring; the blocks disagree, and the
    mirrored views the candidate named are compared instead."""
    original = mounted(faint(seed, 8.0), paper=seed)
    copy = original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    verdict = verify(lanczos(original), lanczos(copy), aspect=(ASPECT, ASPECT))
    assert verdict.accepted and verdict.transform.startswith("mirror"), verdict
    monkeypatch.setattr("finetuner.dedup.second_looks._mirrored_look", lambda *args: False)
    unmirrored = verify(lanczos(original), lanczos(copy), aspect=(ASPECT, ASPECT))
    assert not unmirrored.accepted and unmirrored.rule == "blocks", unmirrored


def test_block_agreements_in_a_batch_are_block_agreement_pair_by_pair():
    rng = np.random.default_rng(0)
    p = blur_each(rng.uniform(0, 255, (6, 64, 64)).astype(np.float32), 2.0)
    q = np.concatenate([p[:3] + rng.normal(0, 4, (3, 64, 64)).astype(np.float32), p[[4, 5, 3]]])
    frame = np.zeros((64, 64), bool)
    frame[:12] = True
    for inside in (whole_inside(64), _inside(frame)):
        one = [block_agreement(x, y, inside) for x, y in zip(p, q)]
        parts = [block_parts(blur_each(x, SMOOTH_SIGMA), inside) for x in (p, q)]
        batch = block_agreements(*parts, np.arange(6), np.arange(6))
        np.testing.assert_allclose(batch, one, atol=1e-6)
        assert (batch[:3] > 0.9).all() and (np.abs(batch[3:]) < 0.5).all(), batch


@pytest.mark.parametrize(("amplitude", "seed"), [(8.0, 0), (9.0, 8)])
def test_a_watermarked_copy_is_not_judged_by_its_blocks(amplitude, seed, monkeypatch):
    """The watermark stage left out what the mark covers; the mark still spoils the blocks it crosses."""
    original = faint(seed, amplitude, (160, 120)).convert("RGB")
    copy = watermarked(original)
    verdict = verify(thumb(original), thumb(copy), aspect=(ASPECT, ASPECT))
    assert verdict.accepted and "disagree most left out" in verdict.transform, verdict
    monkeypatch.setattr("finetuner.dedup.second_looks.PARTLY_COVERED", ())
    judged = verify(thumb(original), thumb(copy), aspect=(ASPECT, ASPECT))
    assert not judged.accepted and judged.rule == "blocks", judged


def test_margin_of_a_pair_refused_by_its_blocks_is_their_agreement_below_the_threshold():
    verdicts = Verdicts(
        accepted=np.array([False, True]),
        rule=np.array(["blocks", "aligned"], dtype=object),
        similarity=np.array([MIN_BLOCK_AGREEMENT - 0.3, 0.95]),
        detail_similarity=np.array([0.9, 0.9]),
        overlap=np.array([1.0, 1.0]),
        transform=np.array(["", ""], dtype=object),
    )
    found = Verified(np.array([0, 2]), np.array([1, 3]), np.array(["full~full"] * 2), np.array([3, 5]), verdicts)
    gap = margin(found, VerifyConfig())
    assert gap[0] == pytest.approx(-0.3) and gap[1] > 0
