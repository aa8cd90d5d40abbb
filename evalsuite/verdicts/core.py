"""Every verdict of the suite: is a candidate better or worse than the baseline, metric by
metric, and which model is the baseline.

The gate (``evalsuite score --fail-on-regression``, ``evalsuite compare``), the report, the
leaderboard and the demo only display what this module returns.

How a metric is judged (statistics in ``evalsuite.metrics.paired``):

- Only runs of the same benchmark definition and data (equal ``benchmark_hash`` and
  ``data_manifest_hash``) on the same units are compared; anything else is *not comparable*,
  with the reason.
- **Paired**: both models were scored on the same items (classification, probes) or queries
  (retrieval). Each bootstrap resample draws the shared units once and scores both models on
  it, so the interval is of the change itself, not of two independent values. The interval
  is the usual 95% one, not widened for the number of comparisons.
- p-value: the exact McNemar test for accuracy (``acc@1``); a paired randomization test for
  every other metric (exact when few units differ), so a task of a few queries is never
  "significant" by construction.
- A metric that only one of the two models has (a benchmark or task the other skipped) is
  *not comparable*, listed, and counted in the gate's line rather than left out.
- **Benjamini-Hochberg's correction** within each family of a comparison: the gated metrics
  (what the gate fails on) and, separately, the other metrics shown. The gate compares ~30
  strongly dependent metrics (accuracy, F1 and pretest of one task move together). When
  nothing really changed, BH, like Holm, fails a candidate with probability at most alpha
  (every finding is then false, so the false discovery rate is the chance of any finding);
  when some metrics did change, BH keeps the expected share of false findings among those
  reported at most alpha, where Holm keeps the chance of any false finding at alpha and
  pays for it in power: on the demo, Holm over 29 gated metrics called a 6.25-point drop in
  accuracy on 400 items (exact McNemar p = 0.004, 47 items lost, 22 gained) "tied". BH
  assumes the tests are positively dependent (PRDS), which metrics scored on the same items
  come close to but two-sided p-values do not guarantee; method="by" of
  ``scipy.stats.false_discovery_control`` would drop it at a cost of a factor ~ln(m). The
  minimal detectable difference beside each verdict uses alpha before the correction, so it
  is a lower bound.
- Verdict: ``better`` / ``worse`` when the adjusted p <= alpha, else ``tied``; a gated
  metric is a *regression* when it is significantly worse and, if a practical margin was set
  (``--tolerance METRIC=VALUE``), the observed drop is larger than the margin (the issue's
  rule; a non-inferiority test would ask the interval's bound to clear the margin instead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import format_delta, format_interval, format_value, is_missing
from evalsuite.labels import benchmark_label, metric_label, task_words
from evalsuite.metrics import paired

ALPHA = 0.05
POWER = 0.8
N_RESAMPLES = 10_000
CORRECTION = "Benjamini-Hochberg"
CORRECTION_SHORT = "BH"
BETTER, WORSE, TIED, NOT_COMPARABLE = "better", "worse", "tied", "not comparable"
MARKERS = {BETTER: "▲", WORSE: "▼", TIED: "≈", NOT_COMPARABLE: "n/a"}
COLOURS = {BETTER: "green", WORSE: "red", TIED: "grey", NOT_COMPARABLE: "grey"}
SUMS = ("ir_hits", "ir_by_position", "pretest")  # per-unit points summed; others are means
_CONFUSION_METRICS = {"acc@1": "accuracy", "balanced_accuracy": "balanced_accuracy",
                      "f1_macro": "f1_macro", "f1_weighted": "f1_weighted"}  # fmt: skip
NAN = float("nan")


@dataclass(frozen=True)
class MetricVerdict:
    """One metric of one task: both values, the paired change and the verdict."""

    benchmark: str
    task: str
    metric: str
    baseline: float
    candidate: float
    verdict: str
    gated: bool
    higher_is_better: bool = True
    maximum: float | None = None
    task_type: str | None = None
    reason: str = ""  # why not comparable, or what made a tie certain
    ci_low: float = NAN  # paired 95% interval of candidate - baseline
    ci_high: float = NAN
    p_value: float = NAN  # before correction
    p_adjusted: float = NAN  # Benjamini-Hochberg, within the metric's family
    test: str = ""
    n_units: int = 0
    unit: str = ""  # "items" or "queries"
    mdd: float = NAN  # minimal detectable difference (80% power, alpha before correction)
    margin: float | None = None  # practical margin of the gate

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline

    @property
    def regression(self) -> bool:
        """Gated, significantly worse, and worse by more than the margin when one is set."""
        if not self.gated or self.verdict != WORSE:
            return False
        return self.margin is None or abs(self.delta) > self.margin

    @property
    def marker(self) -> str:
        return MARKERS[self.verdict]

    @property
    def colour(self) -> str:
        return COLOURS[self.verdict]

    @property
    def task_text(self) -> str:
        """``footwear article type``."""
        return f"{benchmark_label(self.benchmark).lower()} {task_words(self.task)}"

    @property
    def metric_text(self) -> str:
        """``zero-shot accuracy``; acronyms (``IR score``, ``F1``) keep their capitals."""
        text = metric_label(self.metric, self.task_type)
        return text if text[:2].isupper() else text[:1].lower() + text[1:]

    @property
    def label(self) -> str:
        """``footwear article type: zero-shot accuracy``."""
        return f"{self.task_text}: {self.metric_text}"

    def value_text(self, which: str) -> str:
        return format_value(self.metric, getattr(self, which), self.maximum)

    @property
    def delta_text(self) -> str:
        return format_delta(self.metric, self.delta, self.maximum)

    @property
    def interval_text(self) -> str:
        """``[-10.3, -2.3]`` in the units of the change (points for fractions)."""
        if is_missing(self.ci_low):
            return ""
        if self.metric.lower() in SUMS or not is_missing(self.maximum):
            return f"[{self.ci_low:+.0f}, {self.ci_high:+.0f}]"
        return format_interval(self.metric, self.ci_low, self.ci_high)

    @property
    def p_text(self) -> str:
        return "" if is_missing(self.p_value) else _p(self.p_value)

    @property
    def p_adjusted_text(self) -> str:
        """``0.004``, ``< 0.001``: the adjusted p-value as printed."""
        return "" if is_missing(self.p_adjusted) else _p(self.p_adjusted, bare=True)

    @property
    def mdd_text(self) -> str:
        if is_missing(self.mdd):
            return ""
        return format_delta(self.metric, self.mdd, self.maximum).lstrip("+")

    def sentence(self) -> str:
        """``footwear article type: zero-shot accuracy 69.5% -> 63.3%, -6.3 pts, 95% CI
        [-10.3, -2.3], p = 0.004 (exact McNemar ...; BH-adjusted 0.008)``."""
        head = f"{self.label} {self.value_text('baseline')} -> {self.value_text('candidate')}"
        if self.verdict == NOT_COMPARABLE:
            return f"{head}: not comparable ({self.reason})"
        text = f"{head}, {self.delta_text}"
        if self.interval_text:
            text += f", 95% CI {self.interval_text}"
        if self.p_text:
            text += f", {self.p_text} ({self.test}; {CORRECTION_SHORT}-adjusted "
            text += f"{self.p_adjusted_text})"
        return text

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(delta=self.delta, regression=self.regression, marker=self.marker)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def _p(value: float, bare: bool = False) -> str:
    text = "< 0.001" if value < 0.001 else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"
    if bare:
        return text
    return f"p {text}" if text.startswith("<") else f"p = {text}"


@dataclass(frozen=True)
class ModelComparison:
    """All verdicts of a candidate against a baseline."""

    baseline: str
    candidate: str
    verdicts: tuple[MetricVerdict, ...]
    alpha: float = ALPHA
    n_resamples: int = N_RESAMPLES
    seed: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.regression]

    def significant(self, verdict: str, gated_only: bool = False) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.verdict == verdict and (v.gated or not gated_only)]

    def n_tests(self, gated: bool) -> int:
        return sum(1 for v in self.verdicts if v.gated == gated and v.verdict != NOT_COMPARABLE)

    def method_note(self) -> str:
        return (
            f"{self.n_tests(True)} gated and {self.n_tests(False)} other comparisons, "
            f"{CORRECTION}-corrected at alpha = {self.alpha:g} within each group; paired "
            "on the shared items or queries: exact McNemar test for accuracy, randomization "
            f"tests for the other metrics, 95% bootstrap intervals of the change "
            f"({self.n_resamples} resamples, not adjusted for the number of comparisons)"
        )

    def gate_line(self) -> str:
        untested = [v for v in self.verdicts if v.gated and v.verdict == NOT_COMPARABLE]
        unseen = (
            f"; {len(untested)} gated metric{'s' if len(untested) != 1 else ''} not "
            "comparable, so not gated"
            if untested
            else ""
        )
        if self.regressions:
            n = len(self.regressions)
            return (
                f"FAIL: {n} significant regression{'s' if n != 1 else ''} of a gated metric{unseen}"
            )
        worse = len(self.significant(WORSE, gated_only=True))
        within = f" ({worse} significantly worse within the margin)" if worse else ""
        return (
            f"PASS: no gated metric of {self.candidate} is significantly worse than "
            f"{self.baseline}{within} ({self.n_tests(True)} gated comparisons, "
            f"{CORRECTION}-corrected){unseen}"
        )

    def summary_line(self, limit: int | None = 3) -> str:
        """``better on shoes lace (zero-shot accuracy +26.50 pts, ...); worse on shoes kind
        (...); no other significant change``: tasks with a significant change, their
        strongest ``limit`` gains each and *every* significant loss."""
        parts = []
        for word, verdict in (("better", BETTER), ("worse", WORSE)):
            tasks: dict[str, list[MetricVerdict]] = {}
            for v in _strongest(self.significant(verdict), None):
                tasks.setdefault(v.task_text, []).append(v)
            if not tasks:
                continue
            groups = []
            for task, group in tasks.items():
                shown = group if verdict == WORSE or limit is None else group[:limit]
                more = len(group) - len(shown)
                text = ", ".join(f"{v.metric_text} {v.delta_text}" for v in shown)
                groups.append(f"{task} ({text}{f' and {more} more' if more else ''})")
            parts.append(f"{word} on " + "; ".join(groups))
        parts.append("no other significant change" if parts else "no significant change")
        untested = len([v for v in self.significant(NOT_COMPARABLE) if v.gated])
        if untested:
            parts.append(f"{untested} gated metric{'s' if untested != 1 else ''} not comparable")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "alpha": self.alpha,
            "correction": CORRECTION,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "n_gated_comparisons": self.n_tests(True),
            "n_other_comparisons": self.n_tests(False),
            "passed": not self.regressions,
            "notes": list(self.notes),
            "metrics": [v.as_dict() for v in self.verdicts],
        }


def _strongest(group: list[MetricVerdict], limit: int | None) -> list[MetricVerdict]:
    ranked = sorted(group, key=lambda v: (v.p_adjusted, -abs(v.delta)))
    return ranked if limit is None else ranked[:limit]


def parse_margins(pairs: Iterable[str]) -> dict[str, float]:
    """``["acc@1=0.01", "footwear/article_type/pretest=20"]`` -> {key: margin}."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key.strip()] = abs(float(value))
        except ValueError:
            raise EvalSuiteError(
                f"--tolerance {pair!r}: expected METRIC=VALUE, e.g. acc@1=0.01 or "
                "footwear/article_type/acc@1=0.02"
            ) from None
    return out


def margin_for(
    margins: Mapping[str, float], benchmark: str, task: str, metric: str
) -> float | None:
    """The most specific margin set for a metric: benchmark/task/metric, task/metric,
    benchmark/metric, then metric."""
    keys = (f"{benchmark}/{task}/{metric}", f"{task}/{metric}", f"{benchmark}/{metric}", metric)
    return next((margins[key] for key in keys if key in margins), None)


def apply_correction(verdicts: list[MetricVerdict], alpha: float) -> list[MetricVerdict]:
    """The correction within the gated and within the other metrics; verdicts from the
    adjusted p-values."""
    out = list(verdicts)
    for gated in (True, False):
        family = [i for i, v in enumerate(out) if v.gated == gated and not is_missing(v.p_value)]
        adjusted = paired.benjamini_hochberg(np.array([out[i].p_value for i in family]))
        for i, p_adj in zip(family, adjusted, strict=True):
            v = out[i]
            verdict = TIED
            if p_adj <= alpha and v.delta != 0:
                verdict = BETTER if (v.delta > 0) == v.higher_is_better else WORSE
            out[i] = replace(v, p_adjusted=float(p_adj), verdict=verdict)
    return out


def frame_value(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return None if is_missing(value) else float(value)
