"""WiSE-FT: interpolate the weights of a base CLIP and its fine-tuned copy.

``theta = (1 - alpha) * base + alpha * finetuned`` for every floating tensor (Wortsman et al.,
2022): alpha 0 is the base model, 1 the fine-tuned one; values between usually keep most of
the fine-tuned gain in domain while recovering the base model's robustness elsewhere.

``finetune wise --base SPEC --finetuned CKPT (--alpha A | --alphas A,B,... | --alphas
START:STOP:STEP) --out DIR [--score BENCHMARKS --db DB]`` writes ordinary checkpoints (the
backend's own format plus ``training.json``) that ``evalsuite.models.load_model`` and
``evalsuite score`` read like any fine-tuned model: one checkpoint at DIR for ``--alpha``,
DIR/alpha-<A>/ per value for ``--alphas``. With ``--score`` every checkpoint written is then
scored into the results database (:mod:`finetune.wise_score`), so one command gives the
whole curve on the leaderboard and in the report.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from evalsuite.errors import ConfigError, EvalSuiteError
from evalsuite.hub import HubModelNotCached
from evalsuite.models import ClipModel, load_model
from evalsuite.models.factory import TRAINING_FILE
from finetune.checkpoint import replace_atomically

log = logging.getLogger(__name__)
MAX_ALPHAS = 101  # a range of alphas: each is a checkpoint on disk (0:1:0.01 is 101)


def wise_interpolate(base: ClipModel, finetuned: ClipModel, alpha: float) -> ClipModel:
    """Put ``(1 - alpha) * base + alpha * finetuned`` into ``finetuned`` and return it.

    Same backend and architecture required (else :class:`ConfigError`). alpha 0 and 1 give
    the base and fine-tuned tensors exactly (``torch.lerp`` is exact at both ends);
    non-floating tensors keep the fine-tuned values. The result's source is marked: its
    ``training`` dict (``training.json``) gains ``"wise"`` with alpha, both specs and both
    fingerprints, and ``run_name`` becomes ``<name>-wise-<alpha>``. Mutates ``finetuned``:
    pass ``copy.deepcopy(finetuned)`` to keep the original.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
    check_compatible(base, finetuned)
    finetuned_fingerprint = finetuned.fingerprint  # before the weights change
    state = finetuned.module.state_dict()
    base_state = base.module.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if tensor.is_floating_point():
                start = base_state[name].to(device=tensor.device, dtype=torch.float32)
                tensor.copy_(torch.lerp(start, tensor.float(), alpha))
    finetuned.__dict__.pop("fingerprint", None)  # the weights changed
    _mark_wise(finetuned, base, alpha, finetuned_fingerprint)
    return finetuned


def check_compatible(
    base: ClipModel, finetuned: ClipModel, what: str = "WiSE-FT", where: str | None = None
) -> None:
    """Same backend, architecture and tensors (names and shapes), else a clear error.
    ``what`` and ``where`` word it for another weight average (a model soup)."""
    where = where or f"base {base.spec!r} vs fine-tuned {finetuned.spec!r}"
    if base.backend != finetuned.backend:
        raise ConfigError(
            f"{what} needs one backend: {where} are {base.backend} and {finetuned.backend}; "
            "convert one or pass the base model the checkpoint was fine-tuned from"
        )
    base_arch, tuned_arch = base.architecture_config(), finetuned.architecture_config()
    if base_arch != tuned_arch:
        keys = sorted(_differing_keys(base_arch, tuned_arch))
        raise ConfigError(
            f"{what} needs the same architecture: {where} differ in "
            f"{', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}"
        )
    base_shapes = {k: tuple(v.shape) for k, v in base.module.state_dict().items()}
    tuned_shapes = {k: tuple(v.shape) for k, v in finetuned.module.state_dict().items()}
    if base_shapes != tuned_shapes:
        names = sorted(set(base_shapes) ^ set(tuned_shapes)) or sorted(
            k for k in base_shapes if base_shapes[k] != tuned_shapes[k]
        )
        raise ConfigError(
            f"{what} needs the same tensors: {where} differ in {', '.join(names[:6])} "
            "(a LoRA model must be merged first)"
        )


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _mark_wise(model: ClipModel, base: ClipModel, alpha: float, tuned_fp: str) -> None:
    training = copy.deepcopy(model.source.training) or {}
    tuned_name = str(training.get("run_name") or model.source.name)
    wise = {
        "alpha": alpha,
        "base_spec": base.spec,
        "base_fingerprint": base.fingerprint,
        "finetuned_spec": model.spec,
        "finetuned_fingerprint": tuned_fp,
    }
    training["run_name"] = f"{tuned_name}-wise-{alpha_label(alpha)}"
    for record in ("sweep", "soup"):  # an interpolation is neither the trial nor the soup
        training.pop(record, None)
    training["wise"] = wise
    model.source = dataclasses.replace(model.source, name=training["run_name"], training=training)
    model.source.extra = {**model.source.extra, "wise": wise}


def alpha_label(alpha: float) -> str:
    """``0.25`` -> ``"0.25"``, ``1.0`` -> ``"1"``: for run names and folder names."""
    return format(alpha, "g")


