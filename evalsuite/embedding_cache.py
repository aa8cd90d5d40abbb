"""The on-disk embedding cache: append-only shards of (key, vector) per model and precision.

The cache only saves time, so nothing wrong with it may change a score or stop a run:

- a shard is read only if it passes the checks precomputed embeddings get
  (:func:`~evalsuite.models.precomputed.check_vectors`: one row per key, the model's
  dimension, finite, no all-zero row) and the engine's own contract (unit-length rows);
  otherwise it is skipped whole, counted, named in one warning and moved aside
  (``corrupt-shard-*.npz``), so its vectors are recomputed and saved afresh;
- a folder that cannot be written (not creatable, read-only, disk full) turns saving off
  for the rest of the run, with one warning; the vectors are still remembered in memory.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalsuite.errors import ModelLoadError
from evalsuite.models.precomputed import check_vectors

log = logging.getLogger(__name__)

UNIT_TOLERANCE = 1e-3  # saved rows are L2-normalised in float32: off by ~1e-6 at most


class EmbeddingCache:
    """Append-only shards of (key, vector) under one folder per model and precision.

    A run adds shard files written to a temporary name and renamed, so a crash never leaves
    a half-written shard and concurrent writers never clobber each other. ``dim``: the
    model's embedding size, which every shard must have (None: not checked).
    """

    def __init__(self, folder: Path, dim: int | None = None) -> None:
        self.folder = folder
        self.dim = dim
        self._index: dict[str, np.ndarray] | None = None
        self.shards_skipped = 0  # bad shards met by this cache (reported in the run record)
        self.write_error: OSError | None = None  # the first failed save: no more are tried

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.folder.glob("shard-*.npz")):
                try:
                    keys, vectors = self._read(shard)
                except ModelLoadError as exc:
                    self._set_aside(shard, str(exc))
                    continue
                self._index.update(zip(keys, vectors, strict=True))
        return self._index

    def _read(self, shard: Path) -> tuple[list[str], np.ndarray]:
        """Keys and vectors of ``shard``; ModelLoadError naming it and the cause if bad."""
        try:
            # allow_pickle stays False: a shard holding pickled objects is refused, never run
            with np.load(shard) as data:
                keys, vectors = data["keys"], data["vectors"]
        except Exception as exc:  # zipfile, zlib, struct and numpy each raise their own
            raise ModelLoadError(f"{shard}: not a readable shard ({exc})") from None
        if keys.ndim != 1 or keys.dtype.kind != "U":
            raise ModelLoadError(
                f"{shard}: keys are not a list of strings (dtype {keys.dtype}, shape {keys.shape})"
            )
        names: list[str] = keys.tolist()  # str, not np.str_: messages show 'ab', not np.str_('ab')
        vectors = check_vectors(vectors, names, shard, self.dim)
        norms = np.linalg.norm(vectors, axis=1)
        off = np.flatnonzero(np.abs(norms - 1) > UNIT_TOLERANCE)
        if off.size:
            raise ModelLoadError(
                f"{shard}, row {off[0]} (id {names[off[0]]!r}): not unit length "
                f"(norm {norms[off[0]]:.4g}; {off.size} row(s) affected)"
            )
        return names, vectors

    def _set_aside(self, shard: Path, cause: str) -> None:
        """Count a bad shard, warn once about it, and move it where no run reads it."""
        self.shards_skipped += 1
        aside = shard.with_name(f"corrupt-{shard.name}")
        try:
            shard.replace(aside)
            fate = f"moved to {aside.name}"
        except FileNotFoundError:
            fate = "already moved aside by another run"
        except OSError as exc:
            fate = f"left in place: cannot move it ({exc.strerror})"
        log.warning(
            "embedding cache: skipped shard %s; its embeddings are recomputed; %s", cause, fate
        )

    def lookup(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        index = self._load()
        return [index.get(key) for key in keys]

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        self.remember(keys, vectors)
        if self.write_error is not None:
            return
        try:
            self._write(keys, vectors)
        except OSError as exc:
            self.write_error = exc
            log.warning(
                "embedding cache: cannot save to %s (%s); this run goes on without saving "
                "embeddings (scores are not affected)",
                self.folder,
                exc,
            )

    def _write(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}"
        tmp = self.folder / f".{name}.tmp.npz"
        try:
            np.savez(tmp, keys=np.asarray(keys), vectors=vectors.astype(np.float32))
            tmp.rename(self.folder / f"{name}.npz")
        except BaseException:  # a full disk must not keep the half-written file
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise

    def remember(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add to the in-memory index only (vectors another process wrote to disk)."""
        self._load().update(zip(keys, np.asarray(vectors, np.float32), strict=True))
