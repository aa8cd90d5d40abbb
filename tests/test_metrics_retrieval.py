"""Retrieval metrics: chunked top-k against brute force, hand-worked metric values, and the
marqo/trec_eval definitions against a literal per-query transcription of trec_eval's loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalsuite.metrics.retrieval import (
    average_precision_at_k,
    ir_hits,
    ir_position_weighted,
    ndcg_at_k,
    position_weighted_points,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    relevance_at_k,
    relevant_counts,
    retrieval_metrics,
    top_k,
)


def brute_force_top_k(queries, gallery, k, exclude=None):
    """Full sort of every score: descending score, ties by lower gallery index."""
    scores = queries @ gallery.T
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        scores[rows, exclude[rows]] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(gallery.shape[0]), scores.shape), -scores))
    n_out = min(k, gallery.shape[0] - int(exclude is not None and (exclude >= 0).any()))
    order = order[:, :n_out]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("chunk_size", [3, 64, 1003, 5000])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_top_k_chunked_equals_brute_force(chunk_size: int, k: int) -> None:
    rng = np.random.default_rng(k)
    gallery = rng.normal(size=(1003, 16))  # 1003 is not a multiple of any chunk size above
    queries = rng.normal(size=(37, 16))
    exclude = rng.integers(-1, 1003, size=37)
    indices, scores = top_k(queries, gallery, k, exclude, chunk_size, query_chunk_size=10)
    expected_indices, expected_scores = brute_force_top_k(queries, gallery, k, exclude)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)
    assert indices.dtype == np.int64 and scores.dtype == np.float64


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 333])
def test_top_k_breaks_ties_by_lower_gallery_index(chunk_size: int) -> None:
    # Small-integer vectors: exact dot products with many ties, across chunk borders too.
    rng = np.random.default_rng(0)
    gallery = rng.integers(-1, 2, size=(333, 3)).astype(np.float32)
    queries = rng.integers(-1, 2, size=(20, 3)).astype(np.float32)
    indices, scores = top_k(queries, gallery, 25, chunk_size=chunk_size, query_chunk_size=7)
    expected_indices, expected_scores = brute_force_top_k(queries, gallery, 25)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores)
    assert scores.dtype == np.float32


def test_top_k_all_equal_scores_returns_first_indices() -> None:
    indices, _ = top_k(np.ones((2, 4)), np.ones((10, 4)), k=3, chunk_size=4)
    np.testing.assert_array_equal(indices, [[0, 1, 2], [0, 1, 2]])


def test_top_k_self_exclusion() -> None:
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(50, 8))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    indices, _ = top_k(gallery, gallery, k=5, exclude=np.arange(50), chunk_size=16)
    assert not (indices == np.arange(50)[:, None]).any()
    without, _ = top_k(gallery, gallery, k=1)
    np.testing.assert_array_equal(without[:, 0], np.arange(50))  # each image is its own best


def test_top_k_larger_than_gallery() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    query = np.array([[1.0, 0.1]])
    indices, scores = top_k(query, gallery, k=10, chunk_size=3)
    np.testing.assert_array_equal(indices, [[0, 2, 1, 3]])
    np.testing.assert_allclose(scores, [[1.0, 0.77, 0.1, -1.0]])
    indices, _ = top_k(query, gallery, k=10, exclude=np.array([0]))
    np.testing.assert_array_equal(indices, [[2, 1, 3]])  # k' = G - 1


def test_top_k_validates_input() -> None:
    with pytest.raises(ValueError, match="gallery"):
        top_k(np.ones((2, 3)), np.ones((4, 2)), k=1)
    with pytest.raises(ValueError, match="exclude"):
        top_k(np.ones((2, 3)), np.ones((4, 3)), k=1, exclude=np.array([0, 4]))
    gallery = np.ones((4, 3))
    gallery[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.ones((2, 3)), gallery, k=1)


def test_relevance_from_sets_and_matrix_agree() -> None:
    indices = np.array([[0, 2, 1], [3, 0, 1]])
    sets = [{2, 3}, [1]]
    matrix = np.zeros((2, 4), dtype=bool)
    matrix[0, [2, 3]] = True
    matrix[1, 1] = True
    expected = [[False, True, False], [False, False, True]]
    np.testing.assert_array_equal(relevance_at_k(indices, sets), expected)
    np.testing.assert_array_equal(relevance_at_k(indices, matrix), expected)
    np.testing.assert_array_equal(relevance_at_k(np.array([[-1, 2]]), matrix[:1]), [[False, True]])


def test_relevant_counts_leave_out_the_excluded_item() -> None:
    sets = [{0, 1, 2}, {1}, set()]
    exclude = np.array([0, 2, -1])  # query 0 excludes a relevant item, query 1 an irrelevant one
    np.testing.assert_array_equal(relevant_counts(sets), [3, 1, 0])
    np.testing.assert_array_equal(relevant_counts(sets, exclude), [2, 1, 0])
    matrix = np.zeros((3, 4), dtype=bool)
    matrix[0, [0, 1, 2]] = matrix[1, 1] = True
    np.testing.assert_array_equal(relevant_counts(matrix, exclude), [2, 1, 0])


def test_ir_hits_and_position_weighting_hand_worked() -> None:
    first = np.zeros((1, 10), dtype=bool)
    first[0, 0] = True
    last = np.zeros((1, 10), dtype=bool)
    last[0, 9] = True
    assert position_weighted_points(first, 10)[0] == pytest.approx(10 * 10 / 55)
    assert position_weighted_points(last, 10)[0] == pytest.approx(10 * 1 / 55)
    assert position_weighted_points(np.ones((1, 10), dtype=bool), 10)[0] == pytest.approx(10)
    both = np.vstack([first, last])
    assert ir_position_weighted(both, 10) == pytest.approx((11 * 10 / 55, 20.0))
    assert ir_hits(both) == (2, 20)


def test_ir_scores_with_gallery_smaller_than_k() -> None:
    rel = np.array([[True, False, True]])  # a 3-item gallery, K = 10
    assert ir_hits(rel, k=10) == (2, 10)
    score, maximum = ir_position_weighted(rel, k=10)
    assert (score, maximum) == (pytest.approx(10 * (10 + 8) / 55), 10.0)


def test_metrics_hand_worked() -> None:
    rel = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]], dtype=bool)
    n_relevant = np.array([3, 1])
    np.testing.assert_allclose(precision_at_k(rel, 5), [0.4, 0.2])
    np.testing.assert_allclose(recall_at_k(rel, n_relevant, 5), [2 / 3, 1.0])
    np.testing.assert_allclose(reciprocal_rank(rel, 5), [1.0, 0.5])
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(
        ndcg_at_k(rel, n_relevant, 5), [(1 + 1 / math.log2(4)) / ideal, 1 / math.log2(3)]
    )
    np.testing.assert_allclose(average_precision_at_k(rel, n_relevant, 5), [(1 + 2 / 3) / 3, 0.5])
    # k = 1 truncates: query 1 has nothing in the top 1.
    np.testing.assert_allclose(ndcg_at_k(rel, n_relevant, 1), [1.0, 0.0])
    np.testing.assert_allclose(reciprocal_rank(rel, 1), [1.0, 0.0])


def test_map_divides_by_all_relevant_items_like_trec_eval() -> None:
    # Both of the top 2 relevant, but 10 relevant items exist: trec_eval map_cut gives 2/10,
    # not 1.0 as a min(n_relevant, k) denominator would; nDCG's ideal uses min(10, 2) = 2.
    rel = np.array([[True, True]])
    assert average_precision_at_k(rel, np.array([10]), 2)[0] == pytest.approx(0.2)
    assert ndcg_at_k(rel, np.array([10]), 2)[0] == pytest.approx(1.0)


def test_query_without_relevant_items_scores_zero_and_counts() -> None:
    rel = np.array([[True, False], [False, False]])
    n_relevant = np.array([1, 0])
    result = retrieval_metrics(rel, n_relevant, ks=(1, 2))
    assert result.n_queries == 2 and result.n_queries_without_relevant == 1
    for key, values in result.per_query.items():
        assert values[1] == 0.0, key
    assert result.recall[1] == pytest.approx(0.5)
    assert result.mrr == pytest.approx(0.5)
    assert result.hits_max == 4
    dropped = retrieval_metrics(rel, n_relevant, ks=(1, 2), exclude_queries_without_relevant=True)
    assert dropped.n_queries == 1 and dropped.n_queries_without_relevant == 1
    assert dropped.recall[1] == dropped.mrr == dropped.ndcg[2] == 1.0
    assert dropped.hits_max == 2


def test_inconsistent_relevant_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_relevant"):
        recall_at_k(np.array([[True, True]]), np.array([1]), 2)


def trec_eval_reference(rel_row: list[bool], n_rel: int, k: int) -> dict[str, float]:
    """Literal per-query transcription of trec_eval's P, recall, map_cut and ndcg_cut (v9)
    loops and marqo-FashionCLIP's mrr, used only to check the vectorised code."""
    hits, ap_sum, dcg, rr = 0, 0.0, 0.0, 0.0
    for i, is_rel in enumerate(rel_row[:k]):
        if is_rel:
            hits += 1
            ap_sum += hits / (i + 1)
            dcg += 1 / math.log2(i + 2)
            rr = rr or 1 / (i + 1)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(n_rel, k)))
    return {
        f"P@{k}": hits / k,
        f"Recall@{k}": hits / n_rel if n_rel else 0.0,
        f"MAP@{k}": ap_sum / n_rel if n_rel else 0.0,
        f"NDCG@{k}": dcg / ideal if ideal > 0 else 0.0,
        "MRR": rr,
    }


