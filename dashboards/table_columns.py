"""The overview's metric columns (headline metrics of every task, or every metric), the
trade-off's default target and general columns, and what the runs recorded of each task
(its YAML type, why it was skipped)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from dashboards.views import MAIN_METRICS, METRIC_ORDER, metric_label, order_key, task_sort
from evalsuite.labels import benchmark_order, is_general, shown_by_default, target_tasks
from evalsuite.results import RunExtra

# ---------------------------------------------------------------- headline columns


@dataclass(frozen=True)
class Column:
    """One metric column of the overview: a metric of a task of a benchmark."""

    benchmark: str
    task: str
    metric: str
    label: str
    count: bool = False
    maximum: float | None = None  # when every model shares it

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.benchmark, self.task, self.metric)


def metric_columns(
    metrics: pd.DataFrame,
    all_metrics: bool = False,
    task_types: dict[tuple[str, str], str] | None = None,
) -> list[Column]:
    """The overview's metric columns: headline metrics of every benchmark/task present (or
    every metric). The main number of each task (accuracy, hits) comes first, so that the
    target and the general benchmarks fit on one screen; then F1, pretest, by-position.
    ``task_types`` ((benchmark, task) -> YAML type, see :func:`task_types`) names what an
    accuracy is of (zero-shot, kNN, linear probe)."""
    if metrics.empty:
        return []
    columns = []
    groups = metrics.groupby(["benchmark", "task"], sort=False)
    for benchmark, task in sorted(groups.groups, key=lambda bt: task_sort(*bt)):
        part = groups.get_group((benchmark, task))
        present = sorted(set(part["metric"]), key=lambda m: order_key(m, METRIC_ORDER))
        chosen = present if all_metrics else shown_by_default(benchmark, task, present)
        for metric in chosen:
            maxima = part.loc[part["metric"] == metric, "maximum"].dropna().unique()
            count = len(maxima) > 0
            maximum = float(maxima[0]) if len(maxima) == 1 else None
            columns.append(
                Column(
                    benchmark,
                    task,
                    metric,
                    metric_label(
                        benchmark, task, metric, maximum, (task_types or {}).get((benchmark, task))
                    ),
                    count,
                    maximum,
                )
            )
    if not all_metrics:
        main = [c for c in columns if c.metric in MAIN_METRICS]
        columns = main + [c for c in columns if c.metric not in MAIN_METRICS]
    return columns


def find_column(columns: Iterable[Column], key: tuple[str, str, str]) -> Column | None:
    return next((c for c in columns if c.key == tuple(key)), None)


def default_target(metrics: pd.DataFrame) -> tuple[str, str, str] | None:
    """Target of the trade-off: the accuracy of the first scored of a target benchmark's
    ``target_tasks`` (footwear lace colour, else footwear type), benchmarks in display order;
    else the first classification accuracy of a non-general benchmark, else the first metric."""
    if metrics.empty:
        return None
    keys = set(zip(metrics["benchmark"], metrics["task"], metrics["metric"], strict=True))
    for benchmark in sorted({k[0] for k in keys}, key=benchmark_order):
        for task in target_tasks(benchmark) if not is_general(benchmark) else ():
            if (benchmark, task, "acc@1") in keys:
                return benchmark, task, "acc@1"
    ranked = sorted(keys, key=lambda k: (*task_sort(k[0], k[1]), *order_key(k[2], METRIC_ORDER)))
    specific = [k for k in ranked if not is_general(k[0])]
    for key in specific:
        if key[2] == "acc@1":
            return key
    return (specific or ranked)[0]


def general_columns(columns: Iterable[Column], target: tuple[str, str, str] | None = None):
    """Accuracy columns of the general benchmarks (FMNIST, DeepFashion, custom)."""
    return [
        c for c in columns if is_general(c.benchmark) and c.metric == "acc@1" and c.key != target
    ]


# ---------------------------------------------------------------- task records


def task_types(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(benchmark, task) -> the task's YAML type, as the runs recorded it (``extra.tasks``)."""
    out: dict[tuple[str, str], str] = {}
    for benchmark, extra in zip(runs.get("benchmark", []), runs.get("extra", []), strict=True):
        for task, kind in RunExtra.from_json(extra).task_types().items():
            if kind:
                out.setdefault((benchmark, task), kind)
    return out


def skipped_tasks(runs: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(model name, benchmark, task) -> why the run did not score the task, e.g. a
    text task on precomputed image embeddings without a text encoder. From the runs shown
    (pass :func:`latest_runs`); their cells read "n/a", not blank and never zero."""
    out: dict[tuple[str, str, str], str] = {}
    for run in runs.to_dict("records"):
        for task, reason in RunExtra.from_json(run.get("extra")).skipped_tasks.items():
            out[(run["model_name"], run["benchmark"], task)] = reason
    return out
