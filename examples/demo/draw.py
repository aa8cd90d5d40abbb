"""Drawing the demo's objects with PIL: a shoe of :data:`examples.demo.shapes.SHOE_SHAPES`
seen from the side (body, sole, accents, laces), or a general object, on a light background
with lighting jitter and noise, supersampled then box-filtered down, saved as JPEG. The same
record and generator give the same pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from examples.demo.shapes import (
    ARTICLE_TYPES,
    BASE_COLOURS,
    GENERAL_COLOURS,
    GENERAL_SHAPES,
    LACE_COLOURS,
    LINING,
    METAL,
    OUTLINE_SHADE,
    RGB,
    SHOE_SHAPES,
    SOLE_COLOURS,
    Lacing,
    Point,
    Shape,
)

SUPERSAMPLE = 4  # shapes are drawn this many times larger, then box-filtered down
JPEG_QUALITY = 92
CATALOGUE_SIZE = (60, 80)  # width, height of Kaggle's "small" images
GENERAL_SIZE = (64, 64)


def shade(colour: Sequence[int], factor: float = OUTLINE_SHADE) -> RGB:
    """A darker version of ``colour`` (a lighter one for near-black colours)."""
    if sum(colour) < 150:
        return tuple(min(255, int(c + 70)) for c in colour)  # type: ignore[return-value]
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


@dataclass(frozen=True)
class Placement:
    """Where a shape lands on the supersampled canvas: size (px), rotation, centre, mirror."""

    length: float  # px, the u extent
    height: float  # px, the v extent
    angle: float  # radians
    centre: tuple[float, float]  # px
    mirror: bool

    def to_canvas(self, points: Sequence[Point]) -> np.ndarray:
        xy = (np.asarray(points, dtype=np.float64) - 0.5) * (self.length, self.height)
        if self.mirror:
            xy[:, 0] = -xy[:, 0]
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        xy = xy @ np.array([[cos, sin], [-sin, cos]]) + self.centre
        return xy * SUPERSAMPLE


def draw_line(draw: ImageDraw.ImageDraw, points: np.ndarray, colour: RGB, width: float) -> None:
    """A thick polyline with round joints and round ends."""
    px = max(1, round(width))
    draw.line([tuple(p) for p in points], fill=colour, width=px, joint="curve")
    radius = px / 2
    for x, y in (points[0], points[-1]):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def draw_parts(
    draw: ImageDraw.ImageDraw, shape: Shape, place: Placement, colours: dict[str, RGB]
) -> None:
    for part in shape.parts:
        points = place.to_canvas(part.points)
        colour = colours[part.role]
        if part.width:
            draw_line(draw, points, colour, part.width * place.length * SUPERSAMPLE)
        else:
            draw.polygon(
                [tuple(p) for p in points], fill=colour, outline=shade(colour), width=SUPERSAMPLE
            )


def rotate(vector: np.ndarray, angle: float) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([cos * vector[0] - sin * vector[1], sin * vector[0] + cos * vector[1]])


def draw_lacing(
    draw: ImageDraw.ImageDraw, lacing: Lacing, place: Placement, colour: RGB, tilt: float
) -> None:
    """Parallel lace strokes (with a darker edge) across the vamp line, a bow at the collar."""
    start, end = place.to_canvas((lacing.start, lacing.end))
    along = (end - start) / np.linalg.norm(end - start)
    normal = np.array([along[1], -along[0]])
    if normal[1] > 0:  # point out of the shoe (up), whichever way it faces
        normal = -normal
    half = lacing.length * place.length * SUPERSAMPLE / 2
    width = lacing.width * place.length * SUPERSAMPLE
    for k in range(lacing.count):
        centre = start + (k + 0.6) / lacing.count * (end - start) - 0.25 * half * normal
        stroke = rotate(normal, tilt)
        ends = np.array([centre - half * stroke, centre + half * stroke])
        draw_line(draw, ends, shade(colour, 0.5), width + SUPERSAMPLE)
        draw_line(draw, ends, colour, width)
    if lacing.bow:  # two loops and two loose ends, up from the top eyelet
        knot = start + 0.4 * half * normal
        for angle in (-0.9, 0.5):
            tip = knot + 1.1 * half * rotate(normal, angle)
            side = knot + 0.9 * half * rotate(normal, angle + 0.5)
            draw_line(draw, np.array([knot, tip, side, knot]), colour, width * 0.7)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def lighting_and_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Uneven light (a gradient and a global gain) plus sensor noise."""
    width, height = image.size
    if (width, height) not in _GRIDS:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        _GRIDS[width, height] = (xs / width - 0.5, ys / height - 0.5)
    xs, ys = _GRIDS[width, height]
    gain = rng.uniform(0.93, 1.05) + rng.uniform(-0.08, 0.08) * xs + rng.uniform(-0.08, 0.08) * ys
    pixels = np.asarray(image, dtype=np.float32) * gain[..., None]
    pixels += rng.normal(0.0, rng.uniform(1.5, 4.0), pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def background(rng: np.random.Generator) -> RGB:
    """A plain light background with a slight tint."""
    level = rng.uniform(226, 252)
    return tuple(int(np.clip(level + t, 0, 255)) for t in rng.uniform(-5, 5, 3))  # type: ignore[return-value]


def new_canvas(size: tuple[int, int], fill: RGB) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), fill)
    return image, ImageDraw.Draw(image)


