"""Candidate signals that survive real edits: perceptual hashes of several views of each image, searched together.

A plain phash misses the copies that leak most in real collections: a crop moves every DCT coefficient, a mirror
flips the sign of half of them, and letterbox bars or a caption change the frame the hash is taken over. Each view
below undoes one kind of edit before hashing, so the copy and the original meet in at least one view pair:
- `full`: the whole frame; `mirror`: the frame flipped left-right (the same DCT with odd columns negated);
- `crop90`, `crop80`: centre crops keeping 90% / 80% of each side (borders cropped away, a caption bar trimmed);
- `left90`, `right90`, `top90`, `bottom90`: 10% cut from one side (a crop from that side);
- `topleft85`, `topright85`, `bottomleft85`, `bottomright85`: 15% cut from two sides (a crop towards a corner, as a
  photo is reframed on its subject); like the square view, searched only against whole frames;
- `trim`: the content inside uniform borders (letterbox / pillarbox bars, a plain mat, and the line where one blends
  into the picture; a caption panel, text and all; bars and the plain ground they frame, as around a product shot)
  stripped before hashing (finetuner/dedup/trims.py);
- `square`: the centre square of the picture in its true proportions (a wide photo reposted cropped to a square, as
  social media and thumbnails do), from the image's aspect ratio; none for a near-square image;
- `rot90`, `rot180`, `rot270`: the whole frame turned (a scan or a slide saved on its side or upside down; with
  `mirror`, flipped top to bottom): the full frame's low DCT transposed and its odd rows or columns negated;
- `tilt10`, `tilt-10`: the whole frame turned 10 degrees either way in the image's true proportions and enlarged
  until no corner of the canvas shows (a photograph turned 5-15 degrees and cropped to fit: an augmentation saved to
  disk, a horizon straightened in an editor); searched only against whole frames, as the quarter turns are, and
  against the 80% centre crop (`TILT_CENTRE`: the centre of a copy turned 10 degrees with the canvas's black corners
  showing, as a rotation augmentation leaves it, is the other's tilted view); a candidate's signal only where no
  other view pair lies within TILT_MARGIN bits.
Views are computed from a 64x64 grey thumbnail (aspect squashed: a per-axis scale, which the verifier undoes the
same way; the square view also takes the image's aspect ratio), so they can be recomputed from the cached thumbnail.
Also here: which view pairs may propose a candidate (`allowed_combos`; the search is finetuner/dedup/view_search.py),
and each view's box on a thumbnail (`view_box`, `square_boxes`; the trim's: `trims.trim_boxes`). A candidate's signal
(the view pair that proposed it) is parsed, and turned views undone for alignment, in finetuner/dedup/signals.py.
Pure functions; used by hashing, the search, the prescreen and the verifier.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from finetuner.dedup.hashing import THUMB, bits_to_uint64
from finetuner.dedup.trims import trim_boxes

VIEWS = (
    "full",
    "mirror",
    "crop90",
    "crop80",
    "left90",
    "right90",
    "top90",
    "bottom90",
    "trim",
    "square",
    "rot90",
    "rot180",
    "rot270",
    "topleft85",
    "topright85",
    "bottomleft85",
    "bottomright85",
    "tilt10",
    "tilt-10",
)
CORNERS = ("topleft85", "topright85", "bottomleft85", "bottomright85")  # 85% of each side, in one corner
CUTS = ("crop90", "crop80", "left90", "right90", "top90", "bottom90", "square", *CORNERS)  # boxes of the whole frame
# Bump VIEW_BOXES when a view's box changes for the same thumbnail (the hash cache's view hashes and the candidate
# cache's pairs are then made again):
# 2 a bar's blended edge line stripped with the bar, 3 a caption panel stripped with its text, 4 bars around a plain
# ground stripped with the ground, 5 an edge blended over two lines stripped with its bar, and a ground with text on it
# stripped under bars of another shade, 6 a picture shown on a plain ground among other marks, 7 such a picture with
# bays of ground in its box when its inside spreads over many shades, 8 a caption panel whose letters fill most of its
# lines, 9 ...or whose text reaches the line where the picture starts (trims.py), 10 the tilted views (TILTS)
VIEW_BOXES = 10
TURNS = {"rot90": 1, "rot180": 2, "rot270": 3}  # the whole frame turned by quarter turns (counter-clockwise)
# The whole frame turned 10 degrees either way (counter-clockwise first) and enlarged until no corner of the canvas
# shows: a photograph turned by 5-15 degrees and cropped to fit (an augmentation saved to disk, a horizon straightened
# in an editor) hashes near one of them, where its whole frame lies beyond the candidate radius. Codes after TURNS'.
TILTS = {"tilt10": 4, "tilt-10": 5}
TILT_DEGREES = {4: 10.0, 5: -10.0}
TILT_MARGIN = 6  # bits a tilted view pair's distance counts more when the closest signal of a pair is chosen
# A copy turned with the canvas's corners showing (a rotation saved to disk that keeps the frame, as torchvision's
# RandomRotation leaves it): its centre, cut to 80% of each side, is the other's frame turned 10 degrees and enlarged
# to fit, so a tilted view is searched against that view too.
TILT_CENTRE = "crop80"
TURNED = {**TURNS, **TILTS}  # views of the whole frame turned, undone before alignment (signals.unturned)
DETAIL_VIEWS = VIEWS[2:]  # skipped for low-detail images: they add only chance candidates
SQUARE_MIN_STRETCH = 0.1  # |log| of an image's aspect ratio below which it is square enough to have no square view


@functools.cache
def _area_weights(start: int, stop: int) -> np.ndarray:
    """(32, THUMB): OpenCV's INTER_AREA shrink of pixels start:stop of a thumbnail line to 32, as a matrix (each
    output pixel averages the input pixels it covers, partly covered ones by the covered share)."""
    scale = (stop - start) / 32
    out = np.zeros((32, THUMB))
    for k in range(32):
        lo, hi = start + k * scale, start + (k + 1) * scale
        for x in range(int(np.floor(lo)), min(int(np.ceil(hi)), stop)):
            out[k, x] = (min(hi, x + 1) - max(lo, x)) / scale
    return out


def _view_matrices(view: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns), each (8, THUMB): the low 8x8 DCT of a fixed view's 32x32 region of a thumbnail T is
    rows @ T @ columns.T, so every fixed view of a whole batch is two matrix products instead of a resize and a
    DCT per view and image (the mirror's columns are the full frame's, reversed)."""
    box, mirrored = view_box(view, (0, THUMB, 0, THUMB))
    return _box_matrices(tuple(box), mirrored)


