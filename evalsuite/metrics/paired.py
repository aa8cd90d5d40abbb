"""Paired statistics of two models scored on the same units (items or queries).

Pure functions of numpy arrays; ``evalsuite.verdicts`` turns them into verdicts.

- **Interval: paired bootstrap.** Draw N of the N shared units with replacement, score *both*
  models on that same draw and keep the difference (candidate - baseline); repeat R times.
  The 95% percentile interval of those differences is the interval of the change, their
  standard deviation its standard error. Draws come from ``numpy.random.default_rng(seed)
  .integers(0, N, size=(R, N))``, drawn in row blocks to bound memory (the same numbers as
  one draw), so the same seed and N give the same resamples for every metric of a task.
- **p-value: paired randomization test.** Under "the two models are equally good", which
  model produced which of a unit's two results is a coin flip. Sign-flip test for metrics
  that are means or sums of per-unit values (each unit's difference keeps or flips its
  sign); prediction-swap test for F1 and balanced accuracy (each item's two predictions are
  swapped or not, both metrics recomputed). p = share of the 2^m relabellings whose change is
  at least as large as the one seen, enumerated exactly when 2^m <= R (m units differ), else
  estimated from R random relabellings (``default_rng(seed).integers(0, 2, size=(R, m))``,
  one coin per differing unit, in their order) as (1 + count) / (R + 1). A bootstrap
  p-value was used first; it cannot go above 2 / (R + 1) when every resample moves one way,
  so one query gaining one hit was "p = 0.0002" (the randomization test gives 1).
- **Exact McNemar test** for accuracy: the same test for a 0/1 outcome, exact from the
  binomial: under "no difference" each item that one model gets right and the other wrong
  goes either way with probability 1/2 (``scipy.stats.binomtest``).
- **Benjamini-Hochberg's correction** across a family of tests (``scipy.stats.
  false_discovery_control``).
- **Minimal detectable difference**: (z_{1-alpha/2} + z_{power}) x the bootstrap standard
  error of the change, the smallest true change the benchmark detects with that power.

scipy.stats.bootstrap / permutation_test are not used: they call the statistic per
resample, and the classification metrics need per-class counts for each model in each
resample, computed for all resamples with three bincounts (hand-written for that reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, false_discovery_control, norm

from evalsuite.metrics.bootstrap import (
    _MAX_RESAMPLED_VALUES,
    class_counts,
    hit_counts,
    scores_from_counts,
)

CLASSIFICATION_SCORES = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")


@dataclass(frozen=True)
class Interval:
    """Percentile interval and standard error of the resampled changes of one metric."""

    ci_low: float
    ci_high: float
    std_error: float
    n_units: int


def _blocks(n_units: int, n_draws: int, seed: int, high: int) -> Iterator[np.ndarray]:
    """(block, N) integers in [0, high) of ``default_rng(seed)``, in blocks of ~4M values."""
    if n_units < 1 or n_draws < 1:
        raise ValueError(f"need n_units >= 1 and n_draws >= 1, got {n_units}, {n_draws}")
    rng = np.random.default_rng(seed)
    block = max(1, min(n_draws, _MAX_RESAMPLED_VALUES // n_units))
    for start in range(0, n_draws, block):
        yield rng.integers(0, high, size=(min(block, n_draws - start), n_units))


def resample_rows(n_units: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(block, N) row indices of the R bootstrap resamples."""
    return _blocks(n_units, n_resamples, seed, n_units)


