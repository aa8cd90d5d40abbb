"""Run logging: ``steps.jsonl``, one JSON line per logged optimizer step.

Only the main process writes. On ``--resume`` the lines logged after the restored state are
dropped, so every step appears once whatever was interrupted. A write that fails (a full
disk) stops training with a TrainingError naming the file, which keeps whole lines only.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from evalsuite.errors import TrainingError
from finetune.checkpoint import disk_full, save_error


class StepLog:
    """Appends ``{"step", "epoch", "loss", "lr", "time", ...}`` lines to ``steps.jsonl``."""

    def __init__(self, out_dir: str | Path, enabled: bool) -> None:
        self.path = Path(out_dir) / "steps.jsonl"
        self.enabled = enabled

    def start(self) -> None:
        """A fresh run: an empty file."""
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def truncate(self, step: int) -> None:
        """Keep the lines up to ``step`` (a resumed run logs the later ones again). Written
        aside and swapped in: a full disk must not cost the lines already logged."""
        if not (self.enabled and self.path.is_file()):
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise self._error(err, f"{self.path} is unchanged") from err

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        size = self.path.stat().st_size if self.path.is_file() else 0
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as err:
            with contextlib.suppress(OSError):  # cut a half-written line (frees space too)
                os.truncate(self.path, size)
            kept = f"{self.path} ends with its last complete line"
            raise self._error(err, kept + ", and the checkpoints saved so far are kept") from err

    def _error(self, err: OSError, kept: str) -> TrainingError:
        return save_error(self.path, err, disk_full(err, self.path.parent), kept)
