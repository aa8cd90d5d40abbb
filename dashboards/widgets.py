"""Widgets the leaderboard's pages share: provenance, images and their notes, selectboxes
whose remembered choice may have gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboards import run_provenance

PLACEHOLDER = np.full((96, 96, 3), 228, dtype=np.uint8)


def provenance(runs: pd.DataFrame, models: pd.DataFrame, baseline: str | None) -> None:
    """Expander with what was scored and how; a warning when compared runs differ."""
    messages = run_provenance.mismatch_messages(
        run_provenance.provenance_mismatches(runs, baseline), baseline or "the baseline"
    )
    for message in messages:
        st.warning(message, icon="⚠️")
    with st.expander("Provenance: data, benchmark and code behind these numbers"):
        st.caption(
            "Each row is one scoring run. Runs compare fairly when they share the data "
            "manifest hash (same test items and images) and the benchmark hash (same classes, "
            "prompts and queries)."
        )
        st.dataframe(run_provenance.provenance_table(runs, models), hide_index=True)


def show_image(path: Path | None, caption: str) -> None:
    if path is not None:
        st.image(str(path), caption=caption, width="stretch")
    else:
        st.image(PLACEHOLDER, caption=f"{caption} · no image", width="stretch")


def missing_images_note(image_paths: list[Any], shown: list[Path | None]) -> None:
    """One line explaining the grey squares, instead of a reason under every one."""
    blocked = sum(1 for raw, path in zip(image_paths, shown, strict=True) if raw and not path)
    in_memory = sum(1 for raw in image_paths if not raw)
    if blocked:
        st.caption(
            f"{blocked} image(s) not shown: the file is missing or lies outside the data "
            "folders recorded with the runs (thumbnails are only served from those)."
        )
    if in_memory:
        st.caption(f"{in_memory} item(s) have no image file (e.g. Fashion-MNIST pixels).")


def select(
    container: Any, label: str, key: str, options: list[str], default: Any, format_func=str
) -> Any:
    """A selectbox whose remembered choice is dropped when it is no longer an option."""
    index = options.index(default) if default in options else 0
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return container.selectbox(label, options, index=index, key=key, format_func=format_func)
