"""Drawing for the synthetic demo world: shape outlines, background textures and one rendered photograph.

Pure: every function maps explicit parameters to a polygon, an array or a PIL image; no randomness happens here
(the caller draws the parameters from a seeded generator), so a photograph is a function of its parameters alone.
`finetuner.demo.world` decides what to draw; this module only knows how.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]
Polygon = list[Point]

#: Classes of the demo task (what the pipeline fine-tunes on).
DEMO_CLASSES = ("circle", "square", "triangle", "star", "cross", "ring")
#: Classes of the pretraining source task: other shapes, same generator, so features transfer but labels do not.
#: Like ImageNet for pets (which holds other breeds of the same animals), the source shares the target's primitives:
#: curves (oval, semicircle, crescent), corners (pentagon, hexagon, rectangle, trapezoid), holes (frame), spikes
#: (sparkle, hexagram) and bars (tee, ell), in shapes none of which is a demo class.
SOURCE_CLASSES = (
    "pentagon",
    "hexagon",
    "crescent",
    "arrow",
    "chevron",
    "semicircle",
    "ell",
    "tee",
    "frame",
    "trapezoid",
    "bowtie",
    "sparkle",
    "hexagram",
    "oval",
    "rectangle",
)
TEXTURES = ("stripes", "checker", "dots", "blobs", "grid", "gradient")

_SUPERSAMPLE = 4  # shapes are drawn 4x larger and downscaled, which anti-aliases their edges


@dataclass(frozen=True)
class Geometry:
    """A shape in unit coordinates (radius about 1, centred on 0): filled polygons minus holes."""

    fills: tuple[Polygon, ...]
    holes: tuple[Polygon, ...] = ()


def _regular(n: int, radius: float = 1.0, start: float = -math.pi / 2) -> Polygon:
    return [
        (radius * math.cos(start + 2 * math.pi * k / n), radius * math.sin(start + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _star() -> Polygon:
    return [
        (r * math.cos(-math.pi / 2 + math.pi * k / 5), r * math.sin(-math.pi / 2 + math.pi * k / 5))
        for k, r in zip(range(10), [1.0, 0.42] * 5, strict=True)
    ]


def _semicircle() -> Polygon:
    return [(math.cos(math.pi * k / 24), 0.45 - math.sin(math.pi * k / 24)) for k in range(25)]


def shape_geometry(name: str, hollow: float = 0.35) -> Geometry:
    """The unit geometry of a class; `hollow` is the ring's thickness (the other shapes ignore it)."""
    builders: dict[str, Callable[[], Geometry]] = {
        "circle": lambda: Geometry((_regular(48),)),
        "square": lambda: Geometry((_rect(-0.8, -0.8, 0.8, 0.8),)),
        "triangle": lambda: Geometry((_regular(3, 1.1, -math.pi / 2),)),
        "star": lambda: Geometry((_star(),)),
        "cross": lambda: Geometry((_rect(-1, -0.28, 1, 0.28), _rect(-0.28, -1, 0.28, 1))),
        "ring": lambda: Geometry((_regular(48),), (_regular(48, 1.0 - hollow),)),
        "pentagon": lambda: Geometry((_regular(5),)),
        "hexagon": lambda: Geometry((_regular(6),)),
        "crescent": lambda: Geometry((_regular(48),), ([(x + 0.45, y - 0.2) for x, y in _regular(48, 0.85)],)),
        "arrow": lambda: Geometry(
            ([(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],)
        ),
        "chevron": lambda: Geometry(([(-0.9, -0.9), (-0.4, -0.9), (0.6, 0), (-0.4, 0.9), (-0.9, 0.9), (0.1, 0)],)),
        "semicircle": lambda: Geometry((_semicircle(),)),
        "ell": lambda: Geometry((_rect(-0.8, -1, -0.3, 1), _rect(-0.8, 0.5, 0.8, 1))),
        "tee": lambda: Geometry((_rect(-0.9, -1, 0.9, -0.5), _rect(-0.25, -1, 0.25, 1))),
        "frame": lambda: Geometry(
            (_rect(-0.8, -0.8, 0.8, 0.8),), (_rect(-0.8 + hollow, -0.8 + hollow, 0.8 - hollow, 0.8 - hollow),)
        ),
        "trapezoid": lambda: Geometry(([(-0.45, -0.7), (0.45, -0.7), (1, 0.7), (-1, 0.7)],)),
        "bowtie": lambda: Geometry(([(-1, -0.8), (0, -0.15), (1, -0.8), (1, 0.8), (0, 0.15), (-1, 0.8)],)),
        "hexagram": lambda: Geometry(
            (
                [
                    (r * math.cos(-math.pi / 2 + math.pi * k / 6), r * math.sin(-math.pi / 2 + math.pi * k / 6))
                    for k, r in zip(range(12), [1.0, 0.55] * 6, strict=True)
                ],
            )
        ),
        "oval": lambda: Geometry(([(x, 0.5 * y) for x, y in _regular(48)],)),
        "rectangle": lambda: Geometry((_rect(-1, -0.45, 1, 0.45),)),
        "sparkle": lambda: Geometry(
            (
                [
                    (r * math.cos(-math.pi / 2 + math.pi * k / 4), r * math.sin(-math.pi / 2 + math.pi * k / 4))
                    for k, r in zip(range(8), [1.0, 0.3] * 4, strict=True)
                ],
            )
        ),
    }
    if name not in builders:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(builders)}")
    return builders[name]()


