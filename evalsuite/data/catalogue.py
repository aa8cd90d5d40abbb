"""The Kaggle Fashion Product Images catalogue: styles.csv, the split rule, prepared folders.

Input is the published layout: ``styles.csv`` (id, gender, masterCategory, subCategory,
articleType, baseColour, season, year, usage, productDisplayName) and ``images/<id>.jpg``;
the full data set also has ``styles/<id>.json`` beside ``images/``, used to fill catalogue
fields left empty in the CSV (:mod:`evalsuite.data.styles_json` reads them alone when there
is no CSV). Writing a prepared folder is :mod:`evalsuite.data.prepare`; this module holds what
the prepare step, the readers and the trainer share, and reads prepared folders back.

Decisions (also recorded in the manifest where they touch data):

* styles.csv rows with *more* than 10 fields are repaired, not dropped: the full Kaggle file
  has rows whose productDisplayName contains unquoted commas, and productDisplayName is the
  last and only free-text column, so the overflow is joined back into it with commas. Their
  line numbers and ids are listed in ``manifest["styles_repaired_rows"]``. Rows with *fewer*
  than 10 fields cannot be repaired unambiguously and raise :class:`DataError`.
* Splits are stratified (by articleType unless told otherwise): ``test_size`` of the items go
  to test, then ``val_size`` of the remaining (train) items go to val, each with
  scikit-learn's ``train_test_split(stratify=..., random_state=seed)``. A class with fewer
  than ``MIN_STRATIFY_ITEMS`` (3) items at a step cannot be spread over the splits: it stays
  whole in train. Larger classes get their proportional share (a small class may still get
  none of a small split; every articleType of the real footwear data, smallest 32, is
  present in all three).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data.items import Item
from evalsuite.data.text import (
    csv_records,
    field_text,
    id_text,
    is_id,
    is_plain_name,
    read_utf8,
    record_fields,
    text_field,
)
from evalsuite.errors import DataError, SpecError

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
SPLITS = ("train", "val", "test")
MIN_STRATIFY_ITEMS = 3
MANIFEST_NAME = "manifest.json"
FORMAT = "footwear-catalogue/1"
GENDER_WORDS = {
    "Men": "men",
    "Women": "women",
    "Boys": "boys",
    "Girls": "girls",
    "Unisex": "men and women",
}
Record = dict[str, Any]


# --- styles.csv -------------------------------------------------------------------------------


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


def id_key(item_id: str) -> tuple[int, int, str]:
    """Sort key: numeric ids in numeric order, then any others in text order."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def read_jsonl(path: Path) -> Iterable[tuple[int, Record]]:
    """(line number, object) for each non-blank line; bad JSON names the file and line."""
    lines = read_utf8(path, "JSONL file").splitlines()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: malformed JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object")
        yield number, record


# --- splitting --------------------------------------------------------------------------------


def holdout(
    ids: list[str], labels: list[str], size: float, seed: int
) -> tuple[list[str], list[str]]:
    """Stratified (kept, held-out) ids; classes under MIN_STRATIFY_ITEMS stay in kept."""
    counts = Counter(labels)
    common = [counts[label] >= MIN_STRATIFY_ITEMS for label in labels]
    rare = [i for i, ok in zip(ids, common, strict=True) if not ok]
    pool_ids = [i for i, ok in zip(ids, common, strict=True) if ok]
    pool_labels = [label for label, ok in zip(labels, common, strict=True) if ok]
    if size <= 0 or not pool_ids:
        return list(ids), []
    # Imported here: scikit-learn takes ~1 s to import and every `Item` user imports this package.
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(
            pool_ids, test_size=size, random_state=seed, stratify=pool_labels
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(pool_ids)} items {size:.0%} stratified: {exc}") from exc
    return rare + list(kept), list(held)


def assign_splits(
    ids: list[str], labels: list[str], seed: int, test_size: float, val_size: float
) -> dict[str, str]:
    """id -> "train" | "val" | "test": test first, then val out of what is left."""
    if not (0 < test_size < 1 and 0 <= val_size < 1):
        raise DataError(
            f"test_size must be in (0, 1) and val_size in [0, 1), got {test_size}, {val_size}"
        )
    label_of = dict(zip(ids, labels, strict=True))
    rest, test = holdout(ids, labels, test_size, seed)
    train, val = holdout(rest, [label_of[i] for i in rest], val_size, seed)
    return {
        **dict.fromkeys(train, "train"),
        **dict.fromkeys(val, "val"),
        **dict.fromkeys(test, "test"),
    }


# --- records ----------------------------------------------------------------------------------


def catalogue_sentences(row: Mapping[str, str]) -> list[str]:
    """Natural sentences from the catalogue fields, skipping the empty ones."""
    article = row["articleType"].lower() or "footwear"
    head = f"{row['baseColour'].lower()} {article}".strip()
    if row["gender"]:
        head += f" for {GENDER_WORDS.get(row['gender'], row['gender'].lower())}"
    head = head[0].upper() + head[1:]
    sentences = [
        f"{head}: {row['productDisplayName']}." if row["productDisplayName"] else f"{head}."
    ]
    year = to_year(row["year"])
    period = " ".join(part for part in (row["season"], str(year or "")) if part)
    usage = row["usage"].lower()
    article_word = "An" if usage[:1] in tuple("aeiou") else "A"
    if usage and period:
        sentences.append(f"{article_word} {usage} style from the {period} collection.")
    elif usage:
        sentences.append(f"{article_word} {usage} style.")
    elif period:
        sentences.append(f"From the {period} collection.")
    return sentences


def describe(row: Mapping[str, str], caption: str | None, lace_colour: str | None) -> str:
    """Catalogue sentences, then the generated caption, then the shoelace annotation."""
    sentences = catalogue_sentences(row)
    if caption:
        sentences.append(caption if caption[-1] in ".!?" else caption + ".")
    if lace_colour:
        sentences.append(f"It has {lace_colour.lower()} shoelaces.")
    return " ".join(sentences)


def to_year(text: str) -> int | None:
    """The catalogue year as a number ("2012" or "2012.0"), None when absent or not a number."""
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None


# --- reading a prepared folder ----------------------------------------------------------------


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


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a prepared folder (``path`` the folder or its manifest.json)."""
    path = Path(path)
    file = path / MANIFEST_NAME if path.is_dir() else path
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{file}: manifest not found (run `prepare footwear` first)") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: cannot read manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{file}: manifest must be a JSON object")
    return manifest
