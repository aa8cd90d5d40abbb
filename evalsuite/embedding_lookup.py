"""The engine for precomputed embeddings: vectors are looked up by item id, never computed.

It implements :class:`evalsuite.engine.Engine`, as :class:`EmbeddingEngine` does, so every
task runs unchanged on embeddings a user already has; :func:`build_engine` picks the engine a
loaded model or set of embeddings needs. Items without a vector are left out and listed in
``ImageEmbeddings.missing``; texts go through the configured text model's own engine, and
without one ``text_unavailable`` says why the text tasks do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.data.items import Item
from evalsuite.data.splits import id_key
from evalsuite.embedding import EmbeddingEngine
from evalsuite.engine import Engine, ImageEmbeddings
from evalsuite.errors import EvalSuiteError
from evalsuite.models.base import ClipModel
from evalsuite.models.precomputed import PrecomputedEmbeddings
from evalsuite.results import EngineRecord, PrecomputedCoverage

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

    def record(self, scored: ImageEmbeddings, content_hashes: Sequence[object]) -> EngineRecord:
        """The scored items are the distinct images; which of them had no vector."""
        return EngineRecord(
            distinct_images=len(scored.ids),
            precomputed=PrecomputedCoverage(
                n_items_with_embedding=len(scored.ids),
                n_items_without_embedding=len(scored.missing),
                first_ids_without_embedding=sorted(scored.missing, key=id_key)[:20],
            ),
        )

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self.model.text_model is None:
            raise EvalSuiteError(NO_TEXT)
        if self._text_engine is None:
            self._text_engine = EmbeddingEngine(self.model.text_model, **self._text_options)
        return self._text_engine.embed_texts(texts, batch_size)


def build_engine(model: ClipModel | PrecomputedEmbeddings, **options: Any) -> Engine:
    """The engine for ``model``: vectors looked up for precomputed embeddings, else encoded.
    ``options`` are :class:`EmbeddingEngine`'s (a LookupEngine passes on those of its text
    model and ignores the image-encoding ones)."""
    if isinstance(model, PrecomputedEmbeddings):
        return LookupEngine(model, **options)
    return EmbeddingEngine(model, **options)
