"""The Kaggle Fashion Product Images folder read as is: ``styles.csv`` + ``images/<id>.jpg``.

For benchmarks over the whole catalogue (every masterCategory), where ``prepare footwear``
would keep only one. The split is computed on read, deterministically, exactly as the prepare
step computes it (``assign_splits``: stratified by ``stratify``, ``test_size`` to test, then
``val_size`` of the rest to validation, classes of fewer than 3 items kept whole in train), so
the same folder always gives the same splits without a prepared copy. Each item carries its
split in the field ``split``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.data.captions import catalogue_sentences
from evalsuite.data.items import Item
from evalsuite.data.splits import SPLITS, assign_splits, id_key
from evalsuite.data.styles_csv import CATALOGUE_FIELDS, fill_from_json, read_styles
from evalsuite.errors import DataError, SpecError

_OPTIONS = {"stratify", "test_size", "val_size", "seed", "master_category"}


def read_styles_catalogue(path: Path, split: str | None = None, **options: Any) -> list[Item]:
    """Items of one split (``train``, ``val``, ``test``; None: all, in id order) of the
    catalogue folder ``path`` (holding ``styles.csv`` and ``images/``).

    Options: ``stratify`` (field, default articleType), ``test_size`` (0.2), ``val_size``
    (0.1), ``seed`` (0), ``master_category`` (only items of that masterCategory; default all).
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise SpecError(f"styles_catalogue reader: unknown option(s) {unknown}")
    if split is not None and split not in SPLITS:
        raise DataError(f"styles_catalogue reader: unknown split {split!r}; use one of {SPLITS}")
    path = Path(path)
    styles, images = path / "styles.csv", path / "images"
    if not styles.is_file():
        raise DataError(f"{path}: no styles.csv (expected the Kaggle catalogue layout)")
    frame, _ = read_styles(styles)
    json_dir = path / "styles"
    frame = fill_from_json(frame, json_dir if json_dir.is_dir() else None)
    if options.get("master_category"):
        frame = frame[frame["masterCategory"] == options["master_category"]]
    stratify = str(options.get("stratify", "articleType"))
    if stratify not in frame.columns:
        raise SpecError(f"styles_catalogue reader: stratify field {stratify!r} not in {styles}")
    rows = sorted(frame.to_dict("records"), key=lambda r: id_key(r["id"]))
    split_of = assign_splits(
        [r["id"] for r in rows],
        [r[stratify] for r in rows],
        int(options.get("seed", 0)),
        float(options.get("test_size", 0.2)),
        float(options.get("val_size", 0.1)),
    )
    return [
        Item(
            id=row["id"],
            fields={**{name: row[name] for name in CATALOGUE_FIELDS}, "split": split_of[row["id"]]},
            path=images / f"{row['id']}.jpg",
            caption=" ".join(catalogue_sentences(row)),
        )
        for row in rows
        if split is None or split_of[row["id"]] == split
    ]
