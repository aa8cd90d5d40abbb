"""The report's files: every one written to a temporary name first and renamed into place,
so a reader (a browser, a CI job) never sees a partial report.md or PNG."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 150


def slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits and dashes, at most 60 characters."""
    found = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return found[:60] or "x"


def _replace_into(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp_path)``, then rename over ``path``: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(fig: Figure, path: Path) -> None:
    """The figure as a PNG at :data:`DPI`, drawn with the Agg canvas (no pyplot, no global
    backend)."""
    FigureCanvasAgg(fig)
    _replace_into(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, facecolor="white"))


def write_text(path: Path, text: str) -> None:
    _replace_into(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
