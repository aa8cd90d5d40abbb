"""An exponential moving average of the trained weights, for evaluation and saving.

``ema = decay * ema + (1 - decay) * weight`` after every optimizer step, for each trainable
parameter and each persistent floating-point buffer (running statistics), keyed by name.

Why not ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``: it
deep-copies the whole module (a second full model in memory even when only LoRA adapters or
the top blocks train), pairs the copy's tensors with the live ones by position
(``zip(..., strict=False)``, which silently truncates if LoRA wrappers or a changed module
reorder them) and has no way to put the average back into the live module and restore it
afterwards. Keying by name keeps only what trains, survives such changes with a clear error,
and makes :meth:`ModelEMA.swapped` a plain copy in and out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from evalsuite.models.base import ClipModel

_NUM_UPDATES = "num_updates"
_PREFIX = "shadow."


class ModelEMA:
    """EMA of a module's trainable parameters and persistent floating buffers.

    ``warmup=True`` uses ``min(decay, (1 + n) / (10 + n))`` at the n-th update (n from 0), so
    the average follows the weights closely early on. Parameters that start training later
    (gradual unfreezing) join the average at their value when first seen by :meth:`update`;
    frozen ones are not copied. Shadow tensors live on the device and dtype of the weights.
    Pass the unwrapped module (``accelerator.unwrap_model``) so names match.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self._shapes = {name: t.shape for name, t in _named_tensors(module)}
        self.shadow: dict[str, torch.Tensor] = {
            name: t.detach().clone() for name, t in _tracked(module)
        }

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the module's current weights into the average (call after each step)."""
        weight = 1.0 - self.current_decay()
        tensors = dict(_named_tensors(module))
        for name, tensor in _tracked(module):
            if name not in self.shadow:
                self.shadow[name] = tensor.detach().clone()
        for name, average in self.shadow.items():
            average.lerp_(tensors[name].detach().to(average.dtype), weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, target: nn.Module | ClipModel) -> None:
        """Write the averaged weights into ``target`` (a module or a :class:`ClipModel`)."""
        module = _module(target)
        tensors = dict(_named_tensors(module))
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            raise KeyError(f"the module has no {', '.join(missing[:5])}: not the EMA's module")
        for name, average in self.shadow.items():
            tensors[name].copy_(average)
        _forget_fingerprint(target)

    @contextmanager
    def swapped(self, target: nn.Module | ClipModel) -> Iterator[None]:
        """Evaluate with the averaged weights inside the block; the live ones come back after."""
        module = _module(target)
        tensors = dict(_named_tensors(module))
        backup = {name: tensors[name].detach().clone() for name in self.shadow if name in tensors}
        self.copy_to(target)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, saved in backup.items():
                    tensors[name].copy_(saved)
            _forget_fingerprint(target)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors only (safetensors / ``torch.load(weights_only=True)`` friendly)."""
        state = {f"{_PREFIX}{name}": t for name, t in self.shadow.items()}
        state[_NUM_UPDATES] = torch.tensor(self.num_updates, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        shadow = {}
        for key, tensor in state.items():
            if key == _NUM_UPDATES:
                continue
            name = key.removeprefix(_PREFIX)
            if not key.startswith(_PREFIX) or name not in self._shapes:
                raise KeyError(f"EMA state has {key!r}, which the module does not have")
            if tensor.shape != self._shapes[name]:
                raise ValueError(
                    f"EMA state {name}: shape {tuple(tensor.shape)}, the module has "
                    f"{tuple(self._shapes[name])}"
                )
            like = self.shadow.get(name)
            shadow[name] = tensor.detach().clone() if like is None else tensor.to(like).clone()
        self.shadow = shadow
        self.num_updates = int(state[_NUM_UPDATES])


def _named_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    yield from module.named_buffers()


def _tracked(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Trainable parameters and persistent floating buffers (running statistics).

    Non-persistent buffers are constants derived from the config (open_clip's causal
    ``attn_mask`` holds -inf, and ``lerp(-inf, -inf)`` is NaN): they are left alone.
    """
    for name, param in module.named_parameters():
        if param.requires_grad:
            yield name, param
    persistent = module.state_dict(keep_vars=True).keys()
    for name, buffer in module.named_buffers():
        if buffer.is_floating_point() and name in persistent:
            yield name, buffer


def _module(target: nn.Module | ClipModel) -> nn.Module:
    return target.module if isinstance(target, ClipModel) else target


def _forget_fingerprint(target: nn.Module | ClipModel) -> None:
    """Weights changed under a ClipModel: its cached fingerprint (cache key) is stale."""
    if isinstance(target, ClipModel):
        target.__dict__.pop("fingerprint", None)
