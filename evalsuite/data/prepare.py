"""`prepare catalogue` / `prepare footwear`: the Kaggle catalogue -> split JSONL + manifest.

Any subset of the Kaggle layout (``images/<id>.jpg`` with ``styles.csv`` or the full set's
``styles/<id>.json``), chosen by filters on masterCategory, subCategory and articleType:
values of one filter are OR-ed, filters AND-ed, no filter keeps every item. ``prepare
footwear`` is the masterCategory=Footwear case and writes what it always wrote. The split
rule (stratified 80/20, then 10% of train to val) is :func:`~evalsuite.data.splits.
assign_splits`; the folder is written by :mod:`evalsuite.data.prepared_folder`. The manifest
records the filters, the stratify field and which kind of styles source was read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data.captions import describe, to_year
from evalsuite.data.prepared_folder import COUNTED_FIELDS, build_manifest, write_prepared
from evalsuite.data.splits import SPLITS, assign_splits, id_key
from evalsuite.data.styles_csv import CATALOGUE_FIELDS, fill_from_json
from evalsuite.data.styles_json import default_styles, read_styles_source, row_location
from evalsuite.data.text import Record, id_text, read_csv_rows, read_jsonl, text_field
from evalsuite.errors import DataError, SpecError
from evalsuite.registry import suggest

FILTER_FIELDS = ("masterCategory", "subCategory", "articleType")
# counted per split in a catalogue manifest (footwear keeps its historical COUNTED_FIELDS)
CATALOGUE_COUNTED = ("masterCategory", "subCategory", *COUNTED_FIELDS)
MAX_LISTED = 60


# --- choosing items ---------------------------------------------------------------------------


def normalise_filters(filters: Mapping[str, str | Sequence[str] | None]) -> dict[str, list[str]]:
    """{field: [values]} for every filter field (an empty list: no filter); a bare string is
    one value, repeated values count once."""
    unknown = sorted(set(filters) - set(FILTER_FIELDS))
    if unknown:
        raise SpecError(f"unknown filter field(s) {unknown}; filters are on {FILTER_FIELDS}")
    normal = {}
    for field in FILTER_FIELDS:
        values = filters.get(field) or []
        values = [values] if isinstance(values, str) else list(values)
        normal[field] = list(dict.fromkeys(str(value).strip() for value in values))
    return normal


def apply_filters(
    frame: pd.DataFrame, styles: Path, filters: Mapping[str, list[str]]
) -> pd.DataFrame:
    """Rows matching every filter. Filters apply in FILTER_FIELDS order and each value must
    match a row left by the earlier ones, so a typo or an impossible combination (Footwear
    and Topwear) is named with the values that are there, not silently an empty subset."""
    chosen, applied = frame, []
    for field in FILTER_FIELDS:
        values = filters.get(field) or []
        if not values:
            continue
        present = sorted(set(chosen[field]) - {""})
        for value in values:
            if value not in present:
                raise DataError(no_match(styles, field, value, present, applied))
        chosen = chosen[chosen[field].isin(values)]
        applied.append(f"{field} {' or '.join(map(repr, values))}")
    return chosen


def no_match(styles: Path, field: str, value: str, present: list[str], applied: list[str]) -> str:
    """The message for a filter value no row has: the closest values, then all present."""
    where = f" among rows with {' and '.join(applied)}" if applied else ""
    listed = ", ".join(present[:MAX_LISTED])
    if len(present) > MAX_LISTED:
        listed += f", ... ({len(present) - MAX_LISTED} more)"
    return (
        f"{styles}: no row has {field} {value!r}{where}{suggest(value, present)}; "
        f"present: {listed or '(none)'}"
    )


def select_items(
    chosen: pd.DataFrame, styles: Path, stratify: str, images_dir: Path, on_missing: str
) -> tuple[pd.DataFrame, list[str]]:
    """The chosen rows whose image exists, and the ids skipped for a missing one. Every row
    needs a ``stratify`` class: an unlabelled item cannot be placed by the stratified split."""
    chosen = chosen.copy()
    unlabelled = chosen[chosen[stratify] == ""]
    if len(unlabelled):
        raise DataError(
            f"{row_location(styles, unlabelled['line'].iloc[0])}: no {stratify} (empty or a "
            "missing-value marker such as 'nan')"
        )
    chosen["image"] = [str(images_dir / f"{item_id}.jpg") for item_id in chosen["id"]]
    exists = chosen["image"].map(lambda image: Path(image).is_file())
    missing = sorted(chosen.loc[~exists, "id"], key=id_key)
    if missing and on_missing == "fail":
        text = f"{images_dir}: {len(missing)} image(s) missing, e.g. ids {missing[:10]}"
        hint = images_dir_hint(images_dir, all_missing=len(missing) == len(chosen))
        skip = (
            "pass --on-missing-image skip to leave them out "
            "(prepare_footwear / prepare_catalogue: on_missing_image='skip')"
        )
        raise DataError(f"{text}; {hint or skip}")
    return chosen[exists], missing


def images_dir_hint(images_dir: Path, all_missing: bool) -> str:
    """When the images are not where ``--images-dir`` says: is it the folder above images/?
    Empty when the folder looks right (some images are there, or it is images/ itself)."""
    nested = images_dir / "images"
    if nested.is_dir():
        return f"--images-dir should be the folder of <id>.jpg files: did you mean {nested}?"
    if all_missing:
        end = "" if images_dir.name == "images" else "; should --images-dir end in images/?"
        return f"none of the chosen items has an image there (<id>.jpg){end}"
    return ""


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
        raise DataError(f"{path}, line {line}: unknown id {item_id!r} (not in the styles)")
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


# --- records ----------------------------------------------------------------------------------


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


# --- preparing --------------------------------------------------------------------------------


@dataclass
class Inputs:
    """What the prepare step read: chosen rows (image path added), skipped ids, repaired
    styles.csv rows, every id of the styles source, and its kind ("csv" or "json")."""

    chosen: pd.DataFrame
    missing: list[str]
    repaired: list[dict[str, Any]]
    known: set[str]
    styles_source: str


def load_inputs(
    images_dir: Path,
    styles: Path,
    filters: Mapping[str, list[str]],
    stratify: str,
    on_missing_image: str,
) -> Inputs:
    """Read the styles source, check the options, filter, and find the images."""
    if on_missing_image not in ("fail", "skip"):
        raise SpecError(f"on_missing_image must be 'fail' or 'skip', got {on_missing_image!r}")
    if stratify not in CATALOGUE_FIELDS:
        raise SpecError(
            f"stratify field {stratify!r} is not a catalogue field"
            f"{suggest(stratify, list(CATALOGUE_FIELDS))}; use one of {CATALOGUE_FIELDS}"
        )
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    frame, repaired, kind = read_styles_source(styles)
    if kind == "csv":  # the full set's JSON files fill what its CSV leaves empty
        json_dir = images_dir.parent / "styles"
        frame = fill_from_json(frame, json_dir if json_dir.is_dir() else None)
    chosen = apply_filters(frame, styles, filters)
    chosen, missing = select_items(chosen, styles, stratify, images_dir, on_missing_image)
    if chosen.empty:
        hint = images_dir_hint(images_dir, all_missing=True)
        raise DataError(
            f"{images_dir}: no image of the chosen items exists, nothing to prepare; {hint}"
        )
    return Inputs(chosen, missing, repaired, set(frame["id"]), kind)


def split_records(
    inputs: Inputs, stratify: str, texts: Mapping[str, str], laces: Mapping[str, str],
    seed: int, test_size: float, val_size: float,
) -> dict[str, list[Record]]:  # fmt: skip
    """The chosen rows as records, in id order, in their stratified splits."""
    ids = sorted(inputs.chosen["id"], key=id_key)
    rows = inputs.chosen.set_index("id", drop=False).loc[ids]
    split_of = assign_splits(ids, list(rows[stratify]), seed, test_size, val_size)
    splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
    for row in rows.to_dict("records"):
        splits[split_of[row["id"]]].append(build_record(row, texts, laces))
    return splits


def prepare_catalogue(
    images_dir: Path,
    out: Path,
    styles: Path | None = None,
    *,
    master_category: str | Sequence[str] = (),
    sub_category: str | Sequence[str] = (),
    article_type: str | Sequence[str] = (),
    stratify: str = "articleType",
    annotations: Path | None = None,
    captions: Path | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.1,
    on_missing_image: str = "fail",
    counted: Sequence[str] = CATALOGUE_COUNTED,
    extra_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Prepare the items of ``images_dir``'s catalogue that pass the filters into ``out`` and
    return its manifest. ``styles``: a styles.csv or a folder of per-item JSON (default:
    styles.csv beside ``images_dir``, else styles/ there)."""
    images_dir, out = Path(images_dir).absolute(), Path(out)
    styles = Path(styles) if styles else default_styles(images_dir)
    filters = normalise_filters(
        {"masterCategory": master_category, "subCategory": sub_category,
         "articleType": article_type}
    )  # fmt: skip
    inputs = load_inputs(images_dir, styles, filters, stratify, on_missing_image)
    laces = read_annotations(Path(annotations), inputs.known) if annotations else {}
    texts = read_captions(Path(captions), inputs.known) if captions else {}
    splits = split_records(inputs, stratify, texts, laces, seed, test_size, val_size)
    settings = {
        "seed": seed,
        "test_size": test_size,
        "val_size": val_size,
        **(extra_settings or {}),
        "filters": filters,
        "stratify": stratify,
        "styles_source": inputs.styles_source,
        "on_missing_image": on_missing_image,
        "sources": {
            "images_dir": str(images_dir),
            "styles": str(styles.absolute()),
            "annotations": str(Path(annotations).absolute()) if annotations else None,
            "captions": str(Path(captions).absolute()) if captions else None,
        },
        "skipped_missing_images": {"count": len(inputs.missing), "first_ids": inputs.missing[:20]},
        "styles_repaired_rows": inputs.repaired,
    }
    counted = tuple(dict.fromkeys([*counted, stratify]))
    return write_prepared(out, splits, build_manifest(splits, settings, counted))


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
    """Prepare the footwear benchmark folder ``out``: the catalogue's ``master_category``
    items, stratified by articleType; the records, hashes and counts are those this step
    always wrote (the manifest also records the filters and the styles source kind)."""
    return prepare_catalogue(
        images_dir, out, styles, master_category=master_category, stratify="articleType",
        annotations=annotations, captions=captions, seed=seed, test_size=test_size,
        val_size=val_size, on_missing_image=on_missing_image, counted=COUNTED_FIELDS,
        extra_settings={"master_category": master_category},
    )  # fmt: skip
