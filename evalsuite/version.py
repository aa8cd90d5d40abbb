"""The code version recorded with every result: package version plus git commit."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from evalsuite import __version__


@lru_cache(maxsize=1)
def code_version() -> str:
    """``0.1.0+g1a2b3c4`` (``.dirty`` when the work tree has changes), or the bare version
    outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    suffix = ".dirty" if dirty.stdout.strip() else ""
    return f"{__version__}+g{commit.stdout.strip()}{suffix}"
