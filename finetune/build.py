"""Setting a run up: the model (LoRA, locks, frozen parts), data, optimizer, scheduler and
loss, checked against the data and the process count before anything trains.

:func:`build_run` runs before ``accelerator.prepare``; :func:`start_run` after it (the loss,
EMA and step log need the device and the main-process flag).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from evalsuite.errors import ConfigError
from evalsuite.hub import HubModelNotCached
from evalsuite.models import load_model
from evalsuite.models.base import ClipModel
from finetune import checkpoint
from finetune.config import SPEC_ADVICE, TrainConfig, flatten_config, resolve_objective
from finetune.data import build_loaders
from finetune.ema import ModelEMA
from finetune.freeze import GradualUnfreezer, apply_locking, build_param_groups
from finetune.logging_utils import StepLog
from finetune.loss import (
    ContrastiveLoss,
    DualEncoder,
    SigmoidLoss,
    ZeroShotCELoss,
    class_embeddings,
    unused_by_image_tower,
)
from finetune.run import Run
from finetune.validation import ValidatedRun

log = logging.getLogger("finetune")


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
    optimizer = build_optimizer(model, cfg, device)
    scheduler, per_step = build_scheduler(cfg, optimizer, steps)
    objective = cfg.loss.objective
    encoder = DualEncoder(model, objective != "zeroshot_ce", with_bias=objective == "sigmoid")
    return Run(
        cfg, model, encoder, optimizer, scheduler, per_step, loaders, steps, info, unfreezer, frozen
    )


def build_optimizer(model: ClipModel, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameter groups (weight decay, layer-wise lr); fused on CUDA:
    one kernel for all parameters (fewer launches, the same update up to rounding)."""
    groups = build_param_groups(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.layer_decay)
    return torch.optim.AdamW(
        groups, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
        fused=True if device.type == "cuda" else None,
    )  # fmt: skip


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
        from finetune.lora import apply_lora  # peft is slow to import: only LoRA runs pay

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


def start_run(run: Run, accelerator: Accelerator) -> None:
    """Loss, EMA, trackers and the step log (not started: a resumed run keeps its lines)."""
    cfg = run.cfg
    run.loss = build_loss(run, accelerator)
    if cfg.ema.enabled:
        run.ema = ModelEMA(run.model.module, cfg.ema.decay)
    if cfg.output.log_with:
        accelerator.init_trackers(cfg.run_name, config=flatten_config(cfg.model_dump(mode="json")))
    run.steps = StepLog(cfg.output.dir, accelerator.is_main_process)
