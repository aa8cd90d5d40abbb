"""The one record every dataset reader returns and every consumer (scoring, fine-tuning) reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Item:
    """One labelled image.

    Exactly one of ``path`` (an image file on disk) or ``pixels`` (an in-memory uint8 array,
    HxW or HxWx3, e.g. a Fashion-MNIST digit) is set. ``fields`` holds the catalogue or label
    fields as strings (``articleType``, ``baseColour``, ``label``...), ``caption`` the text used
    for fine-tuning or text retrieval, when there is one.
    """

    id: str
    fields: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    caption: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.pixels is None):
            raise ValueError(f"item {self.id!r}: exactly one of path or pixels must be set")
