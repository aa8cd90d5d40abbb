"""Result records passed from the scoring runner to the store (and to reports).

Plain dataclasses, no behaviour beyond small lookups: the runner fills a :class:`RunResult`,
``evalsuite.store.write_run`` persists it in one transaction. Row types are frozen; the run
itself is mutable so the runner can fill it in as tasks finish.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple


@dataclass(frozen=True)
class ModelInfo:
    """Identity and provenance of a scored model.

    ``training`` is the ``training.json`` of a fine-tuned checkpoint (config, data manifest
    hashes, code version, seed...); ``history`` its per-epoch log, one dict per epoch with
    ``epoch, train_loss, val_loss, val_accuracy, lr, seconds`` and possibly more keys.
    """

    fingerprint: str
    name: str
    spec: str
    backend: str
    base_model: str | None = None
    base_fingerprint: str | None = None
    parameter_count: int | None = None
    training: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MetricValue:
    """One headline number of one task, e.g. ``acc@1`` of ``article_type``.

    ``maximum`` is set for counts (e.g. 390 for IR hits); ``ci_low``/``ci_high`` bound a
    bootstrap confidence interval when one was computed.
    """

    name: str
    value: float
    maximum: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    higher_is_better: bool = True
    task: str = ""


@dataclass(frozen=True)
class ClassMetric:
    """Per-class precision / recall / F1 of a classification task."""

    task: str
    class_name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusionCell:
    """One non-empty cell of a task's confusion matrix (rows: true, columns: predicted)."""

    task: str
    true_label: str
    predicted_label: str
    count: int


@dataclass(frozen=True)
class Prediction:
    """The top-1 prediction for one item; ``true_rank`` is the 1-based rank of the true label."""

    task: str
    item_id: str
    true_label: str
    predicted_label: str
    correct: bool
    score: float
    true_rank: int
    image_path: str | None = None


@dataclass(frozen=True)
class RetrievedItem:
    """One retrieved item at ``rank`` (1-based) for one query of a retrieval task."""

    task: str
    query_id: str
    query_text: str
    rank: int
    item_id: str
    score: float
    relevant: bool
    image_path: str | None = None


@dataclass(frozen=True)
class QueryValue:
    """One retrieval metric's value for one query (e.g. ``ir_hits`` = 3 of query ``q07``): the
    unit a paired comparison resamples (``evalsuite.verdicts``)."""

    task: str
    query_id: str
    metric: str
    value: float


class SkippedImage(NamedTuple):
    """An item left out of scoring because its image could not be read."""

    item_id: str
    path: str | None
    reason: str


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_run_id() -> str:
    return str(uuid.uuid4())


@dataclass(kw_only=True)
class RunResult:
    """Everything one scoring run of one model on one benchmark produced.

    Keyword-only: it has many fields and positional construction would be error-prone.
    ``data_root`` is the dataset folder; the leaderboard serves thumbnails only from recorded
    roots. ``skipped`` holds ``(item_id, path, reason)`` tuples (or :class:`SkippedImage`).
    """

    model: ModelInfo
    benchmark: str
    benchmark_version: str
    benchmark_hash: str
    data_manifest_hash: str
    data_root: str | None
    code_version: str
    device: str
    precision: str
    seconds: float
    n_items: int
    run_id: str = field(default_factory=_new_run_id)
    status: str = "ok"
    started_at: datetime = field(default_factory=_utc_now)
    finished_at: datetime | None = None
    n_skipped_images: int = 0
    skipped: list[tuple[str, str | None, str]] = field(default_factory=list)
    metrics: list[MetricValue] = field(default_factory=list)
    class_metrics: list[ClassMetric] = field(default_factory=list)
    confusion: list[ConfusionCell] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    retrieved: list[RetrievedItem] = field(default_factory=list)
    query_values: list[QueryValue] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, task: str | None = None) -> MetricValue | None:
        """The first metric called ``name`` (of ``task`` when given), or None."""
        for metric in self.metrics:
            if metric.name == name and (task is None or metric.task == task):
                return metric
        return None