def test_retrieval_metrics_match_trec_eval_reference_on_random_data() -> None:
    rng = np.random.default_rng(7)
    rel = rng.random((60, 8)) < 0.3  # narrower than k = 10: a small gallery
    n_relevant = rel.sum(axis=1) + rng.integers(0, 4, size=60)
    rel[:3], n_relevant[:3] = False, 0  # queries with no relevant items at all
    result = retrieval_metrics(rel, n_relevant, ks=(1, 5, 10))
    rows = [(list(r), int(n)) for r, n in zip(rel, n_relevant, strict=True)]
    for k in (1, 5, 10):
        reference = [trec_eval_reference(r, n, k) for r, n in rows]
        for name in (f"P@{k}", f"Recall@{k}", f"MAP@{k}", f"NDCG@{k}"):
            expected = [ref[name] for ref in reference]
            np.testing.assert_allclose(result.per_query[name], expected, err_msg=name)
            assert result.summary()[name] == pytest.approx(np.mean(expected))
    reference_mrr = [trec_eval_reference(r, n, 10)["MRR"] for r, n in rows]
    np.testing.assert_allclose(result.per_query["MRR"], reference_mrr)
    assert result.hits == int(rel.sum()) and result.hits_max == 600
    assert result.by_position == pytest.approx(position_weighted_points(rel, 10).sum())
    assert result.by_position_max == 600.0


def test_end_to_end_search_to_metrics() -> None:
    # Gallery of two tight clusters; each image query should retrieve its own cluster.
    rng = np.random.default_rng(11)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.repeat([0, 1], 6)
    gallery = centres[labels] + 0.01 * rng.normal(size=(12, 3))
    exclude = np.arange(12)
    indices, _ = top_k(gallery, gallery, k=5, exclude=exclude, chunk_size=5)
    relevant = labels[None, :] == labels[:, None]
    rel = relevance_at_k(indices, relevant)
    result = retrieval_metrics(rel, relevant_counts(relevant, exclude), ks=(1, 5))
    assert result.recall[5] == 1.0 and result.precision[5] == 1.0 and result.mrr == 1.0
    assert result.ndcg[5] == pytest.approx(1.0) and result.map[5] == pytest.approx(1.0)
    assert (result.hits, result.hits_max) == (60, 60)
