"""kNN and the linear probe against scikit-learn on the same arrays; embedding statistics on
hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from evalsuite.metrics.embedding_stats import (
    chance_agreement,
    effective_rank,
    mean_pairwise_similarity,
    neighbour_label_agreement,
)
from evalsuite.metrics.probes import knn_predict, knn_scores, linear_probe, neighbour_weights


def _blobs(n: int, n_classes: int, dim: int, seed: int, spread: float = 1.5):
    """Unit vectors around one random centre per class (overlapping: errors happen)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    y = rng.integers(0, n_classes, size=n)
    x = centres[y] + spread * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


SKLEARN_WEIGHTS = {
    "uniform": "uniform",
    "distance": "distance",
    "similarity": lambda d: 1.0 - d,  # cosine distance -> similarity
    "exponential": lambda d: np.exp((1.0 - d) / 0.07),
}


@pytest.mark.parametrize("weighting", list(SKLEARN_WEIGHTS))
@pytest.mark.parametrize("k", [1, 5, 12])
def test_knn_equals_sklearn_kneighbors_classifier(weighting: str, k: int) -> None:
    x_train, y_train = _blobs(300, 6, 16, seed=1)
    x_test, _ = _blobs(120, 6, 16, seed=2)
    ours = knn_predict(x_train, y_train, x_test, 6, k=k, weighting=weighting)  # type: ignore[arg-type]
    theirs = KNeighborsClassifier(
        n_neighbors=k, metric="cosine", weights=SKLEARN_WEIGHTS[weighting], algorithm="brute"
    ).fit(x_train, y_train)
    assert np.array_equal(ours, theirs.predict(x_test))
    # the vote shares equal scikit-learn's probabilities too
    scores = knn_scores(x_train, y_train, x_test, 6, k=k, weighting=weighting)  # type: ignore[arg-type]
    votes = np.clip(scores, 0.0, None)  # classes nobody voted for score below every vote
    np.testing.assert_allclose(
        votes / votes.sum(axis=1, keepdims=True), theirs.predict_proba(x_test), atol=1e-5
    )


def test_similarity_votes_at_negative_cosine_still_beat_classes_nobody_voted_for() -> None:
    train = np.array([[-0.5, 1.0], [-0.5, -1.0], [-1.0, 0.0]], np.float32)
    query = np.array([[1.0, 0.0]], np.float32)  # its 2 neighbours (class 1) point away from it
    labels = np.array([1, 1, 2])
    scores = knn_scores(train, labels, query, 3, k=2, weighting="similarity")
    assert scores[0, 0] == scores[0, 2] == scores[0, 1] - 1 and scores[0, 1] < 0
    assert knn_predict(train, labels, query, 3, k=2, weighting="similarity").tolist() == [1]


def test_leave_one_out_equals_refitting_without_the_item() -> None:
    x, y = _blobs(60, 3, 8, seed=3)
    ours = knn_predict(x, y, x, 3, k=5, weighting="distance", exclude_self=True)
    for i in range(len(x)):
        others = np.arange(len(x)) != i
        model = KNeighborsClassifier(5, metric="cosine", weights="distance", algorithm="brute")
        assert ours[i] == model.fit(x[others], y[others]).predict(x[i : i + 1])[0]


def test_knn_ties_go_to_the_lowest_class_and_exact_matches_take_the_vote() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    query = np.array([[1.0, 1.0]], np.float32)  # equally close to both
    assert knn_predict(train, np.array([1, 0]), query, 2, k=2).tolist() == [0]
    weights = neighbour_weights(np.array([[1.0, 0.5]]), "distance")
    assert weights.tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="weighting"):
        neighbour_weights(np.array([[0.5]]), "nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(train, np.array([0, 1]), np.array([[np.nan, 0.0]]), 2)
    with pytest.raises(ValueError, match="class indices"):
        knn_predict(train, np.array([0, 2]), query, 2)


def test_linear_probe_equals_logistic_regression_with_the_chosen_c() -> None:
    x_train, y_train = _blobs(240, 4, 12, seed=4)
    x_val, y_val = _blobs(80, 4, 12, seed=5)
    x_test, _ = _blobs(100, 4, 12, seed=6)
    grid = (0.01, 0.1, 1.0, 10.0)
    result = linear_probe(x_train, y_train, x_test, 4, x_val, y_val, c_grid=grid)
    accuracy = {
        c: LogisticRegression(C=c, max_iter=1000, random_state=0)
        .fit(x_train, y_train)
        .score(x_val, y_val)
        for c in grid
    }
    assert result.validation_accuracy == pytest.approx(accuracy)
    best = max(grid, key=lambda c: (accuracy[c], -c))
    assert result.c == best
    reference = LogisticRegression(C=best, max_iter=1000, random_state=0).fit(x_train, y_train)
    assert np.array_equal(result.y_pred, reference.predict(x_test))
    np.testing.assert_allclose(result.scores, reference.predict_proba(x_test), atol=1e-10)


def test_linear_probe_keeps_classes_missing_from_training_as_zero_columns() -> None:
    x, y = _blobs(90, 3, 6, seed=7)
    y = np.where(y == 1, 2, y)  # class 1 never trained
    result = linear_probe(x, y, x[:10], 3, c_grid=[1.0])
    assert result.scores.shape == (10, 3) and not result.scores[:, 1].any()
    assert result.validation_accuracy == {}
    with pytest.raises(ValueError, match="validation rows"):
        linear_probe(x, y, x, 3, c_grid=[0.1, 1.0])
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(x, np.zeros(len(x), np.int64), x, 3, c_grid=[1.0])


def test_neighbour_agreement_by_hand() -> None:
    # items 0,1 close together, 2,3 close together; 4 is unlabelled, nearest to 3
    vectors = np.array([[1, 0.1], [1, 0.0], [0, 1], [0.1, 1], [0.2, 1]], np.float32)
    labels = np.array([0, 0, 1, 0, -1])
    # 0 -> 1 (same), 1 -> 0 (same), 2 -> 3 (different), 3 -> 4 (unlabelled: different)
    assert neighbour_label_agreement(vectors, labels) == pytest.approx(2 / 4)
    assert chance_agreement(labels) == pytest.approx((3 / 4) ** 2 + (1 / 4) ** 2)


def test_mean_pairwise_similarity_and_effective_rank_by_hand() -> None:
    orthonormal = np.eye(4, dtype=np.float32)
    assert mean_pairwise_similarity(orthonormal) == pytest.approx(0.0)
    assert effective_rank(orthonormal) == pytest.approx(4.0)  # equal singular values
    collapsed = np.tile([[3.0, 4.0, 0.0]], (5, 1))
    assert mean_pairwise_similarity(collapsed) == pytest.approx(1.0)
    assert effective_rank(collapsed) == pytest.approx(1.0)
    # two directions, singular values 2 and 1 (rows scaled: normalised first)
    vectors = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 5]], np.float32)
    p = np.array([2.0, 1.0]) / 3.0
    assert effective_rank(vectors) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    naive = np.mean([unit[i] @ unit[j] for i in range(5) for j in range(5) if i != j])
    assert mean_pairwise_similarity(vectors) == pytest.approx(naive)  # 12 of 20 pairs: 0.6