# --- writing ---------------------------------------------------------------------------------


def save_checkpoint(
    model: ClipModel, out_dir: Path, overwrite: bool = False, who: str = "finetune wise"
) -> Path:
    """``model.save`` plus ``training.json``, written to a temporary sibling folder and
    swapped in (:func:`finetune.checkpoint.replace_atomically`): a crash never leaves a
    half-written checkpoint at ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ConfigError(f"{out_dir} already exists; pass --overwrite to replace it")
    training = model.source.training or {}

    def write(tmp: Path) -> None:
        model.save(tmp)
        (tmp / TRAINING_FILE).write_text(json.dumps(training, indent=2, default=str) + "\n")

    replace_atomically(out_dir, write, who=who, again=f"run {who} again")
    return out_dir


def write_wise(
    base: ClipModel,
    finetuned: ClipModel,
    alphas: Sequence[float],
    out_dir: Path,
    sweep: bool,
    overwrite: bool = False,
) -> list[Path]:
    """One checkpoint per alpha: ``out_dir`` itself, or ``out_dir/alpha-<A>`` for a sweep."""
    _ = finetuned.fingerprint  # hash once; every deep copy carries the cached value
    written = []
    for alpha, target in zip(alphas, wise_targets(out_dir, alphas, sweep), strict=True):
        model = wise_interpolate(base, copy.deepcopy(finetuned), alpha)
        written.append(save_checkpoint(model, target, overwrite))
        log.info("wrote %s (alpha %s)", target, alpha_label(alpha))
    return written


def wise_targets(out_dir: Path, alphas: Sequence[float], sweep: bool) -> list[Path]:
    if not sweep:
        return [Path(out_dir)]
    return [Path(out_dir) / f"alpha-{alpha_label(alpha)}" for alpha in alphas]


# --- command line ----------------------------------------------------------------------------


def _alphas(text: str) -> list[float]:
    """Comma-separated weights, each checked as ``--alpha`` is, or a range
    START:STOP:STEP; no weight twice."""
    if ":" in text:
        return _alpha_range(text)
    try:
        values = [_alpha(part) for part in text.split(",") if part.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be numbers in [0, 1] like 0,0.5,1, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"must be numbers in [0, 1] like 0,0.5,1, got {text!r}")
    if len({alpha_label(v) for v in values}) != len(values):
        raise argparse.ArgumentTypeError(f"repeated alpha in {text!r}")
    return values


def _alpha_range(text: str) -> list[float]:
    """``0:1:0.1`` -> 0, 0.1, ..., 1: STOP is included when the steps reach it within float
    rounding (0.1 x 10 is not exactly 1), and each value is rounded so that its label and
    folder name read 0.3, not 0.30000000000000004."""
    usage = f"must be START:STOP:STEP in [0, 1] with STEP > 0, like 0:1:0.1, got {text!r}"
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(usage)
    try:
        start, stop = _alpha(parts[0]), _alpha(parts[1])
        step = float(parts[2])
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError(usage) from None
    if not step > 0 or math.isinf(step) or start > stop:
        raise argparse.ArgumentTypeError(usage)
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_ALPHAS:  # each alpha is a whole checkpoint on disk
        raise argparse.ArgumentTypeError(
            f"{text!r} gives {count} alphas, more than {MAX_ALPHAS}: take a larger STEP"
        )
    values = [min(stop, round(start + k * step, 10)) for k in range(count)]
    if len({alpha_label(v) for v in values}) != len(values):
        raise argparse.ArgumentTypeError(f"step of {text!r} is too small: repeated alphas")
    return values


def _alpha(text: str) -> float:
    """One weight in [0, 1], checked at parsing (before the slow model loads); NaN fails."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune wise",
        description="WiSE-FT: interpolate base and fine-tuned weights into new checkpoints.",
    )
    parser.add_argument("--base", required=True, help="the base model (any load_model spec)")
    parser.add_argument("--finetuned", required=True, help="a fine-tuned checkpoint folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--alpha", type=_alpha, help="one weight of the fine-tuned model")
    group.add_argument(
        "--alphas",
        type=_alphas,
        help="a sweep: a list like 0,0.25,0.5,0.75,1 or a range START:STOP:STEP like 0:1:0.1",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    from finetune.wise_score import add_score_options

    add_score_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from finetune.wise_score import check_score_options, score_checkpoints

    parser = build_parser()
    args = parser.parse_args(argv)
    sweep = args.alphas is not None
    alphas = args.alphas if sweep else [args.alpha]
    try:
        existing = [p for p in wise_targets(args.out, alphas, sweep) if p.exists()]
        if existing and not args.overwrite:  # before the (slow) loading
            raise ConfigError(f"{existing[0]} already exists; pass --overwrite to replace it")
        check_score_options(args)  # benchmarks, data and database: before the loading too
        try:
            base = load_model(args.base)
        except HubModelNotCached as err:
            raise err.advise("`--base DIR`") from err
        finetuned = load_model(args.finetuned)
        written = write_wise(base, finetuned, alphas, args.out, sweep, args.overwrite)
        for path in written:
            print(path)
        if args.score:
            score_checkpoints(written, args)
    except EvalSuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