@functools.lru_cache(maxsize=4096)
def _box_matrices(box: tuple[int, int, int, int], mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """`_view_matrices` of the region `box` (top, bottom, left, right) of a thumbnail."""
    top, bottom, left, right = box
    dct = np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(32) + 1) / 64) * 2  # scipy's unnormalised DCT-II
    columns = dct @ _area_weights(left, right)
    return (dct @ _area_weights(top, bottom)).astype(np.float32), (columns[:, ::-1] if mirrored else columns).astype(
        np.float32
    )


def _fixed_view_hashes(thumbs: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The hashes of views whose region does not depend on the image, for all thumbnails at once."""
    rows, columns = zip(*(_view_matrices(name) for name in names))
    # one product for every view's columns: (n, 64, 64) @ (64, 8 * views)
    right = thumbs.astype(np.float32) @ np.concatenate(columns).T
    out = {}
    for k, (name, left) in enumerate(zip(names, rows)):
        low = (left @ right[:, :, 8 * k : 8 * k + 8]).reshape(len(thumbs), -1)
        out[name] = bits_to_uint64(low > np.median(low, axis=1, keepdims=True))
        if name == "full":
            out |= _turned_hashes(low.reshape(len(thumbs), 8, 8))
    return out


def _turned_hashes(low: np.ndarray) -> dict[str, np.ndarray]:
    """The TURNS views' hashes from the full frame's low 8x8 DCTs (n, 8, 8): a quarter turn transposes the
    coefficients and reverses one axis, and reversing an axis negates its odd coefficients (DCT-II)."""
    odd = (-1.0) ** np.arange(8)
    turned = {
        "rot90": low.transpose(0, 2, 1) * odd[:, None],  # np.rot90: the transpose, rows reversed
        "rot180": low * odd[:, None] * odd[None, :],
        "rot270": low.transpose(0, 2, 1) * odd[None, :],  # the transpose, columns reversed
    }
    out = {}
    for name, values in turned.items():
        flat = values.reshape(len(low), -1)
        out[name] = bits_to_uint64(flat > np.median(flat, axis=1, keepdims=True))
    return out


def tilted(images: np.ndarray, degrees: float, aspect: np.ndarray | None = None) -> np.ndarray:
    """A stack of squashed thumbnails (n, side, side[, 3]) of images of `aspect` (width / height each; None or NaN:
    square) turned `degrees` counter-clockwise about their centre in the images' true proportions, and enlarged until
    the turned frame covers each whole (the largest box of the image's proportions inside it, brought back to the full
    side), as a photograph turned and cropped to fit is: the TILTS views, and the image a tilted view's pair is
    aligned on. Grey thumbnails of one shape are warped four at a time, as the channels of one image (the same
    pixels, 4x faster)."""
    images = np.asarray(images)
    ratio = np.ones(len(images)) if aspect is None else np.asarray(aspect, np.float64)
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)
    shapes, group = np.unique(np.round(ratio, 6), return_inverse=True)
    out = np.empty_like(images)
    for g, r in enumerate(shapes.tolist()):
        members = np.flatnonzero(group.ravel() == g)
        move = _tilt_move(images.shape[1], degrees, r)
        four = len(members) // 4 * 4 if images.ndim == 3 else 0  # (two channels take another path: other pixels)
        for s in range(0, four, 4):
            part = members[s : s + 4]
            out[part] = np.moveaxis(_warped(np.ascontiguousarray(np.moveaxis(images[part], 0, -1)), move), -1, 0)
        for k in members[four:].tolist():
            out[k] = _warped(np.ascontiguousarray(images[k]), move)
    return out


def _warped(image: np.ndarray, move: np.ndarray) -> np.ndarray:
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, move, image.shape[1::-1], flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _tilt_move(side: int, degrees: float, ratio: float) -> np.ndarray:
    """The 2x3 map (for cv2.warpAffine with WARP_INVERSE_MAP) from a tilted thumbnail's pixels to the thumbnail's, for
    an image of width / height `ratio`: a pixel's place in true proportions is (x * ratio, y); the output shows the
    input turned by `degrees` and enlarged by the zoom that leaves no corner of the canvas in view."""
    turn = np.radians(degrees)
    zoom = np.cos(abs(turn)) + max(ratio, 1.0 / ratio) * np.sin(abs(turn))
    back = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) / zoom
    linear = np.diag([1.0 / ratio, 1.0]) @ back @ np.diag([ratio, 1.0])
    centre = np.full(2, (side - 1) / 2.0)
    return np.hstack([linear, (centre - linear @ centre)[:, None]])


def _whole_hashes(thumbs: np.ndarray) -> np.ndarray:
    """The whole frame's hash of each thumbnail (the full view's)."""
    rows, columns = _box_matrices((0, THUMB, 0, THUMB), False)
    low = (rows @ thumbs.astype(np.float32) @ columns.T).reshape(len(thumbs), -1)
    return bits_to_uint64(low > np.median(low, axis=1, keepdims=True))


def mirrored_boxes(boxes) -> np.ndarray:
    """(top, bottom, left, right) boxes (one, or an array of them) on a thumbnail, as they lie on its mirror image."""
    boxes = np.array(boxes, np.int64)
    boxes[..., 2], boxes[..., 3] = THUMB - boxes[..., 3], THUMB - boxes[..., 2]
    return boxes


def square_boxes(aspect: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 4) of (top, bottom, left, right): the centre square of each of n images of `aspect` (width / height; NaN or
    None: unknown) on its squashed 64x64 thumbnail; the whole frame where the image is near-square or its shape
    unknown."""
    boxes = np.tile(np.array([0, THUMB, 0, THUMB], np.int64), (n, 1))
    if aspect is None:
        return boxes
    ratio = np.asarray(aspect, np.float64)
    known = np.isfinite(ratio) & (ratio > 0)
    stretch = np.where(known, np.abs(np.log(np.where(known, ratio, 1.0))), 0.0)
    margin = np.round(THUMB / 2 * (1 - np.exp(-stretch))).astype(np.int64)  # half the frame less half the square
    wide, tall = (stretch >= SQUARE_MIN_STRETCH) & (ratio > 1), (stretch >= SQUARE_MIN_STRETCH) & (ratio < 1)
    boxes[wide, 2], boxes[wide, 3] = margin[wide], THUMB - margin[wide]
    boxes[tall, 0], boxes[tall, 1] = margin[tall], THUMB - margin[tall]
    return boxes


