"""``train(cfg)``: the fine-tuning loop, the only place that creates the training ``Accelerator``.

Read :func:`train` top to bottom: set up, validate the base model as epoch 0, then per
epoch (order seeded by (seed, epoch)) take ``accum_steps`` micro-batches per optimizer step.
With accumulation the negatives pool is the whole step, as open_clip's ``--accum-freq``:
first the features of every micro-batch without gradients, then each micro-batch again with
gradients, its features spliced into the cached set for the loss, backward (gradients
synchronised across processes on the last one only), then one optimizer step. The logit
scale (and the sigmoid objective's logit bias) keeps its gradient in the last pass only, so
the step's gradient equals that of one big batch (open_clip counts the scale's gradient once
per micro-batch).

After each epoch: validation (loss and zero-shot accuracy of the target field,
:mod:`finetune.validation`), then :func:`finetune.epoch_end.end_epoch`: scheduler, early
stopping, ``best/`` and ``last/`` model folders and the resumable ``state/``
(:mod:`finetune.saving`); the state is also saved every ``train.checkpoint_every_steps``
steps. Only the main process writes. Set-up is :mod:`finetune.build`.
A NaN or infinite loss (or weights) stops training with a TrainingError before the next save,
so the last good checkpoint stays intact (:mod:`finetune.divergence`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from evalsuite.device import ieee_fp32
from evalsuite.errors import ConfigError, TrainingError
from evalsuite.progress import interactive
from finetune import output
from finetune.build import build_run, start_run
from finetune.config import TrainConfig
from finetune.data import set_epoch
from finetune.divergence import check_weights
from finetune.epoch_end import end_epoch, flush_loss
from finetune.freeze import trainable_parameter_count
from finetune.loss import compute_loss, splice
from finetune.run import Progress, Run, lr_of
from finetune.saving import restore, resume_path, save_state
from finetune.validation import evaluate

log = logging.getLogger("finetune")
MAX_LOGIT_SCALE = math.log(100)  # open_clip clamps the learned temperature here


def train(cfg: TrainConfig, resume: str | Path | None = None, overwrite: bool = False) -> Progress:
    """Fine-tune ``cfg.model`` on ``cfg.data``; writes ``cfg.output.dir`` (see module doc).
    An output folder holding another run needs ``resume`` or ``overwrite`` (finetune.output).
    Without mixed precision, fp32 is IEEE fp32 on a GPU too: no TF32 (evalsuite.device)."""
    fp32 = cfg.train.mixed_precision == "no"
    with ieee_fp32(torch.device("cuda")) if fp32 else nullcontext():  # CUDA's flags only
        return train_steps(cfg, resume, overwrite)


def train_steps(cfg: TrainConfig, resume: str | Path | None, overwrite: bool) -> Progress:
    accelerator = build_accelerator(cfg, resume, overwrite)
    set_seed(cfg.train.seed)
    run = build_run(cfg, accelerator)
    cfg = run.cfg  # loss.objective resolved from the model
    if overwrite:  # only now: a set-up error must not cost the old run
        if accelerator.is_main_process:
            output.remove_run(cfg.output.dir)
        accelerator.wait_for_everyone()
    encoder, optimizer = accelerator.prepare(run.encoder, run.optimizer)
    if run.data.val is not None:  # val batches dealt to the processes, for gather_for_metrics
        run.data.val = accelerator.prepare(run.data.val)
    start_run(run, accelerator)
    state = resume_path(cfg, resume)
    if state is not None:
        progress = restore(run, optimizer, accelerator, state)
    else:
        progress = start_fresh(run, optimizer, accelerator)
    while progress.epoch < cfg.train.epochs and not progress.stopped:
        unfrozen = begin_epoch(run, progress)
        train_epoch(run, encoder, optimizer, accelerator, progress)
        final = progress.epoch + 1 == cfg.train.epochs or progress.stopped is not None
        validate = run.data.val is not None and (cfg.train.eval_every_epoch or final)
        metrics = evaluate(run, accelerator) if validate else {}
        end_epoch(run, optimizer, accelerator, progress, unfrozen, metrics)
    accelerator.end_training()
    return progress


def build_accelerator(cfg: TrainConfig, resume: str | Path | None, overwrite: bool) -> Accelerator:
    """The run's Accelerator, once the output folder and the tracker are known to be usable."""
    if resume is not None and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    output.check_output(cfg.output.dir, resume is not None, overwrite)
    output.check_trackers(cfg.output.log_with)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=cfg.lock.gradual_unfreeze)
    return Accelerator(
        mixed_precision=cfg.train.mixed_precision,
        log_with=cfg.output.log_with,
        project_dir=cfg.output.dir,
        kwargs_handlers=[ddp],
    )


def start_fresh(run: Run, optimizer, accelerator: Accelerator) -> Progress:
    """A new run: an empty step log, and the base model validated as epoch 0."""
    progress = Progress()
    run.steps.start()
    if run.data.val is not None:
        started = time.perf_counter()
        metrics = evaluate(run, accelerator)
        seconds = round(time.perf_counter() - started, 3)
        progress.history.append(
            {"epoch": 0, "train_loss": None, **metrics, "lr": lr_of(optimizer), "seconds": seconds}
        )
        log.info("epoch 0 (base model): %s", metrics)
    return progress


