"""Retrieval metrics: exact chunked top-k search, IR hit scores and marqo-compatible metrics.

Pure functions of numpy arrays. ``rel_topk`` is a (Q, K) boolean array: ``rel_topk[q, r-1]``
says whether the item ranked r for query q is relevant (binary relevance).

P@k, Recall@k, nDCG@k, MAP@k and MRR follow the marqo-FashionCLIP evaluation so numbers compare
with its leaderboard. marqo-ai/marqo-FashionCLIP ``utils/metrics.py`` computes them with BEIR's
``EvaluateRetrieval.evaluate`` (beir-cellar/beir ``beir/retrieval/evaluation.py``), i.e.
pytrec_eval's trec_eval measures ``P``, ``recall``, ``map_cut`` and ``ndcg_cut``
(usnistgov/trec_eval ``m_P.c``, ``m_recall.c``, ``m_map_cut.c``, ``m_ndcg_cut.c``), plus its own
``mrr`` over the retrieved top max(Ks) divided by the number of queries. Per query:

- P@k = relevant in top k / k (k even when fewer than k items were retrieved).
- Recall@k = relevant in top k / all relevant items of the query.
- MAP@k (trec_eval map_cut) = sum over relevant ranks r <= k of P@r, divided by *all*
  relevant items of the query, not min(n_relevant, k): with many relevant items it stays small.
- nDCG@k = sum rel(r) / log2(r + 1) over r <= k, over the ideal DCG of min(n_relevant, k)
  relevant items at the top (trec_eval 9 ``ndcg_cut`` with binary gains).
- MRR@K = 1 / rank of the first relevant item within K = max(ks), else 0.

A query with no relevant items scores 0 on every metric and still counts in the means, as
in marqo (trec_eval returns 0 when num_rel = 0; marqo's MRR divides by all queries);
``retrieval_metrics(..., exclude_queries_without_relevant=True)`` drops such queries instead.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

RelevantSets = Sequence[Collection[int]]


def _check_exclude(exclude: np.ndarray | None, n_queries: int, n_gallery: int) -> np.ndarray:
    if exclude is None:
        return np.full(n_queries, -1, dtype=np.int64)
    exclude = np.asarray(exclude)
    if exclude.shape != (n_queries,) or not np.issubdtype(exclude.dtype, np.integer):
        raise ValueError(f"exclude must be an int array of shape ({n_queries},)")
    if exclude.size and (exclude.min() < -1 or exclude.max() >= n_gallery):
        raise ValueError(f"exclude holds indices outside [-1, {n_gallery})")
    return exclude.astype(np.int64)


def _chunk_top(block: np.ndarray, keep: int) -> np.ndarray:
    """(q, keep) column positions of each row's ``keep`` largest scores, ties -> lower column.

    np.partition finds each row's keep-th largest score in O(width); everything above it is
    in, and of the scores equal to it the leftmost columns fill the remaining places. Ordering
    within the selection is left to the caller.
    """
    width = block.shape[1]
    if keep >= width:
        return np.broadcast_to(np.arange(width), block.shape)
    threshold = np.partition(block, width - keep, axis=1)[:, width - keep, None]
    chosen = block > threshold
    equal = block == threshold
    n_missing = keep - chosen.sum(axis=1)
    straddling = equal.sum(axis=1) > n_missing  # more ties than places: keep the leftmost
    if straddling.any():
        rows = np.flatnonzero(straddling)
        leftmost = np.cumsum(equal[rows], axis=1) <= n_missing[rows, None]
        equal[rows] &= leftmost
    chosen |= equal
    return np.nonzero(chosen)[1].reshape(block.shape[0], keep)


def _merge(
    scores_a: np.ndarray, idx_a: np.ndarray, scores_b: np.ndarray, idx_b: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``keep`` of two candidate lists per row, sorted by (score desc, gallery index asc)."""
    scores = np.concatenate([scores_a, scores_b], axis=1)
    idx = np.concatenate([idx_a, idx_b], axis=1)
    order = np.lexsort((idx, -scores), axis=1)[:, :keep]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(idx, order, axis=1)


