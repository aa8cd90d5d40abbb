"""The full Kaggle data set's per-item ``styles/<id>.json`` files, read like ``styles.csv``.

The full Fashion Product Images set ships one JSON file per item beside ``images/``; the small
one ships ``styles.csv``. :func:`read_styles_source` reads whichever it is given into the frame
:func:`~evalsuite.data.styles_csv.read_styles` returns (``id``, the catalogue fields, ``line``),
so the prepare step does not care which it was. For JSON the ``line`` column holds the file's
path: error messages name the file instead of a CSV line (:func:`row_location`).

Each file is ``{"data": {"id": ..., "gender": ..., "masterCategory": {"typeName": ...} or a
string, ...}}``; other keys of ``data`` (image URLs, descriptions) are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data.splits import id_key
from evalsuite.data.styles_csv import CATALOGUE_FIELDS, STYLES_COLUMNS, json_field, read_styles
from evalsuite.data.text import is_id
from evalsuite.errors import DataError

STYLES_CSV, STYLES_DIR = "styles.csv", "styles"


def default_styles(images_dir: Path) -> Path:
    """``styles.csv`` beside ``images_dir`` when present, else the ``styles/`` folder there."""
    csv = images_dir.parent / STYLES_CSV
    if csv.is_file():
        return csv
    folder = images_dir.parent / STYLES_DIR
    if folder.is_dir():
        return folder
    raise DataError(
        f"{images_dir.parent}: neither {STYLES_CSV} nor a {STYLES_DIR}/ folder of <id>.json "
        "beside the images folder (pass --styles)"
    )


def read_styles_source(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]], str]:
    """(frame, repaired CSV rows, source kind "csv" or "json") of a styles.csv or a folder."""
    if path.is_dir():
        return read_styles_json(path), [], "json"
    if not path.is_file():
        raise DataError(f"{path}: styles file not found (a styles.csv or a folder of <id>.json)")
    frame, repaired = read_styles(path)
    return frame, repaired, "csv"


def row_location(styles: Path, line: int | str) -> str:
    """Where a styles row came from, for messages: "styles.csv, line N" or the JSON file."""
    return str(line) if isinstance(line, str) else f"{styles}, line {line}"


def read_styles_json(folder: Path) -> pd.DataFrame:
    """Every ``<id>.json`` of ``folder`` as a styles frame, in id order (file-name order for
    ids that are not numbers). The file name is the id, so ids are unique and plain names."""
    files = sorted(folder.glob("*.json"), key=lambda file: id_key(file.stem))
    if not files:
        raise DataError(f"{folder}: no <id>.json files (expected the full data set's styles/)")
    rows = [_json_row(file) for file in files]
    return pd.DataFrame(rows, columns=[*STYLES_COLUMNS, "line"])


def _json_row(file: Path) -> list[str]:
    """[id, catalogue fields..., file path] of one per-item file; a bad file is refused."""
    data = _json_data(file)
    if "id" not in data:
        raise DataError(f"{file}: no 'id' in 'data'")
    raw_id = data["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)) or not is_id(str(raw_id)):
        raise DataError(f"{file}: id must be a non-empty string or an integer, got {raw_id!r}")
    item_id = str(raw_id).strip()
    if item_id != file.stem:
        # images/<id>.jpg is found through the id: a file named for another item is a mix-up
        raise DataError(f"{file}: id {item_id!r} does not match the file name {file.name!r}")
    return [item_id, *(_field(file, data, name) for name in CATALOGUE_FIELDS), str(file)]


def _json_data(file: Path) -> dict[str, Any]:
    """The ``data`` object of one file (bad UTF-8, bad JSON or another shape named)."""
    try:
        document = json.loads(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{file}: malformed JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
        ) from exc
    except OSError as exc:
        raise DataError(f"{file}: cannot read per-item JSON ({exc})") from exc
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise DataError(f'{file}: expected a JSON object {{"data": {{"id": ..., ...}}}}')
    return data


def _field(file: Path, data: dict[str, Any], name: str) -> str:
    """One catalogue field as text ("" when absent or null); a list or a nested object without
    ``typeName`` is refused rather than turned into its Python repr."""
    value = data.get(name)
    if isinstance(value, list) or (isinstance(value, dict) and "typeName" not in value):
        raise DataError(f"{file}: field {name!r} must be text, a number or {{'typeName': ...}}")
    if isinstance(value, dict) and isinstance(value["typeName"], (list, dict)):
        raise DataError(f"{file}: field {name!r}: typeName must be text")
    return json_field(value)
