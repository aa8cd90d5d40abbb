"""Checkpoints: model folders other tools load, and the resumable training state.

``best/`` and ``last/`` are plain model folders (``ClipModel.save``: Hugging Face
``save_pretrained`` or open_clip's layout, safetensors only) plus ``training.json`` (what
``evalsuite`` shows as the model's training history) and a short model card ``README.md``.

``state/`` is what ``--resume`` reads: ``model.safetensors`` (the trainable module, LoRA
adapters included), ``optimizer.pt`` / ``scheduler.pt`` / ``ema.pt`` / ``scaler.pt``
(tensors and plain numbers only, loaded with ``torch.load(weights_only=True)``),
``rng.safetensors`` (python, numpy, torch and CUDA generator states of every process, as
tensors: nothing is unpickled) and ``progress.json`` (epoch, batches done, history, ...).

Every folder is written to a temporary sibling and swapped in (rename the old one away,
rename the new one in, delete the old), so a crash leaves either the old or the new folder;
:func:`recover` finishes an interrupted swap.
"""

from __future__ import annotations

import errno
import json
import math
import pickle
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from evalsuite.data.manifest import load_manifest, sha256_file
from evalsuite.errors import ConfigError, DataError, TrainingError
from evalsuite.models.base import ClipModel
from evalsuite.models.checks import describe_mismatch, file_shapes, shape_mismatches
from finetune.config import flatten_config

TRAINING_FILE = "training.json"
PROGRESS_FILE = "progress.json"


# --- atomic folders ----------------------------------------------------------------------------


def _old(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover(out: Path) -> None:
    """Finish a swap that a crash interrupted, and remove abandoned temporary folders."""
    old = _old(out)
    if old.is_dir():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)  # crashed after the new folder was in place
        else:
            try:
                old.rename(out)  # crashed between the two renames: the old folder is complete
            except OSError:
                if not out.is_dir():  # not another process of the run that got there first
                    raise
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def replace_atomically(
    out: Path, write: Callable[[Path], None], who: str = "training stopped", again: str = ""
) -> None:
    """Call ``write(tmp)`` on a fresh temporary folder, then swap it in as ``out``. A write
    that fails (a full disk) is a TrainingError; the previous ``out`` stays as it was.
    ``who`` and ``again`` word the error for another command (see :func:`save_error`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        write(tmp)
        if out.exists():
            out.rename(_old(out))
        tmp.rename(out)
    except (OSError, SafetensorError, RuntimeError) as err:
        full = disk_full(err, out.parent)  # before the removal below frees space again
        shutil.rmtree(tmp, ignore_errors=True)
        recover(out)  # failed between the two renames: the previous folder goes back
        if not full and isinstance(err, RuntimeError):
            raise  # not an I/O error: a bug keeps its traceback
        raise save_error(out, err, full, who=who, again=again) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(_old(out), ignore_errors=True)


def disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` comes from a full disk. torch's writer raises a RuntimeError without
    errno, and safetensors' a SafetensorError quoting the OS error: hence the free space."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(err) or "os error 28" in str(err):
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def save_error(
    out: Path,
    err: BaseException,
    full: bool,
    kept: str = "",
    who: str = "training stopped",
    again: str = "",
) -> TrainingError:
    """The error of a failed save of ``out``: ``kept`` says what is intact (default: the
    previous folder, or that none was created), ``who`` what stopped, ``again`` how to go
    on once fixed (default: run again with --resume)."""
    cause = (
        "the disk is full (No space left on device)"
        if full
        else getattr(err, "strerror", None) or str(err)
    )
    kept = kept or (f"the previous {out} is kept" if out.is_dir() else f"{out} was not created")
    advice = "Free some space" if full else "Fix that"
    return TrainingError(
        f"{who}: cannot save {out}: {cause}. Nothing was half-written: {kept}. "
        f"{advice}, then {again or 'run again with --resume'}"
    )


# --- model checkpoints -------------------------------------------------------------------------


def save_checkpoint(out: Path, model: ClipModel, training: dict[str, Any]) -> None:
    """A model folder loadable by transformers / open_clip, plus training.json and README."""

    def write(tmp: Path) -> None:
        model.save(tmp)
        (tmp / TRAINING_FILE).write_text(json.dumps(training, indent=2, default=str) + "\n")
        loader = type(model.module).__name__ if model.backend == "hf" else None
        (tmp / "README.md").write_text(model_card(training, model.backend, loader))

    replace_atomically(out, write)


def _number(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def model_card(training: dict[str, Any], backend: str, hf_class: str | None = None) -> str:
    """A short Markdown model card: what, from what, on what, how well, how to load."""
    base, data = training["base_model"], training["data"]
    rows = [
        f"| {h['epoch']} | {_number(h.get('train_loss'))} | {_number(h.get('val_loss'))} "
        f"| {_number(h.get('val_accuracy'))} | {_number(h.get('lr'), 3)} |"
        for h in training["history"]
    ]
    load = (
        f'transformers.{hf_class or "CLIPModel"}.from_pretrained("<this folder>")'
        if backend == "hf"
        else 'open_clip.create_model_and_transforms("local-dir:<this folder>")'
    )
    return "\n".join(
        [
            f"# {training['run_name']}",
            "",
            f"Fine-tuned from `{base['spec']}` by `finetune` (code {training['code_version']})",
            f"on `{data['path']}` (manifest {str(data.get('manifest_hash'))[:12]}), objective "
            f"`{training['objective']}`, target field `{training['target_field']}`.",
            f"This folder holds the weights of epoch {training['epoch']} ({training['kind']}); "
            f"best epoch by validation loss: {training['best_epoch']}.",
            "",
            "| epoch | train loss | val loss | val zero-shot acc | lr |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Load with `{load}` or score with `evalsuite score <this folder>`.",
            "",
        ]
    )


def code_version() -> str:
    """Package version + git commit (evalsuite.version), or the bare version."""
    try:
        from evalsuite.version import code_version as version
    except ImportError:  # pragma: no cover - a checkout without evalsuite.version
        from evalsuite import __version__

        return __version__
    return version()


HASHED_SOURCE_BYTES = 256 * 2**20  # a bigger single file (a tar, a Parquet) is not read at start


def data_fingerprint(
    path: str | Path, reader: str = "catalogue", options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The data source, and the hashes of a prepared catalogue from its manifest.json
    (None for other readers, and where there is none)."""
    source = {"reader": reader, "options": dict(options or {})}
    try:
        manifest = load_manifest(Path(path)) if reader == "catalogue" else None
    except DataError:
        manifest = None
    if manifest is None:
        # a single source file (CSV, TSV, Parquet, tar) is hashed; a folder of another format
        # has no manifest to hash, and reading every image here would cost what streaming saves
        file = Path(path)
        small = file.is_file() and file.stat().st_size <= HASHED_SOURCE_BYTES
        source["file_sha256"] = sha256_file(file) if small else None
        if file.is_file():
            source["file_bytes"] = file.stat().st_size
        return {"path": str(file.resolve()), **source, "manifest_hash": None}
    keys = ("manifest_hash", "split_hashes", "images_hash", "files", "sizes", "format")
    return {"path": str(Path(path).resolve()), **source, **{k: manifest.get(k) for k in keys}}


