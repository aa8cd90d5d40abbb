"""Zero-shot classification metrics: prompt ensembling, accuracy@k, F1 and the pretest score.

Pure functions of numpy arrays. Conventions, each pinned by tests/test_metrics_zeroshot.py:

- Ties in scores: the predicted class is the *lowest* class index among the maxima (what
  ``np.argmax`` returns), and ranks break ties the same way by default ("index" rule), so
  "true class ranked 1" and "prediction correct" always agree. ``ties="pessimistic"`` ranks
  the true class below every class that ties with it instead.
- Classes with no true items ("empty classes") keep their row and column everywhere:
  per-class precision, recall and F1 use ``zero_division=0``, so an empty class scores 0,
  and ``f1_macro`` averages over all C classes exactly like
  ``sklearn.metrics.f1_score(..., labels=range(C), average="macro", zero_division=0)``.
  Because that drags the macro mean down for classes the split simply lacks,
  ``f1_macro_present`` averages over the classes present in ``y_true`` only.
  ``balanced_accuracy`` is scikit-learn's: mean recall over the classes present in ``y_true``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

TieRule = Literal["index", "pessimistic"]


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(vectors.dtype).tiny)


def _float_array(values: np.ndarray) -> np.ndarray:
    """At least float32 (float16 embeddings lose too much in sums); float64 stays float64."""
    values = np.asarray(values)
    return values.astype(np.result_type(values.dtype, np.float32), copy=False)


def class_embeddings(prompt_embeddings: np.ndarray) -> np.ndarray:
    """(C, T, D) prompt-template embeddings per class -> (C, D) unit class embeddings.

    CLIP's prompt ensembling: the mean over the T templates, re-normalised.
    """
    prompt_embeddings = _float_array(prompt_embeddings)
    if prompt_embeddings.ndim != 3 or 0 in prompt_embeddings.shape:
        raise ValueError(
            f"prompt_embeddings must be a non-empty (classes, templates, dim) array, "
            f"got shape {prompt_embeddings.shape}"
        )
    return _l2_normalise(prompt_embeddings.mean(axis=1))


def similarity_logits(image_embeddings: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """(N, D) images x (C, D) classes -> (N, C) cosine similarities.

    Both sides are re-normalised, so the result is a cosine even for un-normalised input.
    """
    images, classes = _float_array(image_embeddings), _float_array(class_embeddings)
    if images.ndim != 2 or classes.ndim != 2 or images.shape[1] != classes.shape[1]:
        raise ValueError(
            f"need (N, D) images and (C, D) classes with the same D, "
            f"got {images.shape} and {classes.shape}"
        )
    return _l2_normalise(images) @ _l2_normalise(classes).T


def _check_labels_and_scores(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if scores.ndim != 2 or y_true.shape != (scores.shape[0],):
        raise ValueError(f"need y_true (N,) and scores (N, C), got {y_true.shape}, {scores.shape}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"no items or no classes to score: scores shape {scores.shape}")
    if not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class indices, got dtype {y_true.dtype}")
    if y_true.min() < 0 or y_true.max() >= scores.shape[1]:
        raise ValueError(f"y_true has class indices outside [0, {scores.shape[1]})")
    # NaN compares false with everything, so it would silently rank first; refuse it.
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return y_true.astype(np.int64), scores


def true_class_rank(y_true: np.ndarray, scores: np.ndarray, ties: TieRule = "index") -> np.ndarray:
    """(N,) rank of each item's true class among the C scores, 1 = best.

    ``ties="index"``: a class with an equal score ranks above the true class only if its index
    is lower (consistent with argmax). ``ties="pessimistic"``: every equal class ranks above it.
    """
    y_true, scores = _check_labels_and_scores(y_true, scores)
    true_scores = scores[np.arange(len(y_true)), y_true][:, None]
    n_higher = (scores > true_scores).sum(axis=1)
    tied = scores == true_scores
    if ties == "index":
        n_tied_ahead = (tied & (np.arange(scores.shape[1]) < y_true[:, None])).sum(axis=1)
    elif ties == "pessimistic":
        n_tied_ahead = tied.sum(axis=1) - 1  # minus the true class itself
    else:
        raise ValueError(f"ties must be 'index' or 'pessimistic', got {ties!r}")
    return 1 + n_higher + n_tied_ahead


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of items whose true class ranks <= k (index tie rule).

    Hand-written rather than sklearn's top_k_accuracy_score: that one breaks ties towards the
    *higher* class index (reversed stable argsort), which would disagree with argmax. Without
    ties the two are identical (tested).
    """
    return float(np.mean(true_class_rank(y_true, scores) <= k))