@dataclass(frozen=True)
class Texture:
    """A two-colour background pattern; `frequency` in cycles per image, `angle` in radians."""

    kind: str
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    frequency: float
    angle: float
    phases: tuple[float, ...]


def render_texture(texture: Texture, size: int, shift: Point = (0.0, 0.0)) -> np.ndarray:
    """The background as a float array (size, size, 3) in 0..255; `shift` (pixels) moves the camera over it."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    xx, yy = (xx + shift[0]) / size, (yy + shift[1]) / size
    u = xx * math.cos(texture.angle) + yy * math.sin(texture.angle)
    v = -xx * math.sin(texture.angle) + yy * math.cos(texture.angle)
    f, p = texture.frequency, texture.phases
    if texture.kind == "stripes":
        mix = 0.5 + 0.5 * np.sin(2 * math.pi * f * u + p[0])
    elif texture.kind == "checker":
        mix = (np.sin(2 * math.pi * f * u + p[0]) * np.sin(2 * math.pi * f * v + p[1]) > 0).astype(np.float64)
    elif texture.kind == "dots":
        mix = (np.sin(2 * math.pi * f * u + p[0]) * np.sin(2 * math.pi * f * v + p[1]) > 0.55).astype(np.float64)
    elif texture.kind == "grid":
        lines = np.minimum(np.abs(np.sin(math.pi * f * u + p[0])), np.abs(np.sin(math.pi * f * v + p[1])))
        mix = (lines < 0.25).astype(np.float64)
    elif texture.kind == "blobs":
        waves = [
            np.sin(
                2 * math.pi * (f / (k + 1)) * (u * math.cos(k + p[k % len(p)]) + v * math.sin(k * 1.7))
                + p[(k + 1) % len(p)]
            )
            for k in range(3)
        ]
        mix = 0.5 + sum(waves) / 6.0
    elif texture.kind == "gradient":
        mix = np.clip(0.5 + 0.9 * (u - 0.5) + 0.15 * np.sin(2 * math.pi * f * v + p[0]), 0, 1)
    else:
        raise ValueError(f"unknown texture {texture.kind!r}; known: {', '.join(TEXTURES)}")
    low, high = (np.asarray(c, dtype=np.float64) for c in texture.colors)
    return low * (1 - mix[..., None]) + high * mix[..., None]


@dataclass(frozen=True)
class Pose:
    """Where the object sits in one photograph: centre (pixels), radius (pixels), rotation (radians), squash."""

    center: Point
    radius: float
    rotation: float
    aspect: Point = (1.0, 1.0)


def _place(polygon: Polygon, pose: Pose, scale: float) -> Polygon:
    cos, sin = math.cos(pose.rotation), math.sin(pose.rotation)
    out = []
    for x, y in polygon:
        x, y = x * pose.aspect[0] * pose.radius, y * pose.aspect[1] * pose.radius
        out.append(((pose.center[0] + x * cos - y * sin) * scale, (pose.center[1] + x * sin + y * cos) * scale))
    return out


def _square_filter(mask: np.ndarray, reach: int, op: np.ufunc) -> np.ndarray:
    """Grey dilation (op=np.maximum) or erosion (np.minimum) by a square of half-width `reach`, separably."""
    out = np.pad(mask, reach, mode="edge")
    size_y, size_x = mask.shape
    rows = out[0:size_y]
    for k in range(1, 2 * reach + 1):
        rows = op(rows, out[k : k + size_y])
    out = rows[:, 0:size_x]
    for k in range(1, 2 * reach + 1):
        out = op(out, rows[:, k : k + size_x])
    return out


def _masks(
    geometry: Geometry, pose: Pose, size: int, line_width: float, mark: tuple[Point, float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anti-aliased coverage (0..1) of the body, its outline and the marking, each (size, size)."""
    big = size * _SUPERSAMPLE
    layers = [Image.new("L", (big, big), 0) for _ in range(3)]
    body, marking = ImageDraw.Draw(layers[0]), ImageDraw.Draw(layers[2])
    for polygon in geometry.fills:
        body.polygon(_place(polygon, pose, _SUPERSAMPLE), fill=255)
    for polygon in geometry.holes:
        body.polygon(_place(polygon, pose, _SUPERSAMPLE), fill=0)
    # The outline is the body's edge band (dilated minus eroded), not its polygons' lines: a union of rectangles
    # (cross, tee) or a hole reaching outside the body (crescent) must not show its inner construction lines.
    width = round(line_width * _SUPERSAMPLE)
    if width > 0:
        body_mask = np.asarray(layers[0])
        reach = (width + 1) // 2
        band = _square_filter(body_mask, reach, np.maximum) - _square_filter(body_mask, reach, np.minimum)
        layers[1] = Image.fromarray(band.astype(np.uint8), mode="L")
    if mark is not None:
        (mx, my), mr = mark
        ((cx, cy),) = _place([(mx, my)], pose, _SUPERSAMPLE)
        r = mr * pose.radius * _SUPERSAMPLE
        marking.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return tuple(
        np.asarray(layer.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0 for layer in layers
    )  # type: ignore[return-value]


@dataclass(frozen=True)
class Photo:
    """Everything one photograph depends on; `render_photo` is a pure function of it."""

    geometry: Geometry
    pose: Pose
    background: Texture
    shift: Point
    fill: tuple[int, int, int]
    line_color: tuple[int, int, int]
    line_width: float
    mark: tuple[Point, float] | None
    mark_color: tuple[int, int, int]
    brightness: float
    contrast: float
    light: tuple[tuple[float, float, float, float], ...]  # uneven illumination: waves (fx, fy, phase, grey levels)
    noise: np.ndarray | None  # additive noise (size, size, 3), drawn by the caller from its seeded generator


def render_photo(photo: Photo, size: int) -> Image.Image:
    """Composite background, body, outline and marking, then apply the light and the sensor noise."""
    image = render_texture(photo.background, size, photo.shift)
    body, outline, marking = _masks(photo.geometry, photo.pose, size, photo.line_width, photo.mark)
    for mask, color in ((body, photo.fill), (outline, photo.line_color), (marking * body, photo.mark_color)):
        image = image * (1 - mask[..., None]) + np.asarray(color, dtype=np.float64) * mask[..., None]
    # The uneven light is part of each specimen's set-up: it moves perceptual hashes of different specimens apart,
    # as different rooms and lamps do, so only real copies stay within the dedup radius.
    yy, xx = np.mgrid[0:size, 0:size] / size
    for fx, fy, phase, amplitude in photo.light:
        image = image + (amplitude * np.sin(2 * math.pi * (fx * xx + fy * yy) + phase))[..., None]
    mean = image.mean()
    image = (image - mean) * photo.contrast + mean * photo.brightness
    if photo.noise is not None:
        image = image + photo.noise
    return Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), mode="RGB")
