"""What every task runner gets and returns (TaskContext, TaskOutput) and the helpers they
share: a metric row, the message of a cutoff the data cannot honour, one BLAS thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalsuite.data.items import Item
from evalsuite.engine import Engine, ImageEmbeddings
from evalsuite.results import (
    ClassMetric,
    ConfusionCell,
    MetricValue,
    Prediction,
    QueryValue,
    RetrievedItem,
)
from evalsuite.spec import BenchmarkSpec

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    """The embedded items of one dataset split and their vectors (rows in item order)."""

    items: Sequence[Item]
    vectors: np.ndarray


@dataclass
class TaskContext:
    """What every task gets: the scored items (those whose image could be read, in the order
    of ``embeddings``), their embeddings, and the engine for text embeddings. ``splits``
    holds the splits that ``protocol: split`` probes read, embedded by the same engine call."""

    spec: BenchmarkSpec
    items: Sequence[Item]
    embeddings: ImageEmbeddings
    engine: Engine
    n_bootstrap: int = 1000
    seed: int = 0
    splits: dict[str, SplitData] = field(default_factory=dict)


@dataclass
class TaskOutput:
    metrics: list[MetricValue] = field(default_factory=list)
    class_metrics: list[ClassMetric] = field(default_factory=list)
    confusion: list[ConfusionCell] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    retrieved: list[RetrievedItem] = field(default_factory=list)
    query_values: list[QueryValue] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


TaskRunner = Callable[[Any, TaskContext], TaskOutput]


def metric(
    task: str,
    name: str,
    value: float,
    interval: tuple[float, float] | None = None,
    maximum: float | None = None,
) -> MetricValue:
    low, high = interval if interval is not None else (None, None)
    return MetricValue(
        name=name, value=float(value), maximum=maximum, ci_low=low, ci_high=high, task=task
    )


def warn_cutoff(where: str, task: Any, field: str, change: str, why: str) -> None:
    """The one message of a cutoff the data cannot honour (benchmarks/README.md, "Cutoffs are
    checked against the data"): the YAML, the task and field, the value asked for, ``change``
    ("clipped to 8": the value used) and why. A value written in the YAML is a warning; a
    default fitted to the data is logged at INFO only (nobody chose it, and a small benchmark
    would warn on every run). The caller records the value used in the run's extra; nothing
    is raised, so one cutoff never costs the benchmark's other metrics."""
    written = field in task.model_fields_set
    log.log(
        logging.WARNING if written else logging.INFO,
        "%s: task %r: %s %s%s %s: %s",
        where, task.name, field, getattr(task, field), "" if written else " (the default)",
        change, why,
    )  # fmt: skip


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy / scipy BLAS on one thread for the block.

    With torch loaded, numpy's and scipy's OpenBLAS pools and torch's OpenMP pool contend for
    the cores: on the 2-core development machine, scikit-learn's LogisticRegression on 1,461
    CLIP vectors took 23.7 s with the default threads and 2.2 s with one BLAS thread, and the
    SVD of the effective rank 1.2 s against 0.08 s. Only small dense problems run inside.
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    with threadpool_limits(limits=1, user_api="blas"):
        yield
