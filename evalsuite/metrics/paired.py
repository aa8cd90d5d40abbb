"""Paired statistics of two models scored on the same units (items or queries).

Pure functions of numpy arrays; ``evalsuite.verdicts`` turns them into verdicts.

- **Paired bootstrap**: draw N of the N shared units with replacement, score *both* models on
  that same draw and keep the difference (candidate - baseline); repeat R times. The 95%
  percentile interval of those differences is the interval of the change, and
  ``p = min(1, 2 * min(#{d <= 0} + 1, #{d >= 0} + 1) / (R + 1))`` its two-sided p-value (the
  smallest level at which the percentile interval excludes 0, with the +1 of Davison & Hinkley
  so that p is never 0). Resample draws come from ``numpy.random.default_rng(seed)
  .integers(0, N, size=(R, N))``, drawn in row blocks to bound memory (the same numbers as
  one draw): the same seed and N give the same resamples for every metric of a task, so all
  of its metrics are judged on one set of resamples.
- **Exact McNemar test** for accuracy: under "no difference" each item that one model gets
  right and the other wrong is equally likely to go either way, so the count going the
  candidate's way is Binomial(discordant, 1/2) (``scipy.stats.binomtest``).
- **Benjamini-Hochberg's correction** across a family of tests (scipy's
  ``false_discovery_control``).
- **Minimal detectable difference**: (z_{1-alpha/2} + z_{power}) x the bootstrap standard
  error of the change, the smallest true change the benchmark detects with that power.

scipy.stats.bootstrap is not used for the paired statistics: it resamples one statistic at a
time, and the paired classification metrics need one confusion matrix per model per resample
(computed for all resamples with one bincount, as in ``metrics.bootstrap``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, false_discovery_control, norm

from evalsuite.metrics.bootstrap import (
    _MAX_RESAMPLED_VALUES,
    _resampled_confusions,
    classification_scores_from_confusions,
)

CLASSIFICATION_SCORES = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")


@dataclass(frozen=True)
class PairedResult:
    """Change ``candidate - baseline`` of one metric with its paired interval and p-value."""

    ci_low: float
    ci_high: float
    p_value: float
    std_error: float  # standard deviation of the resampled changes
    n_units: int


def resample_rows(n_units: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(block, N) row indices of the R resamples, in blocks of at most ~4M values."""
    if n_units < 1 or n_resamples < 1:
        raise ValueError(f"need n_units >= 1 and n_resamples >= 1, got {n_units}, {n_resamples}")
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, _MAX_RESAMPLED_VALUES // n_units))
    for start in range(0, n_resamples, block):
        yield rng.integers(0, n_units, size=(min(block, n_resamples - start), n_units))


def _collect(
    n_units: int, n_resamples: int, seed: int, score: Callable[[np.ndarray], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for rows in resample_rows(n_units, n_resamples, seed):
        for name, values in score(rows).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def value_deltas(
    values_a: np.ndarray, values_b: np.ndarray, statistic: str, n_resamples: int, seed: int
) -> np.ndarray:
    """(R,) resampled changes of a mean or sum of per-unit values (b minus a)."""
    a, b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) arrays of the same units, got {a.shape} and {b.shape}")
    if statistic not in ("mean", "sum"):
        raise ValueError(f"statistic must be 'mean' or 'sum', got {statistic!r}")
    diff = b - a
    reduce = np.mean if statistic == "mean" else np.sum
    return _collect(len(diff), n_resamples, seed, lambda rows: {"d": reduce(diff[rows], axis=1)})[
        "d"
    ]


def classification_deltas(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    n_resamples: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """(R,) resampled changes (b minus a) of accuracy, balanced accuracy and F1 macro /
    weighted, both models' confusion matrices built from the same resampled items."""
    y_true, pred_a, pred_b = (np.asarray(x, np.int64) for x in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError("y_true, pred_a and pred_b must be (N,) arrays of the same items")

    def score(rows: np.ndarray) -> dict[str, np.ndarray]:
        a = classification_scores_from_confusions(
            _resampled_confusions(y_true, pred_a, n_classes, rows)
        )
        b = classification_scores_from_confusions(
            _resampled_confusions(y_true, pred_b, n_classes, rows)
        )
        return {name: b[name] - a[name] for name in CLASSIFICATION_SCORES}

    return _collect(len(y_true), n_resamples, seed, score)


def summarise(deltas: np.ndarray, n_units: int, confidence: float = 0.95) -> PairedResult:
    """Percentile interval, two-sided bootstrap p-value and standard error of the changes.

    Resamples whose metric is undefined (NaN, e.g. macro F1 of no class) are left out."""
    d = np.asarray(deltas, np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        nan = float("nan")
        return PairedResult(nan, nan, nan, nan, n_units)
    alpha = (1 - confidence) / 2
    low, high = (float(q) for q in np.quantile(d, [alpha, 1 - alpha]))
    tail = min(int((d <= 0).sum()), int((d >= 0).sum())) + 1
    p_value = min(1.0, 2 * tail / (d.size + 1))
    return PairedResult(min(low, high), max(low, high), p_value, float(d.std()), n_units)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, int, int]:
    """(two-sided exact p, items only a got right, items only b got right)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    if only_a + only_b == 0:
        return 1.0, 0, 0
    return float(binomtest(only_b, only_a + only_b, 0.5).pvalue), only_a, only_b


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``): a
    metric is significant at level alpha when its adjusted p <= alpha, which keeps the
    expected share of false findings among those reported at most alpha. NaN p-values
    (untested metrics) stay NaN and do not count in the family."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        out[tested] = false_discovery_control(p[tested], method="bh")
    return out


def minimal_detectable_difference(
    std_error: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true change a two-sided test at ``alpha`` detects with ``power``, for a
    change whose standard error is ``std_error``: (z_{1-alpha/2} + z_power) x SE."""
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * std_error)
