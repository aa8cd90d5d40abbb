"""What a fine-tune cost, read from its ``training.json`` (``finetune`` writes it beside the
weights; ``evalsuite score`` stores it as the model's ``training``): training time, optimizer
steps, training samples seen, trainable parameters and device. Pure functions of that dict;
a field an older ``finetune`` did not write reads "not recorded", never a guess.

- time: the sum of the ``seconds`` logged per epoch in the history: each epoch's training
  loop, and at epoch 0 the base model's validation (later validations and saving are not
  in it);
- samples: ``train_samples`` (optimizer steps x batch size x accumulation steps x
  processes, as ``finetune`` records it);
- device: ``device`` (``{"type", "name", "processes", "mixed_precision"}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NOT_RECORDED = "not recorded"
WISE = "WiSE-FT"
COLUMNS = ("Training time", "Epochs", "Steps", "Samples seen", "Trainable parameters", "Device")


@dataclass(frozen=True)
class TrainingCost:
    model: str
    kind: str  # "fine-tuned", WISE, or "" (no training record)
    seconds: float | None = None
    epochs: int | None = None
    steps: int | None = None
    samples: int | None = None
    trainable: int | None = None
    total_parameters: int | None = None
    device: str | None = None

    def texts(self) -> dict[str, str]:
        """The row as shown, by :data:`COLUMNS`."""
        if self.kind == WISE:  # weights averaged, nothing trained
            return {c: "none: WiSE-FT interpolation" if c == COLUMNS[0] else "—" for c in COLUMNS}
        params = NOT_RECORDED
        if self.trainable is not None:
            params = count_text(self.trainable)
            if self.total_parameters:
                share = 100 * self.trainable / self.total_parameters
                params += f" of {count_text(self.total_parameters)} ({share:.0f}%)"
        values = (
            duration_text(self.seconds),
            _or_not_recorded(self.epochs),
            _or_not_recorded(self.steps),
            NOT_RECORDED if self.samples is None else f"{self.samples:,}",
            params,
            self.device or NOT_RECORDED,
        )
        return dict(zip(COLUMNS, values, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "kind": self.kind, "seconds": self.seconds,
            "epochs": self.epochs, "steps": self.steps, "samples": self.samples,
            "trainable_parameters": self.trainable, "total_parameters": self.total_parameters,
            "device": self.device,
        }  # fmt: skip


def _or_not_recorded(value: int | None) -> str:
    return NOT_RECORDED if value is None else f"{value:,}"


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``5 min 12 s``, ``2 h 05 min``; "not recorded" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return NOT_RECORDED
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def count_text(n: int) -> str:
    """``1.2 M``, ``151 M``, ``3,200``."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M" if n < 1e8 else f"{n / 1e6:.0f} M"
    return f"{n:,}"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _seconds(history: Any) -> float | None:
    found = [e.get("seconds") for e in history or [] if isinstance(e, Mapping)]
    found = [float(s) for s in found if isinstance(s, (int, float)) and math.isfinite(s)]
    return sum(found) if found else None


def _epochs(history: Any) -> int | None:
    """Epochs trained: history entries after epoch 0 (the base model's validation)."""
    done = [e for e in history or [] if isinstance(e, Mapping) and (e.get("epoch") or 0) >= 1]
    return len(done) or None


def device_text(device: Any) -> str | None:
    """``1 x NVIDIA H100 80GB HBM3 (cuda), bf16``; ``cpu, 1 process``."""
    if isinstance(device, str):
        return device or None
    if not isinstance(device, Mapping) or not device.get("type"):
        return None
    n = _int(device.get("processes")) or 1
    kind = str(device["type"])
    name = device.get("name")
    text = f"{n} x {name} ({kind})" if name else f"{kind}, {n} process{'es' if n > 1 else ''}"
    precision = device.get("mixed_precision")
    return f"{text}, {precision}" if precision and precision != "no" else text


def training_cost(model: str, training: Mapping[str, Any] | None) -> TrainingCost:
    """The cost of ``model``'s training record (None: no record, e.g. a base model)."""
    if not training:
        return TrainingCost(model, "")
    if isinstance(training.get("wise"), Mapping):
        return TrainingCost(model, WISE)
    history = training.get("history") or []
    params = training.get("trainable_parameters")
    params = params if isinstance(params, Mapping) else {}
    steps = _int(training.get("global_step"))
    if steps is None and history and isinstance(history[-1], Mapping):
        steps = _int(history[-1].get("steps"))
    return TrainingCost(
        model,
        "fine-tuned",
        seconds=_seconds(history),
        epochs=_int(training.get("epoch")) or _epochs(history),
        steps=steps,
        samples=_int(training.get("train_samples")),
        trainable=_int(params.get("trainable")),
        total_parameters=_int(params.get("total")),
        device=device_text(training.get("device")),
    )
