"""What the report shows, as read from the database: :class:`ReportData` with its models
(:class:`ModelEntry`), metric values (:class:`Cell`) and verdicts, and the lookups every
section uses (a model's run, cell, verdict and primary score). Reading it:
:mod:`evalsuite.report.load`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.errors import EvalSuiteError
from evalsuite.labels import PRIMARY_METRICS, metric_order
from evalsuite.results import RunExtra
from evalsuite.verdicts import MetricVerdict, ModelComparison


class ReportError(EvalSuiteError):
    """The report cannot be written as asked (empty database, unknown model...)."""


@dataclass(frozen=True)
class Cell:
    """One metric of one task of one model (its latest run on the benchmark)."""

    metric: str
    value: float
    maximum: float | None
    low: float | None
    high: float | None
    higher_is_better: bool
    run_id: str

    def scaled(self) -> tuple[float, float | None, float | None]:
        """(value, low, high) on a 0..1 scale: points divided by their maximum."""
        scale = self.maximum if self.maximum else 1.0
        return (
            self.value / scale,
            None if self.low is None else self.low / scale,
            None if self.high is None else self.high / scale,
        )


@dataclass(eq=False)  # compared and hashed by identity
class ModelEntry:
    name: str  # the model: unique in the database, and the key of everything shown
    fingerprint: str  # of its current weights (provenance)
    same_weights_as: tuple[str, ...] = ()  # other models with the same weights
    spec: str = ""
    base_model: str | None = None
    base_fingerprint: str | None = None
    training: dict[str, Any] | None = None
    history: pd.DataFrame | None = None

    @property
    def fine_tuned(self) -> bool:
        return bool(self.training) or bool(self.base_model) or bool(self.base_fingerprint)

    @property
    def wise(self) -> dict[str, Any] | None:
        wise = (self.training or {}).get("wise")
        return wise if isinstance(wise, dict) and "alpha" in wise else None

    @property
    def base_spec(self) -> str | None:
        """The spec of the model this one was fine-tuned from (its training record first)."""
        base = (self.training or {}).get("base_model") or self.base_model
        return base.get("spec") if isinstance(base, dict) else base


@dataclass
class ReportData:
    db_path: Path
    models: list[ModelEntry]  # baseline first
    target: str | None
    benchmarks: list[str]
    tasks: dict[str, list[tuple[str, str | None]]]  # benchmark -> [(task, kind)]
    cells: dict[tuple[str, str, str, str], Cell]  # (model name, benchmark, task, metric)
    runs: pd.DataFrame  # the runs shown, with their provenance
    class_f1: pd.DataFrame
    skipped_tasks: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # model name -> every verdict of that model against the baseline (none for the baseline,
    # nor for a model sharing no metric with it)
    comparisons: dict[str, ModelComparison] = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)  # the latest runs' metrics

    @property
    def baseline(self) -> ModelEntry:
        return self.models[0]

    def cell(self, model: ModelEntry, benchmark: str, task: str, metric: str) -> Cell | None:
        return self.cells.get((model.name, benchmark, task, metric))

    def __post_init__(self) -> None:
        self._runs = {(row["model_name"], row["benchmark"]): row for _, row in self.runs.iterrows()}
        self._verdicts = {
            (name, v.benchmark, v.task, v.metric): v
            for name, comparison in self.comparisons.items()
            for v in comparison.verdicts
        }

    def run_of(self, model: ModelEntry, benchmark: str) -> pd.Series | None:
        """The run shown for ``model`` on ``benchmark`` (its latest ``ok`` one), or None."""
        return self._runs.get((model.name, benchmark))

    def verdict(
        self, model: ModelEntry, benchmark: str, task: str, metric: str
    ) -> MetricVerdict | None:
        """The verdict on ``model``'s change against the baseline; None when either lacks
        the metric."""
        return self._verdicts.get((model.name, benchmark, task, metric))

    def metrics_of(self, benchmark: str, task: str) -> list[str]:
        """Every metric of the task: its headline and its kind's usual ones first, in
        order (``evalsuite.labels.metric_order``), then the others by name."""
        names = {key[3] for key in self.cells if key[1] == benchmark and key[2] == task}
        kind = dict(self.tasks[benchmark]).get(task)
        first = [m for m in metric_order(benchmark, task, kind) if m in names]
        return first + sorted(names - set(first), key=_metric_order)

    def primary(
        self, model: ModelEntry, benchmark: str, task: str
    ) -> tuple[str, Cell] | tuple[None, None]:
        """The task's primary score: acc@1 (zero-shot) or IR hits (retrieval)."""
        kind = dict(self.tasks[benchmark]).get(task)
        candidates = (*PRIMARY_METRICS.get(kind or "", ())[:1], "acc@1", "ir_hits", "MRR")
        for metric in candidates:
            cell = self.cell(model, benchmark, task, metric)
            if cell is not None:
                return metric, cell
        return None, None

    def primary_metric(self, benchmark: str, task: str) -> str | None:
        for model in self.models:
            metric, _ = self.primary(model, benchmark, task)
            if metric:
                return metric
        return None

    def task_type(self, benchmark: str, task: str) -> str | None:
        """The task's YAML type as its runs recorded it (a probe's acc@1 is not zero-shot)."""
        for extra in self.runs.loc[self.runs["benchmark"] == benchmark, "extra"]:
            if kind := RunExtra.from_json(extra).task_type(task):
                return kind
        return None


def _metric_order(name: str) -> tuple[str, int]:
    match = re.match(r"(.*?)(\d+)$", name)
    return (match.group(1).lower(), int(match.group(2))) if match else (name.lower(), 0)
