"""Training and validation order: which item indices each process reads, batch by batch.

* :class:`EpochSampler`: a permutation seeded by (seed, epoch), cut to a whole number of
  optimizer steps on every process, then dealt out to processes (like DistributedSampler).
  :meth:`EpochSampler.set_epoch` can start mid-epoch, so a resumed run skips the batches it
  already trained on without decoding them.
* :class:`ReplaySampler`: the same order for the target data, each batch completed by
  ``per_batch`` replay items (indices after the target items') read from a stream of
  permutations of the replay set seeded by (seed, epoch, cycle): batch ``b`` of process
  ``r`` takes the stream's positions of global batch ``b x world + r``, so the composition
  depends on neither a worker's state nor an interruption.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order, cut to a multiple of ``multiple_of`` x processes, this process's
    share (positions rank, rank + world, ...), resumable from ``start`` (see module doc).

    Why the training loader is not sharded by ``accelerator.prepare`` (accelerate 1.15):
    its ``BatchSamplerShard`` deals whole batches and, with ``even_batches`` (the default),
    "loops back at the beginning of the sampler" to fill the last round (data_loader.py,
    its docstring): items trained twice in an epoch, and in a contrastive step one item's
    caption a negative for its own image. The cut to whole steps x processes needs the
    process count here anyway, :class:`ReplaySampler` draws replay items per (global batch,
    rank), and batch-wise dealing would change which items each process trains on, so a
    ``state/`` saved mid-epoch would resume into another order. (The val loader, which keeps
    every item, is prepared: ``gather_for_metrics`` drops that padding.)

    Why ``start`` rather than accelerate's ``skip_first_batches``: that wraps the batch
    sampler in a ``SkipBatchSampler`` that draws the same indices and drops the first
    batches, without decoding them, which is what ``start`` does here; ``set_epoch(epoch,
    start)`` is the samplers' tested contract (tests/test_finetune_train.py,
    tests/test_finetune_data.py), and one way to skip is enough.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        multiple_of: int | None = 1,
    ) -> None:
        """``multiple_of`` None: keep every item (validation; shares differ by at most one)."""
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size, self.multiple_of = rank, world_size, multiple_of
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        if self.multiple_of is not None:
            unit = self.multiple_of * self.world_size
            order = order[: len(order) // unit * unit]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.shard()) - self.start)


class ReplaySampler(Sampler[int]):
    """Batches of ``batch_size``: ``batch_size - per_batch`` target items in
    :class:`EpochSampler` order, then ``per_batch`` replay items (indices ``size + j``)."""

    def __init__(
        self,
        size: int,
        replay_size: int,
        batch_size: int,
        per_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        accum_steps: int = 1,
    ) -> None:
        if not 0 < per_batch < batch_size:
            raise ValueError(f"per_batch {per_batch} must be in [1, batch_size {batch_size})")
        self.size, self.replay_size, self.seed = size, replay_size, seed
        self.batch_size, self.per_batch = batch_size, per_batch
        self.rank, self.world_size = rank, world_size
        self.target = EpochSampler(
            size, seed, rank, world_size, True, multiple_of=(batch_size - per_batch) * accum_steps
        )
        self.epoch, self.start = 0, 0
        self._batches: tuple[int, list[list[int]]] | None = None  # (epoch, its batches)
        self._permutations: dict[tuple[int, int], list[int]] = {}  # (epoch, cycle) -> order

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """``start`` counts items of this process's stream (a multiple of batch_size)."""
        self.epoch, self.start = epoch, start
        self.target.set_epoch(epoch)

    def replay_positions(self, first: int, count: int) -> list[int]:
        """Replay indices at stream positions ``first .. first + count``: the stream is one
        seeded permutation of the replay set after another (a new one each cycle)."""
        out, cache = [], self._permutations
        for position in range(first, first + count):
            cycle, offset = divmod(position, self.replay_size)
            key = (self.epoch, cycle)
            if key not in cache:
                generator = torch.Generator().manual_seed(hash_seed(self.seed, self.epoch, cycle))
                cache[key] = torch.randperm(self.replay_size, generator=generator).tolist()
            out.append(self.size + cache[key][offset])
        return out

    def batches(self) -> list[list[int]]:
        """This process's batches of the current epoch (computed once per epoch)."""
        if self._batches is not None and self._batches[0] == self.epoch:
            return self._batches[1]
        self._permutations.clear()
        own = self.batch_size - self.per_batch
        target = self.target.shard()
        out = []
        for b in range(len(target) // own):
            first = (b * self.world_size + self.rank) * self.per_batch
            out.append(
                target[b * own : (b + 1) * own] + self.replay_positions(first, self.per_batch)
            )
        self._permutations.clear()  # the batches hold what is needed
        self._batches = (self.epoch, out)
        return out

    def __iter__(self) -> Iterator[int]:
        skip = self.start // self.batch_size
        return iter([index for batch in self.batches()[skip:] for index in batch])

    def __len__(self) -> int:
        return max(0, len(self.batches()) * self.batch_size - self.start)


def hash_seed(seed: int, epoch: int, cycle: int) -> int:
    """A 63-bit seed for (seed, epoch, cycle), stable across processes and Python runs."""
    import hashlib

    digest = hashlib.sha256(f"replay/{seed}/{epoch}/{cycle}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
