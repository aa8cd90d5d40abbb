"""Validation after each epoch: the val loss and the zero-shot accuracy of the target field,
the same whatever the number of processes, and the rule for "the val loss improved".

In training the val loader is prepared by accelerate: it deals whole val batches to the
processes (batch k to process k % world, the last round padded from the start) and
``gather_for_metrics`` puts each round's features back in item order, dropping the padding.
Every process then computes the loss over the same consecutive chunks of
``train.val_batch_size`` items. The chunk is a config value, not one optimizer step's pool
(batch_size x accum_steps x processes): the val loss of given weights must not depend on the
process count, or ReduceLROnPlateau, early stopping and ``best/`` would change with it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from torch import nn

from evalsuite.models.base import ClipModel
from finetune.config import TrainConfig
from finetune.data import Loaders
from finetune.loss import DualEncoder, class_embeddings, validation_loss, zero_shot_accuracy


class ValidatedRun(Protocol):
    """What validation (and :func:`finetune.loop.build_loss`) reads of a run: the training's
    :class:`finetune.loop.Run`, or a soup's candidate (:mod:`finetune.soup_validation`)."""

    cfg: TrainConfig
    model: ClipModel
    encoder: DualEncoder
    data: Loaders
    loss: nn.Module | None
    ema: Any


def val_chunk(cfg: TrainConfig) -> int:
    """Items per chunk of the contrastive val loss: train.val_batch_size, by default one
    process's step (batch_size x accum_steps); at least 2, since one item has no negative."""
    chunk = cfg.train.val_batch_size or cfg.train.batch_size * cfg.train.accum_steps
    return max(2, chunk)


def improved(val_loss: float | None, best: float | None, min_delta: float) -> bool:
    """Does ``val_loss`` beat ``best`` by more than ``min_delta``? The rule of early stopping
    and best/, the same as ReduceLROnPlateau's with threshold_mode "abs" (build_scheduler)."""
    if val_loss is None:
        return False
    return best is None or val_loss < best - min_delta


@torch.no_grad()
def evaluate(run: ValidatedRun, accelerator: Accelerator) -> dict[str, float]:
    """Val loss and zero-shot accuracy of the target field, the same on every process and for
    any process count. The unwrapped encoder is used: no gradient to synchronise."""
    device = accelerator.device
    with ema_weights(run), accelerator.autocast():
        run.encoder.eval()
        parts: dict[str, list[torch.Tensor]] = {"image": [], "text": [], "labels": []}
        for batch in run.data.val:
            out = run.encoder(batch["pixel_values"].to(device), batch["input_ids"].to(device))
            rows = (out["image"], out.get("text", out["image"]), batch["labels"].to(device))
            for key, value in zip(parts, accelerator.gather_for_metrics(rows), strict=True):
                parts[key].append(value)
        image, text, labels = (torch.cat(parts[k]) for k in parts)
        names = list(run.data.classes.values())
        classes = class_embeddings(run.model, names, run.cfg.data.templates).float()
        scale = run.model.logit_scale_parameter.exp().float()
        bias = run.model.logit_bias_parameter  # a copy: the EMA's goes back on leaving
        bias = None if bias is None else bias.detach().float().reshape(()).clone()
    chunk = val_chunk(run.cfg)
    return {
        "val_loss": validation_loss(run.loss, image, text, labels, scale, chunk, bias),
        "val_accuracy": zero_shot_accuracy(image, classes, labels),
    }


@contextmanager
def ema_weights(run: ValidatedRun):
    """The EMA weights in the model while validating and saving (ema.eval_with_ema)."""
    if run.ema is not None and run.cfg.ema.eval_with_ema:
        with run.ema.swapped(run.model.module):
            yield
    else:
        yield
