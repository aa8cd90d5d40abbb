"""Pair two runs' per-unit results of one task and test every shared metric.

Units are the task's items (classification and probes: their stored predictions) or queries
(retrieval: their stored per-query values). Verdicts come back uncorrected (``tied`` or
``not comparable``); ``core.apply_correction`` turns adjusted p-values into verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from evalsuite.labels import gated_metrics
from evalsuite.metrics import paired
from evalsuite.verdicts.core import (
    _CONFUSION_METRICS,
    ALPHA,
    NOT_COMPARABLE,
    POWER,
    SUMS,
    TIED,
    MetricVerdict,
    frame_value,
    margin_for,
)

_ACC_AT_K = "acc@"
_SINGULAR = {"items": "item", "queries": "query"}


@dataclass(frozen=True)
class TaskUnits:
    """One run's per-unit results of one task, in unit-id order."""

    unit: str  # "items" or "queries"
    ids: tuple[str, ...]
    true_labels: np.ndarray | None = None  # items
    predicted_labels: np.ndarray | None = None
    true_rank: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)  # queries: metric -> (Q,)


def units_by_run_task(
    predictions: pd.DataFrame, query_values: pd.DataFrame
) -> dict[tuple[str, str], TaskUnits]:
    """{(run_id, task): TaskUnits} from ``store.item_predictions`` and ``store.query_values``."""
    out: dict[tuple[str, str], TaskUnits] = {}
    for (run_id, task), rows in predictions.groupby(["run_id", "task"], sort=False):
        rows = rows.sort_values("item_id", kind="stable")
        out[(run_id, task)] = TaskUnits(
            "items",
            tuple(rows["item_id"].astype(str)),
            rows["true_label"].astype(str).to_numpy(),
            rows["predicted_label"].astype(str).to_numpy(),
            rows["true_rank"].to_numpy(np.int64),
        )
    for (run_id, task), rows in query_values.groupby(["run_id", "task"], sort=False):
        wide = rows.pivot(index="query_id", columns="metric", values="value").sort_index()
        out[(run_id, task)] = TaskUnits(
            "queries",
            tuple(wide.index.astype(str)),
            values={str(m): wide[m].to_numpy(np.float64) for m in wide.columns},
        )
    return out


@dataclass(frozen=True)
class PairedTest:
    """What a metric's verdict rests on: the bootstrap changes and the p-value's test."""

    deltas: np.ndarray
    p_value: float
    test: str


def _classification_tests(a: TaskUnits, b: TaskUnits, n: int, seed: int) -> dict:
    """The four confusion-matrix metrics of a task, resampled and relabelled together."""
    labels = sorted({*a.true_labels, *a.predicted_labels, *b.predicted_labels})
    index = {label: i for i, label in enumerate(labels)}
    codes = [np.array([index[x] for x in arr]) for arr in (a.true_labels, a.predicted_labels,
                                                             b.predicted_labels)]  # fmt: skip
    deltas = paired.classification_deltas(*codes, len(labels), n, seed)
    p_values = paired.prediction_swap_p(*codes, len(labels), n, seed)
    return {
        metric: PairedTest(deltas[name], p_values[name], "randomization test, swapped predictions")
        for metric, name in _CONFUSION_METRICS.items()
    }


def _per_unit_values(metric: str, u: TaskUnits, maximum: float | None) -> np.ndarray | None:
    """The per-unit values whose mean (or sum) is ``metric``, or None if there are none."""
    if u.unit == "queries":
        return u.values.get(metric)
    if metric.startswith(_ACC_AT_K) and metric[len(_ACC_AT_K) :].isdigit():
        return (u.true_rank <= int(metric[len(_ACC_AT_K) :])).astype(np.float64)
    if metric == "pretest" and maximum:
        k = round(maximum / len(u.ids))  # the maximum is K points per item
        return np.maximum(k - u.true_rank + 1, 0).astype(np.float64)
    return None


def _paired_test(
    metric: str, a: TaskUnits, b: TaskUnits, maximum: float | None, n: int, seed: int,
    cache: dict,
) -> PairedTest | str:  # fmt: skip
    """The paired test of ``metric``, or why there is none. ``cache`` keeps a task's
    confusion-matrix tests for the other metrics of the same pair of units."""
    if a.unit == "items" and metric in _CONFUSION_METRICS:
        key = (id(a), id(b), n, seed)
        if key not in cache:
            cache[key] = _classification_tests(a, b, n, seed)
        found = cache[key][metric]
        if metric != "acc@1":
            return found
        p_value, only_a, only_b = paired.mcnemar_exact(
            a.true_labels == a.predicted_labels, b.true_labels == b.predicted_labels
        )
        return PairedTest(found.deltas, p_value, f"exact McNemar, {only_b} items gained / "
                          f"{only_a} lost")  # fmt: skip
    values = [_per_unit_values(metric, u, maximum) for u in (a, b)]
    if values[0] is None or values[1] is None:
        return "no paired test for this metric (a statistic of the whole set)"
    if not (np.isfinite(values[0]).all() and np.isfinite(values[1]).all()):
        return f"some {a.unit} have no value for this metric"
    statistic = "sum" if metric in SUMS else "mean"
    return PairedTest(
        paired.value_deltas(*values, statistic, n, seed),
        paired.sign_flip_p(*values, n, seed),
        "randomization test, sign flips",
    )


