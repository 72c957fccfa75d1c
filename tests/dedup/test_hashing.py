"""Batch hashing: bit-for-bit imagehash's hashes, reduced-size JPEG decoding, parallel equals serial."""

from __future__ import annotations

import os
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from finetuner.dedup import hashing
from finetuner.dedup.hashing import decode_for_hash, hash_files, hash_images
from finetuner.demo.synthetic_photos import photo, to_jpeg_bytes

REFERENCE = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
    "colorhash": imagehash.colorhash,
}


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = [photo(seed, (48 + seed, 40)) for seed in range(12)]
    out += [Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)) for _ in range(6)]
    out.append(Image.new("RGB", (40, 40), (120, 130, 140)))  # flat: all DCT ties, the median edge case
    out.append(Image.new("L", (64, 32), 7))
    return out


@pytest.mark.parametrize("method", sorted(REFERENCE))
def test_equals_imagehash(method: str) -> None:
    batch = hash_images(images(), [method])
    expected = [int(str(REFERENCE[method](image)), 16) for image in images()]
    assert batch.hashes[method].tolist() == expected


def test_detail_separates_flat_from_textured() -> None:
    batch = hash_images([photo(1), Image.new("RGB", (64, 64), (90, 90, 90))], ["phash"])
    assert batch.detail[0] > 20 > batch.detail[1]


def test_jpeg_is_decoded_at_reduced_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(to_jpeg_bytes(photo(3, (1024, 768))))
    grey = decode_for_hash(path)
    assert grey.mode == "L"
    assert grey.size == (128, 96)  # 1/8 scale: JPEG scaling stops there (sides stay >= 64)
    full = hash_images([Image.open(path).convert("L")], ["phash", "dhash"])
    reduced = hash_images([grey], ["phash", "dhash"])
    for method in ("phash", "dhash"):  # the reduced decode barely moves the hash
        assert bin(int(full.hashes[method][0]) ^ int(reduced.hashes[method][0])).count("1") <= 4


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = photo(4, (160, 96))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: viewers show it upright (portrait)
    path = tmp_path / "rotated.jpg"
    image.save(path, format="JPEG", exif=exif)
    assert decode_for_hash(path, size=32).size[1] > decode_for_hash(path, size=32).size[0]


def test_parallel_equals_serial_and_marks_unreadable(tmp_path: Path) -> None:
    paths = []
    for seed in range(6):
        paths.append(tmp_path / f"{seed}.png")
        photo(seed, (64, 48)).save(paths[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    paths.insert(2, broken)
    calls = []  # `meanwhile` runs once in this process, with or without worker processes
    serial = hash_files(paths, ["phash", "dhash"], workers=1, meanwhile=lambda: calls.append(os.getpid()))
    parallel = hash_files(paths, ["phash", "dhash"], workers=2, chunk=2, meanwhile=lambda: calls.append(os.getpid()))
    assert calls == [os.getpid(), os.getpid()]
    assert serial.ok.tolist() == [True, True, False, True, True, True, True]
    for method in ("phash", "dhash"):
        assert np.array_equal(serial.hashes[method], parallel.hashes[method])
    expected = hash_images([Image.open(p) for p in paths if p != broken], ["phash"]).hashes["phash"]
    assert np.array_equal(serial.hashes["phash"][serial.ok], expected)
    # every column lands in its file's row, whichever worker's chunk it came from
    from finetuner.dedup.views import VIEWS

    one, two = (hash_files(paths, ["phash"], workers=w, chunk=3, views=VIEWS) for w in (1, 2))
    assert all(np.array_equal(one.hashes[m], two.hashes[m]) for m in one.hashes) and len(one.hashes) == 10
    assert np.array_equal(one.thumbs, two.thumbs) and np.array_equal(one.detail, two.detail)
    assert not one.thumbs[2].any() and one.thumbs[3].any()  # the unreadable file's row stays empty


def test_resolve_workers() -> None:
    assert hashing.resolve_workers(3) == 3
    assert hashing.resolve_workers(0) >= 1