def _concat(parts: Iterator[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in out.items()}


def _labels(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    out = tuple(np.asarray(a, np.int64) for a in arrays)
    if len({a.shape for a in out}) != 1 or out[0].ndim != 1:
        raise ValueError("y_true, pred_a and pred_b must be (N,) arrays of the same items")
    return out


def classification_deltas(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int,
    n_resamples: int, seed: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """(R,) bootstrap changes (b minus a) of the four ``CLASSIFICATION_SCORES``, both
    models scored on the same resampled items."""
    y_true, pred_a, pred_b = _labels(y_true, pred_a, pred_b)

    def score(rows: np.ndarray) -> dict[str, np.ndarray]:
        truth, drawn_a, drawn_b = y_true[rows], pred_a[rows], pred_b[rows]
        support = class_counts(truth, n_classes)  # the same items for both models
        a = scores_from_counts(
            hit_counts(truth, drawn_a, n_classes), support, class_counts(drawn_a, n_classes)
        )
        b = scores_from_counts(hit_counts(truth, drawn_b, n_classes), support,
                               class_counts(drawn_b, n_classes))  # fmt: skip
        return {name: b[name] - a[name] for name in CLASSIFICATION_SCORES}

    return _concat(score(rows) for rows in resample_rows(len(y_true), n_resamples, seed))


def value_deltas(
    values_a: np.ndarray, values_b: np.ndarray, statistic: str, n_resamples: int, seed: int
) -> np.ndarray:
    """(R,) bootstrap changes of a mean or sum of per-unit values (b minus a)."""
    diff = _differences(values_a, values_b)
    if statistic not in ("mean", "sum"):
        raise ValueError(f"statistic must be 'mean' or 'sum', got {statistic!r}")
    reduce = np.mean if statistic == "mean" else np.sum
    return np.concatenate(
        [reduce(diff[rows], axis=1) for rows in resample_rows(len(diff), n_resamples, seed)]
    )


def _differences(values_a: np.ndarray, values_b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) arrays of the same units, got {a.shape} and {b.shape}")
    return b - a


def interval(deltas: np.ndarray, n_units: int, confidence: float = 0.95) -> Interval:
    """Percentile interval and standard error of resampled changes; NaN when any resample's
    change is undefined (the caller says why rather than dropping resamples)."""
    d = np.asarray(deltas, np.float64)
    if d.size == 0 or np.isnan(d).any():
        return Interval(float("nan"), float("nan"), float("nan"), n_units)
    alpha = (1 - confidence) / 2
    low, high = (float(q) for q in np.quantile(d, [alpha, 1 - alpha]))
    return Interval(min(low, high), max(low, high), float(d.std()), n_units)


def _as_large(changes: np.ndarray, observed: float) -> np.ndarray:
    """Relabelled changes at least as far from 0 as the observed one (up to rounding)."""
    return np.abs(changes) >= abs(observed) * (1 - 1e-9) - 1e-12


def _exact_flips(m: int) -> Iterator[np.ndarray]:
    """(block, m) 0/1 flips: every one of the 2^m patterns, in blocks."""
    block = max(1, _MAX_RESAMPLED_VALUES // m)
    for start in range(0, 2**m, block):
        index = np.arange(start, min(start + block, 2**m))
        yield (index[:, None] >> np.arange(m)) & 1


def _randomization_p(
    m: int, n_draws: int, seed: int, change: Callable[[np.ndarray], dict[str, np.ndarray]]
) -> dict[str, float]:
    """Two-sided p of a paired randomization test, per statistic. ``change(flips)`` maps
    (P, m) 0/1 flips of the m units whose relabelling can matter (1: swap that unit's two
    results) to each statistic's P relabelled changes. Exact (every pattern) when there are
    no more patterns than ``n_draws``, else ``n_draws`` random coins per unit
    (``default_rng(seed).integers(0, 2, size=(n_draws, m))``) and (1 + count) / (n_draws + 1).
    """
    observed = change(np.zeros((1, m), np.int64))
    if m == 0:
        return dict.fromkeys(observed, 1.0)
    exact = 2**m <= n_draws
    flips = _exact_flips(m) if exact else _blocks(m, n_draws, seed, 2)
    counts = dict.fromkeys(observed, 0)
    for block in flips:
        for name, values in change(block).items():
            counts[name] += int(_as_large(values, float(observed[name][0])).sum())
    if exact:
        return {name: count / 2**m for name, count in counts.items()}
    return {name: (1 + count) / (n_draws + 1) for name, count in counts.items()}


def sign_flip_p(values_a: np.ndarray, values_b: np.ndarray, n_draws: int, seed: int) -> float:
    """Two-sided paired randomization p of a change in the mean (or sum) of per-unit values;
    only the units whose two values differ are flipped (the others add nothing)."""
    diff = _differences(values_a, values_b)
    differing = diff[diff != 0]
    return _randomization_p(
        len(differing), n_draws, seed,
        lambda flips: {"d": ((1 - 2 * flips) * differing).sum(axis=1)},
    )["d"]  # fmt: skip


def prediction_swap_p(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int,
    n_draws: int, seed: int,
) -> dict[str, float]:  # fmt: skip
    """Two-sided paired randomization p of the change of each ``CLASSIFICATION_SCORES``
    metric: each item's two predictions swapped or not, both models rescored. Only the items
    the models predict differently are relabelled; the others' counts are added once."""
    y_true, pred_a, pred_b = _labels(y_true, pred_a, pred_b)
    same = pred_a == pred_b
    kept_hits = hit_counts(y_true[None, same], pred_a[None, same], n_classes)
    kept_predicted = class_counts(pred_a[None, same], n_classes)
    support = class_counts(y_true[None, :], n_classes)  # swaps never change the true labels
    truth, a_diff, b_diff = y_true[~same], pred_a[~same], pred_b[~same]

    def changes(flips: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.broadcast_to(truth, flips.shape)
        scores = []
        for mine, theirs in ((a_diff, b_diff), (b_diff, a_diff)):
            drawn = np.where(flips == 1, theirs, mine)
            scores.append(scores_from_counts(
                hit_counts(rows, drawn, n_classes) + kept_hits, support,
                class_counts(drawn, n_classes) + kept_predicted,
            ))  # fmt: skip
        return {name: scores[1][name] - scores[0][name] for name in CLASSIFICATION_SCORES}

    return _randomization_p(int((~same).sum()), n_draws, seed, changes)


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
