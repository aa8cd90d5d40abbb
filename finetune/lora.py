"""LoRA adapters on the attention projections of both towers, and merging them back.

:func:`apply_lora` adds adapters in place: ``model.module`` stays the same object, so
``model.image_features`` / ``text_features``, ``set_grad_checkpointing`` and the training loop
work unchanged. Only the adapters train; every base weight (the logit scale included) is
frozen. Targets come from :func:`evalsuite.models.layout.tower_layout` (``attention``).
Injectors are registered per backend in ``INJECTORS``:

- Hugging Face: peft LoRA (``peft.inject_adapter_in_model``) on ``q_proj``, ``k_proj``,
  ``v_proj`` and ``out_proj`` of every block: plain ``nn.Linear`` layers, dropout supported.
- open_clip: attention is ``nn.MultiheadAttention`` with a fused ``in_proj_weight``, and its
  forward never calls ``out_proj.forward``. peft 0.21 supports it (experimental), but by
  merging the adapter into the frozen weights before each forward and subtracting it after;
  ``(W + dW) - dW`` is not ``W`` in floating point, so the "frozen" weights drift on every
  forward (measured: 17 % of one ``in_proj_weight``'s entries changed after 100 forwards in
  float32; far worse in bf16). peft's ``target_parameters`` route cannot reach ``out_proj``,
  and ``torch.nn.utils.parametrize`` shares one injected class between a module and its
  deep copy, so merging a copy breaks the original. So open_clip uses
  :class:`LoraMultiheadAttention`: it wraps the frozen layer and runs it through
  ``torch.func.functional_call`` with ``W + alpha / r * B @ A`` for ``in_proj_weight`` and
  ``out_proj.weight``; ``W`` is never written. Same shapes and init as peft's (``A``
  Kaiming-uniform, ``B`` zero): one rank-r adapter on the stacked q/k/v projection, one on
  ``out_proj``. ``lora.dropout`` cannot apply to a weight-space delta; a warning says so.
  A timm vision trunk inside open_clip (SigLIP) has plain ``qkv`` and ``proj`` Linear layers
  instead: peft adapts them, as for Hugging Face models.

:func:`merge_lora` folds the adapters into the base weights and removes every trace of them,
so ``model.save`` writes a plain checkpoint that transformers / open_clip load without peft.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from torch.func import functional_call

from evalsuite.errors import ConfigError
from evalsuite.models.base import ClipModel
from evalsuite.models.layout import TOWERS, LayoutError, ModelLayout, TowerLayout, tower_layout
from evalsuite.registry import Registry

log = logging.getLogger(__name__)


class LoraSettings(Protocol):
    """The fields of ``finetune.config.LoraConfig`` read here."""

    enabled: bool
    rank: int
    alpha: float
    dropout: float
    target: str


# lora.target -> the modules to adapt in one tower
TARGETS: Registry[Callable[[TowerLayout], tuple[str, ...]]] = Registry(
    "lora.target",
    error=ConfigError,
    miss_message=lambda name, known: f"lora.target {name!r} is unknown; known: {', '.join(known)}",
)
TARGETS.register("attention", lambda tower: tower.attention)


def apply_lora(model: ClipModel, cfg: LoraSettings) -> list[str]:
    """Add LoRA adapters in place and freeze everything else; returns the adapted modules.

    Does nothing (returns ``[]``) when ``cfg.enabled`` is false.
    """
    if not cfg.enabled:
        return []
    if has_lora(model):
        raise ConfigError(f"{model.name} already has LoRA adapters; apply_lora runs once")
    inject = INJECTORS.get(model.backend)
    targets = _targets(_layout(model), cfg.target)
    inject(model.module, targets, cfg)
    for name, param in model.module.named_parameters():
        param.requires_grad_("lora_" in name)
    _forget_fingerprint(model)
    return list(targets)


def has_lora(model: ClipModel) -> bool:
    return any("lora_" in name for name, _ in model.module.named_parameters())


def merge_lora(model: ClipModel) -> ClipModel:
    """Merge the adapters into the base weights and remove them, in place.

    Afterwards ``model.module`` has its original module types and state-dict keys and every
    parameter is trainable again, as after ``load_model``. To save a merged copy
    mid-training, merge ``copy.deepcopy(model)``. A model without adapters is unchanged.
    """
    if not has_lora(model):
        return model
    merged = _merge_peft_layers(model.module) + _merge_mha(model.module)
    for param in model.module.parameters():
        param.requires_grad_(True)
    _forget_fingerprint(model)
    log.info("merged %d LoRA adapters into the base weights", merged)
    return model


# --- Hugging Face: peft ----------------------------------------------------------------------


def _inject_peft(root: nn.Module, targets: tuple[str, ...], cfg: LoraSettings) -> None:
    peft_config = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(targets),
        bias="none",
    )
    inject_adapter_in_model(peft_config, root)


def _merge_peft_layers(root: nn.Module) -> int:
    names = [name for name, m in root.named_modules() if isinstance(m, BaseTunerLayer)]
    outer = [n for n in names if not any(n.startswith(f"{o}.") for o in names)]
    for name in outer:
        layer = root.get_submodule(name)
        layer.merge(safe_merge=True)
        _replace(root, name, layer.get_base_layer())
    if hasattr(root, "peft_config"):
        del root.peft_config
    return len(outer)


# --- open_clip: LoRA around nn.MultiheadAttention --------------------------------------------


class LoraDelta(nn.Module):
    """``W -> W + alpha / r * B @ A`` for one weight matrix (A Kaiming-uniform, B zero)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float) -> None:
        super().__init__()
        out_features, in_features = weight.shape
        kwargs = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, **kwargs))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, **kwargs))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as peft and nn.Linear
        self.scaling = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.lora_B @ self.lora_A) * self.scaling


