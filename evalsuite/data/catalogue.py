"""`prepare footwear`: the Kaggle Fashion Product Images catalogue -> split JSONL + manifest.

Input is the published layout: ``styles.csv`` (id, gender, masterCategory, subCategory,
articleType, baseColour, season, year, usage, productDisplayName) and ``images/<id>.jpg``;
the full data set also has ``styles/<id>.json`` beside ``images/``, used to fill catalogue
fields left empty in the CSV.

Decisions (also recorded in the manifest where they touch data):

* styles.csv rows with *more* than 10 fields are repaired, not dropped: the full Kaggle file
  has rows whose productDisplayName contains unquoted commas, and productDisplayName is the
  last and only free-text column, so the overflow is joined back into it with commas. Their
  line numbers and ids are listed in ``manifest["styles_repaired_rows"]``. Rows with *fewer*
  than 10 fields cannot be repaired unambiguously and raise :class:`DataError`.
* Splits are stratified by articleType: ``test_size`` of the items go to test, then
  ``val_size`` of the remaining (train) items go to val, each with scikit-learn's
  ``train_test_split(stratify=..., random_state=seed)``. A class with fewer than
  ``MIN_STRATIFY_ITEMS`` (3) items at a step cannot be spread over the splits: it stays
  whole in train. Larger classes get their proportional share (a small class may still get
  none of a small split; every articleType of the real footwear data, smallest 32, is
  present in all three).
* ``manifest_hash`` covers the records (without their absolute image paths) and the image
  bytes, so the same data prepared in another folder has the same hash; ``files`` holds the
  literal sha256 of each written JSONL file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data.items import Item
from evalsuite.data.manifest import combine_hashes, content_hash, sha256_bytes, sha256_file
from evalsuite.data.text import (
    csv_records,
    field_text,
    id_text,
    is_id,
    is_plain_name,
    read_csv_rows,
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


def select_items(
    frame: pd.DataFrame, styles: Path, master_category: str, images_dir: Path, on_missing: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rows of ``master_category`` whose image exists, and the ids skipped for a missing one."""
    chosen = frame[frame["masterCategory"] == master_category].copy()
    if chosen.empty:
        raise DataError(f"{styles}: no row has masterCategory {master_category!r}")
    unlabelled = chosen[chosen["articleType"] == ""]
    if len(unlabelled):
        raise DataError(
            f"{styles}, line {unlabelled['line'].iloc[0]}: no articleType (empty or a "
            "missing-value marker such as 'nan')"
        )
    chosen["image"] = [str(images_dir / f"{item_id}.jpg") for item_id in chosen["id"]]
    exists = chosen["image"].map(lambda image: Path(image).is_file())
    missing = sorted(chosen.loc[~exists, "id"], key=id_key)
    if missing and on_missing == "fail":
        raise DataError(
            f"{images_dir}: {len(missing)} image(s) missing, e.g. ids {missing[:10]} "
            "(use on_missing_image='skip' to leave them out)"
        )
    return chosen[exists], missing


def id_key(item_id: str) -> tuple[int, int, str]:
    """Sort key: numeric ids in numeric order, then any others in text order."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


# --- annotations and captions -----------------------------------------------------------------


def read_annotations(path: Path, known_ids: set[str]) -> dict[str, str]:
    """id -> lace colour from a CSV with columns id,lace_colour (empty colours are skipped)."""
    header, rows = read_csv_rows(path, "annotations CSV")
    for column in ("id", "lace_colour"):
        if column not in header:
            raise DataError(f"{path}: missing column {column!r}; found {header}")
    id_at, colour_at = header.index("id"), header.index("lace_colour")
    colours: dict[str, str] = {}
    for line, fields in rows:
        check_known_id(path, line, fields[id_at], known_ids, colours)
        if fields[colour_at]:
            colours[fields[id_at]] = fields[colour_at]
    return colours


def check_known_id(
    path: Path, line: int, item_id: str, known_ids: set[str], seen: Mapping[str, str]
) -> None:
    """An annotation must name a catalogue id, once."""
    if item_id not in known_ids:
        raise DataError(f"{path}, line {line}: unknown id {item_id!r} (not in styles.csv)")
    if item_id in seen:
        raise DataError(f"{path}, line {line}: id {item_id!r} appears twice")


def read_captions(path: Path, known_ids: set[str]) -> dict[str, str]:
    """id -> generated caption from JSONL lines {"id": ..., "caption" (or "text"): ...}; a
    missing caption (null, "", "nan") adds nothing, as if the id were not listed."""
    captions: dict[str, str] = {}
    for line, record in read_jsonl(path):
        key = "caption" if "caption" in record else "text"
        if "id" not in record or key not in record:
            raise DataError(f'{path}, line {line}: expected {{"id": ..., "caption": "..."}}')
        item_id = id_text(path, line, record["id"]).strip()
        check_known_id(path, line, item_id, known_ids, captions)
        captions[item_id] = (text_field(path, line, item_id, key, record[key]) or "").strip()
    return captions


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


def build_record(
    row: Mapping[str, str], captions: Mapping[str, str], laces: Mapping[str, str]
) -> Record:
    """One JSONL record: catalogue fields (year a number), image path, lace colour, description."""
    item_id = row["id"]
    record: Record = {"id": item_id, "image": row["image"]}
    record.update({name: row[name] for name in CATALOGUE_FIELDS})
    record["year"] = to_year(row["year"])
    record["lace_colour"] = laces.get(item_id)
    record["description"] = describe(row, captions.get(item_id), laces.get(item_id))
    return record


def split_counts(records: list[Record]) -> dict[str, Any]:
    """Item count and per-class counts (articleType, baseColour, lace_colour) of one split."""
    counts: dict[str, Any] = {"items": len(records)}
    for name in ("articleType", "baseColour", "lace_colour"):
        values = Counter(record[name] for record in records if record[name])
        counts[name] = dict(sorted(values.items()))
    return counts


def records_hash(records: list[Record]) -> str:
    """Hash of a split's records without their absolute image paths (location-independent)."""
    lines = [
        json.dumps({k: v for k, v in r.items() if k != "image"}, sort_keys=True) for r in records
    ]
    return sha256_bytes("\n".join(lines).encode("utf-8"))