def top_k(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    chunk_size: int = 65536,
    query_chunk_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k gallery items by dot product: ((Q, k') int64 indices, (Q, k') scores).

    k' = min(k, G - 1) when any query excludes an item, else min(k, G) (so a query with
    ``exclude = -1`` among excluding ones also gets G - 1 items when k >= G).
    ``exclude[q]`` is a gallery index dropped for query q (-1: none), e.g. the query image.
    Rows are sorted by score descending; equal scores go to the lower gallery index.
    The gallery is read once, ``chunk_size`` rows at a time (a memmap works), and scores are
    computed ``query_chunk_size`` queries at a time, so memory is bounded by
    query_chunk_size x chunk_size scores plus a running (Q, k) best list merged per chunk.
    """
    queries, gallery = np.asarray(queries), np.asarray(gallery)  # a memmap stays on disk
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"need (Q, D) queries and (G, D) gallery, got {queries.shape}, {gallery.shape}"
        )
    if k < 1 or chunk_size < 1 or query_chunk_size < 1:
        raise ValueError("k, chunk_size and query_chunk_size must be >= 1")
    if not np.isfinite(queries).all():
        raise ValueError("queries contain NaN or infinite values")
    n_queries, n_gallery = queries.shape[0], gallery.shape[0]
    exclude = _check_exclude(exclude, n_queries, n_gallery)
    k_out = min(k, n_gallery - int((exclude >= 0).any()))
    dtype = np.result_type(queries.dtype, gallery.dtype, np.float32)
    queries = queries.astype(dtype, copy=False)
    best_scores = np.empty((n_queries, 0), dtype)
    best_idx = np.empty((n_queries, 0), np.int64)
    for start in range(0, n_gallery, chunk_size):
        block = np.asarray(gallery[start : start + chunk_size], dtype=dtype)
        if not np.isfinite(block).all():
            raise ValueError(f"gallery rows {start}..{start + len(block) - 1} contain NaN/inf")
        keep = min(k, best_idx.shape[1] + len(block))
        new_scores = np.empty((n_queries, keep), dtype)
        new_idx = np.empty((n_queries, keep), np.int64)
        for q0 in range(0, n_queries, query_chunk_size):
            rows = slice(q0, q0 + query_chunk_size)
            scores = queries[rows] @ block.T
            local = exclude[rows] - start  # excluded item's column in this chunk, if any
            hit = np.flatnonzero((local >= 0) & (local < len(block)))
            scores[hit, local[hit]] = -np.inf  # sorts last; k' leaves it out at the end
            cols = _chunk_top(scores, keep)
            chunk_best = np.take_along_axis(scores, cols, axis=1)
            merged = _merge(best_scores[rows], best_idx[rows], chunk_best, cols + start, keep)
            new_scores[rows], new_idx[rows] = merged
        best_scores, best_idx = new_scores, new_idx
    return best_idx[:, :k_out], best_scores[:, :k_out]


def relevance_at_k(indices: np.ndarray, relevant: RelevantSets | np.ndarray) -> np.ndarray:
    """(Q, k) bool: is each retrieved gallery index relevant to its query?

    ``relevant`` is either one collection of relevant gallery indices per query or a boolean
    (Q, G) matrix. Negative indices (padding) are never relevant.
    """
    indices = np.asarray(indices)
    if indices.ndim != 2:
        raise ValueError(f"indices must be (Q, k), got shape {indices.shape}")
    if isinstance(relevant, np.ndarray):
        if relevant.ndim != 2 or relevant.shape[0] != indices.shape[0]:
            raise ValueError(f"relevance matrix must be (Q, G), got {relevant.shape}")
        valid = indices >= 0
        hits = np.take_along_axis(relevant, np.where(valid, indices, 0), axis=1)
        return hits.astype(bool) & valid
    if len(relevant) != indices.shape[0]:
        raise ValueError(f"{len(relevant)} relevant sets for {indices.shape[0]} queries")
    out = np.zeros(indices.shape, dtype=bool)
    for q, (row, rel) in enumerate(zip(indices.tolist(), relevant, strict=True)):
        rel_set = rel if isinstance(rel, (set, frozenset)) else set(rel)
        out[q] = [i in rel_set for i in row]
    return out


def relevant_counts(
    relevant: RelevantSets | np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """(Q,) number of relevant gallery items per query, not counting the excluded item.

    An image query that excludes itself must not count itself as relevant, or its recall
    could never reach 1 (marqo never meets this: its queries are texts).
    """
    if isinstance(relevant, np.ndarray):
        matrix = relevant.astype(bool)
        counts = matrix.sum(axis=1).astype(np.int64)
        if exclude is not None:
            exclude = _check_exclude(exclude, len(counts), matrix.shape[1])
            excluding = np.flatnonzero(exclude >= 0)
            counts[excluding] -= matrix[excluding, exclude[excluding]]
        return counts
    sets = [rel if isinstance(rel, (set, frozenset)) else set(rel) for rel in relevant]
    counts = np.array([len(rel) for rel in sets], dtype=np.int64)
    if exclude is not None:
        exclude = _check_exclude(exclude, len(counts), np.iinfo(np.int64).max)
        counts -= [ex in rel for ex, rel in zip(exclude.tolist(), sets, strict=True)]
    return counts


def _padded(rel_topk: np.ndarray, k: int) -> np.ndarray:
    """First k columns of rel_topk; missing columns (gallery smaller than k) are non-relevant."""
    rel_topk = np.asarray(rel_topk, dtype=bool)
    if rel_topk.ndim != 2:
        raise ValueError(f"rel_topk must be (Q, K), got shape {rel_topk.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if rel_topk.shape[1] >= k:
        return rel_topk[:, :k]
    return np.pad(rel_topk, ((0, 0), (0, k - rel_topk.shape[1])))


def hits_per_query(rel_topk: np.ndarray, k: int | None = None) -> np.ndarray:
    """(Q,) int: relevant items among each query's top k (default k = rel_topk width)."""
    k = np.shape(rel_topk)[1] if k is None else k
    return _padded(rel_topk, k).sum(axis=1).astype(np.int64)