class LoraMultiheadAttention(nn.Module):
    """A frozen ``nn.MultiheadAttention`` run with adapted ``in_proj_weight``/``out_proj.weight``.

    The forward hands ``W + dW`` to the base layer through ``torch.func.functional_call``,
    which swaps the tensors in for the call only: the base weights are never written, and
    the layer keeps MultiheadAttention's own forward (masks, batch_first, fast path).
    """

    def __init__(self, base_layer: nn.MultiheadAttention, rank: int, alpha: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.lora_in_proj = LoraDelta(base_layer.in_proj_weight, rank, alpha)
        self.lora_out_proj = LoraDelta(base_layer.out_proj.weight, rank, alpha)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        base = self.base_layer
        weights = {
            "in_proj_weight": self.lora_in_proj(base.in_proj_weight),
            "out_proj.weight": self.lora_out_proj(base.out_proj.weight),
        }
        return functional_call(base, weights, args, kwargs)

    @torch.no_grad()
    def merged(self) -> nn.MultiheadAttention:
        """The base layer with the adapters folded into its weights."""
        base = self.base_layer
        base.in_proj_weight.copy_(self.lora_in_proj(base.in_proj_weight))
        base.out_proj.weight.copy_(self.lora_out_proj(base.out_proj.weight))
        return base


def _inject_open_clip(root: nn.Module, targets: tuple[str, ...], cfg: LoraSettings) -> None:
    """open_clip's own towers use nn.MultiheadAttention; a timm trunk (SigLIP) has plain
    ``qkv``/``proj`` Linear layers, which peft adapts as for Hugging Face models."""
    linear = tuple(name for name in targets if isinstance(root.get_submodule(name), nn.Linear))
    if linear:
        _inject_peft(root, linear, cfg)
    _inject_mha(root, tuple(name for name in targets if name not in linear), cfg)


def _inject_mha(root: nn.Module, targets: tuple[str, ...], cfg: LoraSettings) -> None:
    if cfg.dropout > 0 and targets:
        log.warning(
            "lora.dropout=%s has no effect on open_clip attention: its adapters are "
            "weight-space deltas on nn.MultiheadAttention",
            cfg.dropout,
        )
    for name in targets:
        attn = root.get_submodule(name)
        if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim:
            raise ConfigError(
                "LoRA for open_clip models needs nn.MultiheadAttention with a fused "
                f"in_proj_weight; {name} is {type(attn).__name__}"
            )
        _replace(root, name, LoraMultiheadAttention(attn, cfg.rank, cfg.alpha))


def _merge_mha(root: nn.Module) -> int:
    names = [n for n, m in root.named_modules() if isinstance(m, LoraMultiheadAttention)]
    for name in names:
        _replace(root, name, root.get_submodule(name).merged())
    return len(names)


# model.backend -> how adapters go into its module
INJECTORS: Registry[Callable[[nn.Module, tuple[str, ...], LoraSettings], None]] = Registry(
    "LoRA injector",
    error=ConfigError,
    miss_message=lambda name, known: (
        f"LoRA is not available for backend {name!r}; known: {', '.join(known)}"
    ),
)
INJECTORS.register("hf", _inject_peft)
INJECTORS.register("open_clip", _inject_open_clip)


# --- helpers ---------------------------------------------------------------------------------


def _targets(layout: ModelLayout, target: str) -> tuple[str, ...]:
    pick = TARGETS.get(target)
    return tuple(name for tower in TOWERS for name in pick(layout.tower(tower)))


def _layout(model: ClipModel) -> ModelLayout:
    try:
        return tower_layout(model)
    except LayoutError as err:
        raise ConfigError(f"LoRA is not available for {model.name}: {err}") from None


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent_name), leaf, module)


def _forget_fingerprint(model: ClipModel) -> None:
    """The weights changed: drop the cached fingerprint so it is computed afresh."""
    model.__dict__.pop("fingerprint", None)
