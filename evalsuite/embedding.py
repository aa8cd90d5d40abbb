"""The embedding engine every task shares: each image is encoded once, then cached on disk.

Images are decoded and preprocessed in DataLoader worker processes while the main process
runs the model under ``torch.inference_mode`` (optionally bf16 autocast) on the device that
accelerate picks. Embeddings are cached by (model fingerprint, precision, image content
hash), so re-scoring an unchanged model on unchanged data runs no forward pass at all; an
edited image, a retrained model or a changed preprocessing misses the cache by construction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from evalsuite.data.items import Item
from evalsuite.errors import EvalSuiteError, ImageError
from evalsuite.images import item_content_hash, load_item_image
from evalsuite.models.base import ClipModel

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
ON_ERROR = ("skip", "fail")


def default_cache_dir() -> Path:
    env = os.environ.get("EVALSUITE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalsuite"


@dataclass(frozen=True)
class SkippedImage:
    item_id: str
    path: str | None
    reason: str


@dataclass
class ImageEmbeddings:
    """Embeddings of the items that could be read, in input order."""

    ids: list[str]
    vectors: np.ndarray  # (N_ok, D) float32, L2-normalised
    positions: np.ndarray  # index into the input items of each row
    skipped: list[SkippedImage] = field(default_factory=list)


class EmbeddingCache:
    """Append-only shards of (key, vector) under one folder per model and precision.

    A run adds shard files written to a temporary name and renamed, so a crash never leaves
    a half-written shard and concurrent writers never clobber each other.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.folder.glob("shard-*.npz")):
                try:
                    with np.load(shard) as data:
                        keys, vectors = data["keys"], data["vectors"]
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("ignoring unreadable cache shard %s: %s", shard, exc)
                    continue
                self._index.update(zip(keys.tolist(), vectors, strict=True))
        return self._index

    def lookup(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        index = self._load()
        return [index.get(key) for key in keys]

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}"
        tmp = self.folder / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.asarray(keys), vectors=vectors.astype(np.float32))
        tmp.rename(self.folder / f"{name}.npz")
        self._load().update(zip(keys, vectors, strict=True))


class _ImageDataset(Dataset):
    """Decodes and preprocesses one item; a failure is returned, not raised, so the main
    process can apply the skip/fail policy with the item's id and path."""

    def __init__(self, items: Sequence[Item], transform: Any) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.transform(load_item_image(self.items[index])), None
        except ImageError as exc:
            return index, None, str(exc)


def _collate(batch: list[tuple[int, torch.Tensor | None, str | None]]) -> dict[str, Any]:
    ok = [(i, t) for i, t, _ in batch if t is not None]
    return {
        "indices": [i for i, _ in ok],
        "pixels": torch.stack([t for _, t in ok]) if ok else None,
        "errors": [(i, e) for i, t, e in batch if t is None],
    }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding is per-image work; intra-op threads only contend


class EmbeddingEngine:
    """Encodes dataset items and texts with ``model``, through the on-disk cache."""

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
        self.device = torch.device(device) if device is not None else _accelerate_device()
        self.model.to(self.device)
        folder = (cache_dir or default_cache_dir()) / model.fingerprint[:32] / precision
        self.cache = EmbeddingCache(folder) if use_cache else None
        self.images_forwarded = 0  # counted for tests and benchmarks: cache hits add nothing
        self.texts_forwarded = 0

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

        if len(items) < 256:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=8) as pool:  # file reads; hashlib drops the GIL
            return list(pool.map(one, items, chunksize=64))

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
        mine = todo[rank::world]
        done, errors = self._encode_share(items, mine, keys, vectors, desc, show=rank == 0)
        if world > 1:
            from accelerate.utils import gather_object

            shares = gather_object([(done, vectors[done], errors)])
            done, errors = [], []
            for rows, share_vectors, share_errors in shares:
                vectors[rows] = share_vectors
                done += rows
                errors += share_errors
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
            _ImageDataset(subset, self.model.transform),
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=_collate,
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=4 if workers else None,
        )
        unsaved = 0
        bar = tqdm(total=len(subset), desc=desc, unit="img", disable=not (self.progress and show))
        for batch in loader:
            errors += [(rows_todo[j], message) for j, message in batch["errors"]]
            if batch["pixels"] is not None:
                rows = [rows_todo[j] for j in batch["indices"]]
                vectors[rows] = self._forward_images(batch["pixels"])
                done += rows
            bar.update(len(batch["indices"]) + len(batch["errors"]))
            if self.cache and len(done) - unsaved >= 50 * self.batch_size:
                self._save(keys, vectors, done[unsaved:])  # flush: a crash keeps progress
                unsaved = len(done)
        bar.close()
        if self.cache:
            self._save(keys, vectors, done[unsaved:])
        return done, errors

    def _save(self, keys: list[Any], vectors: np.ndarray, rows: list[int]) -> None:
        assert self.cache is not None
        self.cache.add([keys[r] for r in rows], vectors[rows])

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @torch.inference_mode()
    def _forward_images(self, pixels: torch.Tensor) -> np.ndarray:
        with self._autocast():
            features = self.model.image_features(pixels.to(self.device, non_blocking=True))
        self.images_forwarded += len(pixels)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    # --- texts ----------------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
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
        with self._autocast():
            features = self.model.text_features(ids)
        self.texts_forwarded += len(texts)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def default_num_workers() -> int:
    """Decode workers: one per spare core (the main process runs the model), at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) - 1))


def process_rank_and_count() -> tuple[int, int]:
    """(rank, world size) under ``accelerate launch`` or torchrun; (0, 1) otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        from accelerate import PartialState

        state = PartialState()
        return state.process_index, state.num_processes
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _accelerate_device() -> torch.device:
    from accelerate import PartialState

    return PartialState().device
