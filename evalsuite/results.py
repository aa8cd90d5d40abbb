"""Result records passed from the scoring runner to the store (and to reports).

Plain dataclasses, no behaviour beyond small lookups: the runner fills a :class:`RunResult`,
``evalsuite.store.write_run`` persists it in one transaction. Row types are frozen; the run
itself is mutable so the runner can fill it in as tasks finish. :class:`RunExtra` is the typed
form of the run's ``extra`` JSON object (``runs.extra``): the runner builds one, readers parse
the stored object back into one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    ``extra`` is the ``runs.extra`` JSON object as stored: :meth:`RunExtra.to_json` for a
    scoring run; read it through :meth:`RunExtra.from_json`.
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


@dataclass(frozen=True)
class PrecomputedCoverage:
    """Which items of a benchmark had a precomputed embedding (only the scored split's)."""

    n_items_with_embedding: int
    n_items_without_embedding: int
    first_ids_without_embedding: list[str]  # at most 20, in id order


@dataclass(frozen=True)
class EngineRecord:
    """What the embedding engine itself records of a run: how many distinct images were
    scored and, for a model, its own score formula; for precomputed embeddings, the coverage.
    """

    distinct_images: int
    score_formula: dict[str, Any] | None = None  # evalsuite.models.formula.ScoreFormula.to_dict
    precomputed: PrecomputedCoverage | None = None


@dataclass
class RunExtra:
    """The ``runs.extra`` JSON object of a scoring run, typed (docs/results-schema.md).

    ``tasks``: task -> ``type`` and that task's own counts (``n_scored``, a probe's ``c``...);
    ``skipped_tasks``: task -> why it was not scored. The optional fields are left out of the
    JSON when None, as the runner always did: ``score_formula`` for a model,
    ``precomputed`` for precomputed embeddings, the ``probe_splits`` pair when probes read
    other splits.
    """

    split: str | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_tasks: dict[str, str] = field(default_factory=dict)
    images_forwarded: int = 0
    distinct_images: int = 0
    image_roots: list[str] = field(default_factory=list)
    score_formula: dict[str, Any] | None = None
    precomputed: PrecomputedCoverage | None = None
    probe_splits: dict[str, int] | None = None  # split -> embedded items
    probe_splits_not_embedded: dict[str, int] | None = None  # split -> items left out there
    cache_shards_skipped: int = 0

    def task_type(self, task: str) -> str | None:
        """The YAML ``type`` recorded for ``task`` (a probe's acc@1 is not zero-shot)."""
        kind = self.tasks.get(task, {}).get("type")
        return str(kind) if kind else None

    def task_types(self) -> dict[str, str | None]:
        """task -> recorded type, in the order the tasks ran."""
        return {task: self.task_type(task) for task in self.tasks}

    def to_json(self) -> dict[str, Any]:
        """The object stored in ``runs.extra``: same keys, same order as ever."""
        out: dict[str, Any] = {
            "split": self.split,
            "tasks": self.tasks,
            "skipped_tasks": self.skipped_tasks,
            "images_forwarded": self.images_forwarded,
            "distinct_images": self.distinct_images,
            "image_roots": self.image_roots,
        }
        if self.score_formula is not None:
            out["score_formula"] = self.score_formula
        if self.precomputed is not None:
            out["precomputed"] = asdict(self.precomputed)
        if self.probe_splits is not None:
            out["probe_splits"] = self.probe_splits
            out["probe_splits_not_embedded"] = self.probe_splits_not_embedded or {}
        out["cache_shards_skipped"] = self.cache_shards_skipped
        return out

    @classmethod
    def from_json(cls, value: object) -> RunExtra:
        """A stored ``extra`` read back; what is missing or malformed (an older run, a
        hand-written database, NULL) takes the default, unknown keys are ignored."""
        extra = value if isinstance(value, Mapping) else {}
        tasks = _mapping(extra.get("tasks"))
        return cls(
            split=extra.get("split"),
            tasks={str(k): dict(v) if isinstance(v, Mapping) else {} for k, v in tasks.items()},
            skipped_tasks={str(k): str(v) for k, v in _mapping(extra.get("skipped_tasks")).items()},
            images_forwarded=int(extra.get("images_forwarded") or 0),
            distinct_images=int(extra.get("distinct_images") or 0),
            image_roots=_roots(extra.get("image_roots")),
            score_formula=_optional_mapping(extra.get("score_formula")),
            precomputed=_coverage(extra.get("precomputed")),
            probe_splits=_optional_mapping(extra.get("probe_splits")),
            probe_splits_not_embedded=_optional_mapping(extra.get("probe_splits_not_embedded")),
            cache_shards_skipped=int(extra.get("cache_shards_skipped") or 0),
        )


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _optional_mapping(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _coverage(value: object) -> PrecomputedCoverage | None:
    if not isinstance(value, Mapping):
        return None
    return PrecomputedCoverage(
        n_items_with_embedding=int(value.get("n_items_with_embedding") or 0),
        n_items_without_embedding=int(value.get("n_items_without_embedding") or 0),
        first_ids_without_embedding=list(value.get("first_ids_without_embedding") or []),
    )


def _roots(value: object) -> list[str]:
    """Recorded image roots: a list, or one root written as a string (older runs)."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return [str(root) for root in value if root] if isinstance(value, (list, tuple)) else []
