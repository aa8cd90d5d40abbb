""":func:`load_report_data`: the latest ``ok`` run of every model on every benchmark, read
once through :mod:`evalsuite.store`, the models in the report's order (baseline first) and
every model's verdicts against the baseline, computed once by :mod:`evalsuite.verdicts`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite import store
from evalsuite.formatting import is_missing
from evalsuite.labels import benchmark_order, is_general, target_benchmark, task_kind
from evalsuite.report.data import Cell, ModelEntry, ReportData, ReportError
from evalsuite.results import RunExtra
from evalsuite.verdicts import N_RESAMPLES, ModelComparison, choose_baseline, compare_many


def _optional(value: Any) -> Any:
    return None if is_missing(value) else value


def _check_db(db_path: Path) -> pd.DataFrame:
    how = f"fill it with `evalsuite score MODEL --db {db_path}`"
    if not db_path.exists():  # a folder goes on to the store, which says what it is
        raise store.StoreMissingError(f"no results database at {db_path}: {how}")
    try:
        metrics = store.latest_metrics(db_path)
    except store.StoreError:
        raise
    except Exception as exc:
        raise ReportError(f"cannot read results database {db_path}: {exc}") from exc
    if metrics.empty:
        raise ReportError(f"results database {db_path} holds no scored runs: {how}")
    return metrics


def _model_entries(metrics: pd.DataFrame, models_df: pd.DataFrame) -> list[ModelEntry]:
    info = {row["name"]: row for _, row in models_df.iterrows()}
    entries = []
    for name in dict.fromkeys(metrics["model_name"]):
        row = info.get(name)
        fingerprint = metrics.loc[metrics["model_name"] == name, "fingerprint"].iloc[0]
        training = row["training"] if row is not None else None
        same = row.get("same_weights_as") if row is not None else None
        entries.append(
            ModelEntry(
                name=str(name),
                fingerprint=str(fingerprint),
                same_weights_as=tuple(same) if isinstance(same, (list, tuple)) else (),
                spec=str(row["spec"] or "") if row is not None else "",
                base_model=_optional(row["base_model"]) if row is not None else None,
                base_fingerprint=_optional(row["base_fingerprint"]) if row is not None else None,
                training=training if isinstance(training, dict) else None,
            )
        )
    return entries


def _find(entries: Sequence[ModelEntry], key: str, what: str) -> ModelEntry:
    """The one model ``key`` names, by compare's rule: a name before a fingerprint prefix;
    a prefix of weights that two models share is refused, not resolved to either."""
    found = [e for e in entries if key == e.name]
    found = found or [e for e in entries if e.fingerprint.startswith(key)]
    if not found:
        names = ", ".join(e.name for e in entries)
        raise ReportError(f"{what} {key!r} has no results in the database (models: {names})")
    if len(found) > 1:
        listed = ", ".join(f"{e.name} ({e.fingerprint[:12]})" for e in found)
        raise ReportError(
            f"{what} {key!r} is the fingerprint prefix of {len(found)} scored models' weights: "
            f"{listed}; pick one by its name"
        )
    return found[0]


def _baseline(
    entries: Sequence[ModelEntry], models_df: pd.DataFrame, baseline: str | None
) -> ModelEntry:
    """The baseline by :func:`evalsuite.verdicts.choose_baseline` (``baseline`` asked for,
    else the model marked in the database, else the one model the fine-tunes name as their
    base); the only model when there is one; else an error asking which."""
    if baseline:
        return _find(entries, baseline, "baseline model")
    if len(entries) == 1:
        return entries[0]
    # only models with results here: a marked model without any cannot be compared with
    shown = models_df[models_df["name"].isin([e.name for e in entries])]
    name = choose_baseline(shown)
    if name is None:
        names = ", ".join(e.name for e in entries)
        raise ReportError(
            f"no baseline marked among the models with results ({names}): pass "
            "--baseline NAME, or mark one with `evalsuite baseline NAME`"
        )
    return next(e for e in entries if e.name == name)


def _order_models(
    entries: list[ModelEntry],
    models_df: pd.DataFrame,
    baseline: str | None,
    models: Sequence[str] | None,
) -> list[ModelEntry]:
    base = _baseline(entries, models_df, baseline)
    if models:
        entries = list(dict.fromkeys(_find(entries, key, "model") for key in models).keys())
    else:  # plain models first, then fine-tunes, WiSE checkpoints by alpha
        entries = sorted(
            entries,
            key=lambda e: (
                e.fine_tuned,
                e.wise is not None,
                float((e.wise or {}).get("alpha", 0)),
                e.name,
            ),
        )
    return [base, *(e for e in entries if e is not base)]


def _order_benchmarks(names: Iterable[str], target: str | None) -> list[str]:
    """The target first, then the general benchmarks, then the others, each in display
    order (their YAML ``role`` and ``display_order``)."""

    def key(name: str) -> tuple[int, tuple[int, int, str]]:
        group = 0 if name == target else 1 if is_general(name) else 2
        return (group, benchmark_order(name))

    return sorted(set(names), key=key)


def _task_order(
    metrics: pd.DataFrame, runs: pd.DataFrame, benchmark: str
) -> list[tuple[str, str | None]]:
    """(task, kind) in the order of the benchmark YAML as the runs recorded it."""
    rows = metrics[metrics["benchmark"] == benchmark]
    kinds = {task: task_kind(group["metric"]) for task, group in rows.groupby("task")}
    order: list[str] = []
    for extra in runs.loc[runs["benchmark"] == benchmark, "extra"]:
        order += [t for t in RunExtra.from_json(extra).tasks if t in kinds and t not in order]
    rest = sorted((t for t in kinds if t not in order), key=lambda t: (kinds[t] != "zeroshot", t))
    return [(task, kinds[task]) for task in order + rest]


def _cells(metrics: pd.DataFrame) -> dict[tuple[str, str, str, str], Cell]:
    """Every scored value, by (model name, benchmark, task, metric)."""
    return {
        (row.model_name, row.benchmark, row.task, row.metric): Cell(
            metric=row.metric,
            value=float(row.value),
            maximum=_optional(row.maximum),
            low=_optional(row.ci_low),
            high=_optional(row.ci_high),
            higher_is_better=bool(row.higher_is_better)
            if not is_missing(row.higher_is_better)
            else True,
            run_id=row.run_id,
        )
        for row in metrics.itertuples(index=False)
        if not is_missing(row.value)
    }


def _skipped_tasks(runs: pd.DataFrame) -> dict[tuple[str, str], dict[str, str]]:
    """(model name, benchmark) -> {task: why it was not applicable}, as the runs recorded."""
    skipped = {}
    for row in runs.itertuples(index=False):
        if skipped_tasks := RunExtra.from_json(row.extra).skipped_tasks:
            skipped[(row.model_name, row.benchmark)] = skipped_tasks
    return skipped


def _comparisons(
    db_path: Path, metrics: pd.DataFrame, models: Sequence[ModelEntry], n_resamples: int
) -> dict[str, ModelComparison]:
    """Every model's verdicts against the baseline (``models[0]``), with the defaults of
    ``evalsuite compare`` (gated metrics, no margins, seed 0): the report shows what the
    gate decides. A model sharing no metric with the baseline gets none (dashes only)."""
    if len(models) < 2:
        return {}
    found = compare_many(
        db_path, metrics, models[0].name, [m.name for m in models[1:]],
        n_resamples=n_resamples,
    )  # fmt: skip
    return {name: c for name, c in found.items() if isinstance(c, ModelComparison)}


def load_report_data(
    db_path: str | Path,
    baseline: str | None = None,
    models: Sequence[str] | None = None,
    target: str | None = None,
    *,
    n_resamples: int = N_RESAMPLES,
) -> ReportData:
    """Everything the report shows, read once from the database, and every model's verdicts
    against the baseline, computed once."""
    db_path = Path(db_path)
    metrics = _check_db(db_path)
    models_df = store.list_models(db_path)
    entries = _order_models(_model_entries(metrics, models_df), models_df, baseline, models)
    metrics = metrics[metrics["model_name"].isin([e.name for e in entries])]
    run_ids = list(dict.fromkeys(metrics["run_id"]))
    runs = store.list_runs(db_path)
    runs = runs[runs["run_id"].isin(run_ids)].reset_index(drop=True)
    if target is None:
        target = target_benchmark(metrics["benchmark"])
    benchmarks = _order_benchmarks(metrics["benchmark"], target)
    for entry in entries:  # only fine-tunes have a training log
        if entry.fine_tuned:
            history = store.history(db_path, entry.fingerprint)
            entry.history = history if not history.empty else None
    return ReportData(
        db_path=db_path,
        models=entries,
        target=target,
        benchmarks=benchmarks,
        tasks={b: _task_order(metrics, runs, b) for b in benchmarks},
        cells=_cells(metrics),
        runs=runs,
        class_f1=store.class_metrics(db_path, run_ids),
        skipped_tasks=_skipped_tasks(runs),
        comparisons=_comparisons(db_path, metrics, entries, n_resamples),
        metrics=metrics,
    )
