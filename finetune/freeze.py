"""Which parameters train, and how fast: tower locking, gradual unfreezing, AdamW groups.

All three read :func:`evalsuite.models.layout.tower_layout`, so they work the same for
Hugging Face and open_clip models. A tower is split into *units*, from the top: ``head``
(final norm + projection), ``blocks.<i>`` (transformer block i, 0 = bottom) and ``embed``
(patch/token, positional and class embeddings, pre-norm). Unit names are prefixed with the
tower: ``image.head``, ``text.blocks.11``, ``image.embed``.

How the optimizer and gradual unfreezing cooperate
    :class:`GradualUnfreezer` never changes ``requires_grad`` until its first
    :meth:`~GradualUnfreezer.on_epoch_start` call, and in gradual mode :func:`apply_locking`
    leaves the model alone (the unfreezer applies the lock config epoch by epoch). So, built
    before the epoch loop, :func:`build_param_groups` sees every parameter that will ever
    train and puts it in a group. A parameter frozen for the current epoch gets no gradient
    (``grad is None``) and AdamW skips it entirely: no update, no weight decay, no moment
    state. Once unfrozen it trains with its group's learning rate and weight decay.
    Parameters frozen for good (locked towers without gradual unfreezing, LoRA base weights)
    are left out of the groups.

    Order in the loop: ``apply_lora`` or ``apply_locking``, then ``GradualUnfreezer``, then
    ``build_param_groups`` and the optimizer (and ``accelerator.prepare``), then
    ``on_epoch_start(epoch)`` at the top of every epoch, the resumed one included. Under DDP
    the wrapper then registers every parameter that will ever train; those frozen for an
    epoch get no gradient, so DDP needs ``find_unused_parameters=True`` with gradual
    unfreezing (it leaves the gradients of globally unused parameters at None).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from evalsuite.errors import ConfigError
from evalsuite.models.base import ClipModel
from evalsuite.models.layout import (
    TOWERS,
    LayoutError,
    ModelLayout,
    named_parameters,
    tower_layout,
)

log = logging.getLogger(__name__)


class LockSettings(Protocol):
    """The fields of ``finetune.config.LockConfig`` read here."""

    lock_image: bool
    lock_image_unlocked_blocks: int
    lock_image_unlock_projection: bool
    lock_text: bool
    lock_text_unlocked_blocks: int
    lock_text_unlock_projection: bool
    gradual_unfreeze: bool
    unfreeze_blocks_per_epoch: int


@dataclass(frozen=True)
class Unit:
    tower: str
    name: str  # "head", "blocks.3", "embed"
    names: tuple[str, ...]  # qualified names under model.module (layout entries)
    depth: int  # 0 = head; blocks 1..L from the top; L + 1 = embed

    @property
    def label(self) -> str:
        return f"{self.tower}.{self.name}"


def tower_units(layout: ModelLayout, tower: str) -> list[Unit]:
    """The units of one tower from the top: head, blocks top-down, embed."""
    return [Unit(tower, name, names, depth) for name, names, depth in layout.tower(tower).units()]


def unit_parameters(root: nn.Module, unit: Unit) -> Iterator[tuple[str, nn.Parameter]]:
    return named_parameters(root, unit.names)


# --- locking ---------------------------------------------------------------------------------


def apply_locking(model: ClipModel, cfg: LockSettings) -> None:
    """Freeze the locked towers, then unlock their last N blocks and, if asked, their head.

    Like open_clip's ``--lock-image`` / ``--lock-text``: a locked tower is frozen whole
    (embeddings, blocks, head); ``lock_<tower>_unlocked_blocks`` top blocks and, with
    ``lock_<tower>_unlock_projection``, the head (final norm + projection) train. The logit
    scale is in neither tower and stays trainable. With ``gradual_unfreeze`` this does nothing:
    :class:`GradualUnfreezer` applies the locks per epoch (see the module docstring).
    """
    if not (cfg.lock_image or cfg.lock_text) or cfg.gradual_unfreeze:
        return
    layout = _layout_for(model, "locking")
    _reject_lora(model, "lock.lock_image / lock.lock_text")
    for tower in TOWERS:
        if not getattr(cfg, f"lock_{tower}"):
            continue
        trainable = _locked_trainable_units(layout, tower, cfg)
        for unit in tower_units(layout, tower):
            for _, param in unit_parameters(model.module, unit):
                param.requires_grad_(unit.name in trainable)
        log.info("locked the %s tower; trainable units: %s", tower, sorted(trainable) or "none")


def _locked_trainable_units(layout: ModelLayout, tower: str, cfg: LockSettings) -> set[str]:
    """Units of a locked tower that train: its top N blocks and, optionally, its head."""
    key = f"lock.lock_{tower}_unlocked_blocks"
    blocks = len(layout.tower(tower).blocks)
    unlocked = getattr(cfg, f"lock_{tower}_unlocked_blocks")
    if unlocked > blocks:
        raise ConfigError(f"{key} is {unlocked} but the {tower} tower has only {blocks} blocks")
    trainable = {f"blocks.{i}" for i in range(blocks - unlocked, blocks)}
    if getattr(cfg, f"lock_{tower}_unlock_projection"):
        trainable.add("head")
    return trainable


# --- gradual unfreezing ----------------------------------------------------------------------


class GradualUnfreezer:
    """Unfreeze towers from the top down, ``unfreeze_blocks_per_epoch`` units per epoch.

    At epoch 0 each unlocked tower trains its head and its top N blocks; a locked tower
    starts as the lock config says (its top ``unlocked_blocks`` blocks, its head if
    ``unlock_projection``). Each later epoch unfreezes the next N frozen units of every tower
    from the top (head, then blocks, then the embeddings), until everything trains. The
    logit scale always trains. ``on_epoch_start(e)`` sets the state of epoch ``e`` whatever
    came before, so a resumed run calls it with the resumed epoch and gets the same state.
    Frozen parameters stay in the optimizer; see the module docstring.
    """

    def __init__(self, model: ClipModel, cfg: LockSettings) -> None:
        if cfg.unfreeze_blocks_per_epoch < 1:
            raise ConfigError("lock.unfreeze_blocks_per_epoch must be at least 1")
        self.model = model
        self.per_epoch = int(cfg.unfreeze_blocks_per_epoch)
        layout = _layout_for(model, "gradual unfreezing")
        _reject_lora(model, "lock.gradual_unfreeze")
        # Per tower: units trainable from epoch 0, then the frozen ones in unfreezing order.
        self._start: dict[str, list[Unit]] = {}
        self._queue: dict[str, list[Unit]] = {}
        for tower in TOWERS:
            units = tower_units(layout, tower)
            if getattr(cfg, f"lock_{tower}"):
                trainable = _locked_trainable_units(layout, tower, cfg)
            else:
                trainable = {u.name for u in units[: 1 + self.per_epoch] if u.name != "embed"}
            self._start[tower] = [u for u in units if u.name in trainable]
            self._queue[tower] = [u for u in units if u.name not in trainable]
        self._trainable: set[str] | None = None  # labels; None until the first call

    def schedule(self, epoch: int) -> list[str]:
        """Labels of the units that train during ``epoch`` (pure; changes nothing)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        labels = []
        for tower in TOWERS:
            opened = self._start[tower] + self._queue[tower][: self.per_epoch * epoch]
            labels += [u.label for u in opened]
        return labels

    def on_epoch_start(self, epoch: int) -> list[str]:
        """Set ``requires_grad`` for ``epoch``; return the labels newly unfrozen by this call
        (on the first call: every unit that trains in ``epoch``)."""
        trainable = set(self.schedule(epoch))
        for tower in TOWERS:
            for unit in self._start[tower] + self._queue[tower]:
                for _, param in unit_parameters(self.model.module, unit):
                    param.requires_grad_(unit.label in trainable)
        before = self._trainable or set()
        self._trainable = trainable
        new = [label for label in self.schedule(epoch) if label not in before]
        if new:
            log.info("unfroze %s (epoch index %d)", ", ".join(new), epoch)
        return new

    @property
    def finished(self) -> bool:
        """True once the last call left every unit trainable."""
        total = sum(len(self._start[t]) + len(self._queue[t]) for t in TOWERS)
        return self._trainable is not None and len(self._trainable) == total


