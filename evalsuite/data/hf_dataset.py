"""A Hugging Face ``datasets`` data set on disk: a ``save_to_disk`` folder or Parquet files.

Read through the ``datasets`` library from local files only. The image column is cast to
``Image(decode=False)``, so reading gives the encoded bytes (``Item.data``) or, for an image
stored by path, its file (``Item.path``), and nothing is decoded until an image is needed.

The items are a lazy sequence over the memory-mapped Arrow table: a catalogue of millions of
images is not read into memory at once; each index builds its Item (and reads its bytes)
when asked. Ids are read up front, to check that they are unique.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from evalsuite.data.items import Item
from evalsuite.data.text import field_text, is_missing
from evalsuite.errors import DataError, ItemError, SpecError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

_OPTIONS = {"image_key", "caption_key", "id_key"}
_BATCH = 256  # rows per Arrow read when iterating


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """datasets' progress bars off while reading (a benchmark log is not the place for them),
    restored after: the switch is process-wide."""
    from datasets.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def parquet_files(path: Path, split: str | None) -> list[Path]:
    """The Parquet files of ``split`` under the folder ``path``, in name order: named
    ``<split>.parquet`` or ``<split>-*.parquet``, in ``<split>/``, or in ``data/`` as the Hub
    lays them out; without ``split``, every .parquet file under ``path``."""
    if split is None:
        return sorted(path.rglob("*.parquet"))
    patterns = (f"{split}.parquet", f"{split}-*.parquet", f"{split}/*.parquet")
    for folder in (path, path / "data"):
        found = sorted({file for pattern in patterns for file in folder.glob(pattern)})
        if found:
            return found
    return []


def load_parquet(files: list[Path]) -> tuple[datasets.Dataset, tempfile.TemporaryDirectory]:
    """The Parquet files as one Dataset. datasets converts them to Arrow in a cache folder:
    a temporary one here (not ~/.cache), kept by the caller as long as the data is read."""
    import datasets

    cache = tempfile.TemporaryDirectory(prefix="evalsuite-parquet-")
    try:
        with quiet_progress():
            dataset = datasets.Dataset.from_parquet([str(f) for f in files], cache_dir=cache.name)
    except Exception as exc:  # a bad file fails deep inside pyarrow with its own type
        cache.cleanup()
        raise DataError(f"{files[0].parent}: cannot read Parquet files ({exc})") from exc
    assert isinstance(dataset, datasets.Dataset)
    return dataset, cache


def pick_split(dataset: Any, source: Path, split: str | None) -> datasets.Dataset:
    """One Dataset out of what load_from_disk gave: a DatasetDict needs ``split``."""
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if split is None or split not in dataset:
            asked = "no split given" if split is None else f"no split {split!r}"
            raise DataError(f"{source}: {asked}; splits in this DatasetDict: {list(dataset)}")
        return dataset[split]
    if split is not None:
        raise DataError(
            f"{source}: split {split!r} asked for, but this is one Dataset, not a DatasetDict "
            "(give no split, or save a DatasetDict)"
        )
    return dataset


def load_dataset_at(path: Path, split: str | None) -> tuple[datasets.Dataset, Any, Path]:
    """(dataset, what must stay alive while it is read, the file or folder to name)."""
    import datasets

    if path.is_file() and path.suffix == ".parquet":
        return (*load_parquet([path]), path)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # a damaged save fails inside datasets with its own type
            raise DataError(f"{path}: cannot load the saved dataset ({exc})") from exc
        return pick_split(loaded, path, split), None, path
    if not path.is_dir():
        raise DataError(f"{path}: no Hugging Face dataset (neither a folder nor a .parquet file)")
    files = parquet_files(path, split)
    if not files:
        wanted = "any .parquet file" if split is None else f"Parquet files of split {split!r}"
        raise DataError(
            f"{path}: no save_to_disk dataset (dataset_dict.json or state.json) and no "
            f"{wanted} ({split or '<split>'}-*.parquet, {split or '<split>'}/*.parquet or "
            "data/...)"
        )
    return (*load_parquet(files), path)


def column_kinds(schema: pa.Schema, image_key: str) -> tuple[list[str], list[str]]:
    """(scalar columns, list-of-string columns) besides the image; any other nested column
    is refused: a field must be text for the tasks to compare it."""
    import pyarrow as pa

    scalars, lists = [], []
    for column in schema:
        if column.name == image_key:
            continue
        kind = column.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            if not (
                pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
            ):
                raise DataError(f"column {column.name!r}: a list of {kind.value_type}, not text")
            lists.append(column.name)
        elif pa.types.is_nested(kind):
            raise DataError(f"column {column.name!r}: nested type {kind}, not a field of text")
        else:
            scalars.append(column.name)
    return scalars, lists


def read_ids(
    dataset: datasets.Dataset, source: Path, id_key: str | None, image_key: str
) -> list[str]:
    """Every row's id, checked present and unique; default: the image's stored path."""
    if id_key is not None:
        values = dataset.data.column(id_key).to_pylist()
        where = f"column {id_key!r}"
    else:
        # the struct's path child only: combining chunks would copy every image's bytes
        chunks = dataset.data.column(image_key).chunks
        values = [path for chunk in chunks for path in chunk.field("path").to_pylist()]
        where = f"column {image_key!r} (its path; set id_key to name an id column)"
    ids, seen = [], {}
    for row, value in enumerate(values):
        if is_missing(value):
            raise DataError(f"{source}, row {row}, {where}: no id")
        item_id = str(value).strip()
        if item_id in seen:
            raise DataError(
                f"{source}, row {row}, {where}: id {item_id!r} repeats row {seen[item_id]}"
            )
        seen[item_id] = row
        ids.append(item_id)
    return ids


class DatasetItems(Sequence[Item]):
    """The rows of a Dataset as Items, built on access (len, index, slice, iteration).

    ``+`` with another sequence gives a list, as the runner joins the scored split with the
    items only the probes read: those Items (and their bytes) are then all in memory.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        ids: list[str],
        keys: dict[str, Any],
        source: Path,
        keep_alive: Any = None,
    ) -> None:
        self._dataset = dataset
        self._ids = ids
        self._image_key: str = keys["image_key"]
        self._caption_key: str | None = keys["caption_key"]
        self._scalars: list[str] = keys["scalars"]
        self._lists: list[str] = keys["lists"]
        self._label_names: dict[str, list[str]] = keys.get("label_names", {})
        self._source = source
        self._keep_alive = keep_alive  # the temporary Arrow cache of Parquet input

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...
    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = range(len(self))[index]  # IndexError and negative indices as a list's
        return self._item(position, self._dataset[position])

    def __iter__(self) -> Iterator[Item]:
        position = 0
        for batch in self._dataset.iter(batch_size=_BATCH):
            for offset in range(len(batch[self._image_key])):
                row = {name: values[offset] for name, values in batch.items()}
                yield self._item(position, row)
                position += 1

    def __add__(self, other: Sequence[Item]) -> list[Item]:
        return [*self, *other]

    def __radd__(self, other: Sequence[Item]) -> list[Item]:
        return [*other, *self]

    def _item(self, position: int, row: dict[str, Any]) -> Item:
        image = row[self._image_key] or {}
        data, path = image.get("bytes"), image.get("path")
        if data is None and not path:
            raise ItemError(
                f"{self._source}, row {position}, column {self._image_key!r}: no image "
                "(neither bytes nor a path)"
            )
        caption = row[self._caption_key] if self._caption_key else None
        if isinstance(caption, list):  # several captions: the first is the item's caption
            caption = caption[0] if caption else None
        return Item(
            id=self._ids[position],
            fields={name: self._field(name, row[name]) for name in self._scalars},
            data=data,
            path=None if data is not None else self._source_dir / path,
            caption=None if is_missing(caption) else str(caption),
            lists={name: tuple(v.strip() for v in row[name] or ()) for name in self._lists},
        )

    def _field(self, name: str, value: Any) -> str:
        """A column's value as text; a ClassLabel's integer as its class name."""
        names = self._label_names.get(name)
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            return names[value]
        return "" if names is not None and value == -1 else field_text(value)  # -1: no label

    @property
    def _source_dir(self) -> Path:
        """Where an image stored by a relative path is looked for: the data's folder."""
        return self._source if self._source.is_dir() else self._source.parent


