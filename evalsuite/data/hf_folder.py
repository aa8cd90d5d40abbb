"""A Hugging Face ``imagefolder``: images beside a ``metadata.jsonl`` or ``metadata.csv``.

The layout is Hugging Face's (``data_dir/metadata.jsonl``, or ``data_dir/<split>/metadata.jsonl``
for splits), each record naming its image in ``file_name``. The metadata file is read here
directly, as the plain JSONL or CSV it is, rather than through ``datasets``' imagefolder
loader: that loader decodes every image and writes a cache copy of the data set, and turns
keys into typed columns, while an Item wants every key as a string and the image left on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalsuite.data.items import Item
from evalsuite.data.pairs import check_unique, image_path
from evalsuite.data.text import (
    Record,
    id_text,
    is_missing,
    read_csv_rows,
    read_jsonl,
    record_fields,
)
from evalsuite.errors import DataError, SpecError

METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
_OPTIONS = {"caption_key", "id_key"}


def find_metadata(root: Path) -> Path:
    """The one metadata file of the folder ``root``."""
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    found = [root / name for name in METADATA_NAMES if (root / name).is_file()]
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or "neither"
        raise DataError(
            f"{root}: expected one of {' or '.join(METADATA_NAMES)} in the folder, found {names}"
        )
    return found[0]


def metadata_records(file: Path) -> Iterable[tuple[int, Record]]:
    """(line, record) of a metadata.jsonl, or of a metadata.csv (every value a string)."""
    if file.suffix == ".jsonl":
        yield from read_jsonl(file)
        return
    header, rows = read_csv_rows(file, "metadata CSV")
    for line, fields in rows:
        yield line, dict(zip(header, fields, strict=True))


def record_item(
    file: Path, line: int, record: Record, caption_key: str | None, id_key: str | None
) -> Item:
    """One metadata record as an Item: scalars as fields, lists of strings as lists."""
    where = f"{file}, line {line}"
    name = record.get("file_name")
    if not isinstance(name, str):
        raise DataError(f"{where}, key 'file_name': missing or not text ({json.dumps(name)})")
    path = image_path(file.parent, f"{where}, key 'file_name'", name)
    if id_key is not None and id_key not in record:
        raise DataError(f"{where}, key {id_key!r}: no id (id_key); keys found: {list(record)}")
    item_id = id_text(file, line, record[id_key]) if id_key else name
    fields, lists = record_fields(where, record)
    caption: str | None = None
    if caption_key is not None:
        # a list of captions gives its first as the item's caption; all stay in lists
        text = lists[caption_key][0] if lists.get(caption_key) else fields.get(caption_key)
        caption = None if is_missing(text) else text
    return Item(id=item_id, fields=fields, path=path, caption=caption, lists=lists)


def read_hf_imagefolder(path: Path, split: str | None = None, **options: Any) -> list[Item]:
    """Items of a Hugging Face imagefolder (``path``, or ``path/<split>`` with ``split``).

    Options: ``caption_key`` (default "text"; null for a folder without captions) and
    ``id_key`` (default the ``file_name``). Every key is kept: scalars as text fields, lists
    of strings in ``Item.lists`` (the first entry of a caption list is the caption). Records
    keep the file's order; ``file_name`` must stay inside the folder.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise SpecError(f"hf_imagefolder reader: unknown option(s) {unknown}")
    caption_key = options.get("caption_key", "text")
    id_key = options.get("id_key")
    root = Path(path) if split is None else Path(path) / split
    file = find_metadata(root)
    records = list(metadata_records(file))
    if not records:
        raise DataError(f"{file}: no records")
    keys = sorted({key for _, record in records for key in record})
    if caption_key is not None and caption_key not in keys:
        raise DataError(
            f"{file}: no record has the caption key {caption_key!r} (caption_key); "
            f"keys found: {keys}"
        )
    items = [(line, record_item(file, line, rec, caption_key, id_key)) for line, rec in records]
    check_unique(file, f"key {id_key or 'file_name'!r}", items, row="line")
    return [item for _, item in items]
