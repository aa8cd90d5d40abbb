"""The three training loops that gpu_check.py times on one model, one batch stream and one
optimizer: ``finetune.loop.train`` itself, a bare PyTorch loop, and open_clip_train's own
``train_one_epoch``.

Fair by construction: each loop loads the model afresh from the same folder, reads the same
batches (``finetune.data.build_loaders``: same decoding, preprocessing, tokenisation, seeded
order, decode workers and pinned memory), and steps the same AdamW parameter groups (fused
on CUDA, as finetune does) with the same gradient clipping. Steps are timed at one point, after
every optimizer step (a global optimizer hook), after a CUDA synchronisation so that a queue
of launched kernels does not pass for speed. Time spent waiting for the next batch is counted
by wrapping the DataLoader iterator, the same wrapper for all three loops.
"""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.state import AcceleratorState
from open_clip.loss import ClipLoss
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data.dataloader import _BaseDataLoaderIter

from evalsuite.device import autocast
from evalsuite.models import load_model
from finetune.build import build_optimizer
from finetune.config import TrainConfig
from finetune.data import build_loaders, set_epoch
from finetune.loop import train


@dataclass
class LoopTiming:
    """Per optimizer step: wall seconds and seconds spent waiting for the batch."""

    device: torch.device
    steps: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # seconds waiting for batches, per step
    waiting: float = 0.0  # since the last step
    held_before_gb: float | None = None  # GPU memory already allocated when the loop began
    peak_memory_gb: float | None = None  # the loop's own peak, above what was held before

    def summary(self, batch: int, warmup: int) -> dict[str, Any]:
        kept = self.steps[warmup:] or self.steps
        waits = self.waits[warmup:] or self.waits
        median = statistics.median(kept)
        return {
            "samples_per_s": batch / median,
            "samples_per_s_mean": batch * len(kept) / sum(kept),  # epoch-start stalls count
            "step_median_s": median,
            "steps_timed": len(kept),
            "data_wait_fraction": min(1.0, sum(waits) / max(sum(kept), 1e-9)),
            "peak_memory_gb": self.peak_memory_gb,
            "held_before_gb": self.held_before_gb,
        }


@contextmanager
def timed_steps(device: torch.device) -> Iterator[LoopTiming]:
    """Times every optimizer step and every wait for a batch while inside."""
    timing = LoopTiming(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    last = [time.perf_counter()]

    def tick(*_: object) -> None:
        sync()
        now = time.perf_counter()
        timing.steps.append(now - last[0])
        timing.waits.append(timing.waiting)
        timing.waiting, last[0] = 0.0, now

    original_next = _BaseDataLoaderIter.__next__

    def waiting_next(self: _BaseDataLoaderIter) -> Any:
        start = time.perf_counter()
        try:
            return original_next(self)
        finally:
            timing.waiting += time.perf_counter() - start

    gc.collect()  # an earlier loop's model and optimizer state (accelerate keeps reference
    if device.type == "cuda":  # cycles) must not count in this loop's peak
        torch.cuda.empty_cache()
        timing.held_before_gb = torch.cuda.memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    handle = register_optimizer_step_post_hook(tick)
    _BaseDataLoaderIter.__next__ = waiting_next  # type: ignore[method-assign]
    try:
        sync()
        last[0] = time.perf_counter()
        yield timing
    finally:
        _BaseDataLoaderIter.__next__ = original_next  # type: ignore[method-assign]
        handle.remove()
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            timing.peak_memory_gb = peak - (timing.held_before_gb or 0.0)


def epochs_of(loader: Any, steps: int) -> Iterator[int]:
    """Epoch numbers until ``steps`` batches have been drawn (the sampler set for each)."""
    for epoch in range(math.ceil(steps / len(loader))):
        set_epoch(loader, epoch)
        yield epoch


def finetune_loop(cfg: TrainConfig, device: torch.device) -> None:
    """``finetune.loop.train``, with everything it does per step."""
    train(cfg)
    AcceleratorState._reset_state(True)


def bare_loop(cfg: TrainConfig, device: torch.device, compile_model: bool = False) -> None:
    """What one writes by hand: forward under autocast, open_clip's ClipLoss, backward, clip,
    step. ``compile_model``: the forward through ``torch.compile``."""
    torch.manual_seed(cfg.train.seed)
    model = load_model(cfg.model.spec).to(device)
    loaders = build_loaders(cfg, model, device_type=device.type)
    optimizer = build_optimizer(model, cfg, device)
    loss_fn, precision = ClipLoss(), "bf16" if cfg.train.mixed_precision == "bf16" else "fp32"
    forward: Callable = model.forward_normalized
    if compile_model:
        forward = torch.compile(forward)
    model.module.train()
    steps = 0
    for _ in epochs_of(loaders.train, cfg.train.max_steps):
        for batch in itertools.islice(loaders.train, cfg.train.max_steps - steps):
            pixels = batch["pixel_values"].to(device, non_blocking=True)
            ids = batch["input_ids"].to(device, non_blocking=True)
            with autocast(precision, device):
                image, text, scale = forward(pixels, ids)
            loss = loss_fn(image.float(), text.float(), scale.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.module.parameters(), cfg.optim.grad_clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1


class _ImageTextBatches:
    """Our loader as open_clip_train's: (images, texts) tuples, num_batches, num_samples."""

    def __init__(self, loader: Any) -> None:
        self.loader, self.num_batches = loader, len(loader)
        self.num_samples = self.num_batches * loader.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in itertools.islice(self.loader, self.num_batches):  # the last epoch: a part
            yield batch["pixel_values"], batch["input_ids"]


def open_clip_train_loop(cfg: TrainConfig, device: torch.device) -> None:
    """open_clip_train's ``train_one_epoch`` (its autocast, loss, clipping and logit-scale
    clamp, its logging every 10 steps) on an open_clip model."""
    from open_clip_train.data import DataInfo
    from open_clip_train.params import parse_args
    from open_clip_train.train import train_one_epoch

    torch.manual_seed(cfg.train.seed)
    model = load_model(cfg.model.spec).to(device)
    if model.backend != "open_clip":
        raise SystemExit(f"open_clip_train needs an open_clip model; {cfg.model.spec} is not")
    module = model.module
    module.output_dict = True  # what open_clip_train's create_model_and_transforms sets
    loaders = build_loaders(cfg, model, device_type=device.type)
    optimizer = build_optimizer(model, cfg, device)
    bf16 = cfg.train.mixed_precision == "bf16"
    args = parse_args(
        ["--precision", "amp_bf16" if bf16 else "fp32", "--batch-size",
         str(cfg.train.batch_size), "--grad-clip-norm", str(cfg.optim.grad_clip_norm),
         "--log-every-n-steps", str(cfg.train.log_every), "--skip-scheduler"]
    )  # fmt: skip
    args.device, args.world_size, args.rank, args.local_rank = str(device), 1, 0, 0
    args.distributed, args.horovod, args.distill, args.wandb = False, False, False, False
    data = {"train": DataInfo(_ImageTextBatches(loaders.train))}
    steps_per_epoch = len(loaders.train)
    for epoch in epochs_of(loaders.train, cfg.train.max_steps):
        if (epoch + 1) * steps_per_epoch > cfg.train.max_steps:
            data["train"].dataloader.num_batches = cfg.train.max_steps - epoch * steps_per_epoch
        module.train()
        train_one_epoch(module, data, ClipLoss(), epoch, optimizer, None, None, None, args)
