"""Kaggle's ``styles.csv`` read and checked, gaps filled from the full set's per-item JSON.

Input is the published layout: ``styles.csv`` (id, gender, masterCategory, subCategory,
articleType, baseColour, season, year, usage, productDisplayName) and ``images/<id>.jpg``;
the full data set also has ``styles/<id>.json`` beside ``images/``, used to fill catalogue
fields left empty in the CSV (:mod:`evalsuite.data.styles_json` reads them alone when there
is no CSV).

styles.csv rows with *more* than 10 fields are repaired, not dropped: the full Kaggle file has
rows whose productDisplayName contains unquoted commas, and productDisplayName is the last and
only free-text column, so the overflow is joined back into it with commas. Their line numbers
and ids are listed in ``manifest["styles_repaired_rows"]``. Rows with *fewer* than 10 fields
cannot be repaired unambiguously and raise :class:`DataError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data.text import csv_records, field_text, is_id, is_plain_name
from evalsuite.errors import DataError

CATALOGUE_FIELDS = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
)
STYLES_COLUMNS = ("id", *CATALOGUE_FIELDS)


def parse_styles_row(row: list[str], header: list[str], path: Path, line: int) -> list[str]:
    """A row with exactly len(header) fields; extra commas go back into productDisplayName.

    That is only unambiguous while productDisplayName is the last column, as in Kaggle's file.
    """
    if len(row) > len(header) and header[-1] == "productDisplayName":
        return [*row[: len(header) - 1], ",".join(row[len(header) - 1 :])]
    if len(row) != len(header):
        raise DataError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
    return row


def read_styles(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """styles.csv as stripped strings plus a ``line`` column, and the repaired rows.

    Catalogue fields holding "nan" (any case: a NaN written as text) are empty, as an empty
    cell is: left out of captions and classes, filled from the per-item JSON where there is one.
    A record over several lines is refused: Kaggle's file has no value with a line break, so
    it is a quote opened in one name and closed by a later one, rows swallowed in between.
    """
    records = csv_records(path, "styles CSV", one_line=True)
    _, first = next(records, (1, []))
    header = [name.strip() for name in first]
    if header[: len(STYLES_COLUMNS)] != list(STYLES_COLUMNS):
        raise DataError(f"{path}, line 1: header must start with {','.join(STYLES_COLUMNS)}")
    rows, repaired = [], []
    for line, row in records:
        if not row:
            continue  # blank line
        fixed = [field.strip() for field in parse_styles_row(row, header, path, line)]
        if len(row) > len(header):
            repaired.append({"line": line, "id": fixed[0]})
        rows.append([fixed[0], *(field_text(field) for field in fixed[1:]), line])
    frame = pd.DataFrame(rows, columns=[*header, "line"])
    check_ids(frame, path)
    return frame, repaired


def check_ids(frame: pd.DataFrame, path: Path) -> None:
    """Every row needs an id that the prepared-JSONL reader accepts too (:func:`is_id`: not
    "" or "nan"), a plain name (it names images/<id>.jpg and styles/<id>.json: "../secret"
    would read a file outside those folders), and ids are unique."""
    missing = frame[~frame["id"].map(is_id)]
    if len(missing):
        row = missing.iloc[0]
        if not row["id"]:
            raise DataError(f"{path}, line {row['line']}: empty id")
        raise DataError(
            f"{path}, line {row['line']}: id {row['id']!r} is a missing value, not an id "
            "(pandas writes a missing id as 'nan')"
        )
    unsafe = frame[~frame["id"].map(is_plain_name)]
    if len(unsafe):
        row = unsafe.iloc[0]
        raise DataError(
            f"{path}, line {row['line']}: id {row['id']!r} is not a plain name (it names the "
            "files images/<id>.jpg and styles/<id>.json; no '/', '\\' or '..')"
        )
    repeated = frame[frame["id"].duplicated()]
    if len(repeated):
        row = repeated.iloc[0]
        raise DataError(f"{path}, line {row['line']}: id {row['id']!r} appears twice")


def json_field(value: Any) -> str:
    """A per-item JSON value as a catalogue string ({"typeName": ...} objects included)."""
    if isinstance(value, dict):
        value = value.get("typeName")
    return field_text(value)


def fill_from_json(frame: pd.DataFrame, json_dir: Path | None) -> pd.DataFrame:
    """Fill empty catalogue fields from ``styles/<id>.json`` where that file exists."""
    if json_dir is None:
        return frame
    frame = frame.copy()
    gaps = frame[list(CATALOGUE_FIELDS)].eq("").any(axis=1)
    for index in frame.index[gaps]:
        json_path = json_dir / f"{frame.at[index, 'id']}.json"
        if not json_path.is_file():
            continue
        try:
            data = json.loads(json_path.read_text(encoding="utf-8")).get("data", {})
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"{json_path}: cannot read per-item JSON ({exc})") from exc
        for name in CATALOGUE_FIELDS:
            if frame.at[index, name] == "":
                frame.at[index, name] = json_field(data.get(name))
    return frame
