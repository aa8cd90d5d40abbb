"""How metric values, intervals and changes read: one place for the CLI, the report and the
leaderboard (what metrics are called: ``evalsuite.labels``).

Pure functions of plain numbers, no pandas or database. Two kinds of metric:

- **fractions** (``acc@k``, ``balanced_accuracy``, ``f1_*``, ``P@k``, ``Recall@k``, ``MRR``,
  ``NDCG@k``, ``MAP@k``), stored as 0..1, print as percentages: ``69.76%``; their intervals
  in percent without the sign, ``[66.9, 72.6]``; their changes in percentage points,
  ``+10.10 pts``;
- **scored points** (``pretest``, ``ir_hits``, ``ir_by_position``, anything stored with a
  ``maximum``) print as ``274 / 390``; changes as ``+27``.

Points print as whole numbers when they are whole (within 0.05), else with one decimal
(``ir_by_position`` sums fractional weights: ``127.4 / 390``). Metric names are matched
case-insensitively (``recall@10`` and ``Recall@10`` are the same metric).
"""

from __future__ import annotations

import math
import re

MISSING = "—"  # a value that was not measured (model not scored on that benchmark)

_FRACTION = re.compile(
    r"(acc@\d+|balanced_accuracy|accuracy|f1_\w+|p@\d+|recall@\d+|mrr|ndcg@\d+|map@\d+"
    r"|nn_agreement:.+|mean_pairwise_similarity)$",
    re.I,
)
POINT_METRICS = frozenset({"pretest", "ir_hits", "ir_by_position"})


def is_fraction(metric_name: str) -> bool:
    """Whether the metric is a 0..1 fraction shown as a percentage."""
    return bool(_FRACTION.fullmatch(metric_name))


def is_missing(value: float | None) -> bool:
    """None or NaN (how a database NULL reaches pandas)."""
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _is_points(metric_name: str, maximum: float | None) -> bool:
    return not is_missing(maximum) or metric_name.lower() in POINT_METRICS


def _points(value: float) -> str:
    """A whole number when within 0.05 of one, else one decimal."""
    rounded = round(value)
    if abs(value - rounded) < 0.05:
        return str(int(rounded))
    return f"{value:.1f}"


def format_value(metric_name: str, value: float | None, maximum: float | None = None) -> str:
    """``69.76%`` for a fraction, ``274 / 390`` for points with a maximum, ``—`` when
    missing."""
    if is_missing(value):
        return MISSING
    if is_fraction(metric_name) and is_missing(maximum):
        return f"{value * 100:.2f}%"
    if _is_points(metric_name, maximum):
        text = _points(value)
        return text if is_missing(maximum) else f"{text} / {_points(maximum)}"
    return f"{value:.4g}"


def format_interval(
    metric_name: str, low: float | None, high: float | None, maximum: float | None = None
) -> str:
    """``[66.9, 72.6]`` in the units of :func:`format_value` (percent for fractions, whole
    points for scores); empty when the interval was not computed."""
    if is_missing(low) or is_missing(high):
        return ""
    if is_fraction(metric_name) and is_missing(maximum):
        return f"[{low * 100:.1f}, {high * 100:.1f}]"
    if _is_points(metric_name, maximum):
        return f"[{round(low)}, {round(high)}]"
    return f"[{low:.4g}, {high:.4g}]"


def format_delta(metric_name: str, delta: float | None, maximum: float | None = None) -> str:
    """A signed change: ``+10.10 pts`` (percentage points) for a fraction, ``+27`` for
    points; ``—`` when missing."""
    if is_missing(delta):
        return MISSING
    if is_fraction(metric_name) and is_missing(maximum):
        text = f"{abs(delta) * 100:.2f}"
        suffix = " pts"
    elif _is_points(metric_name, maximum):
        text, suffix = _points(abs(delta)), ""
    else:
        text, suffix = f"{abs(delta):.4g}", ""
    if float(text) == 0:
        return f"{text}{suffix}"  # no sign on a change that rounds to nothing
    return f"{'+' if delta > 0 else '-'}{text}{suffix}"


# Markdown syntax a name could carry: CommonMark's (emphasis, headings, links, code, tables,
# HTML) and Streamlit's colour and icon directives (:red[...]), emoji shortcodes and LaTeX.
# A backslash before ASCII punctuation shows it as itself in both (report.md, the leaderboard).
_MARKDOWN = re.compile(r"([\\`*_\[\]#$:~<>|])")


def md(text: object) -> str:
    """``text`` (a model, benchmark, class name...) escaped to show as itself in Markdown:
    a model called ``**x** :red[y]`` must not render bold and red."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).splitlines()))
