"""Embedding-space statistics of the scored items, stored per run like any metric.

``nn_agreement:<field>`` per field (with a bootstrap interval over items; the chance level,
sum of squared class frequencies, is kept in the run's extra), ``mean_pairwise_similarity``
(lower is better: a collapsing space drifts towards 1) and ``effective_rank`` (out of the
embedding dimension, stored as its ``maximum``).
"""

from __future__ import annotations

import numpy as np

from evalsuite.metrics.bootstrap import bootstrap_ci
from evalsuite.metrics.embedding_stats import (
    chance_agreement,
    effective_rank,
    mean_pairwise_similarity,
    neighbour_agreement_per_item,
)
from evalsuite.results import MetricValue
from evalsuite.spec_tasks import EmbeddingStatsTask
from evalsuite.tasks.base import TaskContext, TaskOutput, metric, one_blas_thread


def _codes(values: list[str]) -> np.ndarray:
    """Integer label per item, -1 where the field is empty."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) if v else -1 for v in values], dtype=np.int64)


def run_embedding_stats(task: EmbeddingStatsTask, ctx: TaskContext) -> TaskOutput:
    vectors = ctx.embeddings.vectors
    out = TaskOutput(extra={"n_items": len(vectors), "chance_agreement": {}})
    for field in task.fields:
        labels = _codes([item.fields.get(field, "") for item in ctx.items])
        agree = neighbour_agreement_per_item(vectors, labels)
        interval = bootstrap_ci(agree, n_resamples=ctx.n_bootstrap, seed=ctx.seed)
        out.metrics.append(metric(task.name, f"nn_agreement:{field}", agree.mean(), interval))
        out.extra["chance_agreement"][field] = chance_agreement(labels)
    out.metrics.append(
        MetricValue(
            name="mean_pairwise_similarity",
            value=mean_pairwise_similarity(vectors),
            higher_is_better=False,
            task=task.name,
        )
    )
    with one_blas_thread():  # the SVD: see one_blas_thread
        rank = effective_rank(vectors)
    out.metrics.append(metric(task.name, "effective_rank", rank, maximum=float(vectors.shape[1])))
    return out
