"""Procedural data for the offline demo: a footwear catalogue and a general benchmark.

Nothing is downloaded: shoes and other objects are drawn with PIL from the tables below,
deterministically (the same ``seed`` gives byte-identical files), a few thousand images in
seconds.

``generate_footwear_catalogue`` writes the Kaggle "Fashion Product Images" layout, so the
result goes through ``evalsuite prepare footwear`` unchanged:

* ``images/<id>.jpg``: 60x80 (width x height) JPEGs like Kaggle's; the shoe, seen from the
  side, fills the centre 60x60 square that CLIP's resize + centre crop keeps;
* ``styles.csv``: Kaggle's columns (id, gender, masterCategory, subCategory, articleType,
  baseColour, season, year, usage, productDisplayName), all eight Kaggle footwear types and
  the fourteen base colours scored by ``benchmarks/footwear``;
* ``lace_annotations.csv`` (id,lace_colour): one row per laced shoe (casual, sports and formal
  shoes), six lace colours, balanced and drawn independently of the body colour;
* ``generated_captions.jsonl`` ({"id", "caption"}): generic captions that describe type,
  colour and sole but never the laces, as an off-the-shelf captioner would.

``generate_general_benchmark`` writes ``labels.csv`` (path,label,colour,split,caption) and
``images/``: apparel and accessories of eight kinds in eight colours, 64x64, for the
``labelled_csv`` reader; it shows what fine-tuning on shoes costs elsewhere.

Each output folder gets a ``synth.json`` marker (the generator's settings); a folder is
only ever overwritten when it is empty or carries that marker.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from evalsuite.data.catalogue import STYLES_COLUMNS
from evalsuite.errors import DataError

Point = tuple[float, float]
RGB = tuple[int, int, int]

VERSION = 1  # bump when the drawn images or the records change
MARKER = "synth.json"
GENERATOR = "examples.demo.synth"
SUPERSAMPLE = 4  # shapes are drawn this many times larger, then box-filtered down
JPEG_QUALITY = 92
CATALOGUE_SIZE = (60, 80)  # width, height of Kaggle's "small" images
GENERAL_SIZE = (64, 64)
FIRST_ID = 10001
GENERAL_TEST_EVERY = 3  # every 3rd item of a class is in the test split

# --- colours ------------------------------------------------------------------------------

# Kaggle baseColour name -> (RGB, share of the catalogue). Saturated and well apart, so the
# colour survives downscaling to CLIP's 64 px: the fourteen that benchmarks/footwear scores,
# plus Yellow, which one of its text queries names.
BASE_COLOURS: dict[str, tuple[RGB, float]] = {
    "Black": ((30, 30, 32), 0.1),
    "White": ((246, 246, 244), 0.09),
    "Brown": ((120, 68, 30), 0.08),
    "Blue": ((35, 95, 225), 0.07),
    "Grey": ((120, 120, 124), 0.07),
    "Red": ((210, 30, 35), 0.07),
    "Navy Blue": ((22, 32, 96), 0.07),
    "Green": ((30, 150, 65), 0.07),
    "Silver": ((178, 186, 204), 0.05),
    "Gold": ((200, 142, 30), 0.05),
    "Beige": ((228, 204, 160), 0.06),
    "Pink": ((246, 130, 180), 0.06),
    "Purple": ((118, 48, 160), 0.05),
    "Olive": ((108, 116, 34), 0.05),
    "Yellow": ((252, 232, 40), 0.06),
}
# Shoelace colours, drawn with a thin darker edge so that they show on any body colour; the
# six that benchmarks/footwear's lace queries name.
LACE_COLOURS: dict[str, RGB] = {
    "White": (250, 250, 250),
    "Black": (12, 12, 12),
    "Red": (230, 20, 30),
    "Blue": (20, 80, 240),
    "Brown": (130, 72, 28),
    "Grey": (140, 140, 144),
}
SOLE_COLOURS: dict[str, RGB] = {
    "white": (240, 240, 236),
    "black": (35, 35, 35),
    "grey": (150, 150, 150),
    "gum": (178, 116, 60),
    "tan": (200, 160, 110),
}
ACCENT_COLOURS: tuple[RGB, ...] = ((250, 250, 250), (25, 25, 25), (150, 150, 150))
LINING: RGB = (56, 48, 46)
METAL: RGB = (168, 168, 172)
OUTLINE_SHADE = 0.6  # outline colour = fill x this (lighter for near-black fills)

# --- shoe shapes --------------------------------------------------------------------------
# Points are in the shoe's box: u from heel (0) to toe (1), v from top (0) to ground (1).


@dataclass(frozen=True)
class Part:
    """One filled polygon (``width`` 0) or thick polyline (``width`` > 0, a fraction of the
    shape's length), coloured by ``role``: body, sole, accent, lining, metal or trim."""

    role: str
    points: tuple[Point, ...]
    width: float = 0.0


@dataclass(frozen=True)
class Lacing:
    """Lace strokes across the vamp, from ``start`` (collar) to ``end`` (toe side)."""

    start: Point
    end: Point
    count: int
    length: float = 0.2  # stroke length, fraction of the shoe's length
    width: float = 0.065  # stroke width, fraction of the shoe's length
    bow: bool = True


@dataclass(frozen=True)
class Shape:
    """A drawable object: its height/length ratio, its parts (drawn in order), its lacing."""

    aspect: float
    parts: tuple[Part, ...]
    lacing: Lacing | None = None


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 12):
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = +u, 90 = +v i.e. down)."""
    angles = np.radians(np.linspace(a0, a1, n))
    return tuple((cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles)


# Tables of points: kept one part per line (ruff's one-point-per-line layout hides shapes).
# fmt: off
SHOE_SHAPES: dict[str, Shape] = {
    "sneaker": Shape(
        aspect=0.52,
        parts=(
            Part("body", ((0.03, 0.8), (0.01, 0.36), (0.04, 0.1), (0.12, 0.06), (0.32, 0.12),
                          (0.4, 0.16), (0.56, 0.28), (0.74, 0.38), (0.9, 0.45), (0.99, 0.6),
                          (0.99, 0.8))),
            Part("lining", ((0.06, 0.11), (0.12, 0.08), (0.31, 0.14), (0.35, 0.19), (0.1, 0.18))),
            Part("accent", ((0.01, 0.42), (0.13, 0.42), (0.14, 0.78), (0.03, 0.78))),
            Part("sole", ((0.0, 0.78), (1.0, 0.78), (1.0, 0.9), (0.96, 0.99), (0.04, 0.99),
                          (0.0, 0.9))),
        ),
        lacing=Lacing(start=(0.4, 0.18), end=(0.72, 0.4), count=4),
    ),
    "runner": Shape(
        aspect=0.5,
        parts=(
            Part("body", ((0.04, 0.72), (0.02, 0.3), (0.06, 0.06), (0.15, 0.03), (0.3, 0.11),
                          (0.4, 0.17), (0.58, 0.31), (0.78, 0.43), (0.94, 0.51), (1.0, 0.62),
                          (0.98, 0.74))),
            Part("lining", ((0.07, 0.07), (0.15, 0.05), (0.3, 0.12), (0.34, 0.17), (0.12, 0.16))),
            Part("accent", ((0.1, 0.6), (0.32, 0.5), (0.62, 0.38), (0.7, 0.42), (0.4, 0.58),
                            (0.16, 0.68))),
            Part("sole", ((0.0, 0.64), (0.3, 0.7), (1.0, 0.72), (0.99, 0.86), (0.94, 0.96),
                          (0.06, 1.0), (0.0, 0.9))),
            Part("accent", ((0.02, 0.82), (0.96, 0.8), (0.96, 0.85), (0.02, 0.88))),
        ),
        lacing=Lacing(start=(0.38, 0.16), end=(0.72, 0.41), count=4),
    ),
    "oxford": Shape(
        aspect=0.38,
        parts=(
            Part("body", ((0.04, 0.78), (0.03, 0.3), (0.07, 0.1), (0.3, 0.16), (0.42, 0.22),
                          (0.55, 0.32), (0.75, 0.45), (0.92, 0.56), (1.0, 0.68), (0.98, 0.8))),
            Part("lining", ((0.08, 0.12), (0.3, 0.18), (0.34, 0.23), (0.1, 0.22))),
            Part("trim", ((0.8, 0.48), (0.78, 0.62), (0.8, 0.79)), width=0.02),
            Part("sole", ((0.2, 0.78), (1.0, 0.77), (0.99, 0.88), (0.2, 0.88))),
            Part("sole", ((0.03, 0.76), (0.22, 0.76), (0.21, 1.0), (0.05, 1.0))),
        ),
        lacing=Lacing(start=(0.39, 0.2), end=(0.64, 0.38), count=3),
    ),
    "pump": Shape(
        aspect=0.7,
        parts=(
            Part("sole", ((0.04, 0.56), (0.16, 0.6), (0.11, 1.0), (0.09, 1.0))),
            Part("body", ((0.02, 0.56), (0.04, 0.26), (0.12, 0.28), (0.3, 0.48), (0.52, 0.64),
                          (0.7, 0.67), (0.88, 0.73), (1.0, 0.87), (0.98, 0.96), (0.7, 0.95),
                          (0.45, 0.86), (0.2, 0.64))),
            Part("lining", ((0.1, 0.3), (0.3, 0.5), (0.52, 0.65), (0.42, 0.7), (0.22, 0.58),
                            (0.1, 0.44))),
            Part("sole", ((0.02, 0.6), (0.2, 0.66), (0.45, 0.88), (0.7, 0.97), (0.99, 0.98)),
                 width=0.035),
        ),
    ),
    "ballet": Shape(
        aspect=0.4,
        parts=(
            Part("body", ((0.02, 0.86), (0.02, 0.34), (0.08, 0.22), (0.3, 0.34), (0.5, 0.4),
                          (0.62, 0.3), (0.8, 0.3), (0.94, 0.45), (1.0, 0.66), (1.0, 0.86))),
            Part("lining", ((0.07, 0.26), (0.3, 0.37), (0.5, 0.43), (0.6, 0.36), (0.3, 0.48),
                            (0.08, 0.44))),
            Part("accent", ((0.64, 0.3), (0.7, 0.22), (0.72, 0.3), (0.7, 0.38))),
            Part("sole", ((0.0, 0.84), (1.0, 0.84), (0.98, 1.0), (0.02, 1.0))),
        ),
    ),
    # Flip flops are shown from above, as catalogues usually do.
    "flipflop": Shape(
        aspect=0.36,
        parts=(
            Part("sole", (*arc(0.17, 0.58, 0.17, 0.34, 90, 270),
                          *arc(0.76, 0.56, 0.24, 0.44, -90, 90))),
            Part("body", (*arc(0.17, 0.48, 0.17, 0.34, 90, 270),
                          *arc(0.76, 0.46, 0.24, 0.44, -90, 90))),
            Part("trim", ((0.4, 0.14), (0.8, 0.46), (0.4, 0.8)), width=0.07),
        ),
    ),
    "sandal": Shape(
        aspect=0.42,
        parts=(
            Part("body", ((0.05, 0.76), (0.05, 0.3), (0.3, 0.3), (0.5, 0.28)), width=0.07),
            Part("body", ((0.4, 0.76), (0.45, 0.36), (0.5, 0.28), (0.56, 0.36), (0.62, 0.76)),
                 width=0.07),
            Part("body", arc(0.82, 0.78, 0.13, 0.38, 180, 360), width=0.07),
            Part("sole", ((0.0, 0.76), (1.0, 0.78), (0.98, 1.0), (0.02, 1.0))),
            Part("metal", ((0.27, 0.24), (0.33, 0.24), (0.33, 0.36), (0.27, 0.36))),
        ),
    ),
    "sport_sandal": Shape(
        aspect=0.46,
        parts=(
            Part("body", ((0.08, 0.7), (0.06, 0.2), (0.18, 0.16), (0.2, 0.7))),
            Part("body", ((0.2, 0.26), (0.52, 0.2), (0.55, 0.34), (0.2, 0.42))),
            Part("body", ((0.45, 0.7), (0.55, 0.2), (0.68, 0.22), (0.62, 0.7))),
            Part("body", ((0.72, 0.7), (0.82, 0.36), (0.92, 0.4), (0.9, 0.7))),
            Part("accent", ((0.3, 0.25), (0.42, 0.23), (0.44, 0.36), (0.32, 0.38))),
            Part("sole", ((0.0, 0.68), (1.0, 0.7), (0.99, 0.86), (0.95, 1.0), (0.05, 1.0),
                          (0.0, 0.86))),
            Part("accent", ((0.02, 0.8), (0.97, 0.82), (0.97, 0.86), (0.02, 0.86))),
        ),
    ),
}
# fmt: on


@dataclass(frozen=True)
class ArticleType:
    """A Kaggle footwear articleType: its catalogue fields, how it is drawn, how common it is."""

    sub_category: str
    usage: str
    shape: str  # key of SHOE_SHAPES
    share: float  # of the catalogue
    genders: tuple[str, ...]  # drawn uniformly: repeat a value to weight it
    soles: tuple[str, ...]  # keys of SOLE_COLOURS
    nouns: tuple[str, ...]  # for productDisplayName

    @property
    def laced(self) -> bool:
        return SHOE_SHAPES[self.shape].lacing is not None


# Laced types make up two thirds, so the lace fine-tune has enough examples.
# fmt: off
ARTICLE_TYPES: dict[str, ArticleType] = {
    "Casual Shoes": ArticleType("Shoes", "Casual", "sneaker", 0.24,
                                ("Men", "Men", "Women", "Unisex"), ("white", "black", "gum"),
                                ("Casual Shoes", "Sneakers")),
    "Sports Shoes": ArticleType("Shoes", "Sports", "runner", 0.24, ("Men", "Men", "Women"),
                                ("white", "black", "grey"), ("Sports Shoes", "Running Shoes")),
    "Formal Shoes": ArticleType("Shoes", "Formal", "oxford", 0.18, ("Men",), ("black", "tan"),
                                ("Formal Shoes", "Derby Shoes", "Oxford Shoes")),
    "Heels": ArticleType("Shoes", "Casual", "pump", 0.08, ("Women",), ("black", "tan"),
                         ("Heels", "Pumps")),
    "Flats": ArticleType("Shoes", "Casual", "ballet", 0.07, ("Women", "Women", "Girls"),
                         ("black", "tan", "white"), ("Flats", "Ballerinas")),
    "Flip Flops": ArticleType("Flip Flops", "Casual", "flipflop", 0.07,
                              ("Men", "Women", "Unisex"), ("white", "black", "grey"),
                              ("Flip Flops",)),
    "Sandals": ArticleType("Sandal", "Casual", "sandal", 0.07, ("Men", "Women"),
                           ("black", "tan", "gum"), ("Sandals",)),
    "Sports Sandals": ArticleType("Sandal", "Sports", "sport_sandal", 0.05,
                                  ("Men", "Women", "Unisex"), ("black", "grey", "white"),
                                  ("Sports Sandals", "Floaters")),
}
# fmt: on
BRANDS = ("Strideline", "Northpeak", "Urbanfoot", "Corso", "Vela", "Kinetik", "Marlowe", "Sunstep")
SEASONS = ("Summer", "Summer", "Fall", "Fall", "Winter", "Spring")
YEARS = tuple(range(2011, 2017))
PEOPLE = {"Men": "men", "Women": "women", "Boys": "boys", "Girls": "girls", "Unisex": "everyone"}
# Generic captions: type, colour, sole; never the laces (that is what the fine-tune adds).
# Some leave the colour out: captions that all name the colour would let a contrastive model
# tell most images in a batch apart by colour alone and never learn the shapes.
CAPTION_TEMPLATES = (
    "A pair of {colour} {article} with a {sole} sole on a light background.",
    "A product photo of {colour} {article}.",
    "{Colour} {article} with a {sole} sole, seen from the side.",
    "A catalogue photo of a pair of {colour} {article}.",
    "{Colour} {article} for {people} on a plain background.",
    "A photo of {colour} {article}, a type of footwear.",
    "A pair of {article} with a {sole} sole, seen from the side.",
    "A product photo of {article} for {people}.",
)

# --- general benchmark --------------------------------------------------------------------

GENERAL_COLOURS: dict[str, RGB] = {
    "red": (215, 30, 35),
    "orange": (250, 135, 20),
    "yellow": (250, 215, 20),
    "green": (35, 160, 60),
    "blue": (35, 90, 225),
    "purple": (125, 50, 170),
    "pink": (248, 135, 185),
    "black": (30, 30, 32),
}
# Points in the object's box: u left to right, v top to bottom.
# fmt: off
GENERAL_SHAPES: dict[str, Shape] = {
    "t-shirt": Shape(
        aspect=0.9,
        parts=(
            Part("body", ((0.3, 0.0), (0.42, 0.06), (0.58, 0.06), (0.7, 0.0), (1.0, 0.2),
                          (0.88, 0.42), (0.78, 0.36), (0.78, 1.0), (0.22, 1.0), (0.22, 0.36),
                          (0.12, 0.42), (0.0, 0.2))),
            Part("trim", ((0.38, 0.02), (0.5, 0.1), (0.62, 0.02)), width=0.05),
        ),
    ),
    "trousers": Shape(
        aspect=1.5,
        parts=(
            Part("body", ((0.1, 0.0), (0.9, 0.0), (1.0, 1.0), (0.62, 1.0), (0.5, 0.3),
                          (0.38, 1.0), (0.0, 1.0))),
            Part("trim", ((0.1, 0.0), (0.9, 0.0), (0.91, 0.07), (0.09, 0.07))),
        ),
    ),
    "dress": Shape(
        aspect=1.3,
        parts=(
            Part("body", ((0.34, 0.1), (0.36, 0.0)), width=0.05),
            Part("body", ((0.66, 0.1), (0.64, 0.0)), width=0.05),
            Part("body", ((0.3, 0.08), (0.7, 0.08), (0.64, 0.42), (1.0, 1.0), (0.0, 1.0),
                          (0.36, 0.42))),
            Part("trim", ((0.36, 0.4), (0.64, 0.4), (0.645, 0.46), (0.355, 0.46))),
        ),
    ),
    "skirt": Shape(
        aspect=0.9,
        parts=(
            Part("body", ((0.25, 0.0), (0.75, 0.0), (1.0, 1.0), (0.0, 1.0))),
            Part("trim", ((0.25, 0.0), (0.75, 0.0), (0.77, 0.1), (0.23, 0.1))),
            Part("trim", ((0.4, 0.12), (0.34, 0.98)), width=0.02),
            Part("trim", ((0.6, 0.12), (0.66, 0.98)), width=0.02),
        ),
    ),
    "handbag": Shape(
        aspect=0.85,
        parts=(
            Part("trim", arc(0.5, 0.4, 0.26, 0.4, 180, 360), width=0.06),
            Part("body", ((0.08, 0.36), (0.92, 0.36), (1.0, 1.0), (0.0, 1.0))),
            Part("trim", ((0.06, 0.36), (0.94, 0.36), (0.9, 0.56), (0.1, 0.56))),
            Part("metal", ((0.46, 0.52), (0.54, 0.52), (0.54, 0.62), (0.46, 0.62))),
        ),
    ),
    "backpack": Shape(
        aspect=1.25,
        parts=(
            Part("trim", arc(0.5, 0.12, 0.12, 0.1, 180, 360), width=0.06),
            Part("body", (*arc(0.3, 0.3, 0.22, 0.18, 180, 270, 6),
                          *arc(0.7, 0.3, 0.22, 0.18, 270, 360, 6), (0.95, 1.0), (0.05, 1.0))),
            Part("trim", ((0.2, 0.58), (0.8, 0.58), (0.82, 0.94), (0.18, 0.94))),
            Part("metal", ((0.22, 0.6), (0.78, 0.6)), width=0.03),
        ),
    ),
    "cap": Shape(
        aspect=0.62,
        parts=(
            Part("body", arc(0.4, 0.8, 0.38, 0.78, 180, 360, 16)),
            Part("trim", ((0.6, 0.72), (1.0, 0.8), (0.98, 0.95), (0.55, 0.92))),
            Part("trim", arc(0.4, 0.05, 0.04, 0.05, 0, 360, 8)),
        ),
    ),
    "sock": Shape(
        aspect=1.3,
        parts=(
            Part("body", ((0.2, 0.0), (0.62, 0.0), (0.62, 0.58), (0.95, 0.72), (1.0, 0.86),
                          (0.92, 1.0), (0.45, 1.0), (0.24, 0.88), (0.2, 0.78))),
            Part("trim", ((0.2, 0.0), (0.62, 0.0), (0.62, 0.14), (0.2, 0.14))),
            Part("trim", ((0.85, 0.68), (1.0, 0.86), (0.92, 1.0), (0.82, 1.0))),
        ),
    ),
}
# fmt: on
# How captions (and prompts, see README.md) name a class; the label itself when not listed.
GENERAL_NOUNS = {"trousers": "pair of trousers"}
GENERAL_CAPTIONS = (
    "A {colour} {noun} on a light background.",
    "A product photo of a {colour} {noun}.",
    "A {noun} in {colour}, catalogue photo.",
    "A photo of a {noun}.",
    "A {noun} on a light background.",
    "A product photo of a {noun}.",
)


# --- drawing ------------------------------------------------------------------------------


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


# --- records ------------------------------------------------------------------------------


def exact_counts(n: int, shares: Sequence[float]) -> list[int]:
    """``n`` split in proportion to ``shares`` (largest remainder), summing to ``n``."""
    raw = np.asarray(shares, dtype=np.float64) / sum(shares) * n
    counts = np.floor(raw).astype(int)
    for index in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[index] += 1
    return counts.tolist()


def shuffled(rng: np.random.Generator, names: Sequence[str], shares: Sequence[float], n: int):
    """``n`` names in exact proportion to ``shares``, in random order."""
    values = [
        name
        for name, count in zip(names, exact_counts(n, shares), strict=True)
        for _ in range(count)
    ]
    return [values[i] for i in rng.permutation(n)]


def pick(rng: np.random.Generator, values: Sequence[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def plan_footwear(n_items: int, seed: int) -> list[dict[str, Any]]:
    """The catalogue records: article types and base colours in exact proportions, lace
    colours balanced over the laced items, independently of everything else."""
    rng = np.random.default_rng([seed, 0])
    articles = shuffled(
        rng, list(ARTICLE_TYPES), [a.share for a in ARTICLE_TYPES.values()], n_items
    )
    colours = shuffled(rng, list(BASE_COLOURS), [s for _, s in BASE_COLOURS.values()], n_items)
    laced = [i for i, name in enumerate(articles) if ARTICLE_TYPES[name].laced]
    laces = shuffled(rng, list(LACE_COLOURS), [1.0] * len(LACE_COLOURS), len(laced))
    lace_of = dict(zip(laced, laces, strict=True))
    items = []
    for index, (article, colour) in enumerate(zip(articles, colours, strict=True)):
        kind = ARTICLE_TYPES[article]
        gender = pick(rng, kind.genders)
        item = {
            "id": str(FIRST_ID + index),
            "gender": gender,
            "masterCategory": "Footwear",
            "subCategory": kind.sub_category,
            "articleType": article,
            "baseColour": colour,
            "season": pick(rng, SEASONS),
            "year": str(pick(rng, YEARS)),
            "usage": kind.usage,
            "productDisplayName": f"{pick(rng, BRANDS)} {gender} {colour} {pick(rng, kind.nouns)}",
            "lace_colour": lace_of.get(index),
            "sole": pick(rng, kind.soles),
            "accent": pick(rng, ACCENT_COLOURS),
        }
        item["caption"] = pick(rng, CAPTION_TEMPLATES).format(
            colour=colour.lower(),
            Colour=colour,
            article=article.lower(),
            sole=item["sole"],
            people=PEOPLE[gender],
        )
        items.append(item)
    return items


def plan_general(n_per_class: int, seed: int) -> list[dict[str, Any]]:
    """Per class, colours balanced; every GENERAL_TEST_EVERY-th item of a class is test."""
    rng = np.random.default_rng([seed, 1])
    rows = []
    for label in GENERAL_SHAPES:
        colours = shuffled(rng, list(GENERAL_COLOURS), [1.0] * len(GENERAL_COLOURS), n_per_class)
        for index, colour in enumerate(colours):
            test = index % GENERAL_TEST_EVERY == GENERAL_TEST_EVERY - 1
            noun = GENERAL_NOUNS.get(label, label)
            caption = pick(rng, GENERAL_CAPTIONS).format(colour=colour, noun=noun)
            rows.append(
                {
                    "path": f"images/{label}_{index:04d}.jpg",
                    "label": label,
                    "colour": colour,
                    "split": "test" if test else "train",
                    "caption": caption[0].upper() + caption[1:],
                }
            )
    return rows


# --- writing ------------------------------------------------------------------------------


def prepare_out(out: Path, settings: dict[str, Any]) -> None:
    """Make ``out`` ready: created, or emptied of a previous run's images; never a folder of
    someone else's files (it must be empty or hold our marker)."""
    if out.exists():
        if not out.is_dir():
            raise DataError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise DataError(
                f"{out}: not empty and not written by examples.demo.synth (no {MARKER}); "
                "choose another folder"
            )
        shutil.rmtree(out / "images", ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate_footwear_catalogue(out: Path, n_items: int = 2000, seed: int = 0) -> Path:
    """Write a procedural footwear catalogue in Kaggle's layout into ``out``; returns ``out``.

    ``prepare_footwear(out / "images", out / "styles.csv", ..., annotations=out /
    "lace_annotations.csv", captions=out / "generated_captions.jsonl")`` reads it.
    """
    if n_items < 1:
        raise DataError(f"n_items must be at least 1, got {n_items}")
    out = Path(out)
    settings = {
        "generator": GENERATOR,
        "kind": "footwear",
        "version": VERSION,
        "n_items": n_items,
        "seed": seed,
    }
    prepare_out(out, settings)
    items = plan_footwear(n_items, seed)
    for index, item in enumerate(items):
        image = render_shoe(item, np.random.default_rng([seed, 2, index]))
        save_jpeg(image, out / "images" / f"{item['id']}.jpg")
    write_csv(out / "styles.csv", STYLES_COLUMNS, items)
    write_csv(
        out / "lace_annotations.csv",
        ("id", "lace_colour"),
        [item for item in items if item["lace_colour"]],
    )
    with open(out / "generated_captions.jsonl", "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps({"id": item["id"], "caption": item["caption"]}) + "\n")
    return out


def generate_general_benchmark(out: Path, n_per_class: int = 60, seed: int = 0) -> Path:
    """Write the general benchmark (``labels.csv`` + ``images/``) into ``out``; returns ``out``.

    Columns path,label,colour,split,caption: the ``labelled_csv`` reader reads ``out`` (the
    only CSV in it), one split with ``split="train"`` or ``"test"``.
    """
    if n_per_class < GENERAL_TEST_EVERY:
        raise DataError(f"n_per_class must be at least {GENERAL_TEST_EVERY}, got {n_per_class}")
    out = Path(out)
    settings = {
        "generator": GENERATOR,
        "kind": "general",
        "version": VERSION,
        "n_per_class": n_per_class,
        "seed": seed,
    }
    prepare_out(out, settings)
    rows = plan_general(n_per_class, seed)
    for index, row in enumerate(rows):
        image = render_object(row["label"], row["colour"], np.random.default_rng([seed, 3, index]))
        save_jpeg(image, out / row["path"])
    write_csv(out / "labels.csv", ("path", "label", "colour", "split", "caption"), rows)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo.synth",
        description="Write the demo's procedural data: DIR/footwear (Kaggle layout) and "
        "DIR/general (labelled CSV).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--n", type=int, default=2000, help="footwear items (default 2000)")
    parser.add_argument(
        "--per-class", type=int, default=60, help="general-benchmark items per class (default 60)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        footwear = generate_footwear_catalogue(args.out / "footwear", args.n, args.seed)
        general = generate_general_benchmark(args.out / "general", args.per_class, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(f"footwear catalogue: {footwear} ({args.n} items)")
    print(
        f"general benchmark: {general / 'labels.csv'} "
        f"({args.per_class * len(GENERAL_SHAPES)} items)"
    )
    print(f"done in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
