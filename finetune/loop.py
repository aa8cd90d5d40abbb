"""``train(cfg)``: the fine-tuning loop, the only place that creates an ``Accelerator``.

Read :func:`train` top to bottom: set up, validate the base model as epoch 0, then per
epoch (order seeded by (seed, epoch)) take ``accum_steps`` micro-batches per optimizer step.
With accumulation the negatives pool is the whole step, as open_clip's ``--accum-freq``:
first the features of every micro-batch without gradients, then each micro-batch again with
gradients, its features spliced into the cached set for the loss, backward (gradients
synchronised across processes on the last one only), then one optimizer step. The logit
scale (and the sigmoid objective's logit bias) keeps its gradient in the last pass only, so
the step's gradient equals that of one big batch (open_clip counts the scale's gradient once
per micro-batch).

After each epoch: validation (loss and zero-shot accuracy of the target field), scheduler,
early stopping, ``best/`` and ``last/`` model folders and the resumable ``state/``; the state
is also saved every ``train.checkpoint_every_steps`` steps. Only the main process writes.
A NaN or infinite loss (or weights) stops training with a TrainingError before the next save,
so the last good checkpoint stays intact (:mod:`finetune.divergence`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from evalsuite.device import ieee_fp32
from evalsuite.errors import ConfigError, TrainingError
from evalsuite.hub import HubModelNotCached
from evalsuite.models import load_model
from evalsuite.models.base import ClipModel
from evalsuite.progress import interactive
from finetune import checkpoint, output
from finetune.config import SPEC_ADVICE, TrainConfig, flatten_config, resolve_objective
from finetune.data import Loaders, build_loaders, set_epoch
from finetune.divergence import LossWatch, check_weights
from finetune.freeze import (
    GradualUnfreezer,
    apply_locking,
    build_param_groups,
    trainable_parameter_count,
)
from finetune.logging_utils import StepLog
from finetune.loss import (
    ContrastiveLoss,
    DualEncoder,
    SigmoidLoss,
    ZeroShotCELoss,
    class_embeddings,
    compute_loss,
    splice,
    unused_by_image_tower,
)
from finetune.validation import ValidatedRun, ema_weights, evaluate, improved

log = logging.getLogger("finetune")
MAX_LOGIT_SCALE = math.log(100)  # open_clip clamps the learned temperature here


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
    loss: nn.Module | None = None  # built in start(), on the training device
    ema: Any = None
    steps: StepLog | None = None
    pending_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    pending_replaced: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    watch: LossWatch = field(default_factory=LossWatch)  # NaN/inf losses stop training


def train(cfg: TrainConfig, resume: str | Path | None = None, overwrite: bool = False) -> Progress:
    """Fine-tune ``cfg.model`` on ``cfg.data``; writes ``cfg.output.dir`` (see module doc).
    An output folder holding another run needs ``resume`` or ``overwrite`` (finetune.output).
    Without mixed precision, fp32 is IEEE fp32 on a GPU too: no TF32 (evalsuite.device)."""
    fp32 = cfg.train.mixed_precision == "no"
    with ieee_fp32(torch.device("cuda")) if fp32 else nullcontext():  # CUDA's flags only
        return train_steps(cfg, resume, overwrite)


def train_steps(cfg: TrainConfig, resume: str | Path | None, overwrite: bool) -> Progress:
    if resume is not None and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    output.check_output(cfg.output.dir, resume is not None, overwrite)
    output.check_trackers(cfg.output.log_with)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=cfg.lock.gradual_unfreeze)
    accelerator = Accelerator(
        mixed_precision=cfg.train.mixed_precision,
        log_with=cfg.output.log_with,
        project_dir=cfg.output.dir,
        kwargs_handlers=[ddp],
    )
    set_seed(cfg.train.seed)
    run = build_run(cfg, accelerator)
    cfg = run.cfg  # loss.objective resolved from the model
    if overwrite:  # only now: a set-up error must not cost the old run
        if accelerator.is_main_process:
            output.remove_run(cfg.output.dir)
        accelerator.wait_for_everyone()
    encoder, optimizer = accelerator.prepare(run.encoder, run.optimizer)
    progress = start(run, optimizer, accelerator, resume)
    accum = cfg.train.accum_steps
    while progress.epoch < cfg.train.epochs and not progress.stopped:
        unfrozen = begin_epoch(run, progress)
        bar = tqdm(
            total=run.steps_per_epoch,
            initial=progress.batches_done,
            desc=f"epoch {progress.epoch + 1}",
            disable=not (accelerator.is_main_process and interactive()),  # log: a line
        )
        started = time.perf_counter()
        encoder.train()
        for micro in grouped(run.data.train, accum, accelerator.device):
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
        end_epoch(run, optimizer, accelerator, progress, unfrozen)
    accelerator.end_training()
    return progress


# --- set-up ----------------------------------------------------------------------------------


def build_run(cfg: TrainConfig, accelerator: Accelerator) -> Run:
    """Model (LoRA, locks), data, optimizer and scheduler; nothing prepared yet."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:  # e.g. torchrun on CPU without ACCELERATE_USE_CPU
        raise ConfigError(
            f"{launched} processes were launched but accelerate sees {accelerator.num_processes}: "
            "they would train independently; on CPU set ACCELERATE_USE_CPU=1 (configs/README.md)"
        )
    check_contrast_pool(cfg, accelerator.num_processes)
    model = load_base_model(cfg)
    cfg = resolve_objective(cfg, model)  # unset: the model's own (sigmoid for SigLIP)
    data = checkpoint.data_fingerprint(cfg.data.path, cfg.data.reader, cfg.data.options)
    info = {"base_model": base_info(model), "data": data, "device": device_info(accelerator)}
    unfreezer, frozen = configure_trainable(cfg, model)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    loaders = build_loaders(cfg, model, rank, world, device.type)
    info["data"].update(loaders.counts)
    step = cfg.train.batch_size * cfg.train.accum_steps
    steps = len(loaders.train.sampler) // step
    check_split_sizes(cfg, loaders.counts, steps, step * accelerator.num_processes)
    groups = build_param_groups(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.layer_decay)
    # fused: one kernel for all parameters on CUDA (fewer launches, same update up to rounding)
    optimizer = torch.optim.AdamW(
        groups, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
        fused=True if device.type == "cuda" else None,
    )  # fmt: skip
    scheduler, per_step = build_scheduler(cfg, optimizer, steps)
    objective = cfg.loss.objective
    encoder = DualEncoder(model, objective != "zeroshot_ce", with_bias=objective == "sigmoid")
    return Run(
        cfg, model, encoder, optimizer, scheduler, per_step, loaders, steps, info, unfreezer, frozen
    )


