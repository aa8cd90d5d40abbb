"""The output folder of a run: usable, and not another run's unless asked.

A fresh run writes ``best/``, ``last/``, ``state/`` and ``steps.jsonl`` one by one over the
course of training, so starting it in a folder that holds another run's files would leave a
mixture (an old ``best/`` beside a new ``last/``) and call the old files "the last good
checkpoints" on divergence. Such a folder is refused unless the run continues it
(``--resume``) or replaces it (``--overwrite``: the old run's files go before anything new
is written). Files that are not the run's (notes, tracker logs) are left alone.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from evalsuite.errors import ConfigError
from evalsuite.registry import suggest

RUN_FOLDERS = ("best", "last", "state")
STEPS_FILE = "steps.jsonl"


def check_folder(out: Path) -> None:
    """``out`` is a folder, or can be created: else a ConfigError naming output.dir."""
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output.dir {out}: is a file, not a folder; choose another output.dir "
            "(or --output-dir)"
        )
    ancestor = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not ancestor.is_dir():
        raise ConfigError(f"output.dir {out}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"output.dir {out}: cannot write in {ancestor} (permission denied)")


def _present(folder: Path) -> bool:
    # .NAME.old: a swap that a crash interrupted; checkpoint.recover puts it back
    return folder.is_dir() or (folder.parent / f".{folder.name}.old").is_dir()


def previous_run(out: Path) -> list[str]:
    """What ``out`` holds of an earlier run, e.g. ``["best/", "state/ (step 40)"]``."""
    held = []
    for name in RUN_FOLDERS:
        if not _present(out / name):
            continue
        label = f"{name}/"
        if name == "state":
            try:
                step = json.loads((out / name / "progress.json").read_text())["global_step"]
                label += f" (step {step})"
            except (OSError, ValueError, KeyError, TypeError):
                pass
        held.append(label)
    steps = out / STEPS_FILE
    if steps.is_file() and steps.stat().st_size:  # an empty log: a run that saved nothing
        held.append(STEPS_FILE)
    return held


def check_output(out: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output folder holding another run unless resuming or overwriting."""
    out = Path(out)
    check_folder(out)
    held = previous_run(out) if out.is_dir() else []
    if held and not (resume or overwrite):
        raise ConfigError(
            f"output.dir {out} already holds another run: {', '.join(held)}. Continue it with "
            "--resume, replace it with --overwrite (its files are deleted first), or choose "
            "another output.dir (or --output-dir)"
        )


def remove_run(out: str | Path) -> None:
    """Delete an earlier run's files in ``out`` (state first: a half-removed run must not
    look resumable), including the temporary and ``.old`` folders of interrupted saves."""
    out = Path(out)
    if not out.is_dir():
        return
    for name in ("state", "best", "last"):
        for folder in [out / name, out / f".{name}.old", *out.glob(f".{name}.tmp-*")]:
            if folder.is_dir():
                shutil.rmtree(folder)
    (out / STEPS_FILE).unlink(missing_ok=True)


def finished_line(out: str | Path, best_epoch: int | None) -> str:
    """The last line of a run: where its model is and the ``evalsuite score`` command to run
    next (best/; last/ when no best/ was saved: no validation split, or output.save_best off)."""
    out = Path(out)
    if (out / "best").is_dir():
        model, what = out / "best", f"best model (epoch {best_epoch})"
    elif (out / "last").is_dir():
        model, what = out / "last", "last model (no best/ saved)"
    else:
        return f"done: no model saved in {out} (output.save_best and output.save_last are off)"
    return f"done: {what} in {model}/; score it next: evalsuite score {shlex.quote(str(model))}"


def check_trackers(log_with: str | None) -> None:
    """``output.log_with`` names a tracker accelerate knows, and one that is installed: for a
    missing one accelerate only warns, and the run logs nothing."""
    if log_with is None or log_with == "all":
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = [t.value for t in LoggerType]
    if log_with not in known:
        raise ConfigError(
            f"output.log_with {log_with!r}: not a tracker accelerate knows"
            f"{suggest(log_with, known)}; use one of {', '.join(known)}, or null"
        )
    if log_with not in {LoggerType(t).value for t in get_available_trackers()}:
        raise ConfigError(
            f"output.log_with {log_with!r}: the {log_with} package is not installed here; "
            f"install it (`pip install {log_with}`), or set output.log_with: null"
        )
