"""Comparisons read from the results database: the baseline rule, a candidate against the
baseline, and rank bands of many models on one metric."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from evalsuite import store
from evalsuite.errors import EvalSuiteError
from evalsuite.verdicts.core import (
    ALPHA,
    N_RESAMPLES,
    NOT_COMPARABLE,
    MetricVerdict,
    ModelComparison,
    apply_correction,
)
from evalsuite.verdicts.judge import (
    TaskUnits,
    judge_metric,
    judge_runs,
    same_data_reason,
    units_by_run_task,
)


def ambiguous(prefix: str, fingerprints: pd.Series) -> EvalSuiteError:
    """The error for a fingerprint prefix of several models' weights; ``fingerprints``: the
    weights of each model, by name. Lists them so the user can pick one by name."""
    found = ", ".join(f"{name} ({fp[:12]})" for name, fp in fingerprints.sort_index().items())
    return EvalSuiteError(
        f"{prefix!r} is the fingerprint prefix of {len(fingerprints)} scored models: {found}; "
        f"pick one by its name, e.g. {fingerprints.sort_index().index[0]!r}"
    )


def model_rows(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """Metric rows of the model called ``name`` (else of the one model whose weights'
    fingerprint starts with it), of its latest ``ok`` run on each benchmark. A name wins over
    a fingerprint prefix: a model called "fa" must not pick up another whose fingerprint
    starts with "fa"; a prefix of weights several names share (a copy, a WiSE-FT at alpha 0)
    is refused."""
    rows = metrics[metrics["model_name"] == name]
    if rows.empty:
        rows = metrics[metrics["fingerprint"].str.startswith(name)]
        if rows["model_name"].nunique() > 1:
            raise ambiguous(name, rows.groupby("model_name")["fingerprint"].first())
    if rows.empty:
        known = ", ".join(sorted(metrics["model_name"].unique())) or "(none)"
        raise EvalSuiteError(f"no scored model named {name!r} in the database; known: {known}")
    latest = rows.sort_values("started_at").groupby("benchmark")["run_id"].last()
    return rows[rows["run_id"].isin(latest)]


def load_units(db_path: str | Path, run_ids: Sequence[str]) -> dict[tuple[str, str], TaskUnits]:
    return units_by_run_task(
        store.item_predictions(db_path, run_ids), store.query_values(db_path, run_ids)
    )


def compare_frames(
    metrics: pd.DataFrame,
    units: Mapping[tuple[str, str], TaskUnits],
    baseline: str,
    candidate: str,
    *,
    gated: Iterable[str] | None = None,
    margins: Mapping[str, float] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
) -> ModelComparison:
    """Every verdict of ``candidate`` against ``baseline`` (names, or fingerprint prefixes).
    ``gated``: the metrics the gate judges on every task (``--metric``); None: those each
    benchmark's YAML gates (``evalsuite.labels.gated_metrics``)."""
    rows_a, rows_b = model_rows(metrics, baseline), model_rows(metrics, candidate)
    verdicts = judge_runs(
        rows_a, rows_b, units, gated=gated, margins=margins or {},
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    if not verdicts:
        raise EvalSuiteError(
            f"models {baseline!r} and {candidate!r} share no scored metric "
            "(score both on the same benchmarks first)"
        )
    name_a, name_b = rows_a["model_name"].iloc[0], rows_b["model_name"].iloc[0]
    return ModelComparison(
        str(name_a), str(name_b), tuple(apply_correction(verdicts, alpha)), alpha,
        n_resamples, seed,
    )  # fmt: skip


def compare_models(
    db_path: str | Path, baseline: str, candidate: str, **options
) -> ModelComparison:
    """:func:`compare_frames` on the latest runs stored in ``db_path``."""
    metrics = store.latest_metrics(db_path)
    if metrics.empty:
        raise EvalSuiteError(f"{db_path} holds no results; run `evalsuite score MODEL --db ...`")
    run_ids = pd.concat([model_rows(metrics, baseline), model_rows(metrics, candidate)])["run_id"]
    units = load_units(db_path, sorted(set(run_ids)))
    return compare_frames(metrics, units, baseline, candidate, **options)


def compare_many(
    db_path: str | Path, metrics: pd.DataFrame, baseline: str, candidates: Sequence[str],
    **options,
) -> dict[str, ModelComparison | str]:  # fmt: skip
    """Each candidate (a model name) against ``baseline``, the units of all their runs read
    once; a candidate that cannot be compared maps to the reason."""
    runs = metrics.loc[metrics["model_name"].isin([baseline, *candidates])]
    units = load_units(db_path, sorted(set(runs["run_id"])))
    out: dict[str, ModelComparison | str] = {}
    for candidate in candidates:
        try:
            out[candidate] = compare_frames(metrics, units, baseline, candidate, **options)
        except EvalSuiteError as exc:
            out[candidate] = str(exc)
    return out


def choose_baseline(models: pd.DataFrame, explicit: str | None = None) -> str | None:
    """The baseline's name, by one rule: ``explicit`` (a name, or a fingerprint prefix of one
    model's weights); else the model marked with ``evalsuite baseline NAME`` (or ``score
    --mark-baseline``); else the one model whose weights the scored fine-tunes name as their
    base (a model derived itself, e.g. a WiSE-FT at alpha 0 with the same weights, is not a
    base); else None (the caller must ask)."""
    if models.empty:
        return None
    if explicit:
        hit = models[models["name"] == explicit]
        if hit.empty:
            hit = models[models["fingerprint"].fillna("").str.startswith(explicit)]
            if len(hit) > 1:
                raise ambiguous(explicit, hit.set_index("name")["fingerprint"])
        if hit.empty:
            known = ", ".join(sorted(models["name"].astype(str))) or "(none)"
            raise EvalSuiteError(f"no scored model named {explicit!r}; known: {known}")
        return str(hit["name"].iloc[0])
    if "is_baseline" in models:
        marked = models[models["is_baseline"].fillna(False).astype(bool)]
        if len(marked):
            return str(marked["name"].iloc[0])
    bases = models[models["fingerprint"].isin(set(models["base_fingerprint"].dropna()))]
    if len(bases) > 1:
        bases = bases[bases["base_fingerprint"].isna()]
    return str(bases["name"].iloc[0]) if len(bases) == 1 else None


def _judge_against_best(
    best: pd.Series,
    others: Sequence[pd.Series],
    units: Mapping[tuple[str, str], TaskUnits],
    task: str,
    n_resamples: int,
    seed: int,
    alpha: float,
) -> list[MetricVerdict]:
    """The verdict of each of ``others`` against ``best`` (paired test on the task's units),
    Benjamini-Hochberg corrected over these comparisons alone."""
    verdicts = [
        judge_metric(
            best, other, (units.get((best["run_id"], task)), units.get((other["run_id"], task))),
            gated=True, margins={}, n_resamples=n_resamples, seed=seed,
            why_not=same_data_reason(best, other),
        )
        for other in others
    ]  # fmt: skip
    return apply_correction(verdicts, alpha)


def rank_bands(
    metrics: pd.DataFrame,
    units: Mapping[tuple[str, str], TaskUnits],
    key: tuple[str, str, str],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
    reference: str | None = None,
) -> pd.DataFrame:
    """Rank bands on one (benchmark, task, metric): the best model and every model not
    significantly different from it (paired test, Benjamini-Hochberg over the comparisons
    with the best: a family of its own, so a band can differ from a baseline comparison's
    verdict) share band 1; the same rule ranks the rest. Only models scored on the same
    data and benchmark version as ``reference`` (a model name, e.g. the baseline; else the
    largest such group) are ranked; the others get no band and a note.

    Columns: model_name, fingerprint, value, band, p_adjusted, note.
    """
    benchmark, task, metric = key
    rows = metrics[(metrics["benchmark"] == benchmark) & (metrics["task"] == task)
                   & (metrics["metric"] == metric)]  # fmt: skip
    rows = rows.sort_values("started_at").groupby("model_name").last().reset_index()
    if rows.empty:
        return pd.DataFrame(columns=["model_name", "fingerprint", "value", "band"])
    higher = bool(rows["higher_is_better"].iloc[0])
    rows = rows.sort_values("value", ascending=not higher).reset_index(drop=True)
    group = rows["benchmark_hash"].astype(str) + "/" + rows["data_manifest_hash"].astype(str)
    chosen = group[rows["model_name"] == reference]
    ranked = group == (chosen.iloc[0] if len(chosen) else group.value_counts().index[0])
    bands: dict[str, tuple[int, float, str]] = {
        name: (0, float("nan"), "scored on other data or benchmark version: not ranked")
        for name in rows.loc[~ranked, "model_name"]
    }
    remaining, band = list(rows.index[ranked]), 0
    while remaining:
        band += 1
        best, others = rows.loc[remaining[0]], remaining[1:]
        judged = _judge_against_best(
            best, [rows.loc[i] for i in others], units, task, n_resamples, seed, alpha
        )
        bands[best["model_name"]] = (band, float("nan"), "")
        kept = []
        for i, v in zip(others, judged, strict=True):
            if v.verdict == NOT_COMPARABLE:
                bands[rows.loc[i, "model_name"]] = (0, float("nan"), v.reason)
            elif v.verdict == "tied":
                bands[rows.loc[i, "model_name"]] = (band, v.p_adjusted, "statistically tied")
            else:
                kept.append(i)
        remaining = kept
    out = rows[["model_name", "fingerprint", "value"]].copy()
    out["band"] = [bands[name][0] or None for name in out["model_name"]]
    out["p_adjusted"] = [bands[name][1] for name in out["model_name"]]
    out["note"] = [bands[name][2] for name in out["model_name"]]
    return out
