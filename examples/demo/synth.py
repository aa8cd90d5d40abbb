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

What is drawn (colours, shoe shapes, objects, caption templates) is in
:mod:`examples.demo.shapes`, how in :mod:`examples.demo.draw`; this module plans the records
and writes the folders.

Each output folder gets a ``synth.json`` marker (the generator's settings); a folder is
only ever overwritten when it is empty or carries that marker.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.data.styles_csv import STYLES_COLUMNS
from evalsuite.errors import DataError
from examples.demo.draw import render_object, render_shoe, save_jpeg
from examples.demo.shapes import (
    ACCENT_COLOURS,
    ARTICLE_TYPES,
    BASE_COLOURS,
    BRANDS,
    CAPTION_TEMPLATES,
    GENERAL_CAPTIONS,
    GENERAL_COLOURS,
    GENERAL_NOUNS,
    GENERAL_SHAPES,
    LACE_COLOURS,
    PEOPLE,
    SEASONS,
    YEARS,
)

VERSION = 1  # bump when the drawn images or the records change
MARKER = "synth.json"
GENERATOR = "examples.demo.synth"
FIRST_ID = 10001
GENERAL_TEST_EVERY = 3  # every 3rd item of a class is in the test split

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
