"""Cheap statistics of an embedding space that flag a collapsed fine-tune.

Pure functions of numpy arrays:

- ``neighbour_label_agreement``: how often an item's most similar *other* item (cosine) has
  the same label. A space that keeps classes apart scores high; collapse drives it towards
  the chance level ``chance_agreement`` (sum of squared class frequencies: two items drawn
  at random share a label with that probability).
- ``mean_pairwise_similarity``: mean cosine over all ordered pairs i != j (anisotropy: a
  collapsed space puts every vector in one narrow cone, so this goes towards 1).
- ``effective_rank``: Roy & Vetterli (2007), exp of the Shannon entropy of the normalised
  singular values of the (uncentred) N x D matrix; between 1 and min(N, D). A fine-tune that
  squeezes the images into a few directions loses rank.
"""

from __future__ import annotations

import numpy as np

from evalsuite.metrics.retrieval import top_k


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"need a non-empty (N, D) array, got shape {vectors.shape}")
    vectors = vectors.astype(np.float64)
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float64).tiny)


def neighbour_agreement_per_item(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M,) 1.0 / 0.0 per labelled item: does its nearest other item share its label?

    ``labels`` are (N,) integers, -1 for an unlabelled item: unlabelled items are not scored
    but stay in the gallery (a labelled item whose neighbour is unlabelled disagrees). The
    nearest neighbour is the most similar other row; ties go to the lower row index.
    """
    labels = np.asarray(labels)
    vectors = _unit(vectors)
    if labels.shape != (len(vectors),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be ({len(vectors)},) integers, got {labels.shape}")
    if len(vectors) < 2:
        raise ValueError("neighbour agreement needs at least two items")
    scored = np.flatnonzero(labels >= 0)
    nearest, _ = top_k(vectors[scored], vectors, 1, exclude=scored)
    return (labels[nearest[:, 0]] == labels[scored]).astype(np.float64)


def neighbour_label_agreement(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of labelled items whose most similar other item has the same label."""
    agree = neighbour_agreement_per_item(vectors, labels)
    return float(agree.mean()) if len(agree) else float("nan")


def chance_agreement(labels: np.ndarray) -> float:
    """Probability that two labelled items drawn at random share a label (sum of p_c^2)."""
    labels = np.asarray(labels)
    labels = labels[labels >= 0]
    if len(labels) == 0:
        return float("nan")
    p = np.bincount(labels) / len(labels)
    return float(np.sum(p * p))


def mean_pairwise_similarity(vectors: np.ndarray) -> float:
    """Mean cosine similarity over all pairs of distinct items, in O(N D).

    sum_{i != j} v_i . v_j = |sum_i v_i|^2 - sum_i |v_i|^2 for unit rows.
    """
    unit = _unit(vectors)
    n = len(unit)
    if n < 2:
        raise ValueError("mean pairwise similarity needs at least two items")
    total = unit.sum(axis=0)
    return float((total @ total - np.sum(unit * unit)) / (n * (n - 1)))


def effective_rank(vectors: np.ndarray) -> float:
    """Roy & Vetterli's effective rank exp(H(p)), p = singular values / their sum.

    Rows are L2-normalised first (the space the tasks score in); the matrix is not centred.
    """
    singular = np.linalg.svd(_unit(vectors), compute_uv=False)
    singular = singular[singular > singular.max() * 1e-12]
    p = singular / singular.sum()
    return float(np.exp(-np.sum(p * np.log(p))))