# --- RNG states as tensors -------------------------------------------------------------------


def rng_state() -> dict[str, torch.Tensor]:
    """This process's python, numpy, torch (and CUDA) generator states as tensors.

    Not accelerate's ``random_states_<rank>.pkl`` (``Accelerator.save_state``): that is a
    pickle per process, and its loader skips an unreadable one with an info log
    (accelerate 1.15 checkpointing.py:318), so a resume would silently stop replaying the
    run; it also has no file for a rank beyond the saved process count. Here every
    process's row is gathered into one ``rng.safetensors`` (nothing unpickled) and
    :func:`load_state` takes row ``rank % processes``; see :mod:`finetune.saving`.
    """
    version, keys, gauss = random.getstate()
    _, np_keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": torch.tensor([version, *keys], dtype=torch.int64),
        "python_gauss": torch.tensor([math.nan if gauss is None else gauss], dtype=torch.float64),
        "numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_meta": torch.tensor([pos, has_gauss, cached], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    values = state["python"].tolist()
    gauss = float(state["python_gauss"][0])
    random.setstate((values[0], tuple(values[1:]), None if math.isnan(gauss) else gauss))
    pos, has_gauss, cached = state["numpy_meta"].tolist()
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), cached))
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu())


# --- resumable state ---------------------------------------------------------------------------