def load_base_model(cfg: TrainConfig) -> ClipModel:
    """``model.spec``; a Hub id that cannot be had says how to pass a folder to finetune."""
    try:
        return load_model(cfg.model.spec, cfg.model.pretrained, None, cfg.model.trust_remote_code)
    except HubModelNotCached as err:
        raise err.advise(SPEC_ADVICE) from err


def check_contrast_pool(cfg: TrainConfig, processes: int) -> None:
    """A contrastive or sigmoid step scores each image against the captions of the whole
    step (its micro-batches, gathered from every process); with one item there is no
    negative pair: the contrastive loss is 0 and the weights never change, the sigmoid loss
    only pulls the one pair together. Checked before the model loads (an unset objective is
    one of the two)."""
    pool = cfg.train.batch_size * cfg.train.accum_steps * processes
    if cfg.loss.objective != "zeroshot_ce" and pool < 2:
        raise ConfigError(
            f"train.batch_size {cfg.train.batch_size} x train.accum_steps "
            f"{cfg.train.accum_steps} x {processes} process(es) = {pool} item per optimizer "
            "step: the loss has no other item to contrast with (the contrastive loss is 0 "
            "and nothing trains; the sigmoid loss only pulls the one pair together); set "
            "train.batch_size or train.accum_steps so that a "
            "step holds at least 2 items, or use loss.objective: zeroshot_ce"
        )


def check_split_sizes(cfg: TrainConfig, counts: dict[str, Any], steps: int, pool: int) -> None:
    """At least one optimizer step of training items, and a validation split that gives a
    loss (contrastive and sigmoid: 2 items, else 1)."""
    data = f"data.path {cfg.data.path}"
    if steps == 0:
        raise ConfigError(
            f"{data} (split {cfg.data.train_split!r}): {counts['train_items']} training "
            f"item(s) cannot fill one optimizer step of train.batch_size x train.accum_steps x "
            f"processes = {pool} items; lower train.batch_size or add items"
        )
    need = 1 if cfg.loss.objective == "zeroshot_ce" else 2
    if cfg.data.val_split and counts.get("val_items", need) < need:
        raise ConfigError(
            f"{data} (split {cfg.data.val_split!r}): {counts['val_items']} usable validation "
            f"item(s); the {cfg.loss.objective} validation loss needs at least {need}: add "
            "items, or set data.val_split: null (with schedule.name cosine or constant)"
        )


def device_info(accelerator: Accelerator) -> dict[str, Any]:
    """Where training ran, for training.json: device type and name, processes, precision."""
    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "type": device.type,
        "name": name,
        "processes": accelerator.num_processes,
        "mixed_precision": str(accelerator.mixed_precision),
    }


