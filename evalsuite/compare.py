"""The regression gate: a candidate model's metrics against a baseline's, with tolerances.

A metric regresses when ``candidate < baseline - tolerance`` (or ``>`` for lower-is-better
metrics). The default tolerance is the noise of the difference: the root sum of squares of
both runs' bootstrap half-widths, so CI does not fail on differences the data cannot resolve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from evalsuite.errors import EvalSuiteError

# Metrics gated by default: the headline numbers of each task type.
GATED_METRICS = ("acc@1", "f1_macro", "f1_weighted", "pretest", "ir_hits", "ir_by_position")


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    task: str
    metric: str
    baseline: float
    candidate: float
    tolerance: float
    higher_is_better: bool
    same_data: bool  # both runs scored the same data and benchmark version
    task_type: str | None = None  # the task's YAML type: a kNN's acc@1 is not zero-shot

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline

    @property
    def regression(self) -> bool:
        worse = -self.delta if self.higher_is_better else self.delta
        return worse > self.tolerance


def parse_tolerances(pairs: Iterable[str]) -> dict[str, float]:
    """``["acc@1=0.01", "footwear/article_type/pretest=20"]`` -> {key: tolerance}."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise EvalSuiteError(
                f"--tolerance {pair!r}: expected METRIC=VALUE, e.g. acc@1=0.01 or "
                "footwear/article_type/acc@1=0.02"
            ) from None
    return out


def _half_width(row: pd.Series) -> float:
    if pd.isna(row.get("ci_low")) or pd.isna(row.get("ci_high")):
        return 0.0
    return (float(row["ci_high"]) - float(row["ci_low"])) / 2


def _tolerance(row_b: pd.Series, row_c: pd.Series, tolerances: Mapping[str, float]) -> float:
    b, t, m = row_b["benchmark"], row_b["task"], row_b["metric"]
    for key in (f"{b}/{t}/{m}", f"{t}/{m}", f"{b}/{m}", m):
        if key in tolerances:
            return tolerances[key]
    return math.hypot(_half_width(row_b), _half_width(row_c))


def select_model(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of the model called ``name`` (or whose fingerprint starts with it)."""
    rows = metrics[(metrics["model_name"] == name) | metrics["fingerprint"].str.startswith(name)]
    if rows.empty:
        known = ", ".join(sorted(metrics["model_name"].unique())) or "(none)"
        raise EvalSuiteError(f"no scored model named {name!r} in the database; known: {known}")
    return rows


def _task_type(row: pd.Series) -> str | None:
    value = row.get("task_type")
    return str(value) if isinstance(value, str) and value else None


def compare(
    metrics: pd.DataFrame,
    baseline: str,
    candidate: str,
    tolerances: Mapping[str, float] | None = None,
    gated: Iterable[str] = GATED_METRICS,
) -> list[Comparison]:
    """Compare the latest runs of two models on every (benchmark, task, metric) they share."""
    gated = set(gated)
    key = ["benchmark", "task", "metric"]
    base = select_model(metrics, baseline)
    cand = select_model(metrics, candidate)
    base = base[base["metric"].isin(gated)].sort_values("started_at").groupby(key).last()
    cand = cand[cand["metric"].isin(gated)].sort_values("started_at").groupby(key).last()
    out = []
    for index in base.index.intersection(cand.index):
        row_b = base.loc[index].copy()
        row_c = cand.loc[index].copy()
        row_b["benchmark"], row_b["task"], row_b["metric"] = index
        same = (
            row_b["data_manifest_hash"] == row_c["data_manifest_hash"]
            and row_b["benchmark_hash"] == row_c["benchmark_hash"]
        )
        out.append(
            Comparison(
                *index,
                baseline=float(row_b["value"]),
                candidate=float(row_c["value"]),
                tolerance=_tolerance(row_b, row_c, tolerances or {}),
                higher_is_better=bool(row_b.get("higher_is_better", True)),
                same_data=bool(same),
                task_type=_task_type(row_b),
            )
        )
    if not out:
        raise EvalSuiteError(
            f"models {baseline!r} and {candidate!r} share no scored metric "
            "(score both on the same benchmarks first)"
        )
    return out
