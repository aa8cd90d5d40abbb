"""Few-shot probes of an image-embedding space: k-nearest-neighbour votes and a linear probe.

Pure functions of numpy arrays; labels are integer class indices ``0..C-1``. Both return an
(N, C) score matrix whose row-wise argmax is the prediction, so the zero-shot metrics
(``classification_metrics``: accuracy, F1, confusion) apply unchanged.

kNN (cosine similarity; rows are re-normalised). The neighbours of a query are its ``k`` most
similar training rows (ties to the lower training index); each votes for its class with a
weight:

- ``uniform``: 1 (scikit-learn ``weights="uniform"``);
- ``distance``: 1 / (1 - cos), scikit-learn's ``weights="distance"`` with
  ``metric="cosine"``; a neighbour at distance 0 takes the whole vote, as in scikit-learn;
- ``similarity``: cos itself (a plain similarity-weighted vote);
- ``exponential``: exp(cos / temperature), the weighted kNN of InstDisc / DINO / solo-learn
  that tti-eval uses (temperature 0.07 there).

Equal votes go to the lowest class index, as ``np.argmax`` and scikit-learn's mode do.
``exclude_self`` gives leave-one-out: query i never sees training row i.

Linear probe: scikit-learn ``LogisticRegression`` (lbfgs, multinomial) trained on the training
rows for each C of a grid; the C with the best validation accuracy wins (ties: the smaller C,
i.e. the stronger regularisation) and its model scores the test rows. The model is not refit
on train + validation, so the result equals a plain ``LogisticRegression(C=best)`` fitted on
the training rows (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalsuite.metrics.retrieval import top_k

Weighting = Literal["uniform", "distance", "similarity", "exponential"]
WEIGHTINGS: tuple[str, ...] = ("uniform", "distance", "similarity", "exponential")
DEFAULT_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def _unit_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {vectors.shape}")
    vectors = vectors.astype(np.result_type(vectors.dtype, np.float32), copy=False)
    if not np.isfinite(vectors).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(vectors.dtype).tiny)


def _check_labels(labels: np.ndarray, n_rows: int, n_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n_rows,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be ({n_rows},) integer class indices, got {labels.shape}")
    if n_rows and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} hold class indices outside [0, {n_classes})")
    return labels.astype(np.int64)


def neighbour_weights(
    similarities: np.ndarray, weighting: Weighting, temperature: float = 0.07
) -> np.ndarray:
    """Vote weight of each neighbour from its cosine similarity (see the module doc)."""
    sims = np.asarray(similarities, dtype=np.float64)
    if weighting == "uniform":
        return np.ones_like(sims)
    if weighting == "similarity":
        return sims
    if weighting == "exponential":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        # Shifted by the row maximum: the same votes, no overflow at small temperatures.
        return np.exp((sims - sims.max(axis=1, keepdims=True, initial=-np.inf)) / temperature)
    if weighting == "distance":
        distances = np.maximum(1.0 - sims, 0.0)
        with np.errstate(divide="ignore"):
            weights = 1.0 / distances
        exact = distances == 0
        rows = exact.any(axis=1)  # scikit-learn: exact matches take the whole vote
        weights[rows] = exact[rows].astype(np.float64)
        return weights
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def knn_scores(
    train: np.ndarray,
    train_labels: np.ndarray,
    queries: np.ndarray,
    n_classes: int,
    k: int = 10,
    weighting: Weighting = "uniform",
    temperature: float = 0.07,
    exclude_self: bool = False,
) -> np.ndarray:
    """(Q, C) summed neighbour votes per class; argmax is the kNN prediction.

    A class that none of a query's neighbours belongs to scores below every vote of the row
    (its lowest vote, or 0, minus 1), not 0: with ``similarity`` weights, neighbours at
    negative cosine give their class a negative sum, which must still beat the classes nobody
    voted for (scikit-learn, too, predicts only among the neighbours' labels). Finite, so
    that ranks and result tables stay numeric.

    With ``exclude_self`` the queries are the training rows themselves (leave-one-out):
    ``queries`` must then have as many rows as ``train``.
    """
    train, queries = _unit_rows(train, "train vectors"), _unit_rows(queries, "query vectors")
    labels = _check_labels(train_labels, len(train), n_classes, "train labels")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(train) == 0 or len(train) - int(exclude_self) < 1:
        raise ValueError("no training rows to vote")
    exclude = None
    if exclude_self:
        if len(queries) != len(train):
            raise ValueError("leave-one-out needs the training rows as queries")
        exclude = np.arange(len(train))
    indices, sims = top_k(queries, train, k, exclude=exclude)
    weights = neighbour_weights(sims, weighting, temperature)
    scores = np.zeros((len(queries), n_classes), np.float64)
    rows = np.repeat(np.arange(len(queries)), indices.shape[1])
    np.add.at(scores, (rows, labels[indices].ravel()), weights.ravel())
    voted = np.zeros_like(scores, dtype=bool)
    voted[rows, labels[indices].ravel()] = True
    lowest_vote = np.where(voted, scores, np.inf).min(axis=1, keepdims=True)
    return np.where(voted, scores, np.minimum(lowest_vote, 0.0) - 1.0)


def knn_predict(
    train: np.ndarray,
    train_labels: np.ndarray,
    queries: np.ndarray,
    n_classes: int,
    k: int = 10,
    weighting: Weighting = "uniform",
    temperature: float = 0.07,
    exclude_self: bool = False,
) -> np.ndarray:
    """(Q,) predicted class indices of the kNN vote (ties: lowest class index)."""
    scores = knn_scores(
        train, train_labels, queries, n_classes, k, weighting, temperature, exclude_self
    )
    return scores.argmax(axis=1)


@dataclass(frozen=True, eq=False)
class LinearProbeResult:
    """The chosen C, validation accuracy of every C tried, and the test scores."""

    c: float
    validation_accuracy: dict[float, float]
    scores: np.ndarray  # (N_test, C) class probabilities, columns = class indices
    y_pred: np.ndarray  # (N_test,)


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, max_iter: int, seed: int
) -> tuple[object, np.ndarray]:
    # Imported here: scikit-learn takes ~1 s to import and most scoring runs need no probe.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        # lbfgs may stop at max_iter on well-separated classes; the probe is still usable,
        # and a warning per C of the grid would only bury the results.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model, model.classes_


def _full_scores(model: object, classes: np.ndarray, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with a zero column for every class absent from the training rows."""
    out = np.zeros((len(x), n_classes), np.float64)
    if len(x):
        out[:, classes] = model.predict_proba(x)  # type: ignore[attr-defined]
    return out


def linear_probe(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    n_classes: int,
    val: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    max_iter: int = 1000,
    seed: int = 0,
) -> LinearProbeResult:
    """Logistic regression on ``train``, C chosen on ``val`` (see the module doc).

    With one C in the grid no validation rows are needed. Features are used as given (CLIP
    embeddings are already L2-normalised; no standardisation, as in CLIP's own probe).
    """
    train, test = np.asarray(train), np.asarray(test)  # as given: what sklearn would fit
    y_train = _check_labels(train_labels, len(train), n_classes, "train labels")
    grid = sorted({float(c) for c in c_grid})
    if not grid or grid[0] <= 0:
        raise ValueError(f"C grid must hold positive values, got {list(c_grid)}")
    if len(np.unique(y_train)) < 2:
        raise ValueError("the linear probe needs training rows of at least two classes")
    if len(grid) > 1 and (val is None or val_labels is None or len(val) == 0):
        raise ValueError("choosing C needs validation rows; give one C or a validation split")
    if len(grid) == 1:
        model, classes = _fit(train, y_train, grid[0], max_iter, seed)
        accuracy: dict[float, float] = {}
        best = grid[0]
    else:
        assert val is not None and val_labels is not None
        val = np.asarray(val)
        y_val = _check_labels(val_labels, len(val), n_classes, "validation labels")
        fitted = {c: _fit(train, y_train, c, max_iter, seed) for c in grid}
        accuracy = {
            c: float(np.mean(classes[m.predict_proba(val).argmax(axis=1)] == y_val))  # type: ignore[attr-defined]
            for c, (m, classes) in fitted.items()
        }
        best = max(grid, key=lambda c: (accuracy[c], -c))  # ties: the smaller C
        model, classes = fitted[best]
    scores = _full_scores(model, classes, test, n_classes)
    return LinearProbeResult(best, accuracy, scores, scores.argmax(axis=1))