def base_info(model: ClipModel) -> dict[str, Any]:
    return {
        "spec": model.spec,
        "name": model.name,
        "backend": model.backend,
        "fingerprint": model.fingerprint,
        "parameters": model.parameter_count,
    }


def configure_trainable(
    cfg: TrainConfig, model: ClipModel
) -> tuple[GradualUnfreezer | None, list[nn.Parameter]]:
    """LoRA, locking, gradual unfreezing, zeroshot_ce's frozen text side, a logit bias that
    the objective does not use, checkpointing."""
    if cfg.lora.enabled:
        from finetune.lora import apply_lora

        apply_lora(model, cfg.lora)
    apply_locking(model, cfg.lock)
    unfreezer = GradualUnfreezer(model, cfg.lock) if cfg.lock.gradual_unfreeze else None
    frozen: list[nn.Parameter] = []
    if cfg.loss.objective == "zeroshot_ce":  # the class head is the base text tower: frozen
        frozen = unused_by_image_tower(model)
    bias = model.logit_bias_parameter
    if cfg.loss.objective == "contrastive" and bias is not None:
        # softmax ignores a shift of every logit: no gradient, and DDP would wait for one
        frozen.append(bias)
        log.info(
            "loss.objective contrastive on %s, a sigmoid-loss model: its logit bias stays "
            "frozen at %.4g",
            model.name,
            model.logit_bias,
        )
    for param in frozen:
        param.requires_grad_(False)
    if cfg.train.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return unfreezer, frozen


