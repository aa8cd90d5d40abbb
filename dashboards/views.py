"""The leaderboard's names and units: column titles and display orders from the labels
of ``evalsuite.labels``, and how numbers, changes, durations and sizes are written.

No Streamlit and no database here, nor in the modules that shape the store's DataFrames
for the pages (``table_columns``, ``model_table``, ``wise_curves``, ``run_provenance``,
``images``, ``page_tables``, ``charts``): ``dashboards/leaderboard.py`` reads through
``evalsuite.store`` and passes the frames in; tests build frames by hand.

Units: rates (accuracy, F1, recall...) are stored as fractions and shown as percentages, so
their differences are percentage points ("pts"); counts (pretest, IR hits) carry a
``maximum`` and are shown as counts out of it. Whether a difference is real is never decided
here: ``dashboards.overview`` shows the verdicts of ``evalsuite.verdicts``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from evalsuite import labels
from evalsuite.labels import benchmark_order, is_classification_metric, metric_words, task_label

TASK_ORDER = (  # display order of task names common to benchmarks; others after, by name
    "article_type",
    "lace_colour",
    "base_colour",
    "text_search",
    "image_search",
    "lace_search",
)
MAIN_METRICS = ("acc@1", "ir_hits")  # first columns of the overview
METRIC_ORDER = (
    "acc@1",
    "acc@3",
    "acc@5",
    "balanced_accuracy",
    "f1_macro",
    "f1_macro_present",
    "f1_weighted",
    "pretest",
    "ir_hits",
    "ir_by_position",
)

# ---------------------------------------------------------------- names and units


def order_key(value: str, order: Sequence[str]) -> tuple[int, str]:
    """Sorts ``value`` by its place in ``order``, values not in it after, by name."""
    return (order.index(value), "") if value in order else (len(order), value)


def _fmt_max(maximum: float | None) -> str:
    return f"{maximum:,.0f}" if maximum is not None and not pd.isna(maximum) else ""


def metric_label(
    benchmark: str,
    task: str,
    metric: str,
    maximum: float | None = None,
    task_type: str | None = None,
) -> str:
    """Column title: "Zero-shot accuracy (footwear type)", "Text search hits / 390",
    "kNN accuracy (catalogue knn article type)" (``task_type`` from the run's record)."""
    suffix = f" / {_fmt_max(maximum)}" if _fmt_max(maximum) else ""
    if is_classification_metric(metric):
        return f"{labels.metric_label(metric, task_type)} ({task_label(benchmark, task)}){suffix}"
    return f"{task_label(benchmark, task)} {metric_words(metric)}{suffix}"


def short_label(benchmark: str, task: str, metric: str) -> str:
    """Wording for a sentence: "footwear type accuracy", "text search hits"."""
    if metric == "acc@1":
        return f"{task_label(benchmark, task)} accuracy"
    if is_classification_metric(metric):
        return f"{task_label(benchmark, task)} {metric_words(metric)}"
    words = f"{task_label(benchmark, task)} {metric_words(metric)}"
    return words[0].lower() + words[1:]


def is_count(maximum: Any) -> bool:
    return maximum is not None and not pd.isna(maximum) and float(maximum) > 0


def shown(value: Any, maximum: Any) -> float:
    """The number as displayed: a count as is, a rate in percent."""
    if value is None or pd.isna(value):
        return math.nan
    return float(value) if is_count(maximum) else 100.0 * float(value)


def points(value: Any, maximum: Any) -> float:
    """Percent of the best possible score: rates x 100, counts / maximum x 100."""
    if value is None or pd.isna(value):
        return math.nan
    return 100.0 * float(value) / float(maximum) if is_count(maximum) else 100.0 * float(value)


def fmt_number(value: float, count: bool) -> str:
    if pd.isna(value):
        return "–"
    if count:
        return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:.1f}"
    return f"{value:.1f}"


def fmt_delta(delta: float, count: bool) -> str:
    """Signed difference with a real minus sign: "+10.1", "−5.0", "+12"."""
    if pd.isna(delta):
        return ""
    sign = "+" if delta >= 0 else "−"
    body = f"{abs(delta):,.0f}" if count and abs(delta) >= 1 else f"{abs(delta):.1f}"
    return f"{sign}{body}"


def fmt_duration(seconds: Any) -> str:
    if seconds is None or pd.isna(seconds) or seconds <= 0:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_params(count: Any) -> str:
    if count is None or pd.isna(count) or count <= 0:
        return ""
    return f"{count / 1e6:,.1f} M" if count < 1e9 else f"{count / 1e9:.2f} B"


def short_hash(value: Any, n: int = 10) -> str:
    return "" if value is None or pd.isna(value) else str(value)[:n]


def task_sort(benchmark: str, task: str) -> tuple[Any, ...]:
    """Display order of (benchmark, task): benchmarks by their YAML ``display_order``,
    known task names first."""
    return (*benchmark_order(benchmark), *order_key(task, TASK_ORDER))