def finish(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return lighting_and_noise(image.reduce(SUPERSAMPLE), rng)


def render_shoe(item: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    """One catalogue photo: the shoe from the side, centred, on a light background."""
    shape = SHOE_SHAPES[ARTICLE_TYPES[item["articleType"]].shape]
    width, height = CATALOGUE_SIZE
    length = rng.uniform(0.8, 0.9) * width
    place = Placement(
        length=length,
        height=length * shape.aspect * rng.uniform(0.95, 1.08),
        angle=math.radians(rng.uniform(-5, 5)),
        centre=(width / 2 + rng.uniform(-2, 2), height / 2 + rng.uniform(-3, 3)),
        mirror=bool(rng.random() < 0.25),
    )
    paper = background(rng)
    image, draw = new_canvas(CATALOGUE_SIZE, paper)
    cx, cy = place.centre
    bottom = cy + place.height / 2
    draw.ellipse(
        [v * SUPERSAMPLE for v in (cx - length * 0.48, bottom - 2, cx + length * 0.48, bottom + 2)],
        fill=tuple(int(c * 0.82) for c in paper),
    )
    colours = {
        "body": BASE_COLOURS[item["baseColour"]][0],
        "sole": SOLE_COLOURS[item["sole"]],
        "accent": item["accent"],
        "lining": LINING,
        "metal": METAL,
        "trim": shade(BASE_COLOURS[item["baseColour"]][0], 0.75),
    }
    draw_parts(draw, shape, place, colours)
    if shape.lacing is not None and item["lace_colour"]:
        tilt = math.radians(rng.uniform(-35, -20))
        draw_lacing(draw, shape.lacing, place, LACE_COLOURS[item["lace_colour"]], tilt)
    return finish(image, rng)


def render_object(label: str, colour: str, rng: np.random.Generator) -> Image.Image:
    """One general-benchmark image: an apparel or accessory silhouette in one colour."""
    shape = GENERAL_SHAPES[label]
    width, height = GENERAL_SIZE
    size = rng.uniform(0.68, 0.84) * width
    along, across = (
        (size, size * shape.aspect) if shape.aspect <= 1 else (size / shape.aspect, size)
    )
    place = Placement(
        length=along,
        height=across,
        angle=math.radians(rng.uniform(-8, 8)),
        centre=(width / 2 + rng.uniform(-3, 3), height / 2 + rng.uniform(-3, 3)),
        mirror=bool(rng.random() < 0.5),
    )
    image, draw = new_canvas(GENERAL_SIZE, background(rng))
    body = GENERAL_COLOURS[colour]
    colours = {"body": body, "trim": shade(body, 0.7), "metal": METAL}
    draw_parts(draw, shape, place, colours)
    return finish(image, rng)


def save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, format="JPEG", quality=JPEG_QUALITY)
