"""Bootstrap intervals: contain the estimate, are seeded, shrink with more data, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from evalsuite.metrics.bootstrap import bootstrap_ci, bootstrap_metric


def test_interval_contains_the_point_estimate() -> None:
    values = np.random.default_rng(0).random(300)
    for statistic in (np.mean, np.sum):
        low, high = bootstrap_ci(values, statistic=statistic, n_resamples=500)
        assert low < statistic(values) < high


def test_deterministic_under_the_seed() -> None:
    values = np.random.default_rng(1).normal(size=200)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_narrower_with_more_data() -> None:
    rng = np.random.default_rng(2)
    small_low, small_high = bootstrap_ci(rng.random(50))
    large_low, large_high = bootstrap_ci(rng.random(5000))
    assert large_high - large_low < (small_high - small_low) / 3


def test_higher_confidence_is_wider() -> None:
    values = np.random.default_rng(3).random(400)
    low90, high90 = bootstrap_ci(values, confidence=0.90)
    low99, high99 = bootstrap_ci(values, confidence=0.99)
    assert low99 < low90 and high90 < high99


def test_mean_interval_roughly_matches_the_normal_approximation() -> None:
    values = np.random.default_rng(4).normal(loc=2.0, size=2000)
    low, high = bootstrap_ci(values, n_resamples=2000)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert high - low == pytest.approx(2 * half_width, rel=0.15)
    assert (low + high) / 2 == pytest.approx(values.mean(), abs=0.2 * half_width)


def test_tiny_and_degenerate_samples() -> None:
    assert all(np.isnan(bootstrap_ci(np.array([]))))
    assert bootstrap_ci(np.array([0.7])) == (0.7, 0.7)
    assert bootstrap_ci(np.ones(30)) == (1.0, 1.0)
    assert bootstrap_ci(np.array([2.0]), statistic=np.sum) == (2.0, 2.0)


def test_large_input_is_resampled_in_batches() -> None:
    # 2000 resamples x 50,000 units would be 10^8 values at once; batching keeps it bounded.
    values = np.random.default_rng(5).random(50_000)
    low, high = bootstrap_ci(values, n_resamples=200)
    assert low < values.mean() < high


def test_paired_metric_resamples_rows_together() -> None:
    rng = np.random.default_rng(6)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, 300))

    def accuracy(t: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(t == p))

    low, high = bootstrap_metric(accuracy, (y_true, y_pred), n_resamples=300)
    assert low < accuracy(y_true, y_pred) < high
    assert (low, high) == bootstrap_metric(accuracy, (y_true, y_pred), n_resamples=300)
    # Perfect predictions stay perfect in every resample only if rows move together.
    assert bootstrap_metric(accuracy, (y_true, y_true), n_resamples=50) == (1.0, 1.0)


def test_paired_macro_f1() -> None:
    rng = np.random.default_rng(8)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, 300))

    def macro_f1(t: np.ndarray, p: np.ndarray) -> float:
        return f1_score(t, p, average="macro", labels=range(4), zero_division=0)

    low, high = bootstrap_metric(macro_f1, (y_true, y_pred), n_resamples=100)
    assert low < macro_f1(y_true, y_pred) < high
    assert high - low < 0.2


def test_paired_metric_accepts_rows_of_different_shapes() -> None:
    rng = np.random.default_rng(7)
    rel = rng.random((80, 5)) < 0.4
    n_relevant = rel.sum(axis=1) + 1

    def recall_at_5(r: np.ndarray, n: np.ndarray) -> float:
        return float((r.sum(axis=1) / n).mean())

    low, high = bootstrap_metric(recall_at_5, (rel, n_relevant), n_resamples=200)
    assert low < recall_at_5(rel, n_relevant) < high


def test_paired_metric_edge_cases() -> None:
    def count(a: np.ndarray) -> float:
        return float(len(a))

    assert all(np.isnan(bootstrap_metric(count, (np.array([]),))))
    assert bootstrap_metric(count, (np.array([5]),)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="same number of rows"):
        bootstrap_metric(count, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.ones(3), confidence=1.5)


def test_classification_scores_of_resamples_match_sklearn() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from evalsuite.metrics.bootstrap import classification_bootstrap, classification_scores

    rng = np.random.default_rng(3)
    n_classes = 6
    y_true = rng.integers(0, n_classes - 1, 120)  # class 5 never true: an empty class
    y_pred = np.where(rng.random(120) < 0.6, y_true, rng.integers(0, n_classes, 120))
    rows = rng.integers(0, 120, size=(25, 120))
    scores = classification_scores(y_true[rows], y_pred[rows], n_classes)
    labels = list(range(n_classes))
    for r in range(len(rows)):
        t, p = y_true[rows[r]], y_pred[rows[r]]
        assert scores["accuracy"][r] == pytest.approx(accuracy_score(t, p))
        assert scores["balanced_accuracy"][r] == pytest.approx(balanced_accuracy_score(t, p))
        for average in ("macro", "weighted"):  # scikit-learn's default labels: seen ones
            expected = f1_score(t, p, average=average, zero_division=0)
            assert scores[f"f1_{average}"][r] == pytest.approx(expected)
    intervals = classification_bootstrap(y_true, y_pred, n_classes, n_resamples=300, seed=1)
    point = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    low, high = intervals["f1_macro"]
    assert low < point < high
    assert intervals == classification_bootstrap(y_true, y_pred, n_classes, 300, seed=1)


def test_macro_f1_interval_is_not_dragged_down_by_resamples_missing_a_rare_class() -> None:
    from evalsuite.metrics.bootstrap import classification_bootstrap

    # 200 items of 4 common classes (80% right) and one item of a rare class, predicted right.
    # 37% of resamples draw no item of the rare class; scoring its F1 as 0 there (instead of
    # leaving it out, as scikit-learn's default labels do) put the lower end at 0.60.
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, rng.integers(0, 4, 200))
    y_true, y_pred = np.append(y_true, 4), np.append(y_pred, 4)
    point = f1_score(y_true, y_pred, average="macro")
    low, high = classification_bootstrap(y_true, y_pred, 5, n_resamples=1000)["f1_macro"]
    assert low < point < high
    assert point - low < 0.1  # was 0.24
