"""Every verdict of the suite, computed here and only displayed elsewhere.

``compare_models(db, baseline, candidate)`` gives a :class:`ModelComparison`: per metric both
values, the change, its paired 95% interval, p-values (raw and Benjamini-Hochberg-adjusted),
the minimal detectable difference and a verdict (better / worse / tied / not comparable, with
the reason).
``choose_baseline`` is the one baseline rule; ``rank_bands`` the leaderboard's tied ranks.
How the statistics work: ``evalsuite.verdicts.core`` and ``evalsuite.metrics.paired``.
"""

from evalsuite.verdicts.compare import (
    choose_baseline,
    compare_frames,
    compare_many,
    compare_models,
    load_units,
    model_rows,
    rank_bands,
)
from evalsuite.verdicts.core import (
    ALPHA,
    BETTER,
    CORRECTION,
    N_RESAMPLES,
    NOT_COMPARABLE,
    TIED,
    WORSE,
    MetricVerdict,
    ModelComparison,
    parse_margins,
)

__all__ = [
    "ALPHA",
    "BETTER",
    "CORRECTION",
    "NOT_COMPARABLE",
    "N_RESAMPLES",
    "TIED",
    "WORSE",
    "MetricVerdict",
    "ModelComparison",
    "choose_baseline",
    "compare_frames",
    "compare_many",
    "compare_models",
    "load_units",
    "model_rows",
    "parse_margins",
    "rank_bands",
]  # fmt: skip
