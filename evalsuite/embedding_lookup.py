"""The engine for precomputed embeddings: vectors are looked up by item id, never computed.

It answers the calls the runner and the tasks make of :class:`EmbeddingEngine`
(``content_hashes``, ``embed_items``, ``embed_texts``), so every task runs unchanged on
embeddings a user already has. Items without a vector are left out and listed in
``ImageEmbeddings.missing``; texts go through the configured text model's own engine, and
without one ``text_unavailable`` says why the text tasks do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.data.items import Item
from evalsuite.embedding import EmbeddingEngine, ImageEmbeddings
from evalsuite.errors import EvalSuiteError
from evalsuite.models.precomputed import PrecomputedEmbeddings

NO_TEXT = (
    "not applicable: precomputed image embeddings without a text encoder (name one as "
    "text_model in embeddings.yaml beside them)"
)


class LookupEngine:
    """Looks up ``model``'s vectors by item id; texts through ``model.text_model``."""

    device = "precomputed"
    images_forwarded = 0  # nothing is ever encoded

    def __init__(
        self,
        model: PrecomputedEmbeddings,
        *,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
        device: str | None = None,  # of the text model, when there is one
        **_: Any,  # image-encoding options (batch size, workers...) do not apply
    ) -> None:
        self.model = model
        self.precision = "fp32"
        self.on_error = "skip"  # set by the runner; nothing here is decoded
        self._text_engine: EmbeddingEngine | None = None
        self._text_options = {
            "cache_dir": cache_dir,
            "use_cache": use_cache,
            "progress": progress,
            "device": device,
        }

    @property
    def cache_shards_skipped(self) -> int:
        """Bad cache shards the text engine skipped (image vectors are never cached here)."""
        return self._text_engine.cache_shards_skipped if self._text_engine else 0

    @property
    def text_unavailable(self) -> str | None:
        return None if self.model.text_model is not None else NO_TEXT

    def content_hashes(self, items: Sequence[Item]) -> list[str]:
        """Per item, what its embedding is: the data hash then names the items scored and
        those without a vector (no image bytes are read: the images are not needed)."""
        rows = self.model.rows([item.id for item in items])
        return ["precomputed" if row >= 0 else "no embedding" for row in rows]

    def embed_items(
        self, items: Sequence[Item], desc: str = "images", content_hashes: Any = None
    ) -> ImageEmbeddings:
        rows = self.model.rows([item.id for item in items])
        positions = np.flatnonzero(rows >= 0)
        return ImageEmbeddings(
            ids=[items[i].id for i in positions],
            vectors=self.model.vectors[rows[positions]],
            positions=positions,
            missing=[items[i].id for i in np.flatnonzero(rows < 0)],
        )

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self.model.text_model is None:
            raise EvalSuiteError(NO_TEXT)
        if self._text_engine is None:
            self._text_engine = EmbeddingEngine(self.model.text_model, **self._text_options)
        return self._text_engine.embed_texts(texts, batch_size)