def ir_hits(rel_topk: np.ndarray, k: int | None = None) -> tuple[int, int]:
    """(score, maximum): relevant items among the top K summed over queries; maximum = K x Q.

    K is the requested K (default: rel_topk width). Pass it explicitly when the gallery was
    smaller than K, so the maximum stays K x Q and missing ranks count as misses.
    """
    k = np.shape(rel_topk)[1] if k is None else k
    hits = hits_per_query(rel_topk, k)
    return int(hits.sum()), k * len(hits)


def position_weighted_points(rel_topk: np.ndarray, k: int) -> np.ndarray:
    """(Q,) float: K * sum_r rel(r) (K - r + 1) / sum_r (K - r + 1), at most K per query.

    The weights fall linearly from K at rank 1 to 1 at rank K; sum_r (K - r + 1) = K(K+1)/2.
    """
    weights = np.arange(k, 0, -1, dtype=np.float64)
    return k * (_padded(rel_topk, k) @ weights) / weights.sum()


def ir_position_weighted(rel_topk: np.ndarray, k: int) -> tuple[float, float]:
    """(score, maximum) of the position-weighted IR score; maximum = K x Q (floats).

    Displays such as "274 / 390" round the score; it is kept unrounded here.
    """
    points = position_weighted_points(rel_topk, k)
    return float(points.sum()), float(k * len(points))


