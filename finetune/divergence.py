"""Stop on a NaN or infinite loss before anything broken is saved.

The loop flushes the summed step losses before every save (and every ``log_every`` steps);
:class:`LossWatch` checks them there, so a non-finite loss stops training before the next
checkpoint is written and the last good one stays as it was. It remembers the first bad step
as a tensor, which costs no GPU sync per step. :func:`check_weights` runs right before each
save as well: a step can turn the weights into NaN with a finite loss (an infinite gradient),
and the next loss would only show it after the state had been saved.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from evalsuite.errors import TrainingError

ADVICE = "lower optim.lr, set optim.grad_clip_norm or check the data, then run with --resume"


class LossWatch:
    """The first optimizer step since the last check whose loss was NaN or infinite."""

    def __init__(self, checked_step: int = 0) -> None:
        self.checked_step = checked_step  # global step of the last check that passed
        self.first_bad = torch.zeros((), dtype=torch.int64)  # 0: none
        self.first_value = torch.zeros(())  # the loss of that step (later ones may differ)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Note ``step`` if its loss is not finite and no earlier step was (no sync)."""
        loss = loss.detach().float()
        first = self.first_bad.to(loss.device)
        bad = (first == 0) & ~torch.isfinite(loss)
        self.first_bad = torch.where(bad, torch.full_like(first, step), first)
        self.first_value = torch.where(bad, loss, self.first_value.to(loss.device))

    def check(self, loss_sum: float, step: int, epoch: int, out_dir: str | Path) -> None:
        """Raise :class:`TrainingError` when the losses flushed at ``step`` were not finite."""
        if math.isfinite(loss_sum):
            self.checked_step = step
            self.first_bad = torch.zeros_like(self.first_bad)
            return
        first = int(self.first_bad)  # 0 when only another process saw it
        at = f"step {first}" if first else f"a step in {self.checked_step + 1}..{step}"
        value = float(self.first_value) if first else loss_sum
        raise TrainingError(
            f"training stopped: the loss became {value} at {at} (epoch {epoch}), before "
            f"anything was saved from it. {kept(out_dir)} To go on, {ADVICE}"
        )


def check_weights(module: nn.Module, step: int, epoch: int, out_dir: str | Path) -> None:
    """Raise :class:`TrainingError` if a parameter holds NaN or inf (one sync for all)."""
    params = [p for p in module.parameters() if p.numel()]
    if not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        return
    name = next(n for n, p in module.named_parameters() if not torch.isfinite(p).all())
    raise TrainingError(
        f"training stopped: parameter {name} holds NaN or inf after step {step} (epoch "
        f"{epoch}); it was not saved. {kept(out_dir)} To go on, {ADVICE}"
    )


def kept(out_dir: str | Path) -> str:
    """What the output folder still holds from before, for the error message."""
    out = Path(out_dir)
    parts = []
    try:
        saved = json.loads((out / "state" / "progress.json").read_text())
        parts.append(f"{out / 'state'} (step {saved['global_step']}, what --resume reads)")
    except (OSError, ValueError, KeyError):
        pass
    parts += [str(out / kind) for kind in ("best", "last") if (out / kind).is_dir()]
    if not parts:
        return "No checkpoint had been saved yet."
    return f"The last good checkpoints are kept: {', '.join(parts)}."
