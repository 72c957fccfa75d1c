"""The synthetic demo world: specimens of a few shape classes, photographed several times, with planted traps.

A specimen is one physical object (the unit of independence, like a patient or a product) with its own signature:
palette, background texture, size, squash, line width and a sticker. Each photograph of it changes pose, light and
sensor noise. Because a specimen's signature is far easier to memorise than its shape, a model evaluated on photos
of specimens it trained on looks better than it is: the leak that group-aware splitting prevents. On top, the world
plants exact and near duplicates (some filed under another specimen's group, so only near-duplicate detection can
join them) and a few broken files, and records the truth about them.

Pure and deterministic: `build_world(seed, spec, batch)` returns encoded files as records and writes nothing; the
same seed gives the same bytes. Drawing lives in `demo_shapes`, the copy and breakage transforms in `demo_copies`;
`finetuner/demo/data.py` writes the files to disk (`python -m finetuner.demo.data`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from finetuner.demo.copies import BROKEN_KINDS, PLANTED_KINDS, broken_bytes, copy_bytes, encode_jpeg
from finetuner.demo.shapes import (
    DEMO_CLASSES,
    SOURCE_CLASSES,
    TEXTURES,
    Photo,
    Pose,
    Texture,
    render_photo,
    shape_geometry,
)

_DEMO_STREAM, _SOURCE_STREAM = 0, 1  # separate random streams, so the two tasks never share a specimen
Color = tuple[int, int, int]


@dataclass(frozen=True)
class WorldSpec:
    """How big a world (or batch) is and what it plants; the defaults are the demo's batch 1."""

    classes: tuple[str, ...] = DEMO_CLASSES
    # Many specimens with a few photos each: the held-out specimens are enough to score on (a test of a dozen
    # specimens swings by a whole specimen's photos), and a naive split still finds most test photos' siblings.
    specimens: int = 160
    views: tuple[int, int] = (2, 5)  # photographs per specimen, inclusive
    image_size: int = 64
    quality: int = 90
    planted: tuple[int, int, int, int] = (8, 8, 6, 6)  # copies per kind in PLANTED_KINDS order
    cross_group: float = 0.5  # share of planted copies filed under another specimen of the same class
    broken: bool = True  # one file of each kind in BROKEN_KINDS
    cross_batch: int = 2  # batch >= 2 only: re-encoded copies of earlier batches' photos under new groups

    def __post_init__(self) -> None:
        if self.specimens < len(self.classes) or not 1 <= self.views[0] <= self.views[1]:
            raise ValueError("need at least one specimen per class and 1 <= views[0] <= views[1]")


DEMO_SPEC = WorldSpec()
BATCH_SPEC = WorldSpec(specimens=24, planted=(2, 2, 1, 1), broken=False)
# The source task: one photo per specimen, so a specimen's signature never helps and only shape predicts the label
# (with several photos each, pretraining memorises signatures and learns nothing that transfers).
SOURCE_SPEC = WorldSpec(
    classes=SOURCE_CLASSES, specimens=3600, views=(1, 1), planted=(0, 0, 0, 0), broken=False, cross_batch=0
)


@dataclass(frozen=True)
class Specimen:
    """One object and its signature; `photograph` renders view `k` of it."""

    id: str
    label: str
    index: int
    n_views: int
    entropy: tuple[int, ...]  # the seed sequence of this specimen's photographs
    radius: float  # fraction of the image size
    aspect: tuple[float, float]
    rotation: float
    hollow: float
    fill: Color
    line_color: Color
    line_width: float  # pixels at 64 px
    mark: tuple[tuple[float, float], float] | None
    mark_color: Color
    texture: Texture
    noise: float
    light: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class DemoFile:
    """One file of the world: where it goes (relative to `images/`, label folder first), its group and bytes."""

    path: str
    label: str
    group: str
    data: bytes
    kind: str  # "photo", one of PLANTED_KINDS or one of BROKEN_KINDS
    original: str | None = None  # planted copies: the path of the photo they copy


@dataclass(frozen=True)
class DemoWorld:
    files: tuple[DemoFile, ...]

    def metadata_rows(self) -> list[dict[str, str]]:
        """Rows of `metadata.csv` (`path,group`), one per file, broken ones included."""
        return [{"path": f.path, "group": f.group} for f in self.files]

    def truth(self) -> dict[str, Any]:
        """What was planted: duplicate pairs (and whether they cross groups) and broken files."""
        groups = {f.path: f.group for f in self.files}
        pairs = [
            {
                "kind": f.kind,
                "original": f.original,
                "copy": f.path,
                "cross_group": groups.get(f.original or "", "?") != f.group,
            }
            for f in self.files
            if f.kind in PLANTED_KINDS or f.kind == "cross_batch"
        ]
        broken = [{"kind": f.kind, "path": f.path} for f in self.files if f.kind in BROKEN_KINDS]
        return {
            "planted": pairs,
            "broken": broken,
            "counts_by_class": dict(sorted(Counter(f.label for f in self.files).items())),
        }


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _luma(color: Sequence[float]) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


