"""A user's own labelled images: an ImageFolder tree or a CSV of (path, label[, caption]).

Both readers return items in a deterministic order so results and caches are reproducible.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.data.items import Item
from evalsuite.data.text import field_text, is_missing, read_csv_rows
from evalsuite.errors import DataError, SpecError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
REQUIRED_COLUMNS = ("path", "label")


def _reject_options(reader: str, options: dict[str, object]) -> None:
    """A misspelt option in a benchmark YAML must fail, not be ignored."""
    if options:
        raise SpecError(f"{reader} reader: unknown option(s) {sorted(options)}")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (any depth), relative to it, sorted; hidden entries skipped."""
    found = [
        file.relative_to(root)
        for file in root.rglob("*")
        if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file()
    ]
    visible = [rel for rel in found if not any(part.startswith(".") for part in rel.parts)]
    return sorted(visible, key=lambda rel: rel.as_posix())


def read_image_folder(path: Path, split: str | None = None, **options: object) -> list[Item]:
    """Items of an ImageFolder tree ``root/<class>/<image>``; the label is the class folder.

    With ``split``, the tree is ``root/<split>/<class>/<image>``. Images may sit deeper in a
    class folder; ids are paths relative to the tree's root (``class/name.jpg``).
    """
    _reject_options("image_folder", options)
    root = Path(path) if split is None else Path(path) / split
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    items = []
    for rel in list_images(root):
        if len(rel.parts) < 2:
            raise DataError(
                f"{root / rel}: image is not inside a class folder (expected root/<class>/<image>)"
            )
        items.append(Item(id=rel.as_posix(), fields={"label": rel.parts[0]}, path=root / rel))
    if not items:
        raise DataError(
            f"{root}: no images found (extensions {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return items


def find_csv(path: Path) -> Path:
    """``path`` itself, or the only .csv file in the folder ``path``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: labelled CSV not found")
    found = sorted(path.glob("*.csv"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"{path}: expected exactly one .csv file in the folder, found {names}")
    return found[0]


def load_csv(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of each CSV row as stripped strings; empty cells stay ""."""
    # Records over several lines are allowed here, unlike in styles.csv: a user's caption may
    # hold line breaks (a spreadsheet cell with Alt+Enter is saved as a quoted multi-line value).
    header, rows = read_csv_rows(csv_path, "CSV")
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise DataError(
            f"{csv_path}: missing column(s) {missing}; found {header} "
            "(expected a header with path,label[,caption])"
        )
    records = [(line, dict(zip(header, fields, strict=True))) for line, fields in rows]
    for line, row in records:
        # only a caption may span lines: a line break anywhere else is a quote opened there
        # and closed by a later one, which merged the rows between into one value
        broken = [column for column, value in row.items() if column != "caption" and "\n" in value]
        if broken:
            spans = row[broken[0]].count("\n") + 1
            raise DataError(
                f"{csv_path}, row {line}, column {broken[0]!r}: a quoted value runs over {spans} "
                "lines: a quote is probably not closed (only a caption may hold line breaks)"
            )
    return records


def row_to_item(csv_path: Path, row_number: int, row: dict[str, str]) -> Item:
    """One CSV row as an Item; ``row_number`` is its line in the file (the header is 1).

    "nan" in any case (a NaN written as text, see :func:`is_missing`) is missing, like an
    empty cell: an error in a required column, "" in the other fields, no caption. "None",
    "NA" and the like are values: a class may be named so.
    """
    where = f"{csv_path}, row {row_number}"
    for column in REQUIRED_COLUMNS:
        if not row[column]:
            raise DataError(f"{where}, column {column!r}: empty {column}")
    if is_missing(row["label"]):
        raise DataError(
            f"{where}, column 'label': missing label ({row['label']!r} means a missing value)"
        )
    fields = {k: field_text(v) for k, v in row.items() if k not in ("path", "caption")}
    caption = row.get("caption")
    return Item(
        id=row["path"],
        fields=fields,
        path=csv_path.parent / row["path"],
        caption=None if is_missing(caption) else caption,
    )


def read_labelled_csv(path: Path, split: str | None = None, **options: object) -> list[Item]:
    """Items of a CSV with columns path,label[,caption] (extra columns become fields).

    ``path`` is the CSV file (or a folder holding exactly one). Image paths are relative to the
    CSV's folder. With ``split`` and a ``split`` column, only that split's rows are read.
    """
    _reject_options("labelled_csv", options)
    csv_path = find_csv(Path(path))
    rows = load_csv(csv_path)
    if split is not None and rows and "split" in rows[0][1]:
        present = sorted({row["split"] for _, row in rows})
        rows = [(number, row) for number, row in rows if row["split"] == split]
        if not rows:
            raise DataError(f"{csv_path}: no row has split {split!r}; splits present: {present}")
    items = [row_to_item(csv_path, number, row) for number, row in rows]
    seen: dict[str, int] = {}
    for (number, _), item in zip(rows, items, strict=True):
        if item.id in seen:
            raise DataError(
                f"{csv_path}, row {number}, column 'path': {item.id!r} repeats row {seen[item.id]}"
            )
        seen[item.id] = number
    if not items:
        raise DataError(f"{csv_path}: no rows")
    return items
