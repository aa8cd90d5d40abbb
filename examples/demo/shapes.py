"""What the demo's procedural data draws: the colour tables, the shoe shapes of each Kaggle
footwear article type, the general benchmark's objects and the caption templates.

Points are in an object's box: u from heel (0) to toe (1), v from top (0) to ground (1).
:mod:`examples.demo.synth` draws and writes them; changing a value here changes the drawn
images (bump ``synth.VERSION``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]
RGB = tuple[int, int, int]

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