def train_epoch(run: Run, encoder, optimizer, accelerator: Accelerator, progress: Progress) -> None:
    """The optimizer steps of one epoch (from ``progress.batches_done`` on), then its time."""
    cfg = run.cfg
    bar = tqdm(
        total=run.steps_per_epoch,
        initial=progress.batches_done,
        desc=f"epoch {progress.epoch + 1}",
        disable=not (accelerator.is_main_process and interactive()),  # log: a line
    )
    started = time.perf_counter()
    encoder.train()
    for micro in grouped(run.data.train, cfg.train.accum_steps, accelerator.device):
        loss = train_step(run, encoder, accelerator, micro)
        if cfg.optim.grad_clip_norm is not None:
            accelerator.clip_grad_norm_(run.encoder.parameters(), cfg.optim.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        try:
            after_step(run, optimizer, accelerator, progress, loss)
        except TrainingError:
            bar.close()  # so that the error message starts on a line of its own
            raise
        bar.update()
        if cfg.train.max_steps and progress.global_step >= cfg.train.max_steps:
            progress.stopped = f"max_steps ({cfg.train.max_steps}) reached"
            break
    bar.close()
    progress.epoch_seconds += time.perf_counter() - started


def train_step(run: Run, encoder, accelerator: Accelerator, micro: list[dict]) -> torch.Tensor:
    """Forward and backward of one optimizer step's micro-batches (see module doc); returns
    the last micro-batch's loss."""
    accum = run.cfg.train.accum_steps
    labels = torch.cat([b["labels"] for b in micro])
    run.pending_replaced = run.pending_replaced + sum(b["replaced"] for b in micro)
    cached = None
    if accum > 1:  # open_clip's accum_freq: every micro-batch's features, no gradient
        with torch.no_grad():
            cached = [encoder(*inputs(b)) for b in micro]
    for j, batch in enumerate(micro):
        last = j == accum - 1
        with nullcontext() if last else accelerator.no_sync(encoder):
            live = encoder(*inputs(batch))
            features = live if cached is None else splice(cached, live, j, last)
            loss = compute_loss(run.loss, features, labels)
            accelerator.backward(loss)
    return loss


def grouped(loader: Iterable, size: int, device: torch.device) -> Iterator[list[dict]]:
    """Lists of ``size`` consecutive batches on ``device`` (the sampler leaves no short tail)."""
    group: list[dict] = []
    for batch in loader:
        group.append({k: v.to(device, non_blocking=True) for k, v in batch.items()})
        if len(group) == size:
            yield group
            group = []


def inputs(batch: dict[str, torch.Tensor]) -> tuple:
    return batch["pixel_values"], batch["input_ids"], batch.get("negative_ids")


def begin_epoch(run: Run, progress: Progress) -> list[str]:
    """Unfreeze (gradual), seed this epoch's order, skip the batches already done."""
    unfrozen = run.unfreezer.on_epoch_start(progress.epoch) if run.unfreezer else []
    for param in run.frozen_for_good:
        param.requires_grad_(False)
    if unfrozen or "trainable_parameters" not in run.info:
        trainable, total = trainable_parameter_count(run.model.module)
        run.info["trainable_parameters"] = {"trainable": trainable, "total": total}
        log.info(
            "trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total
        )
    skip = progress.batches_done * run.cfg.train.accum_steps
    set_epoch(run.data.train, progress.epoch, skip)
    return unfrozen


def clamp_logit_scale(scale: torch.nn.Parameter, objective: str | None) -> None:
    """open_clip's ceiling, ``exp(scale) <= 100``, for a temperature that trains under the
    softmax loss. A frozen one is left as it is, and so is a sigmoid one: Google's SigLIPs
    end above 100 (SO400M: 112) and big_vision sets no ceiling, so clamping would move a
    pretrained model's scale away from the bias it was trained with."""
    if scale.requires_grad and objective != "sigmoid":
        with torch.no_grad():
            scale.clamp_(0, MAX_LOGIT_SCALE)


def after_step(run: Run, optimizer, accelerator: Accelerator, progress: Progress, loss) -> None:
    """Clamp the temperature, per-step LR, EMA, log, periodic resumable state."""
    cfg = run.cfg
    clamp_logit_scale(run.model.logit_scale_parameter, cfg.loss.objective)
    if run.per_step_schedule:
        run.scheduler.step()
    if run.ema is not None:
        run.ema.update(run.model.module)
    run.pending_loss = run.pending_loss + loss.detach()  # no GPU sync until it is needed
    progress.batches_done += 1
    progress.global_step += 1
    run.watch.observe(loss, progress.global_step)
    every = cfg.train.checkpoint_every_steps
    save = bool(every) and progress.global_step % every == 0
    last = (  # of an epoch or of the run: logged whatever log_every (a short run logs too)
        progress.batches_done == run.steps_per_epoch or progress.global_step == cfg.train.max_steps
    )
    log_now = progress.global_step % cfg.train.log_every == 0 or last
    if log_now or save:
        value = flush_loss(run, accelerator, progress, loss)
    if log_now:
        lr = lr_of(optimizer)
        record = {
            "step": progress.global_step,
            "epoch": progress.epoch + 1,
            "loss": value,
            "lr": lr,
            "time": time.time(),
        }
        run.steps.write(record)
        accelerator.log({"train/loss": value, "train/lr": lr}, step=progress.global_step)
    if save and progress.batches_done < run.steps_per_epoch:
        check_weights(run.model.module, progress.global_step, progress.epoch + 1, cfg.output.dir)
        save_state(run, optimizer, accelerator, progress)
