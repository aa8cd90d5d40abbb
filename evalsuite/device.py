"""Which device a run uses, and what fp32 and bf16 mean on it: one place for scoring and
training.

fp32 means IEEE fp32 on every device. PyTorch's CUDA defaults run cuDNN convolutions (a
ViT's patch embedding) in TF32, a 10-bit mantissa, while matmuls stay fp32
(``torch.backends.cudnn.conv.fp32_precision == "tf32"``): an fp32 score on a GPU would then
differ from the CPU's by more than float rounding, silently. So fp32 work on CUDA runs with
TF32 off for both (:func:`ieee_fp32`); speed on a GPU comes from bf16 autocast, where TF32
does not apply. The settings are restored afterwards: a library must not change a process's
global flags behind its caller's back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from evalsuite.errors import EvalSuiteError

PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The device ``name`` means here: None is accelerate's choice for this process (its own
    GPU under ``accelerate launch``, else the CPU); "cuda" is that GPU when accelerate chose
    one, else cuda:0; "cuda:N", "cpu" and "mps" are themselves. A device this machine does not
    have raises EvalSuiteError naming what it has."""
    if name is None:
        return _accelerate_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise EvalSuiteError(f"--device {name!r}: not a device (cpu, cuda, cuda:N, mps)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EvalSuiteError(
                f"--device {name}: this machine has no CUDA device that torch can use "
                f"(torch {torch.__version__}); pass --device cpu or leave it out"
            )
        if device.index is None:
            chosen = _accelerate_device()
            return chosen if chosen.type == "cuda" else torch.device("cuda", 0)
        if device.index >= torch.cuda.device_count():
            raise EvalSuiteError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EvalSuiteError(f"--device {name}: MPS is not available here; pass --device cpu")
    return device


def autocast(precision: str, device: torch.device) -> Any:
    """bf16 autocast on ``device`` for "bf16"; nothing for "fp32"."""
    if precision not in PRECISIONS:
        raise EvalSuiteError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


@contextmanager
def ieee_fp32(device: torch.device) -> Iterator[None]:
    """Matmuls and convolutions in IEEE fp32 (no TF32) on CUDA while inside; a no-op on
    other devices, which have no TF32."""
    if device.type != "cuda":
        yield
        return
    # conv and rnn alike: PyTorch refuses to read the legacy allow_tf32 when they differ
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)
    saved = [flag.fp32_precision for flag in flags]
    for flag in flags:
        flag.fp32_precision = "ieee"
    try:
        yield
    finally:
        for flag, value in zip(flags, saved, strict=True):
            flag.fp32_precision = value


def available_cores() -> int:
    """CPU cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def spare_cores(world: int) -> int:
    """Decode workers a process can have: the cores it shares with ``world - 1`` others, less
    one for its own model work, at most 8."""
    return max(0, min(8, available_cores() // world - 1))


def _accelerate_device() -> torch.device:
    from accelerate import PartialState  # accelerate is slow to import: only when asked

    return PartialState().device
