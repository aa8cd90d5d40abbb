"""Saving and resuming a run: the ``best/`` and ``last/`` model folders, the resumable
``state/``, and ``--resume`` (finding the state, restoring it, checking the config).

Why not ``Accelerator.save_state`` / ``load_state`` with ``register_for_checkpointing``
(accelerate 1.15, checked with a probe script; the lines are accelerate's
``checkpointing.py``):

* It writes another layout: ``optimizer.bin``, ``scheduler.bin``, ``random_states_<rank>.pkl``,
  ``custom_checkpoint_<n>.pkl`` (``state/`` holds ``optimizer.pt``, ``scheduler.pt``,
  ``rng.safetensors``, ``progress.json``, which tests/faults/test_kill_training.py lists and
  ``finetune.output.previous_run`` reads), and the weights of the prepared wrapper, not of the
  model's own module.
* Registered objects are unpickled without restriction: ``load_custom_state`` calls
  ``load(..., weights_only=False)`` (line 340); a ``custom_checkpoint_0.pkl`` holding a
  pickled callable ran it during ``load_state`` in the probe. ``--resume`` must refuse such
  a file (tests/faults/test_security.py): :func:`finetune.checkpoint.load_tensors`.
* An RNG file that cannot be read is skipped with an info log (``except Exception:
  logger.info("Could not load random states")``, line 318): the probe's garbage
  ``random_states_0.pkl`` loaded "successfully" and left the generators as they were, so the
  resumed run silently stops replaying the interrupted one.
* One RNG file per process index (line 156): a resume on more processes finds no file for
  the new ranks; ``rng.safetensors`` holds every process's row and ranks reuse them modulo.
* It writes into the folder in place (``os.makedirs(output_dir, exist_ok=True)``), so a kill
  mid-save leaves a half-written ``state/``; ours is written aside and swapped in
  (:func:`finetune.checkpoint.replace_atomically`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from evalsuite.errors import ConfigError
from finetune import checkpoint
from finetune.build import set_threshold
from finetune.config import TrainConfig
from finetune.divergence import LossWatch
from finetune.run import Progress, Run
from finetune.validation import ema_weights

log = logging.getLogger("finetune")


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


def restore(run: Run, optimizer, accelerator: Accelerator, state: Path) -> Progress:
    """Load ``state`` into the run (this process's RNG row); warn where the config changed."""
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


def save_model(run: Run, accelerator: Accelerator, progress: Progress, kind: str) -> None:
    """best/ or last/: a plain model folder (LoRA merged into a copy) plus training.json."""
    if not accelerator.is_main_process:
        return
    with ema_weights(run):
        model = run.model
        if run.cfg.lora.enabled:
            from finetune.lora import merge_lora  # peft is slow to import: only LoRA runs pay

            model = merge_lora(copy.deepcopy(run.model))
        record = checkpoint.training_record(
            run.cfg, asdict(progress), run.info, list(run.data.classes), kind
        )
        checkpoint.save_checkpoint(Path(run.cfg.output.dir) / kind, model, record)
