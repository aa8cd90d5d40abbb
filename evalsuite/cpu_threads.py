"""CPU cores for scoring: how many decode workers, how many torch threads for the forward.

Processes started by ``fork`` (accelerate's ``debug_launcher`` and ``notebook_launcher``) run
torch single-threaded: GNU OpenMP, torch's CPU thread pool, hangs in a child forked after the
parent used it (see :func:`_single_thread_after_fork`). Importing this module installs that
fork hook; :mod:`evalsuite.embedding` imports it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch

from evalsuite.device import available_cores, spare_cores
from evalsuite.distributed import process_rank_and_count

log = logging.getLogger(__name__)


def _single_thread_after_fork() -> None:
    """In a forked child, run torch on one thread.

    libgomp (GNU OpenMP, torch's intra-op thread pool in the Linux wheels) keeps its worker
    team in process state that ``fork`` copies without the threads: a child forked after the
    parent ran any parallel op waits forever at the first parallel op of its own (seen as two
    ``debug_launcher`` ranks stuck in oneDNN's conv after a single-process run in the parent).
    One thread never starts a team. Launchers that exec (torchrun, ``accelerate launch``)
    start fresh interpreters and are not affected.
    """
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)


if "OpenMP" in torch.__config__.parallel_info() and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_thread_after_fork)


def default_num_workers() -> int:
    """Decode workers: one per spare core (the main process runs the model), at most 8.

    Under a multi-process launch the cores are shared between the processes; with no core to
    spare per process, images are decoded in the process itself (0 workers)."""
    world = process_rank_and_count()[1]
    return max(1, spare_cores(1)) if world == 1 else spare_cores(world)


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn`` of the decode workers."""
    torch.set_num_threads(1)  # decoding is per-image work; intra-op threads only contend


class ThreadedEngine(Protocol):
    """What :class:`ForwardThreads` reads of the engine, and where it keeps its decision."""

    threads: int | None  # explicit torch threads for the forward; None: decided here
    decided_threads: int | None  # what was decided on an earlier call
    device: torch.device


class ForwardThreads:
    """Torch's intra-op threads for the forward while decode workers run, on CPU.

    An OpenMP team that shares its cores with busy decode workers waits at every barrier for
    a descheduled thread: on 2 cores with 1 busy worker the tiny model ran 20x slower with 2
    threads than with 1. So the forward starts on the cores the workers leave; after the first
    measured batch, if the workers' decoding took less than ``SPARE`` of the forward's time (a
    large model: ViT-B/32 decodes in ~1 ms and encodes in ~100 ms per image), they are mostly
    idle and the forward takes every core. The engine keeps the decision for its later calls
    (the next benchmark): a batch on too few threads costs a large model seconds (ViT-B/32,
    batch 32: ~4 s on 1 thread, ~2.3 s on 2). An explicit ``EmbeddingEngine(threads=N)`` is kept.
    """

    SPARE = 0.2  # worker CPU per forward second below which the workers' cores are taken
    WARMUP, MEASURED = 1, 1  # batches skipped (first-call allocations), then measured

    def __init__(self, engine: ThreadedEngine, workers: int) -> None:
        self.cores = available_cores()
        self.workers = workers
        self.deciding = (
            engine.threads is None
            and engine.device.type == "cpu"
            and workers > 0
            and self.cores > workers
        )
        self.engine = engine
        if engine.threads is not None:
            self.initial: int | None = engine.threads
        elif self.deciding and engine.decided_threads is not None:
            self.initial, self.deciding = engine.decided_threads, False
        elif self.deciding:
            self.initial = max(1, min(torch.get_num_threads(), self.cores - workers))
        else:
            self.initial = None  # torch's own setting
        self.batches = 0
        self.decode_seconds = 0.0
        self.forward_seconds = 0.0

    def observe(self, decode_seconds: float, forward_seconds: float) -> None:
        """Account one batch; at the end of the measured batches, decide once."""
        if not self.deciding:
            return
        self.batches += 1
        if self.batches <= self.WARMUP:
            return
        self.decode_seconds += decode_seconds
        self.forward_seconds += forward_seconds
        if self.batches == self.WARMUP + self.MEASURED:
            self.deciding = False
            busy = self.decode_seconds / (self.forward_seconds * self.workers)
            self.engine.decided_threads = self.cores if busy < self.SPARE else self.initial
            if busy < self.SPARE:
                torch.set_num_threads(self.cores)  # torch_threads restores it at the end
            log.debug(
                "decode workers busy %.2f of the forward: %d threads", busy, torch.get_num_threads()
            )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` (None: unchanged) for the block."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:  # also undoes a change made inside the block
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
