"""The prepared catalogue read back: ``<split>.jsonl`` files of records, one Item each.

A prepared folder is written by :mod:`evalsuite.data.prepare` (through
:mod:`evalsuite.data.prepared_folder`) from Kaggle's catalogue
(:mod:`evalsuite.data.styles_csv`); its manifest is read by
:func:`evalsuite.data.manifest.load_manifest`.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.data.items import Item
from evalsuite.data.splits import SPLITS
from evalsuite.data.styles_csv import CATALOGUE_FIELDS
from evalsuite.data.text import Record, id_text, read_jsonl, record_fields, text_field
from evalsuite.errors import DataError, SpecError

FORMAT = "footwear-catalogue/1"


def split_files(path: Path, split: str | None) -> list[Path]:
    """The JSONL files to read: ``path`` itself, or ``path/<split>.jsonl`` (None: all splits)."""
    if path.is_file():
        return [path]
    if split is not None and split not in SPLITS:
        raise DataError(f"catalogue reader: unknown split {split!r}; use one of {SPLITS}")
    files = [path / f"{name}.jsonl" for name in ((split,) if split else SPLITS)]
    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: split file not found (run `prepare footwear` first)")
    return files


def record_to_item(path: Path, line: int, record: Record) -> Item:
    """A prepared record as an Item: every key but id and image kept as a field (a missing
    value, null, NaN or "nan", is ""; "None" or "NA" are values; a list of texts goes to
    ``lists``), the catalogue fields always present, caption = description."""
    if "id" not in record or not record.get("image"):
        raise DataError(f"{path}, line {line}: record needs 'id' and 'image'")
    item_id = id_text(path, line, record["id"])
    caption = text_field(path, line, item_id, "description", record.get("description"))
    extra, lists = record_fields(f"{path}, line {line}", record, exclude=("id", "image"))
    fields = {name: "" for name in CATALOGUE_FIELDS}
    fields.update((k, v) for k, v in extra.items() if v or k in CATALOGUE_FIELDS)
    return Item(id=item_id, fields=fields, path=Path(record["image"]), caption=caption, lists=lists)


def read_catalogue(path: Path, split: str | None = "test", **options: object) -> list[Item]:
    """Items of a prepared split (``path`` the prepared folder or one .jsonl file).

    ``split`` is "train", "val" or "test" (default); None reads all three, in that order.
    """
    if options:
        raise SpecError(f"catalogue reader: unknown option(s) {sorted(options)}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: prepared catalogue not found (run `prepare footwear` first)")
    return [
        record_to_item(file, line, record)
        for file in split_files(path, split)
        for line, record in read_jsonl(file)
    ]
