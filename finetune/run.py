"""The records of a training run: :class:`Run` (what ``train`` sets up before the loop) and
:class:`Progress` (where training is; saved in ``state/progress.json``).

Their own module so that the loop, validation, saving and the soup's validator all read them
without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from evalsuite.models.base import ClipModel
from finetune.config import TrainConfig
from finetune.data import Loaders
from finetune.divergence import LossWatch
from finetune.freeze import GradualUnfreezer
from finetune.logging_utils import StepLog
from finetune.loss import DualEncoder


@dataclass
class Progress:
    """Where training is; saved in state/progress.json and restored by --resume."""

    epoch: int = 0  # epochs finished
    batches_done: int = 0  # optimizer steps done in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # of the current epoch's steps
    epoch_seconds: float = 0.0  # spent in the current epoch before an interruption
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped: str | None = None
    replaced: int = 0  # streamed items passed over (no caption or bad image), all epochs


@dataclass
class Run:
    """Everything ``train`` sets up before the loop."""

    cfg: TrainConfig
    model: ClipModel
    encoder: DualEncoder
    optimizer: torch.optim.Optimizer
    scheduler: Any
    per_step_schedule: bool  # cosine/constant: per step; plateau: per epoch on the val loss
    data: Loaders
    steps_per_epoch: int
    info: dict[str, Any]  # base model, data hashes, counts: goes into training.json
    unfreezer: GradualUnfreezer | None
    frozen_for_good: list[nn.Parameter]  # zeroshot_ce: the text side, whatever unfreezes
    loss: nn.Module | None = None  # built in build.start_run, on the training device
    ema: Any = None
    steps: StepLog | None = None
    pending_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    pending_replaced: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    watch: LossWatch = field(default_factory=LossWatch)  # NaN/inf losses stop training


def lr_of(optimizer) -> float:
    """The largest group learning rate (the head's, with layer decay)."""
    return max(group["lr"] for group in optimizer.param_groups)
