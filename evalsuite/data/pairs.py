"""Image-caption pairs in a CSV or TSV, open_clip's training format.

open_clip reads ``--train-data pairs.csv --csv-img-key filepath --csv-caption-key title
--csv-separator ,``; the options here carry the same names and defaults (``img_key``,
``caption_key``, ``separator``), so a file made for open_clip is read unchanged. Every column
is kept as a field (the caption column too), so a pairs file that also holds labels can be
scored by zero-shot or probe tasks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.data.items import Item
from evalsuite.data.text import field_text, is_missing, read_csv_rows
from evalsuite.errors import DataError, SpecError

PAIR_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class PairsOptions:
    """The reader's options, checked; ``separator`` None means by suffix (tab for .tsv)."""

    img_key: str = "filepath"
    caption_key: str = "title"
    separator: str | None = None
    id_key: str | None = None

    @classmethod
    def parse(cls, options: dict[str, Any]) -> PairsOptions:
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise SpecError(
                f"pairs_csv reader: unknown option(s) {unknown}; "
                f"known: {sorted(cls.__dataclass_fields__)}"
            )
        parsed = cls(**options)
        for name in ("img_key", "caption_key", "id_key", "separator"):
            value = getattr(parsed, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise SpecError(f"pairs_csv reader: option {name!r} must be a non-empty string")
        if parsed.separator is not None and len(parsed.separator) != 1:
            raise SpecError(
                f"pairs_csv reader: separator must be one character, got {parsed.separator!r}"
            )
        return parsed


def find_pairs_file(path: Path, split: str | None) -> Path:
    """``path`` itself, ``path/<split>.csv`` or ``.tsv``, or the only such file in ``path``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: pairs CSV not found")
    if split is not None:
        found = [path / f"{split}{suffix}" for suffix in PAIR_SUFFIXES]
        found = [file for file in found if file.is_file()]
        wanted = f"{split}.csv or {split}.tsv"
    else:
        found = sorted(f for f in path.iterdir() if f.suffix in PAIR_SUFFIXES and f.is_file())
        wanted = "exactly one .csv or .tsv file"
    if len(found) != 1:
        names = ", ".join(file.name for file in found) or "none"
        raise DataError(f"{path}: expected {wanted} in the folder, found {names}")
    return found[0]


def check_columns(csv_path: Path, header: list[str], wanted: dict[str, str | None]) -> None:
    """Each named column (option -> column) is in the header; the error lists those found."""
    for option, column in wanted.items():
        if column is not None and column not in header:
            raise DataError(
                f"{csv_path}, row 1, column {column!r} ({option}): no such column; "
                f"columns found: {header}"
            )


def image_path(root: Path, where: str, text: str) -> Path:
    """The image ``text`` names, relative to ``root``; it must stay inside ``root``. ``where``
    names the file, row and column for the error.

    The check is on the path as written, normalised (``..`` folded), not on resolved
    symlinks: a user who links images into the data folder means them to be read, while
    ``../x.jpg`` or ``/etc/passwd`` in a shared CSV is a file the CSV has no business naming.
    """
    if not text:
        raise DataError(f"{where}: empty image path")
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, text))
    if os.path.commonpath([base, full]) != base:
        raise DataError(f"{where}: image path {text!r} is outside the folder {root}")
    return Path(full)


def pair_item(csv_path: Path, line: int, row: dict[str, str], options: PairsOptions) -> Item:
    """One row as an Item: every column a field, the caption column also the caption."""
    where = f"{csv_path}, row {line}"
    column = f"{where}, column {options.img_key!r}"
    path = image_path(csv_path.parent, column, row[options.img_key])
    item_id = row[options.id_key] if options.id_key else row[options.img_key]
    if is_missing(item_id):
        raise DataError(f"{where}, column {options.id_key!r}: empty id")
    caption = row[options.caption_key]
    return Item(
        id=item_id,
        fields={name: field_text(value) for name, value in row.items()},
        path=path,
        caption=None if is_missing(caption) else caption,
    )


def select_split(
    csv_path: Path, rows: list[tuple[int, dict[str, str]]], split: str
) -> list[tuple[int, dict[str, str]]]:
    """The rows of ``split`` (by the ``split`` column); a split that is not there is an error."""
    if rows and "split" not in rows[0][1]:
        raise DataError(
            f"{csv_path}: split {split!r} asked for, but the file has no 'split' column "
            "(give the split's own file, or a folder holding <split>.csv)"
        )
    chosen = [(line, row) for line, row in rows if row["split"] == split]
    if not chosen:
        present = sorted({row["split"] for _, row in rows})
        raise DataError(f"{csv_path}: no row has split {split!r}; splits present: {present}")
    return chosen


def check_unique(file: Path, where: str, rows: list[tuple[int, Item]], row: str = "row") -> None:
    """Ids name items in results and caches: a repeated one is an error naming both rows;
    ``where`` names the id's column or key, ``row`` what a row is called (row, line)."""
    seen: dict[str, int] = {}
    for line, item in rows:
        if item.id in seen:
            raise DataError(
                f"{file}, {row} {line}, {where}: id {item.id!r} repeats {row} {seen[item.id]}"
            )
        seen[item.id] = line


def read_pairs_csv(path: Path, split: str | None = None, **options: Any) -> list[Item]:
    """Items of an image-caption CSV/TSV (``path`` the file, or a folder of ``<split>.csv``).

    Options: ``img_key`` (column of image paths, relative to the file's folder; default
    "filepath"), ``caption_key`` ("title"), ``separator`` (default tab for .tsv, comma
    otherwise), ``id_key`` (column of ids; default the image path as written). With ``split``
    and a file holding a ``split`` column, only that split's rows. An empty caption is None
    (fine-tuning skips it); a caption column empty in every row is an error.
    """
    opts = PairsOptions.parse(options)
    csv_path = find_pairs_file(Path(path), split)
    separator = opts.separator or ("\t" if csv_path.suffix == ".tsv" else ",")
    header, records = read_csv_rows(csv_path, "pairs CSV", delimiter=separator)
    wanted = {"img_key": opts.img_key, "caption_key": opts.caption_key, "id_key": opts.id_key}
    check_columns(csv_path, header, wanted)
    rows = [(line, dict(zip(header, fields, strict=True))) for line, fields in records]
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    if split is not None and Path(path).is_file():
        rows = select_split(csv_path, rows, split)
    items = [(line, pair_item(csv_path, line, row, opts)) for line, row in rows]
    if all(item.caption is None for _, item in items):
        raise DataError(
            f"{csv_path}, rows {rows[0][0]}-{rows[-1][0]}, column {opts.caption_key!r}: the "
            "caption is empty in every row (is caption_key the caption column?)"
        )
    check_unique(csv_path, f"column {opts.id_key or opts.img_key!r}", items)
    return [item for _, item in items]