def _check_n_relevant(rel_topk: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    n_relevant = np.asarray(n_relevant)
    if n_relevant.shape != (np.shape(rel_topk)[0],):
        raise ValueError(f"n_relevant must be ({np.shape(rel_topk)[0]},), got {n_relevant.shape}")
    if (np.asarray(rel_topk, dtype=bool).sum(axis=1) > n_relevant).any():
        raise ValueError("a query retrieved more relevant items than n_relevant says it has")
    return n_relevant.astype(np.int64)


def precision_at_k(rel_topk: np.ndarray, k: int) -> np.ndarray:
    """(Q,) P@k = relevant in top k / k (trec_eval ``P``: missing ranks are non-relevant)."""
    return hits_per_query(rel_topk, k) / k


def recall_at_k(rel_topk: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(Q,) Recall@k = relevant in top k / all relevant (0 when the query has none)."""
    n_relevant = _check_n_relevant(rel_topk, n_relevant)
    return hits_per_query(rel_topk, k) / np.maximum(n_relevant, 1)


def reciprocal_rank(rel_topk: np.ndarray, k: int) -> np.ndarray:
    """(Q,) 1 / rank of the first relevant item within the top k, else 0."""
    rel = _padded(rel_topk, k)
    first = rel.argmax(axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg_at_k(rel_topk: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(Q,) binary-gain nDCG@k, discount log2(rank + 1), ideal DCG over min(n_relevant, k)."""
    n_relevant = _check_n_relevant(rel_topk, n_relevant)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = _padded(rel_topk, k) @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def average_precision_at_k(rel_topk: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(Q,) AP@k as trec_eval ``map_cut``: sum_{r<=k} P@r rel(r) / n_relevant (0 if none)."""
    n_relevant = _check_n_relevant(rel_topk, n_relevant)
    rel = _padded(rel_topk, k)
    precision_at_rank = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    return (precision_at_rank * rel).sum(axis=1) / np.maximum(n_relevant, 1)


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Aggregate retrieval metrics plus the per-query values behind them (for bootstraps).

    ``per_query`` maps each key of ``summary()`` except the totals to a (Q,) array whose
    mean is that metric; ``hits`` and ``by_position`` are per-query points summed.
    """

    ks: tuple[int, ...]
    k: int  # max(ks): cutoff of hits, by_position and MRR
    n_queries: int
    n_queries_without_relevant: int  # counted as 0 unless excluded
    hits: int
    hits_max: int
    by_position: float
    by_position_max: float
    precision: dict[int, float]
    recall: dict[int, float]
    ndcg: dict[int, float]
    map: dict[int, float]
    mrr: float
    per_query: dict[str, np.ndarray]

    def summary(self) -> dict[str, float | int]:
        """Flat scalars named like BEIR/marqo output ("P@1", "Recall@10", "NDCG@10", "MRR")."""
        out: dict[str, float | int] = {
            "n_queries": self.n_queries,
            "hits": self.hits,
            "hits_max": self.hits_max,
            "by_position": self.by_position,
            "by_position_max": self.by_position_max,
        }
        for name, values in (
            ("P", self.precision), ("Recall", self.recall),
            ("NDCG", self.ndcg), ("MAP", self.map),
        ):  # fmt: skip
            out.update({f"{name}@{k}": v for k, v in values.items()})
        out["MRR"] = self.mrr
        return out


def _per_query_metrics(
    rel_topk: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    k_max = max(ks)
    per_query = {
        "hits": hits_per_query(rel_topk, k_max).astype(np.float64),
        "by_position": position_weighted_points(rel_topk, k_max),
        "MRR": reciprocal_rank(rel_topk, k_max),
    }
    for k in ks:
        per_query[f"P@{k}"] = precision_at_k(rel_topk, k)
        per_query[f"Recall@{k}"] = recall_at_k(rel_topk, n_relevant, k)
        per_query[f"NDCG@{k}"] = ndcg_at_k(rel_topk, n_relevant, k)
        per_query[f"MAP@{k}"] = average_precision_at_k(rel_topk, n_relevant, k)
    return per_query


def retrieval_metrics(
    rel_topk: np.ndarray,
    n_relevant: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    exclude_queries_without_relevant: bool = False,
) -> RetrievalResult:
    """All retrieval metrics of a (Q, K) relevance array; ``n_relevant`` (Q,) counts all
    relevant gallery items per query (see ``relevant_counts``).

    ``rel_topk`` may be narrower than max(ks) (a small gallery): missing ranks are misses and
    the maxima stay K x Q. Means are over queries; see the module docstring for definitions.
    """
    rel_topk = np.asarray(rel_topk, dtype=bool)
    n_relevant = _check_n_relevant(rel_topk, n_relevant)
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    n_without = int((n_relevant == 0).sum())
    if exclude_queries_without_relevant:
        rel_topk, n_relevant = rel_topk[n_relevant > 0], n_relevant[n_relevant > 0]
    per_query = _per_query_metrics(rel_topk, n_relevant, ks)
    n_queries, k_max = len(n_relevant), ks[-1]

    def mean(key: str) -> float:
        return float(per_query[key].mean()) if n_queries else float("nan")

    return RetrievalResult(
        ks=ks,
        k=k_max,
        n_queries=n_queries,
        n_queries_without_relevant=n_without,
        hits=int(per_query["hits"].sum()),
        hits_max=k_max * n_queries,
        by_position=float(per_query["by_position"].sum()),
        by_position_max=float(k_max * n_queries),
        precision={k: mean(f"P@{k}") for k in ks},
        recall={k: mean(f"Recall@{k}") for k in ks},
        ndcg={k: mean(f"NDCG@{k}") for k in ks},
        map={k: mean(f"MAP@{k}") for k in ks},
        mrr=mean("MRR"),
        per_query=per_query,
    )