def whole_frame(view: str, other: str) -> str:
    """The view whose box is compared where `view` meets `other` in a candidate's signal. A whole frame ("full",
    "mirror") is compared as its content inside its bars (a copy with bars added matches the picture inside them),
    except opposite a cut (`CUTS`): a cut is a box of the whole frame, bars and margins included, and its hash matched
    the whole frame's. A page cut 10% at the top is the bottom 90% of its original's whole frame, not of the
    original's text inside its margins (which compared that way correlated 0.51-0.78 at 64x64, 0.80-0.87 at 16x16)."""
    if view in ("full", "mirror"):
        return "full" if other in CUTS else "trim"
    return view


def view_box(
    view: str, trim: tuple[int, int, int, int], aspect: float = float("nan")
) -> tuple[tuple[int, int, int, int], bool]:
    """((top, bottom, left, right), mirrored) of a view on a 64x64 thumbnail whose `trim_box` is `trim`, of an
    image of `aspect` (width / height; NaN: unknown, the square view is then the whole frame)."""
    if view == "trim":
        return tuple(trim), False
    if view == "square":
        return tuple(square_boxes(np.array([aspect]), 1)[0].tolist()), False
    m = {"crop90": round(THUMB * 0.05), "crop80": round(THUMB * 0.1)}.get(view, 0)
    cut = round(THUMB * 0.1)  # 10% off one side: the view of the original that a one-sided crop shows
    corner = round(THUMB * 0.15)  # 15% off two sides: the view of the original a corner crop shows
    boxes = {
        "topleft85": (0, THUMB - corner, 0, THUMB - corner),
        "topright85": (0, THUMB - corner, corner, THUMB),
        "bottomleft85": (corner, THUMB, 0, THUMB - corner),
        "bottomright85": (corner, THUMB, corner, THUMB),
        "left90": (0, THUMB, 0, THUMB - cut),
        "right90": (0, THUMB, cut, THUMB),
        "top90": (0, THUMB - cut, 0, THUMB),
        "bottom90": (cut, THUMB, 0, THUMB),
    }
    return boxes.get(view, (m, THUMB - m, m, THUMB - m)), view == "mirror"


