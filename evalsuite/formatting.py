"""How metric values, intervals and changes read: one place for the CLI, the report and the
leaderboard.

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

# Plain-language names, for people who do not know the metric's code name.
METRIC_LABELS: dict[str, str] = {
    "acc@1": "Zero-shot accuracy",
    "acc@3": "Top-3 accuracy",
    "acc@5": "Top-5 accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "F1 (macro)",
    "f1_weighted": "F1 (weighted)",
    "pretest": "Pretest score",
    "ir_hits": "IR score (hits)",
    "ir_by_position": "IR score by position",
    "MRR": "Mean reciprocal rank",
    "P@1": "Precision@1",
    "P@5": "Precision@5",
    "P@10": "Precision@10",
    "Recall@1": "Recall@1",
    "Recall@5": "Recall@5",
    "Recall@10": "Recall@10",
    "NDCG@10": "NDCG@10",
    "MAP@10": "MAP@10",
    "mean_pairwise_similarity": "Mean pairwise similarity",
    "effective_rank": "Effective rank",
}
# acc@1 of a probe is not zero-shot: the task's YAML type names what the accuracy is of.
ACCURACY_LABELS: dict[str, str] = {"knn": "kNN accuracy", "linear_probe": "Linear-probe accuracy"}
_LABELS_LOWER = {name.lower(): label for name, label in METRIC_LABELS.items()}
_PATTERN_LABELS = (  # metric families not listed above, e.g. acc@7 or NDCG@5
    (re.compile(r"acc@(\d+)$", re.I), "Top-{} accuracy"),
    (re.compile(r"p@(\d+)$", re.I), "Precision@{}"),
    (re.compile(r"recall@(\d+)$", re.I), "Recall@{}"),
    (re.compile(r"ndcg@(\d+)$", re.I), "NDCG@{}"),
    (re.compile(r"map@(\d+)$", re.I), "MAP@{}"),
    (re.compile(r"nn_agreement:(.+)$", re.I), "NN label agreement ({})"),
)

BENCHMARK_LABELS: dict[str, str] = {
    "footwear": "Footwear",
    "fmnist": "Fashion-MNIST",
    "deepfashion": "DeepFashion",
    "custom": "Custom",
}

_FRACTION = re.compile(
    r"(acc@\d+|balanced_accuracy|accuracy|f1_\w+|p@\d+|recall@\d+|mrr|ndcg@\d+|map@\d+"
    r"|nn_agreement:.+|mean_pairwise_similarity)$",
    re.I,
)
POINT_METRICS = frozenset({"pretest", "ir_hits", "ir_by_position"})

# Task kinds: the ``type`` of a benchmark YAML task -> the kind the headline set is keyed by.
TASK_KINDS: dict[str, str] = {
    "zeroshot": "zeroshot",
    "text_to_image": "retrieval",
    "image_to_image": "retrieval",
    "retrieval": "retrieval",
}
_HEADLINE: tuple[tuple[str, str], ...] = (
    ("zeroshot", "acc@1"),
    ("zeroshot", "f1_macro"),
    ("zeroshot", "f1_weighted"),
    ("zeroshot", "pretest"),
    ("retrieval", "ir_hits"),
    ("retrieval", "ir_by_position"),
    ("retrieval", "MRR"),
    ("retrieval", "Recall@10"),
)
# The first of each kind is the task's primary score (what one number per task shows).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "zeroshot": ("acc@1", "pretest"),
    "retrieval": ("ir_hits", "ir_by_position"),
}


def headline_metrics(task_type: str | None = None) -> tuple[tuple[str, str], ...]:
    """The headline ``(task kind, metric)`` pairs in display order, of one task type (a YAML
    ``type`` such as ``text_to_image``, or a kind: ``zeroshot`` / ``retrieval``) or all."""
    if task_type is None:
        return _HEADLINE
    kind = TASK_KINDS.get(task_type, task_type)
    return tuple(pair for pair in _HEADLINE if pair[0] == kind)


def task_kind(metric_names: object) -> str | None:
    """``zeroshot`` or ``retrieval`` from the metrics a task produced (the metrics table has
    no task type), or None when neither family is present."""
    names = {str(name).lower() for name in metric_names}  # type: ignore[union-attr]
    if names & {"acc@1", "pretest", "f1_macro"}:
        return "zeroshot"
    if names & {"ir_hits", "ir_by_position", "mrr"}:
        return "retrieval"
    return None


def metric_label(name: str, task_type: str | None = None) -> str:
    """Plain-language name of a metric (``acc@1`` -> ``Zero-shot accuracy``, or ``kNN
    accuracy`` with ``task_type="knn"``); unknown names are returned as they are."""
    if name == "acc@1" and task_type in ACCURACY_LABELS:
        return ACCURACY_LABELS[task_type]
    label = _LABELS_LOWER.get(name.lower())
    if label:
        return label
    for pattern, template in _PATTERN_LABELS:
        match = pattern.match(name)
        if match:
            return template.format(match.group(1))
    return name


def benchmark_label(benchmark: str) -> str:
    return BENCHMARK_LABELS.get(benchmark, benchmark)


def task_label(task: str) -> str:
    """``article_type`` -> ``article type``."""
    return task.replace("_", " ")


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
