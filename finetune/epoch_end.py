"""The end of an epoch, after validation: the epoch's record in the history, the plateau
schedule, early stopping, then ``best/``, ``last/`` and ``state/``; and :func:`flush_loss`,
which folds the losses of the steps since the last flush into the epoch's sum.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from accelerate import Accelerator

from finetune.divergence import check_weights
from finetune.run import Progress, Run, lr_of
from finetune.saving import save_model, save_state
from finetune.validation import improved

log = logging.getLogger("finetune")


def flush_loss(run: Run, accelerator: Accelerator, progress: Progress, loss=None) -> float:
    """Add the losses since the last flush (mean over processes) to the epoch's sum; return
    ``loss`` averaged over processes (one collective for both). A NaN or infinite loss among
    them raises :class:`TrainingError` here, before anything is saved (finetune.divergence)."""
    device = accelerator.device
    last = loss.detach() if loss is not None else torch.zeros((), device=device)
    values = [run.pending_loss.to(device), last.float(), run.pending_replaced.to(device).float()]
    both = accelerator.reduce(torch.stack(values).float(), "mean")
    progress.replaced += round(both[2].item() * accelerator.num_processes)  # mean -> sum
    run.pending_replaced = torch.zeros((), device=device)
    pending = both[0].item()
    run.watch.check(pending, progress.global_step, progress.epoch + 1, run.cfg.output.dir)
    progress.loss_sum += pending
    run.pending_loss = torch.zeros((), device=device)
    return both[1].item()


def end_epoch(
    run: Run,
    optimizer,
    accelerator: Accelerator,
    progress: Progress,
    unfrozen: list[str],
    metrics: dict[str, float],
) -> None:
    """Record the epoch (``metrics``: its validation, or none), schedule, early-stop, then
    save best/, last/ and state/."""
    cfg = run.cfg
    flush_loss(run, accelerator, progress)
    check_weights(run.model.module, progress.global_step, progress.epoch + 1, cfg.output.dir)
    entry = epoch_entry(run, optimizer, progress, unfrozen, metrics)
    progress.history.append(entry)
    val_loss = metrics.get("val_loss")
    if val_loss is not None and not run.per_step_schedule:
        run.scheduler.step(val_loss)
    better = track_best(progress, val_loss, entry["epoch"], cfg.train.min_delta)
    patience = cfg.train.early_stopping_patience
    if patience and progress.bad_epochs >= patience:
        progress.stopped = f"early stopping: no val-loss improvement in {patience} epoch(s)"
    progress.epoch, progress.batches_done = entry["epoch"], 0
    progress.loss_sum, progress.epoch_seconds = 0.0, 0.0
    log.info("epoch %d: %s", entry["epoch"], {k: v for k, v in entry.items() if k != "epoch"})
    scalars = {f"epoch/{k}": v for k, v in entry.items() if isinstance(v, float)}
    accelerator.log(scalars, step=progress.global_step)
    if better and cfg.output.save_best:
        save_model(run, accelerator, progress, "best")
    if cfg.output.save_last:
        save_model(run, accelerator, progress, "last")
    save_state(run, optimizer, accelerator, progress)


def epoch_entry(
    run: Run, optimizer, progress: Progress, unfrozen: list[str], metrics: dict[str, float]
) -> dict[str, Any]:
    """The epoch's line of the history (training.json, progress.json, the log)."""
    return {
        "epoch": progress.epoch + 1,
        "train_loss": progress.loss_sum / max(1, progress.batches_done),
        **metrics,
        "lr": lr_of(optimizer),
        "seconds": round(progress.epoch_seconds, 3),
        "steps": progress.global_step,
        "items_replaced": progress.replaced,  # streamed data: unusable items passed over
        "unfrozen": unfrozen,
        "trainable_parameters": run.info["trainable_parameters"]["trainable"],
    }


def track_best(progress: Progress, val_loss: float | None, epoch: int, min_delta: float) -> bool:
    """Whether ``val_loss`` is a new best (then recorded); else count a bad epoch."""
    if improved(val_loss, progress.best_val_loss, min_delta):
        progress.best_val_loss, progress.best_epoch, progress.bad_epochs = val_loss, epoch, 0
        return True
    if val_loss is not None:
        progress.bad_epochs += 1
    return False
