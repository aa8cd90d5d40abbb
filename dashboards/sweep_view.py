"""The leaderboard's view of sweeps: filter and colour the models by a hyper-parameter.

The hyper-parameters of each model come from :func:`evalsuite.sweeps.hyperparameter_table`
(a sweep trial's swept keys, the common config keys of every fine-tune, WiSE-FT alpha, soup
kind), so the board and ``evalsuite report`` read them alike. The sidebar's select picks a
key, the multiselect the values kept: the filter acts on every page's models (the baseline
always stays, as the origin of every change) and the trade-off chart colours its points by
that key's value.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from evalsuite.sweeps import hyperparameter_table, value_text

NONE = "(none)"
NOT_SET = "—"  # a model without the key (a base model, or a fine-tune before the key existed)


def hyperparameter_values(models: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Key -> {model name: value as shown} for every key at least one model has, swept keys
    first; a model without the key shows :data:`NOT_SET`."""
    table = hyperparameter_table(models)
    out = {}
    for key in table.columns[3:]:
        if table[key].notna().any():
            out[key] = {
                name: value_text(value) if value is not None else NOT_SET
                for name, value in zip(table["name"], table[key], strict=True)
            }
    return out


def _value_order(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1 if text != NOT_SET else 2, 0.0, text)


def hyperparameter_filter(
    bar: Any, models: pd.DataFrame, baseline: str | None
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The sidebar's "Colour/filter by hyper-parameter": the models kept (the baseline
    always) and the colouring (``{"key", "by_model"}``), or the models unchanged and None."""
    values = hyperparameter_values(models)
    if not values:
        return models, None
    bar.subheader("Hyper-parameters")
    options = [NONE, *values]
    if st.session_state.get("hp_key") not in options:
        st.session_state.pop("hp_key", None)
    key = bar.selectbox(
        "Colour/filter by hyper-parameter", options, key="hp_key",
        help="Sweep trials' swept keys first, then the fine-tuning settings of every model.",
    )  # fmt: skip
    if key == NONE:
        return models, None
    by_model = values[key]
    shown = sorted(set(by_model.values()), key=_value_order)
    chosen = bar.multiselect(
        f"Models with {key}", shown, default=shown, key=f"hp_values_{key}",
        help=f"{NOT_SET}: the model has no {key} (e.g. a base model).",
    )  # fmt: skip
    keep = models["name"].map(lambda n: by_model.get(n, NOT_SET) in chosen or n == baseline)
    return models[keep].reset_index(drop=True), {"key": key, "by_model": by_model}


def colour_points(points: pd.DataFrame, colour: dict[str, Any] | None) -> pd.DataFrame:
    """The trade-off points with a ``colour`` column (the hyper-parameter's value)."""
    if colour is None or points.empty:
        return points
    by_model = colour["by_model"]
    return points.assign(colour=points["model"].map(lambda n: by_model.get(n, NOT_SET)))