def _color(rng: np.random.Generator) -> Color:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _object_colors(rng: np.random.Generator, background: tuple[Color, Color]) -> Color:
    """A fill that stands out from the background's mean brightness, so the shape stays visible."""
    floor = _luma(np.mean(background, axis=0))
    fill = _color(rng)
    for _ in range(50):
        if abs(_luma(fill) - floor) >= 80:
            break
        fill = _color(rng)
    return fill


def make_specimen(seed: int, stream: int, batch: int, index: int, label: str, spec: WorldSpec, prefix: str) -> Specimen:
    """Draw one specimen's signature from its own random stream (independent of how many others exist)."""
    rng = _rng(seed, stream, batch, index)
    # A subtle two-tone texture: distinctive enough to recognise the specimen, quiet enough not to hide the shape.
    base = _color(rng)
    other = tuple(int(b + 0.35 * (c - b)) for b, c in zip(base, _color(rng), strict=True))
    background: tuple[Color, Color] = (base, other)  # type: ignore[assignment]
    texture = Texture(
        kind=str(rng.choice(TEXTURES)),
        colors=background,
        frequency=float(rng.uniform(2, 7)),
        angle=float(rng.uniform(0, math.pi)),
        phases=tuple(float(p) for p in rng.uniform(0, 6.3, 3)),
    )
    mark = None
    if rng.random() < 0.7:
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.45)
        mark = ((float(dist * math.cos(angle)), float(dist * math.sin(angle))), float(rng.uniform(0.12, 0.22)))
    return Specimen(
        id=f"{prefix}-s{index:03d}",
        label=label,
        index=index,
        n_views=int(rng.integers(spec.views[0], spec.views[1] + 1)),
        entropy=(seed, stream, batch, index, 1),
        radius=float(rng.uniform(0.28, 0.42)),
        aspect=(float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.85, 1.15))),
        rotation=float(rng.uniform(-0.3, 0.3)),
        hollow=float(rng.uniform(0.3, 0.5)),
        fill=_object_colors(rng, background),
        line_color=_color(rng),
        line_width=float(rng.choice([0.0, 1.0, 1.5, 2.0, 3.0])),
        mark=mark,
        mark_color=_color(rng),
        texture=texture,
        noise=float(rng.uniform(3, 10)),
        light=tuple(
            (float(fx), float(fy), float(phase), float(amplitude))
            for fx, fy, phase, amplitude in zip(
                rng.uniform(-1.2, 1.2, 3),
                rng.uniform(-1.2, 1.2, 3),
                rng.uniform(0, 2 * math.pi, 3),
                rng.uniform(15, 35, 3),
                strict=True,
            )
        ),
    )


def photograph(specimen: Specimen, view: int, size: int = 64) -> Image.Image:
    """View `view` of a specimen: its signature under a new pose, light and sensor noise."""
    rng = _rng(*specimen.entropy, view)
    radius = specimen.radius * size * rng.uniform(0.88, 1.12)
    slack = max(size / 2 - radius * 1.05, 0.0) * 0.7
    offset = (float(rng.uniform(-slack, slack)), float(rng.uniform(-slack, slack)))
    pose = Pose(
        center=(size / 2 + offset[0], size / 2 + offset[1]),
        radius=radius,
        rotation=specimen.rotation + float(np.clip(rng.normal(0, 0.15), -0.35, 0.35)),
        aspect=specimen.aspect,
    )
    shift = (offset[0] * 0.5 + float(rng.uniform(-3, 3)), offset[1] * 0.5 + float(rng.uniform(-3, 3)))
    sigma = specimen.noise * rng.uniform(0.6, 1.4)
    photo = Photo(
        geometry=shape_geometry(specimen.label, specimen.hollow),
        pose=pose,
        background=specimen.texture,
        shift=shift,
        fill=specimen.fill,
        line_color=specimen.line_color,
        line_width=specimen.line_width * size / 64,
        mark=specimen.mark,
        mark_color=specimen.mark_color,
        brightness=float(rng.uniform(0.75, 1.25)),
        contrast=float(rng.uniform(0.7, 1.3)),
        light=tuple(
            (fx, fy, phase + float(rng.normal(0, 0.2)), amplitude * float(rng.uniform(0.85, 1.15)))
            for fx, fy, phase, amplitude in specimen.light
        ),
        noise=rng.normal(0, sigma, (size, size, 3)),
    )
    return render_photo(photo, size)


class _Folders:
    """Hands out the next free file name in each specimen's folder (`<label>/<group>/<group>-NN.jpg`)."""

    def __init__(self) -> None:
        self._next: Counter[str] = Counter()

    def name(self, specimen: Specimen) -> str:
        number = self._next[specimen.id]
        self._next[specimen.id] += 1
        return f"{specimen.label}/{specimen.id}/{specimen.id}-{number:02d}.jpg"


