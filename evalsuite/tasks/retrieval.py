"""Text->image and image->image retrieval over the benchmark's scored items.

Relevance comes from the query set's predicates on catalogue fields; the gallery is every
scored item; an image query never retrieves itself.
"""

from __future__ import annotations

import logging

import numpy as np

from evalsuite.errors import DataError
from evalsuite.metrics.bootstrap import bootstrap_ci
from evalsuite.metrics.retrieval import (
    relevance_at_k,
    relevant_counts,
    retrieval_metrics,
    top_k,
)
from evalsuite.queries import relevance_matrix, resolve_image_queries
from evalsuite.results import MetricValue, QueryValue, RetrievedItem
from evalsuite.spec import spec_location
from evalsuite.spec_tasks import ImageToImageTask, TextToImageTask
from evalsuite.tasks.base import TaskContext, TaskOutput, metric, warn_cutoff

log = logging.getLogger(__name__)


def run_text_to_image(task: TextToImageTask, ctx: TaskContext) -> TaskOutput:
    queryset = ctx.spec.query_set(task)
    relevant = relevance_matrix(queryset, ctx.items)
    query_vectors = ctx.engine.embed_texts([q.text for q in queryset.queries])
    labels = [q.text for q in queryset.queries]
    return _score(
        task, ctx, [q.id for q in queryset.queries], labels, query_vectors, relevant, exclude=None
    )


def run_image_to_image(task: ImageToImageTask, ctx: TaskContext) -> TaskOutput:
    queryset = ctx.spec.query_set(task)
    rows = resolve_image_queries(queryset, ctx.items)
    relevant = relevance_matrix(queryset, ctx.items)
    found = rows >= 0
    queries = [q for q, ok in zip(queryset.queries, found, strict=True) if ok]
    out = _score(
        task,
        ctx,
        [q.id for q in queries],
        [ctx.items[r].id for r in rows[found]],
        ctx.embeddings.vectors[rows[found]],
        relevant[found],
        exclude=rows[found],
    )
    out.extra["unresolved_queries"] = [
        q.id for q, ok in zip(queryset.queries, found, strict=True) if not ok
    ]
    return out


def cutoffs(
    task: TextToImageTask | ImageToImageTask, gallery_size: int, image_queries: bool, where: str
) -> tuple[int, ...]:
    """The task's cutoffs (ks and k), each clipped to what a query can rank: the gallery, one
    less for image queries (never their own result). Ranking more items than exist can only
    mean all of them, and a cutoff no ranking reaches would report P@1000 and a maximum of
    1000 hits per query over 40 items (see the rule in spec_tasks.py's _RetrievalTask)."""
    rankable = gallery_size - int(image_queries)
    if rankable < 1:
        raise DataError(
            f"{where}: task {task.name!r}: nothing to rank: the gallery has {gallery_size} item(s)"
            + (" and an image query never retrieves itself" if image_queries else "")
        )
    why = f"a query can rank only {rankable} items" + (
        " (an image query never retrieves itself)" if image_queries else ""
    )
    if task.k > rankable:  # k >= max(ks) (checked when the YAML loads): ks only if k too
        warn_cutoff(where, task, "k", f"clipped to {rankable}", why)
        if max(task.ks) > rankable:
            ks = sorted({min(k, rankable) for k in task.ks})
            warn_cutoff(where, task, "ks", f"clipped to {ks}", why)
    return tuple(sorted({min(k, rankable) for k in (*task.ks, task.k)}))


def _score(
    task: TextToImageTask | ImageToImageTask,
    ctx: TaskContext,
    query_ids: list[str],
    query_labels: list[str],
    query_vectors: np.ndarray,
    relevant: np.ndarray,
    exclude: np.ndarray | None,
) -> TaskOutput:
    image_queries = exclude is not None and len(exclude) > 0
    ks = cutoffs(task, len(ctx.items), image_queries, spec_location(ctx.spec))
    indices, scores = top_k(query_vectors, ctx.embeddings.vectors, ks[-1], exclude=exclude)
    rel_topk = relevance_at_k(indices, relevant)
    result = retrieval_metrics(rel_topk, relevant_counts(relevant, exclude), ks=ks)
    out = TaskOutput(
        extra={
            "n_queries": result.n_queries,
            "gallery_size": len(ctx.items),
            "n_queries_without_relevant": result.n_queries_without_relevant,
            "cutoffs": list(ks),
        }
    )
    out.metrics = _headline(task.name, result, ctx)
    out.query_values = _query_values(task.name, query_ids, result.per_query)
    for q, query_id in enumerate(query_ids):
        for rank, (row, score) in enumerate(zip(indices[q], scores[q], strict=True), start=1):
            item = ctx.items[row]
            out.retrieved.append(
                RetrievedItem(
                    task=task.name,
                    query_id=query_id,
                    query_text=query_labels[q],
                    rank=rank,
                    item_id=item.id,
                    score=float(score),
                    relevant=bool(rel_topk[q, rank - 1]),
                    image_path=str(item.path) if item.path else None,
                )
            )
    return out


# per_query keys whose stored metric name differs (the totals are stored as IR scores)
_STORED_NAMES = {"hits": "ir_hits", "by_position": "ir_by_position"}


def _query_values(
    name: str, query_ids: list[str], per_query: dict[str, np.ndarray]
) -> list[QueryValue]:
    """Each query's value of every metric: what a paired comparison of two models resamples."""
    return [
        QueryValue(name, query_id, _STORED_NAMES.get(key, key), float(values[q]))
        for key, values in per_query.items()
        for q, query_id in enumerate(query_ids)
    ]


def _headline(name: str, result, ctx: TaskContext) -> list[MetricValue]:
    def interval(values: np.ndarray, statistic=np.mean) -> tuple[float, float]:
        return bootstrap_ci(values, statistic, ctx.n_bootstrap, seed=ctx.seed)

    per_query = result.per_query
    metrics = [
        metric(
            name,
            "ir_hits",
            result.hits,
            interval(per_query["hits"], np.sum),
            maximum=result.hits_max,
        ),
        metric(
            name,
            "ir_by_position",
            result.by_position,
            interval(per_query["by_position"], np.sum),
            maximum=result.by_position_max,
        ),
    ]
    for key, value in result.summary().items():
        if key in per_query and key not in ("hits", "by_position"):
            metrics.append(metric(name, key, value, interval(per_query[key])))
    return metrics
