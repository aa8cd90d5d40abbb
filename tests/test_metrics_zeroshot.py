"""Zero-shot metrics against scikit-learn on random data, plus hand-worked edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from evalsuite.metrics.zeroshot import (
    class_embeddings,
    classification_metrics,
    pretest_points,
    pretest_score,
    similarity_logits,
    top_k_accuracy,
    true_class_rank,
)


def random_case(n_items: int = 400, n_classes: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n_items)
    # Informative but noisy scores: the true class gets a boost.
    scores = rng.normal(size=(n_items, n_classes))
    scores[np.arange(n_items), y_true] += 1.0
    return y_true, scores


def names(n_classes: int) -> list[str]:
    return [f"class{i}" for i in range(n_classes)]


def test_class_embeddings_are_normalised_template_means() -> None:
    rng = np.random.default_rng(1)
    prompts = rng.normal(size=(4, 3, 8)).astype(np.float32)
    prompts /= np.linalg.norm(prompts, axis=-1, keepdims=True)
    out = class_embeddings(prompts)
    expected = prompts.mean(axis=1)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    assert out.shape == (4, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_class_embeddings_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="templates"):
        class_embeddings(np.ones((4, 8)))


def test_similarity_logits_are_cosines() -> None:
    images = np.array([[3.0, 0.0], [1.0, 1.0]])
    classes = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(
        similarity_logits(images, classes), [[1.0, 0.0], [2**-0.5, 2**-0.5]], rtol=1e-12
    )
    with pytest.raises(ValueError, match="same D"):
        similarity_logits(images, np.ones((2, 3)))


def test_matches_sklearn_on_random_data() -> None:
    y_true, scores = random_case()
    n_classes = scores.shape[1]
    labels = list(range(n_classes))
    y_pred = scores.argmax(axis=1)
    result = classification_metrics(y_true, scores, names(n_classes))

    assert result.acc1 == pytest.approx(np.mean(y_pred == y_true))
    assert result.acc5 == pytest.approx(top_k_accuracy_score(y_true, scores, k=5, labels=labels))
    assert result.balanced_accuracy == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        expected = f1_score(y_true, y_pred, average=average, labels=labels, zero_division=0)
        assert getattr(result, f"f1_{average}") == expected  # exactly, not approximately
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_array_equal(result.precision, precision)
    np.testing.assert_array_equal(result.recall, recall)
    np.testing.assert_array_equal(result.f1, f1)
    np.testing.assert_array_equal(result.support, support)
    np.testing.assert_array_equal(result.confusion, confusion_matrix(y_true, y_pred))
    np.testing.assert_array_equal(result.y_pred, y_pred)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 11])
def test_top_k_accuracy_matches_sklearn_without_ties(k: int) -> None:
    y_true, scores = random_case(seed=k)
    expected = top_k_accuracy_score(y_true, scores, k=k, labels=list(range(scores.shape[1])))
    assert top_k_accuracy(y_true, scores, k) == pytest.approx(expected)


def test_ties_go_to_the_lowest_class_index() -> None:
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.7], [0.3, 0.3, 0.3]])
    y_true = np.array([1, 2, 0])
    result = classification_metrics(y_true, scores, ["a", "b", "c"])
    np.testing.assert_array_equal(result.y_pred, [0, 1, 0])
    assert result.acc1 == pytest.approx(1 / 3)  # only the all-tie row, true class 0, is right
    np.testing.assert_array_equal(true_class_rank(y_true, scores), [2, 2, 1])
    np.testing.assert_array_equal(true_class_rank(y_true, scores, ties="pessimistic"), [2, 2, 3])
    assert result.acc5 is None  # fewer than 5 classes


def test_empty_classes_count_in_macro_f1_but_not_in_present_macro() -> None:
    # Class 2 has no true items and is never predicted; class 3 has none but is predicted once.
    y_true = np.array([0, 0, 1, 1])
    scores = np.zeros((4, 4))
    scores[[0, 1, 2, 3], [0, 0, 1, 3]] = 1.0
    result = classification_metrics(y_true, scores, list("abcd"))
    np.testing.assert_array_equal(result.support, [2, 2, 0, 0])
    np.testing.assert_allclose(result.f1, [1.0, 2 / 3, 0.0, 0.0])  # zero_division=0
    np.testing.assert_allclose(result.precision, [1.0, 1.0, 0.0, 0.0])
    expected_all = f1_score(
        y_true, result.y_pred, average="macro", labels=range(4), zero_division=0
    )
    assert result.f1_macro == expected_all == pytest.approx((1 + 2 / 3) / 4)
    assert result.f1_macro_present == pytest.approx((1 + 2 / 3) / 2)
    assert result.f1_weighted == pytest.approx((2 * 1 + 2 * 2 / 3) / 4)
    assert result.balanced_accuracy == pytest.approx((1.0 + 0.5) / 2)  # present classes only
    assert result.confusion.shape == (4, 4)
    assert result.confusion[1, 3] == 1  # rows true, columns predicted
    assert [row["class"] for row in result.per_class()] == list("abcd")
    assert result.summary()["f1_macro"] == result.f1_macro


def test_classification_metrics_validates_input() -> None:
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(np.array([0]), np.ones((1, 2)), ["only one"])
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(np.array([2]), np.ones((1, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(np.array([0]), np.array([[np.nan, 1.0]]), ["a", "b"])


def test_pretest_points_hand_worked() -> None:
    # True-class ranks: 1, 2, 5, 6 -> points with K=5: 5, 4, 1, 0.
    scores = np.array(
        [
            [9, 1, 2, 3, 4, 5],
            [1, 9, 2, 3, 4, 5],
            [9, 8, 7, 6, 5, 1],
            [6, 5, 4, 3, 2, 1],
        ],
        dtype=float,
    )
    y_true = np.array([0, 5, 4, 5])
    np.testing.assert_array_equal(true_class_rank(y_true, scores), [1, 2, 5, 6])
    np.testing.assert_array_equal(pretest_points(y_true, scores, k=5), [5, 4, 1, 0])
    assert pretest_score(y_true, scores, k=5) == (10, 20)


def test_pretest_tie_rules() -> None:
    scores = np.array([[1.0, 1.0, 1.0]])
    assert pretest_points(np.array([1]), scores, k=3).tolist() == [2]  # index rule: rank 2
    assert pretest_points(np.array([1]), scores, k=3, ties="pessimistic").tolist() == [1]


def test_pretest_k_larger_than_classes_is_not_clamped() -> None:
    scores = np.array([[0.9, 0.1], [0.9, 0.1]])
    y_true = np.array([0, 1])  # ranks 1 and 2
    np.testing.assert_array_equal(pretest_points(y_true, scores, k=5), [5, 4])
    assert pretest_score(y_true, scores, k=5) == (9, 10)  # maximum stays K x N
