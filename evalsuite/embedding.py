"""The model engine: each image is encoded once, then cached on disk.

Images are decoded and preprocessed in DataLoader worker processes (:mod:`evalsuite.decoding`)
while the main process runs the model under ``torch.inference_mode`` (optionally bf16
autocast) on the device that accelerate picks. Embeddings are cached by (model fingerprint,
precision, image content hash), so re-scoring an unchanged model on unchanged data runs no
forward pass at all; an edited image, a retrained model or a changed preprocessing misses the
cache by construction.

Under ``accelerate launch`` / torchrun the processes agree on the images to encode, each
encodes a strided share, and the vectors are gathered so every process ends with all
(:mod:`evalsuite.distributed`). The cores are shared between decode workers and the forward
as :mod:`evalsuite.cpu_threads` decides.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from evalsuite.cpu_threads import ForwardThreads, default_num_workers, torch_threads, worker_init
from evalsuite.data.items import Item
from evalsuite.decoding import ImageDataset, collate_decoded, split_transform
from evalsuite.device import PRECISIONS, autocast, ieee_fp32, resolve_device
from evalsuite.distributed import all_gather, process_rank_and_count
from evalsuite.embedding_cache import EmbeddingCache
from evalsuite.engine import ImageEmbeddings
from evalsuite.errors import EvalSuiteError, ImageError
from evalsuite.images import item_content_hash
from evalsuite.models.base import ClipModel
from evalsuite.progress import interactive, progress_line
from evalsuite.results import EngineRecord, SkippedImage

log = logging.getLogger(__name__)

ON_ERROR = ("skip", "fail")


def default_cache_dir() -> Path:
    env = os.environ.get("EVALSUITE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalsuite"


class EmbeddingEngine:
    """Encodes dataset items and texts with ``model``, through the on-disk cache."""

    text_unavailable: str | None = None  # why texts cannot be embedded (never, with a model)

    def __init__(
        self,
        model: ClipModel,
        *,
        batch_size: int = 64,
        num_workers: int | None = None,
        precision: str = "fp32",
        cache_dir: Path | None = None,
        use_cache: bool = True,
        on_error: str = "skip",
        device: torch.device | str | None = None,
        progress: bool = True,
        threads: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise EvalSuiteError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if on_error not in ON_ERROR:
            raise EvalSuiteError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.model = model
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.precision = precision
        self.on_error = on_error
        self.progress = progress
        self.threads = threads  # torch threads of the forward while workers decode; None: auto
        self.decided_threads: int | None = None  # what auto chose on the first call
        self.device = resolve_device(device)
        self.model.to(self.device)
        folder = (cache_dir or default_cache_dir()) / model.fingerprint[:32] / precision
        self.cache = EmbeddingCache(folder, model.embed_dim) if use_cache else None
        self._split = split_transform(model.transform)
        self.images_forwarded = 0  # counted for tests and benchmarks: cache hits add nothing
        self.texts_forwarded = 0

    @property
    def cache_shards_skipped(self) -> int:
        """Bad cache shards skipped so far (their vectors were recomputed)."""
        return self.cache.shards_skipped if self.cache else 0

    def record(
        self, scored: ImageEmbeddings, content_hashes: Sequence[str | ImageError]
    ) -> EngineRecord:
        """Distinct image contents among everything embedded, and the model's own cosine ->
        logit/probability formula (see :class:`evalsuite.engine.Engine`)."""
        return EngineRecord(
            distinct_images=len({h for h in content_hashes if isinstance(h, str)}),
            score_formula=self.model.score_formula().to_dict(),
        )

    # --- images ---------------------------------------------------------------------------
    def embed_items(
        self,
        items: Sequence[Item],
        desc: str = "images",
        content_hashes: Sequence[str | ImageError] | None = None,
    ) -> ImageEmbeddings:
        """Embeddings of ``items``; unreadable images are skipped or raise, per ``on_error``.

        ``content_hashes`` (from :meth:`content_hashes`) saves hashing the files twice when the
        caller needed them already."""
        keys = list(content_hashes) if content_hashes is not None else self.content_hashes(items)
        vectors = np.zeros((len(items), self.model.embed_dim), np.float32)
        ok = np.zeros(len(items), bool)
        skipped = {
            i: self._skip(items[i], k) for i, k in enumerate(keys) if isinstance(k, Exception)
        }
        readable = [i for i, key in enumerate(keys) if isinstance(key, str)]
        hits = (
            self.cache.lookup([keys[i] for i in readable]) if self.cache else [None] * len(readable)
        )
        first_of: dict[str, int] = {}  # identical images are encoded once per call
        duplicates: list[tuple[int, int]] = []
        for i, hit in zip(readable, hits, strict=True):
            if hit is not None:
                vectors[i], ok[i] = hit, True
            elif keys[i] in first_of:
                duplicates.append((i, first_of[keys[i]]))
            else:
                first_of[keys[i]] = i
        self._forward_items(items, list(first_of.values()), keys, vectors, ok, skipped, desc)
        for i, original in duplicates:
            if ok[original]:
                vectors[i], ok[i] = vectors[original], True
            else:
                skipped[i] = self._skip(
                    items[i],
                    ImageError(
                        f"item {items[i].id!r}: same bytes as unreadable item "
                        f"{items[original].id!r}",
                        item_id=items[i].id,
                        path=str(items[i].path),
                    ),
                )
        positions = np.flatnonzero(ok)
        return ImageEmbeddings(
            ids=[items[i].id for i in positions],
            vectors=vectors[positions],
            positions=positions,
            skipped=[skipped[i] for i in sorted(skipped)],
        )

    def content_hashes(self, items: Sequence[Item]) -> list[str | ImageError]:
        """SHA-256 of each item's image bytes, or the ImageError that reading it raised."""

        def one(item: Item) -> str | ImageError:
            try:
                return item_content_hash(item)
            except ImageError as exc:
                return exc

        # In-memory pixels hash in microseconds: threads would only add overhead. Files are
        # read in threads (I/O; hashlib drops the GIL), 64 to a task: a task per item cost
        # more in submitting than hashing (0.7 s of a 2.1 s re-score of 5,327 items).
        out: list[str | ImageError] = [one(item) if item.path is None else "" for item in items]
        files = [i for i, item in enumerate(items) if item.path is not None]
        if len(files) < 256:
            for i in files:
                out[i] = one(items[i])
            return out
        chunks = [files[start : start + 64] for start in range(0, len(files), 64)]
        with ThreadPoolExecutor(max_workers=min(8, len(chunks))) as pool:
            for chunk, hashes in zip(
                chunks, pool.map(lambda rows: [one(items[i]) for i in rows], chunks), strict=True
            ):
                for i, digest in zip(chunk, hashes, strict=True):
                    out[i] = digest
        return out

    def _skip(self, item: Item, error: Exception) -> SkippedImage:
        if self.on_error == "fail":
            raise error
        log.warning("skipping image: %s", error)
        return SkippedImage(item.id, str(item.path) if item.path else None, str(error))

    def _forward_items(
        self,
        items: Sequence[Item],
        todo: list[int],
        keys: list[Any],
        vectors: np.ndarray,
        ok: np.ndarray,
        skipped: dict[int, SkippedImage],
        desc: str,
    ) -> None:
        """Encode ``todo``; under ``accelerate launch`` each process takes a strided share and
        the vectors (and unreadable images) are gathered, so every process ends with all."""
        rank, world = process_rank_and_count()
        if world > 1:
            # Every process must split the same list: each process read the cache on its own,
            # and one that had hits another lacks (a shard written by a faster process, or
            # vectors only gathered in memory) would otherwise leave rows nobody encodes.
            todo = sorted(set().union(*all_gather(todo)))
        mine = todo[rank::world]
        done, errors = self._encode_share(items, mine, keys, vectors, desc, show=rank == 0)
        if world > 1:
            shares = all_gather((done, vectors[done], errors))
            done, errors = [], []
            for share_rank, (rows, share_vectors, share_errors) in enumerate(shares):
                vectors[rows] = share_vectors
                done += rows
                errors += share_errors
                if self.cache and share_rank != rank:  # written to disk by its own process
                    self.cache.remember([keys[r] for r in rows], share_vectors)
        ok[done] = True
        # The policy is applied after gathering, so that "fail" raises on every process alike.
        for row, message in sorted(errors):
            item = items[row]
            error = ImageError(message, item_id=item.id, path=str(item.path))
            skipped[row] = self._skip(item, error)

    def _encode_share(
        self,
        items: Sequence[Item],
        rows_todo: list[int],
        keys: list[Any],
        vectors: np.ndarray,
        desc: str,
        show: bool,
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """Decode in worker processes and encode; returns rows done and (row, error) pairs."""
        done: list[int] = []
        errors: list[tuple[int, str]] = []
        if not rows_todo:
            return done, errors
        subset = [items[i] for i in rows_todo]
        # Worker start-up costs more than decoding a handful of images in-process.
        workers = self.num_workers if len(subset) > 2 * self.batch_size else 0
        loader = DataLoader(
            ImageDataset(subset, self._split or self.model.transform),
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=collate_decoded,
            worker_init_fn=worker_init if workers else None,
            prefetch_factor=4 if workers else None,
            pin_memory=self.device.type == "cuda",  # lets the copy to the GPU overlap
        )
        unsaved, started = 0, time.perf_counter()
        report = self.progress and show  # a bar at a terminal, else a line when done
        bar = tqdm(total=len(subset), desc=desc, unit="img", disable=not (report and interactive()))
        threads = ForwardThreads(self, workers)
        with torch_threads(threads.initial):
            for batch in loader:
                errors += [(rows_todo[j], message) for j, message in batch["errors"]]
                if batch["pixels"] is not None:
                    rows = [rows_todo[j] for j in batch["indices"]]
                    start = time.perf_counter()
                    vectors[rows] = self._forward_images(batch["pixels"])
                    threads.observe(batch["decode_seconds"], time.perf_counter() - start)
                    done += rows
                bar.update(len(batch["indices"]) + len(batch["errors"]))
                if self.cache and len(done) - unsaved >= 50 * self.batch_size:
                    self._save(keys, vectors, done[unsaved:])  # flush: a crash keeps progress
                    unsaved = len(done)
        bar.close()
        if report and not interactive():
            seconds = time.perf_counter() - started
            unreadable = f", {len(errors)} unreadable" if errors else ""
            progress_line(f"{desc}: encoded {len(done)} images in {seconds:.1f} s{unreadable}")
        if self.cache:
            self._save(keys, vectors, done[unsaved:])
        return done, errors

    def _save(self, keys: list[Any], vectors: np.ndarray, rows: list[int]) -> None:
        assert self.cache is not None
        self.cache.add([keys[r] for r in rows], vectors[rows])

    @contextmanager
    def _precision(self) -> Iterator[None]:
        """bf16 autocast, or IEEE fp32 (no TF32 on CUDA): see evalsuite.device."""
        with ieee_fp32(self.device), autocast(self.precision, self.device):
            yield

    @torch.inference_mode()
    def _forward_images(self, pixels: torch.Tensor) -> np.ndarray:
        # uint8 crosses to the device (a quarter of float32's bytes) and is normalised there
        pixels = pixels.to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:
            assert self._split is not None
            pixels = self._split.normalize(pixels)
        with self._precision():
            features = self.model.image_features(pixels)
        self.images_forwarded += len(pixels)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    # --- texts ----------------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised embeddings (N, D) of ``texts``, through the cache."""
        texts = list(texts)
        keys = ["text:" + hashlib.sha256(t.encode()).hexdigest() for t in texts]
        out = np.zeros((len(texts), self.model.embed_dim), np.float32)
        hits = self.cache.lookup(keys) if self.cache else [None] * len(texts)
        todo = [i for i, hit in enumerate(hits) if hit is None]
        for i, hit in enumerate(hits):
            if hit is not None:
                out[i] = hit
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            out[rows] = self._forward_texts([texts[i] for i in rows])
        if self.cache and todo and process_rank_and_count()[0] == 0:
            self.cache.add([keys[i] for i in todo], out[todo])
        return out

    @torch.inference_mode()
    def _forward_texts(self, texts: list[str]) -> np.ndarray:
        ids = self.model.tokenize(texts).to(self.device)
        with self._precision():
            features = self.model.text_features(ids)
        self.texts_forwarded += len(texts)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
