"""Test fixture writers: the same Items written in each format a reader reads.

Each writer takes Items (with ``path`` or ``data``) and an empty output folder and returns
``(reader_name, path, options)``: ``get_reader(reader_name)(path, **options)`` reads the same
items back, in the same order, with the same ids, fields, caption, lists and image bytes.
Used by the reader tests and by the trainer's check that every format gives the same batches.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalsuite.data.items import Item

WriterResult = tuple[str, Path, dict[str, Any]]
_RESERVED = ("id", "filepath", "title", "file_name", "text", "image")


def image_bytes(item: Item) -> bytes:
    """The encoded image of an item (its file's bytes, or its data)."""
    if item.data is not None:
        return item.data
    assert item.path is not None, f"item {item.id!r} has pixels only: no encoded image"
    return Path(item.path).read_bytes()


def image_name(index: int, item: Item) -> str:
    """A file name per item that keeps the source suffix and cannot clash (ids may not be
    plain names)."""
    suffix = Path(item.path).suffix if item.path is not None else ".jpg"
    return f"{index:06d}{suffix or '.jpg'}"


def place_images(items: Sequence[Item], folder: Path, link: bool = True) -> list[str]:
    """Each item's image under ``folder`` (a symlink to its file, or its bytes written);
    returns the names, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, item in enumerate(items):
        name = image_name(index, item)
        if link and item.path is not None:
            os.symlink(Path(item.path).resolve(), folder / name)
        else:
            (folder / name).write_bytes(image_bytes(item))
        names.append(name)
    return names


def check_fields(items: Sequence[Item]) -> None:
    """A field named like a format's own column would be overwritten: refuse it."""
    for item in items:
        clash = [name for name in (*item.fields, *item.lists) if name in _RESERVED]
        assert not clash, f"item {item.id!r}: field(s) {clash} clash with a format's columns"


def write_pairs_csv(items: Sequence[Item], out: Path, separator: str = ",") -> WriterResult:
    """open_clip's CSV (``.tsv`` with a tab): filepath, title, id, then every field. Lists
    cannot be written in a CSV cell and are left out."""
    check_fields(items)
    names = place_images(items, out / "images")
    fields = sorted({name for item in items for name in item.fields})
    file = out / ("pairs.tsv" if separator == "\t" else "pairs.csv")
    with open(file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=separator)
        writer.writerow(["filepath", "title", "id", *fields])
        for name, item in zip(names, items, strict=True):
            row = [f"images/{name}", item.caption or "", item.id]
            writer.writerow(row + [item.fields.get(field, "") for field in fields])
    options: dict[str, Any] = {"id_key": "id"}
    if separator not in (",", "\t"):
        options["separator"] = separator
    return "pairs_csv", file, options


def write_hf_imagefolder(items: Sequence[Item], out: Path) -> WriterResult:
    """A Hugging Face imagefolder: images + metadata.jsonl (file_name, id, text, fields,
    lists as JSON lists)."""
    check_fields(items)
    names = place_images(items, out / "images")
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for name, item in zip(names, items, strict=True):
            record = {"file_name": f"images/{name}", "id": item.id, "text": item.caption}
            record.update(item.fields)
            record.update({key: list(values) for key, values in item.lists.items()})
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return "hf_imagefolder", out, {"id_key": "id"}


def to_dataset(items: Sequence[Item]) -> Any:
    """The items as a datasets.Dataset with the image bytes embedded (``Image()``)."""
    import datasets

    check_fields(items)
    fields = sorted({name for item in items for name in item.fields})
    lists = sorted({name for item in items for name in item.lists})
    columns: dict[str, list[Any]] = {
        "image": [
            {"bytes": image_bytes(item), "path": image_name(i, item)}
            for i, item in enumerate(items)
        ],
        "id": [item.id for item in items],
        "text": [item.caption for item in items],
    }
    columns.update({name: [item.fields.get(name, "") for item in items] for name in fields})
    columns.update({name: [list(item.lists.get(name, ())) for item in items] for name in lists})
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "id": string,
            "text": string,
            **{name: string for name in fields},
            **{name: datasets.List(string) for name in lists},
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def write_hf_dataset(
    items: Sequence[Item], out: Path, layout: str = "save_to_disk"
) -> WriterResult:
    """A Hugging Face dataset with embedded image bytes: ``save_to_disk`` into ``out``, or
    ``parquet``: one file as the Hub lays it out, ``out/data/train-00000-of-00001.parquet``
    (read with no split, or with split "train")."""
    from datasets.utils import logging as hf_logging

    dataset = to_dataset(items)
    hf_logging.disable_progress_bar()
    try:
        if layout == "save_to_disk":
            dataset.save_to_disk(str(out))
            return "hf_dataset", out, {"id_key": "id"}
        assert layout == "parquet", f"unknown layout {layout!r}"
        (out / "data").mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))
    finally:
        hf_logging.enable_progress_bar()
    return "hf_dataset", out, {"id_key": "id"}


def write_catalogue(items: Sequence[Item], out: Path) -> WriterResult:
    """A prepared-catalogue split file (``out/train.jsonl``, as `evalsuite prepare` writes it)
    over the items' image files: every field a key, the caption as ``description``."""
    lines = []
    for item in items:
        assert item.path is not None, f"item {item.id!r}: the catalogue format needs a file"
        record = {"id": item.id, "image": str(item.path), **item.fields}
        lines.append(json.dumps({**record, **item.lists, "description": item.caption}))
    (out / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "catalogue", out / "train.jsonl", {}  # one split file: read whatever the split


def write_webdataset(items: Sequence[Item], out: Path) -> WriterResult:
    """WebDataset shards of 64 samples with sizes.json (tests/shards.py)."""
    from shards import write_shards

    return write_shards(items, out, per_shard=64)


def write_format(name: str, items: Sequence[Item], out: Path) -> WriterResult:
    """One of :data:`FORMATS` by name (``out`` is created)."""
    out.mkdir(parents=True, exist_ok=True)
    return FORMATS[name](items, out)


FORMATS = {
    "pairs_csv": write_pairs_csv,
    "pairs_tsv": lambda items, out: write_pairs_csv(items, out, separator="\t"),
    "hf_imagefolder": write_hf_imagefolder,
    "hf_dataset": write_hf_dataset,
    "hf_parquet": lambda items, out: write_hf_dataset(items, out, layout="parquet"),
    "catalogue": write_catalogue,
    "webdataset": write_webdataset,
}
