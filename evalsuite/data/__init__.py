"""Dataset readers by name: a benchmark YAML names its reader, the runner looks it up here.

Every reader has the signature ``(path, split=None, **options) -> Sequence[Item]`` (a list,
or a lazy sequence for data too large to list up front: ``webdataset``, ``hf_dataset``) and raises
:class:`~evalsuite.errors.DataError` for bad input. Readers reject options they do not know
(:class:`~evalsuite.errors.SpecError`) so a misspelt option in a YAML cannot pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.custom import read_image_folder, read_labelled_csv
from evalsuite.data.deepfashion import read_deepfashion
from evalsuite.data.fmnist import read_fashion_mnist
from evalsuite.data.hf_dataset import read_hf_dataset
from evalsuite.data.hf_folder import read_hf_imagefolder
from evalsuite.data.items import Item
from evalsuite.data.pairs import read_pairs_csv
from evalsuite.data.shards import read_webdataset
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.errors import SpecError
from evalsuite.registry import Registry, close_names


class Reader(Protocol):
    """A dataset reader: the data at ``path`` (one ``split`` of it) as items."""

    def __call__(self, path: Path, split: str | None = ..., **options: Any) -> Sequence[Item]: ...


def _unknown_reader(name: str, known: list[str]) -> str:
    close = close_names(name, known)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown reader {name!r}; known readers: {', '.join(known)}.{hint}"


# A static table, as the task types': the reader modules do not know of it, and a reader of an
# optional format (hf_dataset: the datasets library) imports that library only when it reads.
READERS: Registry[Reader] = Registry("reader", error=SpecError, miss_message=_unknown_reader)
READERS.register("fashion_mnist", read_fashion_mnist)
READERS.register("deepfashion", read_deepfashion)
READERS.register("image_folder", read_image_folder)
READERS.register("labelled_csv", read_labelled_csv)
READERS.register("catalogue", read_catalogue)
READERS.register("styles_catalogue", read_styles_catalogue)
READERS.register("webdataset", read_webdataset)
READERS.register("pairs_csv", read_pairs_csv)
READERS.register("hf_imagefolder", read_hf_imagefolder)
READERS.register("hf_dataset", read_hf_dataset)


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; an unknown name lists the known ones."""
    return READERS.get(name)


__all__ = ["READERS", "Item", "Reader", "get_reader"]
