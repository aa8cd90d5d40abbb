"""The one record every dataset reader returns and every consumer (scoring, fine-tuning) reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Item:
    """One labelled image.

    Exactly one of ``path`` (an image file on disk), ``pixels`` (an in-memory uint8 array,
    HxW or HxWx3, e.g. a Fashion-MNIST digit) or ``data`` (the encoded bytes of an image file,
    e.g. from a WebDataset shard or a Hugging Face dataset) is set. ``fields`` holds the
    catalogue or label fields as strings (``articleType``, ``baseColour``, ``label``...),
    ``lists`` the fields whose value is a list of strings (several captions of one item),
    ``caption`` the text used for fine-tuning or text retrieval, when there is one.
    """

    id: str
    fields: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    caption: str | None = None
    data: bytes | None = field(default=None, compare=False, repr=False)
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sources = sum(source is not None for source in (self.path, self.pixels, self.data))
        if sources != 1:
            raise ValueError(f"item {self.id!r}: exactly one of path, pixels or data must be set")