# --- optimizer groups ------------------------------------------------------------------------

_NO_DECAY_NAME_PARTS = ("bn", "ln", "bias", "logit_scale")  # open_clip's exclusion rule


def excluded_from_weight_decay(name: str, param: nn.Parameter) -> bool:
    """open_clip's rule: no weight decay for gains, biases, norms and the logit scale."""
    return param.ndim < 2 or any(part in name for part in _NO_DECAY_NAME_PARTS)


def build_param_groups(
    model: ClipModel, lr: float, weight_decay: float, layer_decay: float | None = None
) -> list[dict[str, Any]]:
    """AdamW parameter groups for the trainable parameters of ``model``.

    Weight decay: none for parameters open_clip exempts (ndim < 2 or a name with ``bn``,
    ``ln``, ``bias``, ``logit_scale``) nor for the towers' embedding units (token, positional
    and class embeddings and the patch projection), so both backends split the same way.

    Layer-wise decay (``layer_decay`` in (0, 1]): a unit at depth ``d`` from the top of its
    tower (head 0, top block 1, ..., embeddings L + 1) gets ``lr * layer_decay ** d``; the
    logit scale gets ``lr``. Each group carries ``lr_scale``: a scheduler that sets learning
    rates by hand must set ``group["lr"] = lr_now * group["lr_scale"]``. ``torch`` schedulers
    (LambdaLR, ReduceLROnPlateau...) scale each group's own lr and keep the ratios.

    Frozen parameters are left out, except those a :class:`GradualUnfreezer` will unfreeze:
    built before its first ``on_epoch_start``, the groups hold them (module docstring).
    Groups are ordered deterministically, so optimizer state from a checkpoint loads back.
    """
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ConfigError(f"optim.layer_decay must be in (0, 1], got {layer_decay}")
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, param, unit, scale, embed in _scaled_parameters(model, layer_decay):
        if not param.requires_grad:
            continue
        decay = not (embed or excluded_from_weight_decay(name, param))
        key = (unit if layer_decay is not None else "all", decay)
        if key not in groups:
            groups[key] = {
                "name": f"{key[0]}/{'decay' if decay else 'no_decay'}",
                "params": [],
                "param_names": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decay else 0.0,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def _scaled_parameters(
    model: ClipModel, layer_decay: float | None
) -> Iterator[tuple[str, nn.Parameter, str, float, bool]]:
    """``(name, param, unit label, lr scale, is embedding)`` for every parameter."""
    try:
        layout = tower_layout(model)
    except LayoutError:
        if layer_decay is not None:
            raise
        # No layout (e.g. a timm image tower): open_clip's name rule alone, one lr.
        for name, param in model.module.named_parameters():
            yield name, param, "all", 1.0, False
        return
    for name, param in named_parameters(model.module, layout.logit):
        yield name, param, "logit", 1.0, False
    for tower in TOWERS:
        for unit in tower_units(layout, tower):
            scale = 1.0 if layer_decay is None else layer_decay**unit.depth
            for name, param in unit_parameters(model.module, unit):
                yield name, param, unit.label, scale, unit.name == "embed"


def trainable_parameter_count(module: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared parameters counted once)."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# --- helpers ---------------------------------------------------------------------------------


def _layout_for(model: ClipModel, what: str) -> ModelLayout:
    try:
        return tower_layout(model)
    except LayoutError as err:
        raise ConfigError(f"{what} is not available for {model.name}: {err}") from None


def _reject_lora(model: ClipModel, key: str) -> None:
    if any("lora_" in name for name, _ in model.module.named_parameters()):
        raise ConfigError(
            f"{key} cannot be combined with lora.enabled: LoRA already freezes the base "
            "weights and trains only the adapters"
        )
