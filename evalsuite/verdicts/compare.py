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
    GATED_METRICS,
    N_RESAMPLES,
    NOT_COMPARABLE,
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


def ambiguous(name: str, scored: pd.Series, by_name: bool) -> EvalSuiteError:
    """The error for a name (or fingerprint prefix) of several models; ``scored``: the
    latest scored time of each, by fingerprint. Lists them so the user can pick one."""
    scored = scored.sort_index()
    found = ", ".join(
        f"{fp[:12]} (scored {pd.Timestamp(when):%Y-%m-%d %H:%M})" if pd.notna(when)
        else f"{fp[:12]} (never scored)"
        for fp, when in scored.items()
    )  # fmt: skip
    what = "names" if by_name else "is the fingerprint prefix of"
    return EvalSuiteError(
        f"{name!r} {what} {len(scored)} scored models: {found}; pick one by a fingerprint "
        f"prefix, e.g. {scored.index[0][:12]}"
    )


def model_rows(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """Metric rows of the model called ``name`` (else the one whose fingerprint starts with
    it), of its latest ``ok`` run on each benchmark. A name wins over a fingerprint prefix:
    a model called "fa" must not pick up another whose fingerprint starts with "fa"."""
    rows = metrics[metrics["model_name"] == name]
    by_name = not rows.empty
    if rows.empty:
        rows = metrics[metrics["fingerprint"].str.startswith(name)]
    if rows["fingerprint"].nunique() > 1:  # never mix two models' runs under one name
        raise ambiguous(name, rows.groupby("fingerprint")["started_at"].max(), by_name)
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
    gated: Iterable[str] = GATED_METRICS,
    margins: Mapping[str, float] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
) -> ModelComparison:
    """Every verdict of ``candidate`` against ``baseline`` (names or fingerprints)."""
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
    """Each candidate (fingerprint or name) against ``baseline``, the units of all their runs
    read once; a candidate that cannot be compared maps to the reason."""
    keys = [baseline, *candidates]
    runs = metrics.loc[metrics["fingerprint"].isin(keys) | metrics["model_name"].isin(keys)]
    units = load_units(db_path, sorted(set(runs["run_id"])))
    out: dict[str, ModelComparison | str] = {}
    for candidate in candidates:
        try:
            out[candidate] = compare_frames(metrics, units, baseline, candidate, **options)
        except EvalSuiteError as exc:
            out[candidate] = str(exc)
    return out


def choose_baseline(models: pd.DataFrame, explicit: str | None = None) -> str | None:
    """The baseline's fingerprint, by one rule: ``explicit`` (a name or fingerprint); else the
    model marked with ``evalsuite baseline NAME`` (or ``score --mark-baseline``); else the one
    model that the scored fine-tunes name as their base; else None (the caller must ask)."""
    if models.empty:
        return None
    if explicit:
        hit = models[models["name"] == explicit]
        by_name = len(hit) > 0
        hit = hit if by_name else models[models["fingerprint"].str.startswith(explicit)]
        if len(hit) > 1:
            when = hit["last_run"] if "last_run" in hit else pd.Series(pd.NaT, index=hit.index)
            raise ambiguous(explicit, pd.Series(when.to_numpy(), index=hit["fingerprint"]), by_name)
        if hit.empty:
            known = ", ".join(sorted(models["name"].astype(str))) or "(none)"
            raise EvalSuiteError(f"no scored model named {explicit!r}; known: {known}")
        return str(hit["fingerprint"].iloc[0])
    if "is_baseline" in models:
        marked = models[models["is_baseline"].fillna(False).astype(bool)]
        if len(marked):
            return str(marked["fingerprint"].iloc[0])
    bases = set(models["base_fingerprint"].dropna()) & set(models["fingerprint"])
    return str(bases.pop()) if len(bases) == 1 else None


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
    data and benchmark version as ``reference`` (a fingerprint, e.g. the baseline; else the
    largest such group) are ranked; the others get no band and a note.

    Columns: fingerprint, model_name, value, band, p_adjusted, note.
    """
    benchmark, task, metric = key
    rows = metrics[(metrics["benchmark"] == benchmark) & (metrics["task"] == task)
                   & (metrics["metric"] == metric)]  # fmt: skip
    rows = rows.sort_values("started_at").groupby("fingerprint").last().reset_index()
    if rows.empty:
        return pd.DataFrame(columns=["fingerprint", "model_name", "value", "band"])
    higher = bool(rows["higher_is_better"].iloc[0])
    rows = rows.sort_values("value", ascending=not higher).reset_index(drop=True)
    group = rows["benchmark_hash"].astype(str) + "/" + rows["data_manifest_hash"].astype(str)
    chosen = group[rows["fingerprint"] == reference]
    ranked = group == (chosen.iloc[0] if len(chosen) else group.value_counts().index[0])
    bands: dict[str, tuple[int, float, str]] = {
        fp: (0, float("nan"), "scored on other data or benchmark version: not ranked")
        for fp in rows.loc[~ranked, "fingerprint"]
    }
    remaining, band = list(rows.index[ranked]), 0
    while remaining:
        band += 1
        best = rows.loc[remaining[0]]
        others = remaining[1:]
        verdicts = [
            judge_metric(
                best, rows.loc[i], (units.get((best["run_id"], task)),
                                    units.get((rows.loc[i, "run_id"], task))),
                gated=True, margins={}, n_resamples=n_resamples, seed=seed,
                why_not=same_data_reason(best, rows.loc[i]),
            )
            for i in others
        ]  # fmt: skip
        judged = apply_correction(verdicts, alpha)
        bands[best["fingerprint"]] = (band, float("nan"), "")
        kept = []
        for i, v in zip(others, judged, strict=True):
            if v.verdict == NOT_COMPARABLE:
                bands[rows.loc[i, "fingerprint"]] = (0, float("nan"), v.reason)
            elif v.verdict == "tied":
                bands[rows.loc[i, "fingerprint"]] = (band, v.p_adjusted, "statistically tied")
            else:
                kept.append(i)
        remaining = kept
    out = rows[["fingerprint", "model_name", "value"]].copy()
    out["band"] = [bands[fp][0] or None for fp in out["fingerprint"]]
    out["p_adjusted"] = [bands[fp][1] for fp in out["fingerprint"]]
    out["note"] = [bands[fp][2] for fp in out["fingerprint"]]
    return out