def _unit_mismatch(a: TaskUnits | None, b: TaskUnits | None) -> str | None:
    if a is None or b is None:
        which = "either run" if a is None and b is None else "one run"
        return (
            f"no per-item or per-query results stored for {which} (an empty task, or a run "
            "stored by an older evalsuite): re-score to compare"
        )
    if a.unit != b.unit or a.ids != b.ids:
        return f"the runs scored different {a.unit} ({len(a.ids)} and {len(b.ids)})"
    if a.true_labels is not None and not np.array_equal(a.true_labels, b.true_labels):
        return "the runs give some items different true labels"
    return None


def judge_metric(
    row_a: pd.Series,
    row_b: pd.Series,
    units: tuple[TaskUnits | None, TaskUnits | None],
    *,
    gated: bool,
    margins: Mapping[str, float],
    n_resamples: int,
    seed: int,
    why_not: str | None = None,
    cache: dict | None = None,
) -> MetricVerdict:
    """The uncorrected verdict of one metric shared by two runs of one task."""
    benchmark, task, metric = str(row_a["benchmark"]), str(row_a["task"]), str(row_a["metric"])
    maximum = frame_value(row_a, "maximum")
    task_type = row_a.get("task_type")
    base = MetricVerdict(
        benchmark, task, metric, float(row_a["value"]), float(row_b["value"]), NOT_COMPARABLE,
        gated, bool(row_a.get("higher_is_better", True)), maximum,
        task_type if isinstance(task_type, str) and task_type else None,
        margin=margin_for(margins, benchmark, task, metric),
    )  # fmt: skip
    a, b = units
    reason = why_not or _unit_mismatch(a, b)
    if not reason and not np.isfinite(base.delta):
        reason = "a run stored no value for this metric"
    found = reason or _paired_test(
        metric, a, b, maximum, n_resamples, seed, {} if cache is None else cache
    )
    if isinstance(found, str):
        return replace(base, reason=found)
    spread = paired.interval(found.deltas, len(a.ids))
    if np.isnan(spread.std_error):
        return replace(base, reason="undefined on some resamples of the units")
    identical = spread.std_error == 0 and base.delta == 0
    return replace(
        base, verdict=TIED, ci_low=spread.ci_low, ci_high=spread.ci_high,
        p_value=1.0 if identical else found.p_value, test=found.test, n_units=spread.n_units,
        unit=a.unit, reason=f"identical on every {_SINGULAR[a.unit]}" if identical else "",
        mdd=paired.minimal_detectable_difference(spread.std_error, ALPHA, POWER)
        if spread.std_error > 0 else float("nan"),
    )  # fmt: skip


def same_data_reason(run_a: pd.Series, run_b: pd.Series) -> str | None:
    """Why two runs of one benchmark cannot be paired, or None."""
    if run_a["benchmark_hash"] != run_b["benchmark_hash"]:
        return "scored with different versions of the benchmark (benchmark hashes differ)"
    if run_a["data_manifest_hash"] != run_b["data_manifest_hash"]:
        return "scored on different data (data manifest hashes differ)"
    return None


def judge_runs(
    metrics_a: pd.DataFrame,
    metrics_b: pd.DataFrame,
    units: Mapping[tuple[str, str], TaskUnits],
    *,
    gated: Iterable[str] | None,
    margins: Mapping[str, float],
    n_resamples: int,
    seed: int,
) -> list[MetricVerdict]:
    """Uncorrected verdicts of every (benchmark, task, metric) either metric table holds (one
    latest run per benchmark each): a metric only one model has is *not comparable*, never
    left out, so a candidate that skipped a benchmark cannot pass the gate unseen. ``gated``:
    the metrics the gate judges on every task; None: those each benchmark's YAML gates."""
    chosen = None if gated is None else set(gated)
    key = ["benchmark", "task", "metric"]
    a_rows = metrics_a.set_index(key)
    b_rows = metrics_b.set_index(key)
    out, cache = [], {}
    for index in a_rows.index.union(b_rows.index, sort=False):
        has_a, has_b = index in a_rows.index, index in b_rows.index
        row_a = a_rows.loc[index].copy() if has_a else _no_value(b_rows.loc[index])
        row_b = b_rows.loc[index].copy() if has_b else _no_value(a_rows.loc[index])
        row_a["benchmark"], row_a["task"], row_a["metric"] = index
        task = index[1]
        if has_a and has_b:
            why_not = same_data_reason(row_a, row_b)
        else:
            why_not = (f"the {'candidate' if has_a else 'baseline'} has no result for it "
                       "(not scored on this benchmark, or the task was skipped)")  # fmt: skip
        pair = (units.get((row_a["run_id"], task)), units.get((row_b["run_id"], task)))
        out.append(
            judge_metric(
                row_a, row_b, pair, gated=_is_gated(chosen, *index), margins=margins,
                n_resamples=n_resamples, seed=seed, why_not=why_not, cache=cache,
            )
        )  # fmt: skip
    return out


def _is_gated(chosen: set[str] | None, benchmark: str, task: str, metric: str) -> bool:
    """Whether the gate judges the metric: one of ``chosen`` (``--metric``), else one its
    benchmark's YAML gates on the task."""
    return metric in (gated_metrics(benchmark, task) if chosen is None else chosen)


def _no_value(row: pd.Series) -> pd.Series:
    """The row of a run that lacks a metric, built from the other run's: no value, no run."""
    out = row.copy()
    out["value"], out["run_id"] = float("nan"), None
    return out