def view_hashes(thumbs: np.ndarray, aspect: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every view's 64-bit hash per thumbnail, as uint64 arrays keyed by view name. `aspect` (width / height of
    each image, NaN where unknown) places the square view; without it (or for a near-square image) that view is the
    full frame's hash."""
    thumbs = np.asarray(thumbs)
    out = _fixed_view_hashes(thumbs, [name for name in VIEWS if name not in ("trim", "square") and name not in TURNED])
    for name, code in TILTS.items():
        out[name] = _whole_hashes(tilted(thumbs, TILT_DEGREES[code], aspect))
    out["trim"] = _boxed_hashes(thumbs, trim_boxes(thumbs), out["full"])
    out["square"] = _boxed_hashes(thumbs, square_boxes(aspect, len(thumbs)), out["full"])
    return {name: out[name] for name in VIEWS}


def _boxed_hashes(thumbs: np.ndarray, regions: np.ndarray, full: np.ndarray) -> np.ndarray:
    """The hash of region regions[k] (top, bottom, left, right) of each thumbnail, `full` where it is the whole
    frame. A collection has few shapes and bars: the images whose regions share a box are hashed by one pair of
    matrix products."""
    out = full.copy()
    cropped = np.flatnonzero((regions != (0, THUMB, 0, THUMB)).any(axis=1))
    boxes, inverse = np.unique(regions[cropped], axis=0, return_inverse=True)
    for k, box in enumerate(boxes.tolist()):
        members = cropped[inverse.ravel() == k]
        rows, columns = _box_matrices(tuple(box), False)
        low = (rows @ thumbs[members].astype(np.float32) @ columns.T).reshape(len(members), -1)
        out[members] = bits_to_uint64(low > np.median(low, axis=1, keepdims=True))
    return out


def view_margin(x: str, y: str) -> int:
    """Bits the view pair (x, y)'s hash distance counts more when the closest signal of an image pair is chosen:
    TILT_MARGIN where either view is tilted (a picture on a plain ground hashes as near its own tilted view as its
    cropped copy's views do, and the alignment the signal names must be the copy's), else none."""
    return TILT_MARGIN if x in TILTS or y in TILTS else 0


def allowed_combos(names: Sequence[str]) -> np.ndarray:
    """Which view pairs may propose a candidate: the trimmed content only against a whole frame. Two trimmed frames
    (or a trimmed frame and a crop) both lose their own framing; letters of different typefaces, trimmed to their
    bounding boxes, look alike that way without being copies. A turned frame only against the other's whole frame
    (as it is or mirrored), a tilted one also against its centre (`TILT_CENTRE`: a copy turned with the canvas's
    corners showing): two turned frames are their frames as they are. A square view likewise only against a
    whole frame."""
    whole = {"full", "mirror"}

    def allowed(x: str, y: str) -> bool:
        if x in TILTS or y in TILTS:
            return (x in TURNED) != (y in TURNED) and bool({x, y} & (whole | {TILT_CENTRE}))
        if x in TURNED or y in TURNED:
            return (x in TURNED) != (y in TURNED) and bool({x, y} & whole)
        if "square" in (x, y) or x in CORNERS or y in CORNERS:  # what a crop of one shows whole
            return bool({x, y} & whole)
        return not ("trim" in (x, y) and not {x, y} & whole)

    return np.array([allowed(x, y) for x in names for y in names])
