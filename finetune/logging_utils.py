"""Run logging: ``steps.jsonl`` (one JSON line per logged optimizer step) and tracker config.

Only the main process writes. On ``--resume`` the lines logged after the restored state are
dropped, so every step appears once whatever was interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
        """Keep the lines up to ``step`` (a resumed run logs the later ones again)."""
        if not (self.enabled and self.path.is_file()):
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat ``section.key`` scalars (what trackers accept)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = str(value)  # None, lists: TensorBoard takes scalars only
    return out
