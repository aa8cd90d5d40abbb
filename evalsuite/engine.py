"""The calls the runner and the tasks make of an embedding engine, and what it returns.

Two engines implement :class:`Engine`: :class:`evalsuite.embedding.EmbeddingEngine` encodes
images and texts with a model, :class:`evalsuite.embedding_lookup.LookupEngine` looks up
vectors a user already has. The runner and the tasks only ever see this protocol, so neither
asks which engine it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from evalsuite.data.items import Item
from evalsuite.errors import ImageError
from evalsuite.results import EngineRecord, SkippedImage

if TYPE_CHECKING:  # torch only for the annotation: the protocol itself needs no torch
    import torch


@dataclass
class ImageEmbeddings:
    """Embeddings of the items that could be read, in input order."""

    ids: list[str]
    vectors: np.ndarray  # (N_ok, D) float32, L2-normalised
    positions: np.ndarray  # index into the input items of each row
    skipped: list[SkippedImage] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ids without a precomputed embedding


class Engine(Protocol):
    """Embeds a benchmark's items and texts; one engine serves every benchmark of a run."""

    on_error: str  # "skip" or "fail" an unreadable image: the runner sets the benchmark's

    @property
    def device(self) -> torch.device | str:
        """Where vectors come from, as recorded in ``runs.device``."""

    @property
    def precision(self) -> str: ...

    @property
    def images_forwarded(self) -> int:
        """Images run through a model so far (cache hits and lookups add nothing)."""

    @property
    def cache_shards_skipped(self) -> int:
        """Bad embedding-cache shards skipped so far (their vectors were recomputed)."""

    @property
    def text_unavailable(self) -> str | None:
        """Why texts cannot be embedded ("not applicable: ..."), None when they can."""

    def content_hashes(self, items: Sequence[Item]) -> Sequence[str | ImageError]:
        """What each item's embedding is of: the run's data hash is made of these."""

    def embed_items(
        self,
        items: Sequence[Item],
        desc: str = "images",
        content_hashes: Sequence[str | ImageError] | None = None,
    ) -> ImageEmbeddings:
        """Embeddings of ``items``; those without one are listed as skipped or missing."""

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised embeddings (N, D) of ``texts``."""

    def record(
        self, scored: ImageEmbeddings, content_hashes: Sequence[str | ImageError]
    ) -> EngineRecord:
        """What ``runs.extra`` records of the engine for a benchmark whose scored split got
        ``scored`` (``content_hashes`` those of every item embedded for it)."""