def read_hf_dataset(path: Path, split: str | None = None, **options: Any) -> Sequence[Item]:
    """Items of a Hugging Face dataset: a ``save_to_disk`` folder (Dataset, or DatasetDict
    whose ``split`` is read) or Parquet files (a .parquet file, or a folder; see
    :func:`parquet_files`).

    Options: ``image_key`` (default "image"), ``caption_key`` ("text"; null for none),
    ``id_key`` (default: the image's stored path). Scalar columns become text fields (the
    caption's too), list-of-string columns ``Item.lists``. Rows keep the dataset's order.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise SpecError(f"hf_dataset reader: unknown option(s) {unknown}")
    import datasets

    image_key = options.get("image_key", "image")
    caption_key = options.get("caption_key", "text")
    id_key = options.get("id_key")
    dataset, keep_alive, source = load_dataset_at(Path(path), split)
    columns = list(dataset.column_names)
    for option, column in (
        ("image_key", image_key),
        ("caption_key", caption_key),
        ("id_key", id_key),
    ):
        if column is not None and column not in columns:
            raise DataError(f"{source}: no column {column!r} ({option}); columns found: {columns}")
    dataset = dataset.cast_column(image_key, datasets.Image(decode=False))
    try:
        scalars, lists = column_kinds(dataset.data.schema, image_key)
    except DataError as exc:
        raise DataError(f"{source}, {exc}") from None
    ids = read_ids(dataset, source, id_key, image_key)
    keys = {"image_key": image_key, "caption_key": caption_key, "scalars": scalars, "lists": lists}
    # a ClassLabel column stores integers: the items carry its names (the usual label type)
    keys["label_names"] = {
        name: list(feature.names)
        for name, feature in dataset.features.items()
        if isinstance(feature, datasets.ClassLabel)
    }
    return DatasetItems(dataset, ids, keys, source, keep_alive)
