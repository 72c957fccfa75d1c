"""Batch hashing: bit-for-bit imagehash's hashes, reduced-size JPEG decoding, parallel equals serial."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageCms

from finetuner.dedup import decoding, hashing
from finetuner.dedup.decoding import decode_for_hash, decode_grey
from finetuner.dedup.hashing import hash_files, hash_images
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


def test_colour_thumbnails_are_kept_beside_the_grey_ones(tmp_path: Path) -> None:
    red = Image.new("RGB", (120, 90), (200, 30, 30))
    path = tmp_path / "red.png"
    red.save(path)
    for batch in (hash_images([red], ["phash"]), hash_files([path], ["phash"], workers=1)):
        assert batch.colours.shape == (1, 16, 16, 3) and (batch.colours[0] == (200, 30, 30)).all()
        assert (batch.thumbs[0] == round(0.299 * 200 + 0.587 * 30 + 0.114 * 30)).all()  # grey: the luma


def test_thumbnails_of_one_shape_resized_together_are_the_ones_made_one_at_a_time(monkeypatch) -> None:
    """Images of one shape are resized stacked (area averaging); each thumbnail must be the pixels of its own call,
    whatever the shapes (shrunk by any ratio, equal to the side in one direction, enlarged), grey or colour, and
    however the stack is cut."""
    rng = np.random.default_rng(5)
    shapes = [(90, 120), (97, 131), (64, 200), (360, 480), (48, 70), (63, 64), (128, 128)]
    for colour, side in ((False, hashing.THUMB), (True, 16)):
        images = [
            rng.integers(0, 256, (*shapes[k % len(shapes)], *((3,) if colour else ())), dtype=np.uint8)
            for k in range(5 * len(shapes))
        ]
        alone = []
        for image in images:
            interp = cv2.INTER_AREA if min(image.shape[:2]) >= side else cv2.INTER_LINEAR
            alone.append(cv2.resize(image, (side, side), interpolation=interp))
        monkeypatch.setattr(hashing, "STACKED_PIXELS", 3 * 360 * 480)  # the largest shape's stack cut in two
        assert np.array_equal(hashing.thumbnails(images, side, colour), np.stack(alone))


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


def test_plain_jpegs_decode_through_opencv_as_pillow_decodes_them(tmp_path: Path) -> None:
    """decode_colour's OpenCV path gives Pillow's draft-mode pixels (and so decode_grey its grey), for every kind of
    plain JPEG and scale."""
    kinds = {
        "baseline": {},
        "444": {"subsampling": 0},
        "progressive": {"progressive": True},
        "optimized": {"optimize": True, "quality": 60},
        "restarts": {"restart_marker_blocks": 3},
        "comment": {"comment": b"a note"},
    }
    checked = 0
    for name, options in kinds.items():
        for size in ((480, 360), (1024, 768), (130, 65), (63, 200), (513, 257), (50, 40)):
            for mode in ("RGB", "L"):
                path = tmp_path / f"{name}-{size[0]}x{size[1]}-{mode}.jpg"
                photo(size[0] + size[1], size).convert(mode).save(path, format="JPEG", **options)
                assert decoding._plain_jpeg_size(path.read_bytes()) == size, path.name  # OpenCV's path is taken
                assert np.array_equal(decode_grey(path), np.asarray(decode_for_hash(path))), path.name
                colour = np.asarray(decode_for_hash(path, color=True))
                assert np.array_equal(decoding.decode_colour(path), colour), path.name  # and its colours
                checked += 1
    assert checked == 72


def test_metadata_that_leaves_a_jpeg_upright_keeps_opencvs_path(tmp_path: Path) -> None:
    """EXIF without an orientation or with orientation 1, XMP naming none, an ICC profile: OpenCV's path, Pillow's
    pixels. A turned EXIF or XMP orientation, an Adobe colour transform or a multi-picture file: Pillow's path."""
    image = photo(5, (160, 96))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>'
    cases = {}
    for order in ("MM", "II"):
        for orientation in (None, 1, 6):
            exif = Image.Exif()
            exif[0x010F] = "Camera"
            if orientation:
                exif[0x0112] = orientation
            data = exif.tobytes()
            if order == "II":  # Pillow writes big-endian; the same entries in little-endian order
                data = data[:6] + _little_endian_tiff(data[6:])
            cases[f"exif-{order}-{orientation}"] = ({"exif": data}, orientation in (None, 1))
    cases["icc"] = ({"icc_profile": icc}, True)
    cases["xmp-plain"] = ({"xmp": b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'}, True)
    cases["xmp-turned"] = ({"xmp": xmp % 6}, False)
    for name, (options, fast) in cases.items():
        path = tmp_path / f"{name}.jpg"
        image.save(path, format="JPEG", **options)
        assert (decoding._plain_jpeg_size(path.read_bytes()) is not None) == fast, name
        assert np.array_equal(decode_grey(path), np.asarray(decode_for_hash(path))), name
    assert decode_grey(tmp_path / "exif-MM-6.jpg").shape == decode_grey(tmp_path / "exif-II-6.jpg").shape == (160, 96)
    image.save(tmp_path / "two.mpo", format="MPO", save_all=True, append_images=[photo(6, (160, 96))])
    image.convert("CMYK").save(tmp_path / "adobe.jpg", format="JPEG")
    for name in ("two.mpo", "adobe.jpg"):
        assert decoding._plain_jpeg_size((tmp_path / name).read_bytes()) is None, name
        assert np.array_equal(decode_grey(tmp_path / name), np.asarray(decode_for_hash(tmp_path / name))), name


def _little_endian_tiff(tiff: bytes) -> bytes:
    """A big-endian TIFF block (Pillow writes those) of one IFD with SHORT or ASCII entries, rewritten little-endian."""
    count = int.from_bytes(tiff[8:10], "big")
    out = bytearray(b"II\x2a\x00" + tiff[4:8][::-1] + tiff[8:10][::-1])
    for e in range(count):
        entry = tiff[10 + 12 * e : 22 + 12 * e]
        tag, kind, n = (int.from_bytes(entry[a:b], "big") for a, b in ((0, 2), (2, 4), (4, 8)))
        value = entry[8:12]
        if kind == 3 and n == 1:
            value = value[:2][::-1] + b"\x00\x00"
        elif kind != 2 or n > 4:
            value = value[::-1]  # an offset
        out += tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + n.to_bytes(4, "little") + value
    return bytes(out + tiff[10 + 12 * count : 14 + 12 * count][::-1] + tiff[14 + 12 * count :])


def test_other_files_decode_through_pillow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files whose pixels Pillow may change (EXIF orientation, CMYK) or that are not plain JPEGs take Pillow's path;
    a truncated JPEG fails as Pillow fails."""
    image = photo(4, (160, 96))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(tmp_path / "rotated.jpg", format="JPEG", exif=exif)
    image.convert("CMYK").save(tmp_path / "cmyk.jpg", format="JPEG")
    image.save(tmp_path / "photo.png")
    whole = to_jpeg_bytes(image)
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    opened = []
    monkeypatch.setattr(decoding.cv2, "imdecode", lambda *args: opened.append(args))
    for name in ("rotated.jpg", "cmyk.jpg", "photo.png"):
        assert np.array_equal(decode_grey(tmp_path / name), np.asarray(decode_for_hash(tmp_path / name))), name
    assert decode_grey(tmp_path / "rotated.jpg").shape == (160, 96)  # upright: portrait
    with pytest.raises(OSError):
        decode_grey(tmp_path / "truncated.jpg")
    assert opened == []


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
    assert all(np.array_equal(one.hashes[m], two.hashes[m]) for m in one.hashes) and len(one.hashes) == 1 + len(VIEWS)
    assert np.array_equal(one.thumbs, two.thumbs) and np.array_equal(one.detail, two.detail)
    assert not one.thumbs[2].any() and one.thumbs[3].any()  # the unreadable file's row stays empty


def test_resolve_workers() -> None:
    assert hashing.resolve_workers(3) == 3
    assert hashing.resolve_workers(0) >= 1


def test_worker_processes_are_forked_with_opencv_single_threaded(tmp_path: Path) -> None:
    """OpenCV's thread pool does not survive fork(): a worker forked while one of its threads held the pool's lock
    waits forever in its first parallel call. The stage's workers (hashing here, decide likewise) are forked with
    OpenCV's threads off, in the caller and so in every worker, and hash as the caller does."""
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"{seed}.jpg")
        paths[-1].write_bytes(to_jpeg_bytes(photo(seed, (160, 120))))
    cv2.setNumThreads(2)  # the pool in use, as a caller's own OpenCV calls leave it
    cv2.GaussianBlur(np.zeros((512, 512), np.float32), (0, 0), 3)
    forked = hash_files(paths, ("phash",), workers=2, chunk=1)
    assert cv2.getNumThreads() == 1  # sequential: setNumThreads(0)
    alone = hash_files(paths, ("phash",), workers=1)
    assert forked.hashes["phash"].tolist() == alone.hashes["phash"].tolist() and forked.ok.all()