def build_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int) -> tuple[Any, bool]:
    """(scheduler, stepped per optimizer step?); plateau steps per epoch on the val loss."""
    sched = cfg.schedule
    if sched.name == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", patience=sched.patience, factor=sched.factor
        )
        set_threshold(plateau, cfg)
        return plateau, False
    total = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    floor = sched.min_lr / cfg.optim.lr

    def factor(step: int) -> float:  # multiplies each group's lr (layer decay ratios kept)
        if step < sched.warmup_steps:
            return (step + 1) / sched.warmup_steps
        if sched.name == "constant":
            return 1.0
        done = (step - sched.warmup_steps) / max(1, total - sched.warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True


def set_threshold(scheduler, cfg: TrainConfig) -> None:
    """ReduceLROnPlateau improves by train.min_delta, absolute, like early stopping
    (validation.improved); set again after --resume, which restores the saved threshold."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.threshold, scheduler.threshold_mode = cfg.train.min_delta, "abs"


def build_loss(run: ValidatedRun, accelerator: Accelerator) -> nn.Module:
    """zeroshot_ce: the base text tower's class embeddings at its logit scale, both fixed;
    sigmoid: SigLIP's loss (scale and bias learned); else the contrastive loss."""
    cfg = run.cfg
    if cfg.loss.objective == "zeroshot_ce":
        with torch.no_grad():
            names = list(run.data.classes.values())
            classes = class_embeddings(run.model, names, cfg.data.templates)
        return ZeroShotCELoss(classes, min(run.model.logit_scale, 100.0))
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.loss.objective == "sigmoid":
        return SigmoidLoss(rank, world, cfg.loss.same_label_masking)
    return ContrastiveLoss(rank, world, cfg.loss.same_label_masking)


def start(run: Run, optimizer, accelerator: Accelerator, resume: str | Path | None) -> Progress:
    """Loss, EMA, trackers, then resume, or validate the base model as epoch 0."""
    cfg = run.cfg
    run.loss = build_loss(run, accelerator)
    if cfg.ema.enabled:
        from finetune.ema import ModelEMA

        run.ema = ModelEMA(run.model.module, cfg.ema.decay)
    if cfg.output.log_with:
        accelerator.init_trackers(cfg.run_name, config=flatten_config(cfg.model_dump(mode="json")))
    run.steps = StepLog(cfg.output.dir, accelerator.is_main_process)
    state = resume_path(cfg, resume)
    if state is not None:
        return restore(run, optimizer, accelerator, state)
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


def restore(run: Run, optimizer, accelerator: Accelerator, state: Path) -> Progress:
    objects = state_objects(run, optimizer, accelerator)
    saved = checkpoint.load_state(state, run.model.module, objects, accelerator.process_index)
    set_threshold(run.scheduler, run.cfg)
    changed = checkpoint.config_changes(saved.pop("config", {}), run.cfg.model_dump(mode="json"))
    if saved.pop("world_size", accelerator.num_processes) != accelerator.num_processes:
        changed.append("the number of processes (data order per process)")
    if changed:
        log.warning(
            "--resume: the config differs from the saved run's in %s; the resumed "
            "run will not replay the interrupted one exactly",
            ", ".join(changed),
        )
    try:
        progress = Progress(**saved)
    except TypeError as err:  # a JSON object, but not the record save_state writes
        file = state / checkpoint.PROGRESS_FILE
        raise ConfigError(f"--resume: {file}: not a progress record ({err})") from None
    run.watch = LossWatch(progress.global_step)
    run.steps.truncate(progress.global_step)
    log.info("resumed from %s: epoch %d, step %d", state, progress.epoch + 1, progress.global_step)
    return progress


def resume_path(cfg: TrainConfig, resume: str | Path | None) -> Path | None:
    """``--resume`` alone ("auto"): the run's own state/, if any; a path: that state."""
    if resume is None:
        return None
    path = Path(cfg.output.dir) / "state" if str(resume) == "auto" else Path(resume)
    # A run killed while swapping in best/ or last/ left it as .best.old: put it back now,
    # not only when that folder is next saved (which may never happen).
    for folder in {path, Path(cfg.output.dir) / "best", Path(cfg.output.dir) / "last"}:
        if folder.parent.is_dir():
            checkpoint.recover(folder)
    if path.is_dir():
        return path
    if str(resume) == "auto":
        log.info("--resume: no state in %s yet; starting from the beginning", path)
        return None
    raise ConfigError(f"--resume: {path} does not exist")


# --- the loop's pieces -------------------------------------------------------------------------


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


def end_epoch(run: Run, optimizer, accelerator, progress: Progress, unfrozen: list[str]) -> None:
    """Validate, schedule, record, early-stop, then save best/, last/ and state/."""
    cfg = run.cfg
    final = progress.epoch + 1 == cfg.train.epochs or progress.stopped is not None
    validate = run.data.val is not None and (cfg.train.eval_every_epoch or final)
    metrics = evaluate(run, accelerator) if validate else {}
    flush_loss(run, accelerator, progress)
    check_weights(run.model.module, progress.global_step, progress.epoch + 1, cfg.output.dir)
    train_loss = progress.loss_sum / max(1, progress.batches_done)
    entry = {
        "epoch": progress.epoch + 1,
        "train_loss": train_loss,
        **metrics,
        "lr": lr_of(optimizer),
        "seconds": round(progress.epoch_seconds, 3),
        "steps": progress.global_step,
        "items_replaced": progress.replaced,  # streamed data: unusable items passed over
        "unfrozen": unfrozen,
        "trainable_parameters": run.info["trainable_parameters"]["trainable"],
    }
    progress.history.append(entry)
    val_loss = metrics.get("val_loss")
    if val_loss is not None and not run.per_step_schedule:
        run.scheduler.step(val_loss)
    better = improved(val_loss, progress.best_val_loss, cfg.train.min_delta)
    if better:
        progress.best_val_loss, progress.best_epoch, progress.bad_epochs = (
            val_loss,
            entry["epoch"],
            0,
        )
    elif val_loss is not None:
        progress.bad_epochs += 1
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


# --- saving ------------------------------------------------------------------------------------


def save_model(run: Run, accelerator: Accelerator, progress: Progress, kind: str) -> None:
    """best/ or last/: a plain model folder (LoRA merged into a copy) plus training.json."""
    if not accelerator.is_main_process:
        return
    with ema_weights(run):
        model = run.model
        if run.cfg.lora.enabled:
            from finetune.lora import merge_lora

            model = merge_lora(copy.deepcopy(run.model))
        record = checkpoint.training_record(
            run.cfg, asdict(progress), run.info, list(run.data.classes), kind
        )
        checkpoint.save_checkpoint(Path(run.cfg.output.dir) / kind, model, record)


def state_objects(run: Run, optimizer, accelerator: Accelerator) -> dict[str, Any]:
    return {
        "optimizer": optimizer,
        "scheduler": run.scheduler,
        "ema": run.ema,
        "scaler": accelerator.scaler,
    }


def save_state(run: Run, optimizer, accelerator: Accelerator, progress: Progress) -> None:
    """state/: what --resume needs; the RNG states of every process, written by rank 0."""
    rng = checkpoint.rng_state()
    rng = {k: accelerator.gather(v[None].to(accelerator.device)).cpu() for k, v in rng.items()}
    if accelerator.is_main_process:
        out = Path(run.cfg.output.dir) / "state"
        objects = state_objects(run, optimizer, accelerator)
        record = {
            **asdict(progress),
            "config": run.cfg.model_dump(mode="json"),
            "world_size": accelerator.num_processes,
        }
        checkpoint.save_state(out, run.model.module, objects, rng, record)
    accelerator.wait_for_everyone()


def lr_of(optimizer) -> float:
    """The largest group learning rate (the head's, with layer decay)."""
    return max(group["lr"] for group in optimizer.param_groups)
