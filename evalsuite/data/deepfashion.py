"""DeepFashion Category and Attribute Prediction benchmark, in its published layout.

Three listing files, each "count line, header line, rows" with columns separated by runs of
spaces::

    Anno/list_category_cloth.txt   category_name category_type   (1 upper, 2 lower, 3 full)
    Anno/list_category_img.txt     image_name category_label     (1-based row of the above)
    Eval/list_eval_partition.txt   image_name evaluation_status  (train | val | test)

Some copies flatten the folders (all three files in the root) or name the annotation folder
``Anno_coarse``; both are accepted. Image paths in the listings are relative to the root.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.data.items import Item
from evalsuite.data.text import read_utf8
from evalsuite.errors import DataError, SpecError

CATEGORY_TYPES = {"1": "upper", "2": "lower", "3": "full"}
SPLITS = ("train", "val", "test")
LAYOUT = (
    "expected the DeepFashion Category-and-Attribute layout: Anno/list_category_cloth.txt, "
    "Anno/list_category_img.txt, Eval/list_eval_partition.txt (or all three in the root)"
)
_FOLDERS = {
    "list_category_cloth.txt": ("Anno", "Anno_coarse", "."),
    "list_category_img.txt": ("Anno", "Anno_coarse", "."),
    "list_eval_partition.txt": ("Eval", "."),
}
Row = tuple[int, str, str]  # (line number, first column, last column)


def find_listing(root: Path, name: str) -> Path:
    """The listing file ``name`` in its usual folder or the root."""
    candidates = [root / folder / name for folder in _FOLDERS[name]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"{candidates[0]}: file not found; {LAYOUT}")


def read_listing(path: Path, header: tuple[str, str]) -> list[Row]:
    """Rows of a listing file as (line number, name, value), after checking count and header.

    The value is the last column, the name everything before it, so a name with a space
    still parses.
    """
    lines = read_utf8(path, "listing file").splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: line 1 must be the row count; {LAYOUT}")
    if tuple(lines[1].split()) != header:
        raise DataError(f"{path}: line 2 must be the header {' '.join(header)!r}, got {lines[1]!r}")
    rows: list[Row] = []
    for number, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}, line {number}: expected '{' '.join(header)}', got {line!r}")
        rows.append((number, parts[0].strip(), parts[1]))
    if len(rows) != int(lines[0]):
        raise DataError(f"{path}: line 1 says {int(lines[0])} rows, the file has {len(rows)}")
    return rows


def read_categories(path: Path) -> list[tuple[str, str]]:
    """(category name, "upper" | "lower" | "full") in file order: label k is row k-1."""
    categories = []
    for number, name, type_code in read_listing(path, ("category_name", "category_type")):
        if type_code not in CATEGORY_TYPES:
            raise DataError(f"{path}, line {number}: category_type {type_code!r} must be 1, 2 or 3")
        categories.append((name, CATEGORY_TYPES[type_code]))
    return categories


def read_image_labels(path: Path, n_categories: int) -> dict[str, int]:
    """Image name -> 0-based category index, checking every label is a listed category."""
    labels: dict[str, int] = {}
    for number, image, label in read_listing(path, ("image_name", "category_label")):
        if not label.isdigit() or not 1 <= int(label) <= n_categories:
            raise DataError(
                f"{path}, line {number}: category_label {label!r} is not in 1..{n_categories}"
            )
        labels[image] = int(label) - 1
    return labels


def read_partition(path: Path) -> list[Row]:
    """Partition rows, checking each status is train, val or test."""
    rows = read_listing(path, ("image_name", "evaluation_status"))
    for number, _, status in rows:
        if status not in SPLITS:
            raise DataError(
                f"{path}, line {number}: evaluation_status {status!r} must be one of {SPLITS}"
            )
    return rows


def read_deepfashion(path: Path, split: str | None = "test", **options: object) -> list[Item]:
    """Items of one split ("test" by default; None: every image in the partition file).

    Fields: ``category`` (e.g. "Blouse") and ``category_type`` ("upper", "lower", "full");
    ``path`` is ``root/img/...`` as listed; ids are the listed image names.
    """
    if options:
        raise SpecError(f"deepfashion reader: unknown option(s) {sorted(options)}")
    if split is not None and split not in SPLITS:
        raise DataError(f"deepfashion reader: unknown split {split!r}; use one of {SPLITS}")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: DeepFashion folder not found; {LAYOUT}")
    categories = read_categories(find_listing(root, "list_category_cloth.txt"))
    labels_path = find_listing(root, "list_category_img.txt")
    labels = read_image_labels(labels_path, len(categories))
    partition_path = find_listing(root, "list_eval_partition.txt")
    items = []
    for number, image, status in read_partition(partition_path):
        if split is not None and status != split:
            continue
        if image not in labels:
            raise DataError(
                f"{partition_path}, line {number}: image {image!r} has no category in {labels_path}"
            )
        name, kind = categories[labels[image]]
        fields = {"category": name, "category_type": kind}
        items.append(Item(id=image, fields=fields, path=root / image))
    return items
