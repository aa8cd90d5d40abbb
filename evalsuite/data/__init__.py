"""Dataset readers by name: a benchmark YAML names its reader, the runner looks it up here.

Every reader has the signature ``(path, split=None, **options) -> Sequence[Item]`` (a list,
or a lazy sequence for data too large to list up front: ``webdataset``, ``hf_dataset``) and raises
:class:`~evalsuite.errors.DataError` for bad input. Readers reject options they do not know
(:class:`~evalsuite.errors.SpecError`) so a misspelt option in a YAML cannot pass unnoticed.
"""

from __future__ import annotations

import difflib
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


class Reader(Protocol):
    """A dataset reader: the data at ``path`` (one ``split`` of it) as items."""

    def __call__(self, path: Path, split: str | None = ..., **options: Any) -> Sequence[Item]: ...


READERS: dict[str, Reader] = {
    "fashion_mnist": read_fashion_mnist,
    "deepfashion": read_deepfashion,
    "image_folder": read_image_folder,
    "labelled_csv": read_labelled_csv,
    "catalogue": read_catalogue,
    "styles_catalogue": read_styles_catalogue,
    "webdataset": read_webdataset,
    "pairs_csv": read_pairs_csv,
    "hf_imagefolder": read_hf_imagefolder,
    "hf_dataset": read_hf_dataset,
}


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; an unknown name lists the known ones."""
    if name in READERS:
        return READERS[name]
    close = difflib.get_close_matches(name, list(READERS), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SpecError(f"unknown reader {name!r}; known readers: {', '.join(sorted(READERS))}.{hint}")


__all__ = ["READERS", "Item", "Reader", "get_reader"]