# --- writing ----------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list[Record]) -> None:
    """One JSON object per line, UTF-8, keys in record order."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def replace_dir(new: Path, out: Path) -> None:
    """Move the complete folder ``new`` to ``out``, replacing a previous prepared ``out``."""
    if not out.exists():
        new.rename(out)
        return
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file()):
        raise DataError(f"{out}: exists and is not a prepared catalogue folder; not replacing it")
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    backup.rmdir()
    out.rename(backup)
    try:
        new.rename(out)
    except OSError:
        backup.rename(out)
        raise
    shutil.rmtree(backup)


def write_prepared(out: Path, splits: Mapping[str, list[Record]], manifest: Record) -> Record:
    """Write the split files and manifest into a temp folder, then swap it in as ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    temp.chmod(0o755)  # mkdtemp makes it private; the prepared folder is meant to be shared
    try:
        for split, records in splits.items():
            write_jsonl(temp / f"{split}.jsonl", records)
        manifest["files"] = {f"{s}.jsonl": sha256_file(temp / f"{s}.jsonl") for s in splits}
        (temp / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        replace_dir(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return manifest


# --- entry points -----------------------------------------------------------------------------


def load_inputs(
    images_dir: Path, styles: Path, master_category: str, on_missing_image: str
) -> tuple[pd.DataFrame, list[str], list[dict[str, Any]], set[str]]:
    """Chosen rows, skipped ids, repaired styles rows, and every id in styles.csv."""
    if on_missing_image not in ("fail", "skip"):
        raise SpecError(f"on_missing_image must be 'fail' or 'skip', got {on_missing_image!r}")
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    frame, repaired = read_styles(styles)
    json_dir = images_dir.parent / "styles"
    frame = fill_from_json(frame, json_dir if json_dir.is_dir() else None)
    chosen, missing = select_items(frame, styles, master_category, images_dir, on_missing_image)
    return chosen, missing, repaired, set(frame["id"])


def build_manifest(splits: Mapping[str, list[Record]], settings: Record) -> Record:
    """Sizes, per-class counts and hashes of the prepared splits, plus the run's settings."""
    images = {r["id"]: Path(r["image"]) for records in splits.values() for r in records}
    images_hash = content_hash(images)
    split_hashes = {split: records_hash(records) for split, records in splits.items()}
    return {
        "format": FORMAT,
        **settings,
        "sizes": {**{s: len(r) for s, r in splits.items()}, "total": len(images)},
        "counts": {split: split_counts(records) for split, records in splits.items()},
        "split_hashes": split_hashes,
        "images_hash": images_hash,
        "manifest_hash": combine_hashes({**split_hashes, "images": images_hash}),
    }


def prepare_footwear(
    images_dir: Path,
    styles: Path,
    out: Path,
    annotations: Path | None = None,
    captions: Path | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.1,
    master_category: str = "Footwear",
    on_missing_image: str = "fail",
) -> dict[str, Any]:
    """Prepare the footwear benchmark folder ``out`` and return its manifest (see module doc)."""
    images_dir, styles, out = Path(images_dir).absolute(), Path(styles), Path(out)
    chosen, missing, repaired, known = load_inputs(
        images_dir, styles, master_category, on_missing_image
    )
    laces = read_annotations(Path(annotations), known) if annotations else {}
    texts = read_captions(Path(captions), known) if captions else {}
    ids = sorted(chosen["id"], key=id_key)
    rows = chosen.set_index("id", drop=False).loc[ids]
    split_of = assign_splits(ids, list(rows["articleType"]), seed, test_size, val_size)
    splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
    for row in rows.to_dict("records"):
        splits[split_of[row["id"]]].append(build_record(row, texts, laces))
    settings = {
        "seed": seed,
        "test_size": test_size,
        "val_size": val_size,
        "master_category": master_category,
        "on_missing_image": on_missing_image,
        "sources": {
            "images_dir": str(images_dir),
            "styles": str(styles.absolute()),
            "annotations": str(Path(annotations).absolute()) if annotations else None,
            "captions": str(Path(captions).absolute()) if captions else None,
        },
        "skipped_missing_images": {"count": len(missing), "first_ids": missing[:20]},
        "styles_repaired_rows": repaired,
    }
    manifest = build_manifest(splits, settings)
    return write_prepared(out, splits, manifest)


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