def make_specimens(
    seed: int, spec: WorldSpec, *, batch: int = 1, stream: int = _DEMO_STREAM, prefix: str = ""
) -> list[Specimen]:
    """The specimens of one batch, classes balanced (counts differ by at most one) and shuffled."""
    order = _rng(seed, stream, batch, 1_000_000).permutation(spec.specimens)
    labels = [spec.classes[int(k) % len(spec.classes)] for k in order]
    prefix = prefix or f"b{batch}"
    return [make_specimen(seed, stream, batch, index, label, spec, prefix) for index, label in enumerate(labels)]


def _target(rng: np.random.Generator, source: Specimen, specimens: Sequence[Specimen], cross: bool) -> Specimen:
    """Where a planted copy is filed: its own specimen, or (cross) another specimen of the same class."""
    others = [s for s in specimens if s.label == source.label and s.id != source.id]
    return others[int(rng.integers(len(others)))] if cross and others else source


def build_world(
    seed: int,
    spec: WorldSpec = DEMO_SPEC,
    *,
    batch: int = 1,
    previous: Sequence[tuple[str, bytes]] = (),
    stream: int = _DEMO_STREAM,
    prefix: str = "",
) -> DemoWorld:
    """Every file of one batch: the photographs, the planted copies and the broken files.

    `previous` (path, bytes) are photos of earlier batches; for batch >= 2, `spec.cross_batch` of them are copied
    (re-encoded) into new specimens' folders, so a new group joins an old one only through near-duplicate detection.
    """
    specimens = make_specimens(seed, spec, batch=batch, stream=stream, prefix=prefix)
    folders = _Folders()
    photos = [
        DemoFile(
            folders.name(s), s.label, s.id, encode_jpeg(photograph(s, view, spec.image_size), spec.quality), "photo"
        )
        for s in specimens
        for view in range(s.n_views)
    ]
    rng = _rng(seed, stream, batch, 2_000_000)
    files = photos + _plant_copies(rng, photos, specimens, folders, spec)
    if batch >= 2 and spec.cross_batch:
        files += _copy_previous(rng, previous, specimens, folders, spec)
    if spec.broken:
        files += _break_files(rng, specimens, folders, spec)
    return DemoWorld(tuple(files))


def _plant_copies(
    rng: np.random.Generator,
    photos: Sequence[DemoFile],
    specimens: Sequence[Specimen],
    folders: _Folders,
    spec: WorldSpec,
) -> list[DemoFile]:
    """Copies of distinct photos; of each kind, the first `cross_group` share is filed under another group."""
    by_id = {s.id: s for s in specimens}
    plan = [
        (kind, k < round(count * spec.cross_group))
        for kind, count in zip(PLANTED_KINDS, spec.planted, strict=True)
        for k in range(count)
    ]
    chosen = rng.permutation(len(photos))[: len(plan)]
    copies = []
    for (kind, cross), pick in zip(plan, chosen, strict=False):
        original = photos[int(pick)]
        source = by_id[original.group]
        others = [s for s in specimens if s.label == source.label and s.id != source.id]
        target = others[int(rng.integers(len(others)))] if cross and others else source
        data = copy_bytes(original.data, kind, rng, spec.quality)
        copies.append(DemoFile(folders.name(target), target.label, target.id, data, kind, original.path))
    return copies


def _copy_previous(
    rng: np.random.Generator,
    previous: Sequence[tuple[str, bytes]],
    specimens: Sequence[Specimen],
    folders: _Folders,
    spec: WorldSpec,
) -> list[DemoFile]:
    """Re-encoded copies of earlier batches' photos, filed under new specimens of the same class."""
    copies = []
    for pick in rng.permutation(len(previous))[: spec.cross_batch]:
        path, data = previous[int(pick)]
        label = path.split("/", 1)[0]
        targets = [s for s in specimens if s.label == label]
        if not targets:  # an earlier class this batch does not have: nowhere honest to file it
            continue
        target = targets[int(rng.integers(len(targets)))]
        copies.append(
            DemoFile(
                folders.name(target),
                target.label,
                target.id,
                copy_bytes(data, "requality", rng, spec.quality),
                "cross_batch",
                path,
            )
        )
    return copies


def _break_files(
    rng: np.random.Generator, specimens: Sequence[Specimen], folders: _Folders, spec: WorldSpec
) -> list[DemoFile]:
    """One broken file of each kind, each in a different specimen's folder."""
    broken = []
    for kind, host in zip(BROKEN_KINDS, rng.permutation(len(specimens)), strict=False):
        specimen = specimens[int(host)]
        photo = encode_jpeg(photograph(specimen, specimen.n_views, spec.image_size), spec.quality)
        broken.append(DemoFile(folders.name(specimen), specimen.label, specimen.id, broken_bytes(kind, photo), kind))
    return broken


def build_source(seed: int, spec: WorldSpec = SOURCE_SPEC) -> DemoWorld:
    """The pretraining source task: other shape classes from the same generator, on its own random stream."""
    return build_world(seed, spec, stream=_SOURCE_STREAM, prefix="src")
