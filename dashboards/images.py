"""Thumbnails safely: only image files inside a data root that a run recorded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.results import RunExtra

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")

# ---------------------------------------------------------------- images


def allowed_roots(runs: pd.DataFrame) -> list[Path]:
    """Folders thumbnails may come from: the data roots recorded in runs (plus image roots a
    run recorded in ``extra["image_roots"]``). The filesystem root itself never counts."""
    roots: list[str] = [r for r in runs.get("data_root", pd.Series(dtype=object)) if r]
    for extra in runs.get("extra", pd.Series(dtype=object)):
        roots += RunExtra.from_json(extra).image_roots
    out = []
    for root in dict.fromkeys(str(r) for r in roots if r and not pd.isna(r)):
        try:
            path = Path(root).expanduser().resolve()
        except (OSError, RuntimeError):  # pragma: no cover
            continue
        if len(path.parts) > 1:
            out.append(path)
    return out


def safe_image_path(image_path: Any, data_root: Any, roots: Sequence[Path | str]) -> Path | None:
    """The image file to show, or None when it is missing, not an image, or resolves (after
    ``..`` and symlinks) outside every recorded data root."""
    if image_path is None or (isinstance(image_path, float) and pd.isna(image_path)):
        return None
    text = str(image_path)
    if not text or "\x00" in text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        if not data_root or (isinstance(data_root, float) and pd.isna(data_root)):
            return None
        path = Path(str(data_root)) / path
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    for root in roots:
        try:
            inside = resolved.is_relative_to(Path(root).resolve())
        except (OSError, RuntimeError):  # pragma: no cover
            inside = False
        if inside and len(Path(root).resolve().parts) > 1:
            return resolved if resolved.is_file() else None
    return None