def save_state(
    out: Path,
    module: torch.nn.Module,
    objects: dict[str, Any],
    rng_per_process: dict[str, torch.Tensor],
    progress: dict[str, Any],
) -> None:
    """Write ``state/``: module weights, ``objects`` (name -> has state_dict()), the stacked
    (process, ...) RNG states and the progress record."""

    def write(tmp: Path) -> None:
        save_model(module, str(tmp / "model.safetensors"))
        for name, obj in objects.items():
            if obj is not None:
                torch.save(obj.state_dict(), tmp / f"{name}.pt")
        save_file(
            {k: v.contiguous().cpu() for k, v in rng_per_process.items()},
            str(tmp / "rng.safetensors"),
        )
        (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2) + "\n")

    replace_atomically(out, write)


# Keys a resumed run may change without changing what it computes up to the interruption.
RESUME_FREE_KEYS = (
    "output.",
    "train.epochs",
    "train.max_steps",
    "train.log_every",
    "train.checkpoint_every_steps",
    "train.early_stopping_patience",
    "data.num_workers",
)


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dumps, except RESUME_FREE_KEYS."""
    if not saved:  # a state written without its config: nothing to compare
        return []
    old, new = flatten_config(saved), flatten_config(current)
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k) and not k.startswith(RESUME_FREE_KEYS)]


def load_state(
    path: Path, module: torch.nn.Module, objects: dict[str, Any], rank: int
) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote (this process's RNG row); returns the progress."""
    path = Path(path)
    recover(path)
    if not (path / PROGRESS_FILE).is_file():
        raise ConfigError(f"--resume: {path} holds no training state ({PROGRESS_FILE} missing)")
    progress = read_progress(path / PROGRESS_FILE)
    weights = path / "model.safetensors"
    # Shapes first: torch raises a bare RuntimeError on the first shape it cannot copy.
    shapes = file_shapes(weights)
    if shapes is None:  # missing or truncated
        raise ConfigError(f"--resume: cannot read {weights} (missing or truncated)")
    differ = shape_mismatches(shapes, module.state_dict())
    problem = describe_mismatch((), (), differ, declared="model")
    if not problem:
        missing, unexpected = load_model(module, str(weights), strict=False)
        problem = describe_mismatch(missing, unexpected)
    if problem:
        raise ConfigError(
            f"--resume: {path} was saved from another model or config: {problem}. "
            "Resume with the model.spec, lora and lock settings it was saved with, or start "
            "afresh in another output.dir"
        )
    for name, obj in objects.items():
        file = path / f"{name}.pt"
        if obj is not None and file.is_file():
            obj.load_state_dict(load_tensors(file))
    rng = load_file(str(path / "rng.safetensors"))
    processes = next(iter(rng.values())).shape[0]
    set_rng_state({k: v[rank % processes] for k, v in rng.items()})
    return progress


def read_progress(file: Path) -> dict[str, Any]:
    try:
        progress = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--resume: {file}: not a progress record ({err})") from None
    if not isinstance(progress, dict):
        kind = type(progress).__name__
        raise ConfigError(f"--resume: {file}: not a progress record (a JSON {kind}, not an object)")
    return progress


def load_tensors(file: Path) -> Any:
    """A ``.pt`` file of tensors and plain values; a pickle that holds anything else (which
    could run code when unpickled) is refused with a ConfigError naming the file."""
    try:
        return torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            f"--resume: refused {file}: it holds pickled Python objects besides tensors, and "
            "unpickling them could run arbitrary code (state files written by finetune hold "
            "tensors only); resume from a state folder you wrote, or start afresh"
        ) from exc
    except (OSError, RuntimeError, EOFError) as exc:  # truncated or not a torch file
        raise ConfigError(f"--resume: cannot read {file} ({exc})") from exc


def training_record(
    cfg: Any, progress: dict[str, Any], info: dict[str, Any], classes: list[str], kind: str
) -> dict[str, Any]:
    """training.json: what evalsuite exposes as ``model.source.training``."""
    return {
        "run_name": cfg.run_name,
        "kind": kind,
        "epoch": progress["epoch"],
        "global_step": progress["global_step"],
        "best_epoch": progress["best_epoch"],
        "best_val_loss": progress["best_val_loss"],
        "stopped": progress["stopped"],
        "objective": cfg.loss.objective,
        "target_field": cfg.data.target_field,
        "classes": classes,
        "seed": cfg.train.seed,
        # items trained on: the sampler leaves no short step, so every step saw a full one
        "train_samples": progress["global_step"]
        * cfg.train.batch_size
        * cfg.train.accum_steps
        * int((info.get("device") or {}).get("processes") or 1),
        "code_version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        "history": progress["history"],
        "config": cfg.model_dump(mode="json"),
    }
