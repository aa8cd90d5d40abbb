"""What every chart of the report shares: the models' colours (the baseline grey), short
labels, error bars, the legend under the plot and axis limits around the origin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evalsuite.report.data import ModelEntry, ReportData

BASELINE_COLOUR = "#8c8c8c"
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#843c39",
)


def model_colours(models: Sequence[ModelEntry]) -> dict[str, str]:
    """Model name -> colour: the baseline (``models[0]``) grey, the others in turn."""
    out = {models[0].name: BASELINE_COLOUR}
    for i, model in enumerate(models[1:]):
        out[model.name] = COLOURS[i % len(COLOURS)]
    return out


def shorten(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def legend_label(data: ReportData, model: ModelEntry) -> str:
    return f"{model.name} (baseline)" if model is data.baseline else model.name


def error_bars(values: list[float], lows: list[float], highs: list[float]) -> np.ndarray:
    """Error-bar lengths below and above each value; 0 where the interval is missing."""
    value, low, high = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    below = np.nan_to_num(np.clip(value - low, 0, None), nan=0.0)
    above = np.nan_to_num(np.clip(high - value, 0, None), nan=0.0)
    return np.vstack([below, above])


def legend_below(fig: Figure, ax: Any) -> None:
    """The models' legend under the plot, in as many columns as the figure's width holds."""
    handles, labels = ax.get_legend_handles_labels()
    entry_in = 0.55 + 0.075 * max(len(label) for label in labels)  # 8 pt text, with its patch
    ncol = max(1, min(len(labels), int(fig.get_figwidth() // entry_in)))
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=ncol, frameon=False)


def axis_limits(values: Sequence[float]) -> tuple[float, float]:
    """Axis limits that show 0 and every value with a margin, at least 2 pts wide."""
    low, high = min(0.0, *values), max(0.0, *values)
    pad = max((high - low) * 0.18, 1.0)
    return low - pad, high + pad
