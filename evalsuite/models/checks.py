"""Checks on a model folder's files: JSON configs that parse, weights that fit their config.

A config that disagrees with its weights file (3 layers declared, 2 saved) loads "fine" in
transformers: the missing layer is randomly initialised, an extra one dropped, and only a
load report on stderr says so. The loaders collect what the libraries report (missing,
unexpected and mismatched keys) and turn it into a ModelLoadError with this description.
A weights file that ``torch.load(weights_only=True)`` refuses (a pickle holding code) gets
its own message (:func:`pickle_message`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from evalsuite.errors import ModelLoadError

SHOWN = 3  # names quoted per kind; the count says how many more


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def _count(n: int) -> str:
    return f"{n} weight{'s' if n != 1 else ''}"


def describe_mismatch(
    missing: Collection[str],
    unexpected: Collection[str],
    mismatched: Collection[tuple[str, Sequence[int], Sequence[int]]] = (),
    declared: str = "config",
) -> str:
    """What does not fit, or ``""``. ``mismatched`` holds ``(name, file shape, expected
    shape)``; ``declared`` names where the expected shape comes from (config, model)."""
    parts = []
    if missing:
        parts.append(
            f"{_count(len(missing))} missing from the file ({_few(missing)}), "
            "which would be randomly initialised"
        )
    if unexpected:
        parts.append(
            f"{_count(len(unexpected))} in the file unused ({_few(unexpected)}), "
            "which would be dropped"
        )
    if mismatched:
        shown = [
            f"{name}: file {list(got)}, {declared} {list(want)}"
            for name, got, want in sorted(mismatched, key=lambda m: m[0])[:SHOWN]
        ]
        more = ", ..." if len(mismatched) > SHOWN else ""
        parts.append(f"{_count(len(mismatched))} of another shape ({', '.join(shown)}{more})")
    return "; ".join(parts)


def read_json(file: Path) -> Any:
    """A model folder's JSON file; a ModelLoadError naming the file and the position of the
    first error (transformers and open_clip say only "not a valid JSON file")."""
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{file}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{file}: not UTF-8 text, so not JSON ({exc})") from exc


def file_shapes(file: Path) -> dict[str, list[int]] | None:
    """Tensor name -> shape of a weights file, or None where it cannot be read here (the
    loader then reports the problem itself). Safetensors: the header only; torch files are
    memory-mapped, unwrapped as open_clip does ("state_dict", a "module." prefix)."""
    file = Path(file)
    try:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as weights:
                # safe_open objects are not iterable: keys() is their API
                return {k: weights.get_slice(k).get_shape() for k in weights.keys()}  # noqa: SIM118
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, SafetensorError, RuntimeError, ValueError, EOFError, UnpicklingError):
        return None  # a legacy or refused pickle, a truncated file: the loader says why
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        return None
    return {
        k.removeprefix("module."): list(v.shape)
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def shape_mismatches(
    shapes: Mapping[str, Sequence[int]], expected: Mapping[str, torch.Tensor]
) -> list[tuple[str, list[int], list[int]]]:
    """``(name, file shape, expected shape)`` of the tensors both hold with other shapes."""
    return [
        (name, list(shape), list(expected[name].shape))
        for name, shape in shapes.items()
        if name in expected and list(shape) != list(expected[name].shape)
    ]


def refused_pickle(exc: BaseException | None) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused a file somewhere behind ``exc``: it
    holds pickled Python objects besides tensors (possibly a payload that runs code)."""
    while exc is not None:
        if isinstance(exc, UnpicklingError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def pickle_message(what: str) -> str:
    # torch's own message suggests weights_only=False, i.e. running the payload: not ours.
    return (
        f"refused to load {what}: its weights file is a pickle holding Python objects besides "
        "tensors, and unpickling it could run arbitrary code. Only safetensors files and plain "
        "tensor files load (torch.load(weights_only=True)); convert the weights to safetensors "
        "where you trust the file"
    )
