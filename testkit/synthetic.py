"""Synthetic prepared catalogues for tests, benchmarks and smoke runs (no real data needed)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

SYNTHETIC_COLOURS = {
    "Red": (220, 40, 40),
    "Blue": (40, 60, 220),
    "Green": (40, 170, 60),
    "Yellow": (230, 210, 40),
}
SYNTHETIC_TYPES = ("Casual Shoes", "Sports Shoes", "Heels", "Sandals")
SYNTHETIC_LACES = ("White", "Black", "Red")


def write_synthetic_catalogue(
    out: Path, train: int = 32, val: int = 8, test: int = 4, size: int = 24, seed: int = 0
) -> Path:
    """A prepared catalogue folder like ``prepare footwear`` writes (split JSONL + manifest)
    over coloured squares: the colour is ``baseColour``, a white corner block marks the
    ``articleType``, lace-up types get a ``lace_colour``. Images go to ``<out>-images/``."""
    from PIL import Image

    from evalsuite.data.captions import describe
    from evalsuite.data.prepared_folder import build_manifest, write_prepared
    from evalsuite.data.styles_csv import CATALOGUE_FIELDS

    out = Path(out)
    images = out.parent / f"{out.name}-images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts = {"train": train, "val": val, "test": test}
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in counts}
    for k, split in enumerate(name for name, n in counts.items() for _ in range(n)):
        colour, kind = (
            rng.choice(list(SYNTHETIC_COLOURS)),
            SYNTHETIC_TYPES[k % len(SYNTHETIC_TYPES)],
        )
        pixels = Image.new("RGB", (size, size), SYNTHETIC_COLOURS[colour])
        corner = SYNTHETIC_TYPES.index(kind)
        half = size // 2
        box = ((corner % 2) * half, (corner // 2) * half)
        pixels.paste((255, 255, 255), (*box, box[0] + half // 2, box[1] + half // 2))
        path = images / f"{1000 + k}.png"
        pixels.save(path)
        row = dict.fromkeys(CATALOGUE_FIELDS, "")
        row.update(
            id=str(1000 + k),
            gender="Men",
            masterCategory="Footwear",
            subCategory="Shoes",
            articleType=kind,
            baseColour=colour,
            season="Summer",
            year="2012",
            usage="Casual",
            productDisplayName=f"Synthetic {colour} {kind}",
        )
        lace = rng.choice(SYNTHETIC_LACES) if "Shoes" in kind else None
        record = {"id": row["id"], "image": str(path), **row, "year": 2012, "lace_colour": lace}
        record["description"] = describe(row, None, lace)
        splits[split].append(record)
    write_prepared(out, splits, build_manifest(splits, {"seed": seed, "synthetic": True}))
    return out