@dataclass(frozen=True, eq=False)
class ClassificationResult:
    """Zero-shot classification metrics; arrays are indexed by class (C) or item (N)."""

    class_names: list[str]
    n_items: int
    acc1: float
    acc5: float | None  # None when there are fewer than 5 classes
    balanced_accuracy: float
    f1_macro: float  # over all C classes (empty classes count as F1 = 0)
    f1_macro_present: float  # over the classes present in y_true only
    f1_weighted: float
    precision: np.ndarray  # (C,) float
    recall: np.ndarray  # (C,) float
    f1: np.ndarray  # (C,) float
    support: np.ndarray  # (C,) int: true items per class
    confusion: np.ndarray  # (C, C) int: rows true class, columns predicted class
    y_pred: np.ndarray  # (N,) int

    def summary(self) -> dict[str, float | int | None]:
        """The scalar metrics, for storage and reports."""
        return {
            "n_items": self.n_items,
            "acc1": self.acc1,
            "acc5": self.acc5,
            "balanced_accuracy": self.balanced_accuracy,
            "f1_macro": self.f1_macro,
            "f1_macro_present": self.f1_macro_present,
            "f1_weighted": self.f1_weighted,
        }

    def per_class(self) -> list[dict[str, str | float | int]]:
        """One plain dict per class, in class-index order."""
        return [
            {
                "class": name,
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "f1": float(self.f1[i]),
                "support": int(self.support[i]),
            }
            for i, name in enumerate(self.class_names)
        ]


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # sklearn warns when y_pred names classes absent from y_true; that is expected here
    # (a zero-shot model may predict any class) and the result ignores those classes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred))


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, class_names: list[str]
) -> ClassificationResult:
    """Metrics of (N,) true class indices against (N, C) class scores (e.g. cosine logits)."""
    y_true, scores = _check_labels_and_scores(y_true, scores)
    n_classes = scores.shape[1]
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} score columns")
    labels = np.arange(n_classes)
    y_pred = scores.argmax(axis=1)  # first maximum: ties go to the lowest class index
    ranks = true_class_rank(y_true, scores)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = labels[support > 0]

    def f1_over(average: str, over: np.ndarray) -> float:
        return float(f1_score(y_true, y_pred, labels=over, average=average, zero_division=0))

    return ClassificationResult(
        class_names=list(class_names),
        n_items=len(y_true),
        acc1=float(np.mean(ranks <= 1)),
        acc5=float(np.mean(ranks <= 5)) if n_classes >= 5 else None,
        balanced_accuracy=_balanced_accuracy(y_true, y_pred),
        f1_macro=f1_over("macro", labels),
        f1_macro_present=f1_over("macro", present),
        f1_weighted=f1_over("weighted", labels),
        precision=precision,
        recall=recall,
        f1=f1,
        support=support.astype(np.int64),
        confusion=confusion_matrix(y_true, y_pred, labels=labels),
        y_pred=y_pred,
    )


def pretest_points(
    y_true: np.ndarray, scores: np.ndarray, k: int = 5, ties: TieRule = "index"
) -> np.ndarray:
    """(N,) int points per item: K - r + 1 when the true class ranks r <= K, else 0.

    K is used as given, never clamped to C: with K > C every item earns at least K - C + 1
    points, and the maximum stays K x N as the pretest defines it.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = true_class_rank(y_true, scores, ties=ties)
    return np.maximum(k - ranks + 1, 0).astype(np.int64)


def pretest_score(
    y_true: np.ndarray, scores: np.ndarray, k: int = 5, ties: TieRule = "index"
) -> tuple[int, int]:
    """(score, maximum) of the pretest: points summed over items, maximum = K x N."""
    points = pretest_points(y_true, scores, k=k, ties=ties)
    return int(points.sum()), k * len(points)
