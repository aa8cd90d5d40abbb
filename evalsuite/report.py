"""``evalsuite report``: a Markdown report with PNG charts, for a pull request or an e-mail.

Reads the latest ``ok`` run of every model on every benchmark through :mod:`evalsuite.store`
and writes ``out_dir/report.md`` with the charts in ``out_dir/figures/``:

1. a plain-language paragraph per model: what it gained on the target benchmark (footwear),
   what fine-tuning cost elsewhere, every significant change and whether the gate passes;
2. a headline table, models as columns (baseline first), each other model followed by its
   change against the baseline and the verdict's marker (``▲`` better, ``▼`` worse, ``≈``
   tied, ``n/a`` not comparable, with the reason in a note);
3. per model, "Is the change real?": each gated metric's change with its paired 95%
   interval, adjusted p-value (Benjamini-Hochberg), minimal detectable difference and verdict;
4. charts: the primary score of each task per benchmark, per-class F1 of each zero-shot task,
   the gain/forgetting trade-off (WiSE-FT checkpoints joined by alpha) and training curves;
5. every metric per benchmark, the models, and provenance: data hash, benchmark hash, code
   version and time of each run, with a warning when compared runs scored different data.

Every verdict, count and marker comes from :mod:`evalsuite.verdicts` (one
:class:`~evalsuite.verdicts.ModelComparison` per model against the baseline, with the same
defaults as ``evalsuite compare``), so the report, the gate and the leaderboard agree; the
baseline is chosen by :func:`evalsuite.verdicts.choose_baseline`.

Each task has a **primary score** on a 0..1 scale: ``acc@1`` for zero-shot tasks, IR hits
over their maximum for retrieval tasks. Charts and the averages of the summary use it.
Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend);
every file is written to a temporary name first and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evalsuite import store
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import (
    MISSING,
    PRIMARY_METRICS,
    benchmark_label,
    format_interval,
    format_value,
    headline_metrics,
    is_missing,
    md,
    metric_label,
    task_kind,
    task_label,
)
from evalsuite.seed_formats import cost_markdown, seed_markdown
from evalsuite.seed_table import (
    SeedTable,
    build_seed_table,
    load_seed_rows,
    missing_benchmark_reasons,
)
from evalsuite.training_cost import TrainingCost, training_cost
from evalsuite.verdicts import (
    CORRECTION,
    N_RESAMPLES,
    NOT_COMPARABLE,
    MetricVerdict,
    ModelComparison,
    choose_baseline,
    compare_many,
)

REPORT_NAME = "report.md"
FIGURES_DIR = "figures"
DEFAULT_TARGET = "footwear"
GENERAL_BENCHMARKS = ("fmnist", "deepfashion", "custom", "demo_general")  # may be forgotten
MAX_CLASSES = 50  # per-class F1 chart: the classes with most items beyond this are dropped
DPI = 150
MAX_HEIGHT_IN = 18.0  # per-class F1 chart: bars get thinner beyond this
BASELINE_COLOUR = "#8c8c8c"
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#843c39",
)


class ReportError(EvalSuiteError):
    """The report cannot be written as asked (empty database, unknown model...)."""


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Cell:
    """One metric of one task of one model (its latest run on the benchmark)."""

    metric: str
    value: float
    maximum: float | None
    low: float | None
    high: float | None
    higher_is_better: bool
    run_id: str

    def scaled(self) -> tuple[float, float | None, float | None]:
        """(value, low, high) on a 0..1 scale: points divided by their maximum."""
        scale = self.maximum if self.maximum else 1.0
        return (
            self.value / scale,
            None if self.low is None else self.low / scale,
            None if self.high is None else self.high / scale,
        )


@dataclass(eq=False)  # compared and hashed by identity
class ModelEntry:
    name: str  # the model: unique in the database, and the key of everything shown
    fingerprint: str  # of its current weights (provenance)
    same_weights_as: tuple[str, ...] = ()  # other models with the same weights
    spec: str = ""
    base_model: str | None = None
    base_fingerprint: str | None = None
    training: dict[str, Any] | None = None
    history: pd.DataFrame | None = None

    @property
    def fine_tuned(self) -> bool:
        return bool(self.training) or bool(self.base_model) or bool(self.base_fingerprint)

    @property
    def wise(self) -> dict[str, Any] | None:
        wise = (self.training or {}).get("wise")
        return wise if isinstance(wise, dict) and "alpha" in wise else None


@dataclass
class ReportData:
    db_path: Path
    models: list[ModelEntry]  # baseline first
    target: str | None
    benchmarks: list[str]
    tasks: dict[str, list[tuple[str, str | None]]]  # benchmark -> [(task, kind)]
    cells: dict[tuple[str, str, str, str], Cell]  # (model name, benchmark, task, metric)
    runs: pd.DataFrame  # the runs shown, with their provenance
    class_f1: pd.DataFrame
    skipped_tasks: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # model name -> every verdict of that model against the baseline (none for the baseline,
    # nor for a model sharing no metric with it)
    comparisons: dict[str, ModelComparison] = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)  # the latest runs' metrics

    @property
    def baseline(self) -> ModelEntry:
        return self.models[0]

    def cell(self, model: ModelEntry, benchmark: str, task: str, metric: str) -> Cell | None:
        return self.cells.get((model.name, benchmark, task, metric))

    def __post_init__(self) -> None:
        self._runs = {(row["model_name"], row["benchmark"]): row for _, row in self.runs.iterrows()}
        self._verdicts = {
            (name, v.benchmark, v.task, v.metric): v
            for name, comparison in self.comparisons.items()
            for v in comparison.verdicts
        }

    def run_of(self, model: ModelEntry, benchmark: str) -> pd.Series | None:
        """The run shown for ``model`` on ``benchmark`` (its latest ``ok`` one), or None."""
        return self._runs.get((model.name, benchmark))

    def verdict(
        self, model: ModelEntry, benchmark: str, task: str, metric: str
    ) -> MetricVerdict | None:
        """The verdict on ``model``'s change against the baseline; None when either lacks
        the metric."""
        return self._verdicts.get((model.name, benchmark, task, metric))

    def metrics_of(self, benchmark: str, task: str) -> list[str]:
        """Every metric of the task, headline ones first in headline order."""
        names = {key[3] for key in self.cells if key[1] == benchmark and key[2] == task}
        kind = dict(self.tasks[benchmark]).get(task)
        headline = [m for _, m in headline_metrics(kind) if m in names] if kind else []
        return headline + sorted(names - set(headline), key=_metric_order)

    def primary(
        self, model: ModelEntry, benchmark: str, task: str
    ) -> tuple[str, Cell] | tuple[None, None]:
        """The task's primary score: acc@1 (zero-shot) or IR hits (retrieval)."""
        kind = dict(self.tasks[benchmark]).get(task)
        candidates = (*PRIMARY_METRICS.get(kind or "", ())[:1], "acc@1", "ir_hits", "MRR")
        for metric in candidates:
            cell = self.cell(model, benchmark, task, metric)
            if cell is not None:
                return metric, cell
        return None, None

    def primary_metric(self, benchmark: str, task: str) -> str | None:
        for model in self.models:
            metric, _ = self.primary(model, benchmark, task)
            if metric:
                return metric
        return None


def _metric_order(name: str) -> tuple[str, int]:
    match = re.match(r"(.*?)(\d+)$", name)
    return (match.group(1).lower(), int(match.group(2))) if match else (name.lower(), 0)


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
    def key(name: str) -> tuple[int, int, str]:
        if name == target:
            return (0, 0, name)
        if name in GENERAL_BENCHMARKS:
            return (1, GENERAL_BENCHMARKS.index(name), name)
        return (2, 0, name)

    return sorted(set(names), key=key)


def _task_order(
    metrics: pd.DataFrame, runs: pd.DataFrame, benchmark: str
) -> list[tuple[str, str | None]]:
    """(task, kind) in the order of the benchmark YAML as the runs recorded it."""
    rows = metrics[metrics["benchmark"] == benchmark]
    kinds = {task: task_kind(group["metric"]) for task, group in rows.groupby("task")}
    order: list[str] = []
    for extra in runs.loc[runs["benchmark"] == benchmark, "extra"]:
        if isinstance(extra, dict) and isinstance(extra.get("tasks"), dict):
            order += [t for t in extra["tasks"] if t in kinds and t not in order]
    rest = sorted((t for t in kinds if t not in order), key=lambda t: (kinds[t] != "zeroshot", t))
    return [(task, kinds[task]) for task in order + rest]


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
        present = set(metrics["benchmark"])
        others = sorted(present - set(GENERAL_BENCHMARKS))
        target = DEFAULT_TARGET if DEFAULT_TARGET in present else (others[0] if others else None)
    benchmarks = _order_benchmarks(metrics["benchmark"], target)
    cells = {
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
    for entry in entries:  # only fine-tunes have a training log
        if entry.fine_tuned:
            history = store.history(db_path, entry.fingerprint)
            entry.history = history if not history.empty else None
    skipped = {}
    for row in runs.itertuples(index=False):
        extra = row.extra if isinstance(row.extra, dict) else {}
        if extra.get("skipped_tasks"):
            skipped[(row.model_name, row.benchmark)] = dict(extra["skipped_tasks"])
    return ReportData(
        db_path=db_path,
        models=entries,
        target=target,
        benchmarks=benchmarks,
        tasks={b: _task_order(metrics, runs, b) for b in benchmarks},
        cells=cells,
        runs=runs,
        class_f1=store.class_metrics(db_path, run_ids),
        skipped_tasks=skipped,
        comparisons=_comparisons(db_path, metrics, entries, n_resamples),
        metrics=metrics,
    )


# ---------------------------------------------------------------- files


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:60] or "x"


def _replace_into(path: Path, write: Any) -> None:
    """``write(tmp_path)``, then rename over ``path``: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    _replace_into(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, facecolor="white"))


def _write_text(path: Path, text: str) -> None:
    _replace_into(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------- charts


def _colours(models: Sequence[ModelEntry]) -> dict[str, str]:
    out = {models[0].name: BASELINE_COLOUR}
    for i, model in enumerate(models[1:]):
        out[model.name] = COLOURS[i % len(COLOURS)]
    return out


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend_label(data: ReportData, model: ModelEntry) -> str:
    return f"{model.name} (baseline)" if model is data.baseline else model.name


def _task_tick(data: ReportData, benchmark: str, task: str) -> str:
    metric = data.primary_metric(benchmark, task)
    what = {"acc@1": "accuracy", "ir_hits": "IR hits", "MRR": "MRR"}.get(metric or "", metric)
    if len(data.tasks[benchmark]) == 1:  # the benchmark's only task: its name says little
        return str(what)
    return f"{task_label(task)}\n({what})"


def _error(values: list[float], lows: list[float], highs: list[float]) -> np.ndarray:
    """Error-bar lengths below and above each value; 0 where the interval is missing."""
    value, low, high = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    below = np.nan_to_num(np.clip(value - low, 0, None), nan=0.0)
    above = np.nan_to_num(np.clip(high - value, 0, None), nan=0.0)
    return np.vstack([below, above])


def _legend_below(fig: Figure, ax: Any) -> None:
    """The models' legend under the plot, in as many columns as the figure's width holds."""
    handles, labels = ax.get_legend_handles_labels()
    entry_in = 0.55 + 0.075 * max(len(label) for label in labels)  # 8 pt text, with its patch
    ncol = max(1, min(len(labels), int(fig.get_figwidth() // entry_in)))
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=ncol, frameon=False)


def benchmark_chart(data: ReportData, benchmark: str, path: Path) -> bool:
    """Grouped bars: the primary score (percent) of each task, one bar per model, with the
    bootstrap interval as error bars."""
    tasks = [t for t, _ in data.tasks[benchmark] if data.primary_metric(benchmark, t)]
    if not tasks:
        return False
    n_models = len(data.models)
    width = 0.8 / n_models
    fig = Figure(
        figsize=(max(6.0, 1.2 + len(tasks) * (0.55 * n_models + 0.6)), 4.4), layout="constrained"
    )
    ax = fig.add_subplot()
    colours = _colours(data.models)
    x = np.arange(len(tasks))
    top = 0.0
    for i, model in enumerate(data.models):
        values, lows, highs = [], [], []
        for task in tasks:
            _, cell = data.primary(model, benchmark, task)
            value, low, high = cell.scaled() if cell else (math.nan, None, None)
            values.append(value * 100)
            lows.append(math.nan if low is None else low * 100)
            highs.append(math.nan if high is None else high * 100)
        offsets = x - 0.4 + width * (i + 0.5)
        ax.bar(
            offsets,
            np.nan_to_num(values),
            width * 0.92,
            yerr=_error(values, lows, highs),
            capsize=3,
            color=colours[model.name],
            label=_legend_label(data, model),
            error_kw={"elinewidth": 1, "alpha": 0.7},
        )
        for offset, value, high in zip(offsets, values, highs, strict=True):
            label = "n/a" if math.isnan(value) else f"{value:.1f}"
            above = 0 if math.isnan(value) else max(value, np.nan_to_num(high, nan=value))
            ax.annotate(
                label,
                (offset, above),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                color="#333333",
                rotation=90 if n_models > 3 else 0,
            )
            top = max(top, above)
    ax.set_xticks(x, [_task_tick(data, benchmark, t) for t in tasks], fontsize=9)
    ax.set_ylabel("score (% of maximum)")
    ax.set_ylim(0, max(10.0, top * 1.12 + 4))
    ax.set_title(
        f"{benchmark_label(benchmark)}: primary score per task "
        "(error bars: 95% bootstrap interval)",
        fontsize=11,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _legend_below(fig, ax)
    _save(fig, path)
    return True


def class_f1_chart(data: ReportData, benchmark: str, task: str, path: Path) -> str | None:
    """Horizontal grouped bars of per-class F1, classes sorted by the baseline's F1; returns
    a note on dropped classes ("" when none), None when the task has no per-class rows."""
    frame = data.class_f1[
        (data.class_f1["benchmark"] == benchmark) & (data.class_f1["task"] == task)
    ]
    run_ids = {}
    for model in data.models:
        run = data.run_of(model, benchmark)
        if run is not None:
            run_ids[model.name] = run["run_id"]
    frame = frame[frame["run_id"].isin(run_ids.values())]
    if frame.empty:
        return None
    support = frame.groupby("class_name")["support"].max().sort_values(ascending=False)
    classes = list(support.index[:MAX_CLASSES])
    note = ""
    if len(support) > MAX_CLASSES:
        note = f"{len(support) - MAX_CLASSES} classes with the fewest items left out"
    pivot = frame.pivot_table(index="class_name", columns="run_id", values="f1", aggfunc="first")
    base_run = run_ids.get(data.baseline.name)
    sort_by = pivot[base_run] if base_run in pivot else pivot.mean(axis=1)
    classes = sorted(classes, key=lambda c: (-np.nan_to_num(sort_by.get(c, np.nan), nan=-1), c))
    shown = [m for m in data.models if m.name in run_ids]
    height = 0.8 / len(shown)
    fig = Figure(
        figsize=(8.0, min(MAX_HEIGHT_IN, 1.5 + len(classes) * (0.15 * len(shown) + 0.12))),
        layout="constrained",
    )
    ax = fig.add_subplot()
    colours = _colours(data.models)
    y = np.arange(len(classes))
    for i, model in enumerate(shown):
        run_id = run_ids[model.name]
        values = [
            pivot.at[c, run_id] if run_id in pivot and c in pivot.index else np.nan for c in classes
        ]
        ax.barh(
            y - 0.4 + height * (i + 0.5),
            np.nan_to_num(np.array(values, float)) * 100,
            height * 0.92,
            color=colours[model.name],
            label=_legend_label(data, model),
        )
    labels = [f"{_short(c)} (n={int(support[c])})" for c in classes]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(len(classes) - 0.5, -0.5)  # first class on top, no margins
    ax.set_xlim(0, 100)
    ax.set_xlabel("F1 (%)   (n = items of the class)")
    order = "the baseline" if base_run in pivot else "the mean"
    ax.set_title(
        f"{benchmark_label(benchmark)} · {task_label(task)}: F1 per class, sorted by {order}",
        fontsize=11,
    )
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _legend_below(fig, ax)
    _save(fig, path)
    return note


def _task_changes(data: ReportData, model: ModelEntry, benchmark: str) -> list[float]:
    """Change of the primary score (0..1) of each task scored by both model and baseline."""
    changes = []
    for task, _ in data.tasks[benchmark]:
        _, base = data.primary(data.baseline, benchmark, task)
        _, other = data.primary(model, benchmark, task)
        if base is not None and other is not None and base.metric == other.metric:
            changes.append(other.scaled()[0] - base.scaled()[0])
    return changes


def tradeoff_point(data: ReportData, model: ModelEntry) -> tuple[float, float] | None:
    """(mean change elsewhere, mean change on the target) of primary scores, in points of a
    percentage; elsewhere = the mean of each other benchmark's mean, so that every benchmark
    weighs the same. None when either side cannot be measured."""
    if data.target is None:
        return None
    gains = _task_changes(data, model, data.target)
    others = [
        np.mean(c)
        for b in data.benchmarks
        if b != data.target
        for c in [_task_changes(data, model, b)]
        if c
    ]
    if not gains or not others:
        return None
    return float(np.mean(others)) * 100, float(np.mean(gains)) * 100


def _same_spec(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def _base_spec(model: ModelEntry) -> str | None:
    base = (model.training or {}).get("base_model") or model.base_model
    return base.get("spec") if isinstance(base, dict) else base


def _find_spec(
    models: Sequence[ModelEntry], spec: str | None, fingerprint: str | None = None
) -> ModelEntry | None:
    for model in models:
        if (fingerprint and model.fingerprint == fingerprint) or _same_spec(model.spec, spec):
            return model
    return None


def wise_lines(data: ReportData) -> list[list[tuple[ModelEntry, float]]]:
    """WiSE-FT interpolations: per fine-tuned model, [(model, alpha)] sorted by alpha, from
    the zero-shot base (alpha 0) to the fine-tune (alpha 1) when those are in the report."""
    groups: dict[str, list[tuple[ModelEntry, float]]] = {}
    for model in data.models:
        if model.wise:
            key = str(model.wise.get("finetuned_spec") or "")
            groups.setdefault(key, []).append((model, float(model.wise["alpha"])))
    lines = []
    for spec, points in groups.items():
        finetuned = _find_spec(data.models, spec)
        # an end already on the curve (e.g. alpha 0, with the base's weights) is not added twice
        if finetuned is not None and all(m is not finetuned and a != 1.0 for m, a in points):
            points.append((finetuned, 1.0))
        ref = points[0][0]
        base = _find_spec(data.models, _base_spec(ref), ref.base_fingerprint)
        if base is None and finetuned is not None:
            base = _find_spec(data.models, _base_spec(finetuned), finetuned.base_fingerprint)
        if base is not None and all(m is not base and a != 0.0 for m, a in points):
            points.append((base, 0.0))
        lines.append(sorted(points, key=lambda p: p[1]))
    return lines


def _limits(values: Sequence[float]) -> tuple[float, float]:
    """Axis limits that show 0 and every value with a margin, at least 2 pts wide."""
    low, high = min(0.0, *values), max(0.0, *values)
    pad = max((high - low) * 0.18, 1.0)
    return low - pad, high + pad


def tradeoff_chart(data: ReportData, path: Path) -> bool:
    """Scatter: x = change on the other benchmarks, y = gain on the target, both against the
    baseline (at the origin); WiSE-FT checkpoints joined by a line in order of alpha."""
    points = {m.name: tradeoff_point(data, m) for m in data.models}
    if sum(p is not None for p in points.values()) < 2:
        return False
    fig = Figure(figsize=(7.5, 5.6), layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(data.models)
    for line in wise_lines(data):
        xy = [points[m.name] for m, _ in line if points[m.name] is not None]
        if len(xy) >= 2:
            ax.plot(
                *zip(*xy, strict=True),
                color="#555555",
                lw=1.2,
                ls="--",
                zorder=1,
                label="WiSE-FT (weight interpolation)",
            )
        for model, alpha in line:
            p = points[model.name]
            if p is not None and 0 < alpha < 1:
                ax.annotate(
                    f"α={alpha:g}",
                    p,
                    xytext=(6, -10),
                    textcoords="offset points",
                    fontsize=7,
                    color="#555555",
                )
    xs = [p[0] for p in points.values() if p is not None]
    ys = [p[1] for p in points.values() if p is not None]
    for model in data.models:
        p = points[model.name]
        if p is None:
            continue
        is_base = model is data.baseline
        ax.scatter(
            *p,
            s=90 if is_base else 60,
            marker="s" if is_base else "o",
            zorder=3,
            color=colours[model.name],
            edgecolor="black",
            linewidth=0.6,
        )
        ax.annotate(
            _short(_legend_label(data, model), 36),
            p,
            xytext=(6, 5),
            textcoords="offset points",
            fontsize=8,
        )
    (x0, x1), (y0, y1) = _limits(xs), _limits(ys)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    if x0 < 0 < y1:
        ax.fill_between([x0, 0], 0, y1, color="#fff3cd", alpha=0.5, zorder=0, lw=0)
    if x1 > 0 and y1 > 0:
        ax.fill_between([0, x1], 0, y1, color="#d4edda", alpha=0.5, zorder=0, lw=0)
    others = [benchmark_label(b) for b in data.benchmarks if b != data.target]
    ax.set_xlabel(
        f"change elsewhere, pts (mean of {', '.join(others)})\n← forgets          better →",
        fontsize=9,
    )
    ax.set_ylabel(
        f"gain on {benchmark_label(data.target or '')}, pts (mean over tasks)\n"
        "← worse          better →",
        fontsize=9,
    )
    ax.set_title(
        f"What fine-tuning gained vs what it cost (against {_short(data.baseline.name, 30)})",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:1], labels[:1], fontsize=8, loc="lower right")
    _save(fig, path)
    return True


def _history_key(history: pd.DataFrame) -> str:
    columns = [c for c in ("epoch", "train_loss", "val_loss", "val_accuracy") if c in history]
    return hashlib.sha256(history[columns].to_csv(index=False).encode()).hexdigest()


def training_chart(models: Sequence[ModelEntry], history: pd.DataFrame, path: Path) -> bool:
    """Train/val loss and val accuracy per epoch of one fine-tuning run."""
    epochs = history["epoch"].to_numpy()
    series = {
        c: history[c].to_numpy(float)
        for c in ("train_loss", "val_loss", "val_accuracy")
        if c in history and history[c].notna().any()
    }
    if not series or len(epochs) == 0:
        return False
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for column, colour, label in (
        ("train_loss", "#1f77b4", "train loss"),
        ("val_loss", "#ff7f0e", "validation loss"),
    ):
        if column in series:
            loss_ax.plot(epochs, series[column], marker="o", ms=3, color=colour, label=label)
    loss_ax.set_title("loss", fontsize=10)
    loss_ax.set_xlabel("epoch")
    if "val_accuracy" in series:
        acc_ax.plot(epochs, series["val_accuracy"] * 100, marker="o", ms=3, color="#2ca02c")
        best = int(np.nanargmax(series["val_accuracy"]))
        acc_ax.annotate(
            f"best {series['val_accuracy'][best] * 100:.1f}% (epoch {epochs[best]})",
            (epochs[best], series["val_accuracy"][best] * 100),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
        low, high = np.nanmin(series["val_accuracy"]), np.nanmax(series["val_accuracy"])
        pad = max((high - low) * 100 * 0.25, 1.0)
        acc_ax.set_ylim(max(0, low * 100 - pad), min(100, high * 100 + pad * 1.6))
    else:
        acc_ax.text(
            0.5,
            0.5,
            "no validation accuracy logged",
            ha="center",
            va="center",
            transform=acc_ax.transAxes,
            color="#666666",
        )
    acc_ax.set_title("validation accuracy (%)", fontsize=10)
    acc_ax.set_xlabel("epoch")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(fontsize=8)
    names = ", ".join(_short(m.name, 40) for m in models)
    fig.suptitle(f"Training curves: {names}", fontsize=11)
    _save(fig, path)
    return True


@dataclass
class Figures:
    """Relative paths (from the report) of the charts drawn, by section."""

    tradeoff: str | None = None
    benchmarks: dict[str, str] = field(default_factory=dict)
    class_f1: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # bench, task, path, note
    training: list[tuple[list[ModelEntry], str]] = field(default_factory=list)
    sweeps: dict[str, str] = field(default_factory=dict)  # study -> its chart


def draw_figures(data: ReportData, out_dir: Path) -> Figures:
    figures_dir = out_dir / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    figs = Figures()

    def target(name: str) -> tuple[Path, str]:
        return figures_dir / name, f"{FIGURES_DIR}/{name}"

    if len(data.models) > 1:
        path, rel = target("tradeoff.png")
        if tradeoff_chart(data, path):
            figs.tradeoff = rel
    for benchmark in data.benchmarks:
        path, rel = target(f"benchmark-{_slug(benchmark)}.png")
        if benchmark_chart(data, benchmark, path):
            figs.benchmarks[benchmark] = rel
        for task, kind in data.tasks[benchmark]:
            if kind != "zeroshot":
                continue
            path, rel = target(f"class-f1-{_slug(benchmark)}-{_slug(task)}.png")
            note = class_f1_chart(data, benchmark, task, path)
            if note is not None:
                figs.class_f1.append((benchmark, task, rel, note))
    seen: dict[str, list[ModelEntry]] = {}
    for model in data.models:
        if model.history is not None:
            seen.setdefault(_history_key(model.history), []).append(model)
    used: set[str] = set()
    for group in seen.values():
        slug = _slug(group[0].name)
        slug = slug if slug not in used else f"{slug}-{len(used)}"
        used.add(slug)
        path, rel = target(f"training-{slug}.png")
        if training_chart(group, group[0].history, path):  # type: ignore[arg-type]
            figs.training.append((group, rel))
    from evalsuite.report_sweep import draw_sweep_charts  # it reads ReportData: no cycle

    figs.sweeps = draw_sweep_charts(data, figures_dir, FIGURES_DIR)
    return figs


# ---------------------------------------------------------------- markdown


def _escape(text: str) -> str:
    """Text in a table cell: a column separator not already escaped (model names come
    escaped by ``md``) gets a backslash."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(text)).replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str]) -> str:
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(_escape(h) for h in header) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _value_cell(cell: Cell | None) -> str:
    if cell is None:
        return MISSING
    text = format_value(cell.metric, cell.value, cell.maximum)
    interval = format_interval(cell.metric, cell.low, cell.high, cell.maximum)
    return f"{text}<br><sub>{interval}</sub>" if interval else text


@dataclass
class Notes:
    """Why changes are not comparable, numbered in order of first use under one table."""

    reasons: list[str] = field(default_factory=list)

    def mark(self, reason: str) -> str:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return f"<sup>{self.reasons.index(reason) + 1}</sup>"

    def lines(self) -> list[str]:
        if not self.reasons:
            return []
        notes = "; ".join(
            f"<sup>{i}</sup> {_escape(reason)}" for i, reason in enumerate(self.reasons, 1)
        )
        return ["", f"n/a: not comparable, because {notes}."]


def _delta_cell(verdict: MetricVerdict | None, notes: Notes) -> str:
    """``▼ -6.20 pts``: the change and its verdict's marker; a numbered note says why a
    change is not comparable."""
    if verdict is None or is_missing(verdict.baseline) or is_missing(verdict.candidate):
        return MISSING  # a model without the value: the "—" beside it says so already
    text = f"{verdict.marker} {verdict.delta_text}"
    return text + notes.mark(verdict.reason) if verdict.verdict == NOT_COMPARABLE else text


def _metric_rows(
    data: ReportData, rows: Iterable[tuple[str, str, str]], label_task: bool, notes: Notes
) -> list[list[str]]:
    out, previous = [], None
    for benchmark, task, metric in rows:
        cells = []
        if label_task:
            what = _task_title(data, benchmark, task)
            cells.append("" if what == previous else f"**{_escape(what)}**")
            previous = what
        else:
            task_text = task_label(task)
            cells.append("" if task == previous else _escape(task_text))
            previous = task
        cells.append(_escape(metric_label(metric, _task_type(data, benchmark, task))))
        for i, model in enumerate(data.models):
            cells.append(_value_cell(data.cell(model, benchmark, task, metric)))
            if i:
                cells.append(_delta_cell(data.verdict(model, benchmark, task, metric), notes))
        out.append(cells)
    return out


def _task_type(data: ReportData, benchmark: str, task: str) -> str | None:
    """The task's YAML type as its runs recorded it (a probe's acc@1 is not zero-shot)."""
    for extra in data.runs.loc[data.runs["benchmark"] == benchmark, "extra"]:
        info = ((extra or {}).get("tasks") or {}).get(task) if isinstance(extra, dict) else None
        if isinstance(info, dict) and info.get("type"):
            return str(info["type"])
    return None


def _header(data: ReportData, first: str) -> tuple[list[str], list[str]]:
    header, align = [first, "Metric"], ["l", "l"]
    for i, model in enumerate(data.models):
        name = md(model.name)
        header.append(f"{name} (baseline)" if i == 0 and len(data.models) > 1 else name)
        align.append("r")
        if i:
            header.append(f"Δ {name}")
            align.append("r")
    return header, align


def _task_title(data: ReportData, benchmark: str, task: str) -> str:
    if len(data.tasks[benchmark]) == 1:
        return benchmark_label(benchmark)
    return f"{benchmark_label(benchmark)} · {task_label(task)}"


def headline_rows(data: ReportData) -> list[tuple[str, str, str]]:
    """(benchmark, task, metric) rows of the headline table: both primary metrics of every
    task of the target benchmark (of every benchmark when there is no target), the first one
    of every task elsewhere."""
    rows = []
    for benchmark in data.benchmarks:
        for task, kind in data.tasks[benchmark]:
            wanted = PRIMARY_METRICS.get(kind or "", ())
            if data.target is not None and benchmark != data.target:
                wanted = wanted[:1]
            present = set(data.metrics_of(benchmark, task))
            chosen = [m for m in wanted if m in present]
            if not chosen and data.primary_metric(benchmark, task):
                chosen = [data.primary_metric(benchmark, task)]  # type: ignore[list-item]
            rows += [(benchmark, task, m) for m in chosen]
    return rows


def _change_words(verdict: MetricVerdict) -> str:
    """``▲ +10.10 pts, significantly better``: the change and its verdict in words."""
    words = {
        "better": "significantly better",
        "worse": "significantly worse",
        "tied": "no significant change",
        NOT_COMPARABLE: "not comparable",
    }[verdict.verdict]
    return f"{verdict.marker} {verdict.delta_text}, {words}"


def _phrase(
    data: ReportData, model: ModelEntry, benchmark: str, task: str, named: bool = True
) -> str | None:
    """``article type accuracy 59.66% → 69.76% (▲ +10.10 pts, significantly better)``, the
    benchmark named first when ``named``; None when model or baseline lacks the task."""
    metric = data.primary_metric(benchmark, task)
    verdict = data.verdict(model, benchmark, task, metric) if metric else None
    if verdict is None or is_missing(verdict.baseline) or is_missing(verdict.candidate):
        return None  # one of the two was not scored on it: "Not scored on ..." says so
    what = _task_title(data, benchmark, task) if named else task_label(task)
    short = "accuracy" if verdict.metric == "acc@1" else metric_label(verdict.metric)
    before, after = verdict.value_text("baseline"), verdict.value_text("candidate")
    return f"{what} {short} {before} → {after} ({_change_words(verdict)})"


def _not_comparable_sentence(comparison: ModelComparison) -> str | None:
    """``3 gated metrics are not comparable: Fashion-MNIST (scored on different data ...)``."""
    reasons: dict[str, list[str]] = {}
    for v in comparison.verdicts:
        if v.gated and v.verdict == NOT_COMPARABLE:
            tasks = reasons.setdefault(v.reason, [])
            if v.task_text not in tasks:
                tasks.append(v.task_text)
    if not reasons:
        return None
    n = sum(1 for v in comparison.verdicts if v.gated and v.verdict == NOT_COMPARABLE)
    groups = "; ".join(f"{', '.join(tasks)}: {reason}" for reason, tasks in reasons.items())
    are = "metric is" if n == 1 else "metrics are"
    return f"{n} gated {are} not comparable ({groups})."


def summary_paragraph(data: ReportData, model: ModelEntry) -> str:
    """What ``model`` gained on the target and what it cost elsewhere, every significant
    change (all losses named) and the gate's decision, in plain words: a heading line and
    one bullet each, so that a reader finds the gate's decision without reading it all."""
    base = data.baseline
    target = data.target if data.target in data.benchmarks else None
    others = [b for b in data.benchmarks if b != target]
    intro = f"**{md(model.name)}** against **{md(base.name)}**"
    if model.wise:
        intro += f" (WiSE-FT interpolation, α = {float(model.wise['alpha']):g})"
    elif model.fine_tuned:
        base_spec = _base_spec(model)
        intro += f" (fine-tuned from {base_spec})" if base_spec else " (fine-tuned)"
    sentences = []
    missing = [
        benchmark_label(b)
        for b in data.benchmarks
        if data.run_of(model, b) is None and data.run_of(base, b) is not None
    ]

    def changes(benchmarks: Sequence[str], named: bool = True) -> list[str]:
        return [
            p
            for b in benchmarks
            for t, _ in data.tasks[b]
            if (p := _phrase(data, model, b, t, named))
        ]

    if target:
        found = changes([target], named=len(data.tasks[target]) == 1)
        if found:
            sentences.append(
                f"On {benchmark_label(target)}, the target benchmark: " + "; ".join(found) + "."
            )
        else:
            sentences.append(
                f"Not comparable on {benchmark_label(target)}, the target "
                "benchmark (one of the two models was not scored on it)."
            )
    found = changes(others)
    if found:
        lead = "What fine-tuning cost elsewhere" if model.fine_tuned else "Elsewhere"
        sentences.append(f"{lead}: " + "; ".join(found) + ".")
    if missing:
        sentences.append(f"Not scored on {', '.join(missing)}.")
    point = tradeoff_point(data, model)
    if point is not None:
        sentences.append(
            f"On average over the tasks' primary scores: {point[1]:+.2f} pts on "
            f"{benchmark_label(target or '')} and {point[0]:+.2f} pts elsewhere."
        )
    comparison = data.comparisons.get(model.name)
    if comparison is not None:
        sentences.append(
            f"Significant changes (paired tests, {CORRECTION}-corrected): "
            f"{comparison.summary_line()}."
        )
        not_comparable = _not_comparable_sentence(comparison)
        if not_comparable:
            sentences.append(not_comparable)
        gate = comparison.gate_line()
        verdict, _, why = gate.partition(": ")
        sentences.append(f"CI gate (`evalsuite compare`): **{verdict}**, {md(why)}.")
    lines = [f"{intro}:", "", *(f"- {sentence}" for sentence in sentences)]
    if comparison is not None:
        lines += [f"  - Regression: {v.sentence()}." for v in comparison.regressions]
    return "\n".join(lines)


def _verdict_text(verdict: MetricVerdict) -> str:
    """``▼ worse, regression``; ``n/a not comparable: scored on different data``."""
    text = f"{verdict.marker} {verdict.verdict}"
    if verdict.regression:
        return f"{text}, **regression**"
    return f"{text}: {verdict.reason}" if verdict.reason else text


def _report_order(data: ReportData, verdict: MetricVerdict) -> tuple[int, int, int]:
    """Benchmarks, tasks and metrics in the order of the report's tables."""
    benchmark, task, metric = verdict.benchmark, verdict.task, verdict.metric
    tasks = [t for t, _ in data.tasks.get(benchmark, [])]
    metrics = data.metrics_of(benchmark, task) if task in tasks else []
    return (
        data.benchmarks.index(benchmark) if benchmark in data.benchmarks else len(data.benchmarks),
        tasks.index(task) if task in tasks else len(tasks),
        metrics.index(metric) if metric in metrics else len(metrics),
    )


VERDICT_TABLE_TAG = "evalsuite-verdicts"  # an HTML comment naming the models of the table


def verdict_table(data: ReportData, model: ModelEntry, comparison: ModelComparison) -> list[str]:
    """The "Is the change real?" table of one model: each gated metric's values, change, paired 95%
    interval of the change, adjusted p-value (Benjamini-Hochberg), minimal detectable difference and
    verdict; the ``Key`` column is the metric as ``--tolerance`` names it."""
    header = [
        "Task", "Metric", f"{md(data.baseline.name)} (baseline)", md(model.name), "Change",
        "95% CI of the change", "p (adjusted)", "Detectable", "Verdict", "Key",
    ]  # fmt: skip
    rows = []
    gated = [v for v in comparison.verdicts if v.gated]
    for v in sorted(gated, key=lambda v: _report_order(data, v)):
        rows.append(
            [
                _escape(_task_title(data, v.benchmark, v.task)),
                _escape(metric_label(v.metric, v.task_type)),
                v.value_text("baseline"),
                v.value_text("candidate"),
                v.delta_text,
                v.interval_text,
                v.p_adjusted_text,
                v.mdd_text,
                _escape(_verdict_text(v)),
                f"`{_escape(f'{v.benchmark}/{v.task}/{v.metric}')}`",
            ]
        )
    # machine-readable names (display names may be shortened or made unique)
    tag = json.dumps({"baseline": comparison.baseline, "candidate": comparison.candidate})
    tag = tag.replace("--", "-\\u002d")  # "--" may not appear inside an HTML comment
    return [
        f"### {md(model.name)} against {md(data.baseline.name)}",
        "",
        f"<!-- {VERDICT_TABLE_TAG} {tag} -->",
        "",
        _table(header, rows, "llrrrrrrll"),
        "",
        f"{comparison.method_note()}.",
    ]


def _verdict_section(data: ReportData) -> list[str]:
    tables = [
        verdict_table(data, model, data.comparisons[model.name])
        for model in data.models[1:]
        if model.name in data.comparisons
    ]
    if not tables:
        return []
    lines = ["## Is the change real?", ""]
    for table in tables:
        lines += [*table, ""]
    lines += [
        "How to read these tables: the change is the model's score minus the baseline's on "
        "the same items (or search queries). Both models are re-scored together on thousands "
        "of random re-draws of those items (a paired bootstrap): the 95% CI is the range the "
        "true change most likely lies in. p is the chance of a change at least this large if "
        "the two models were really equally good (for accuracy, from the exact McNemar test "
        "on the items only one of the two models gets right). Because many metrics are tested "
        f"at once, p is corrected ({CORRECTION}'s method), so a model that changed nothing "
        "fails the gate at most 5% of the time. A change is better (▲) or worse (▼) when its "
        "corrected p is at most 0.05, otherwise tied (≈); a worse gated metric is a "
        "regression and fails `evalsuite compare`. Detectable: the smallest change the "
        "benchmark catches 4 times out of 5; a tie with a large detectable change means the "
        "benchmark is too small to tell, not that nothing changed.",
        "",
    ]
    return lines


def _models_section(data: ReportData) -> list[str]:
    rows = []
    for model in data.models:
        training = model.training or {}
        notes = []
        if model is data.baseline:
            notes.append("baseline")
        if model.wise:
            notes.append(
                f"WiSE-FT α = {float(model.wise['alpha']):g} of "
                f"`{model.wise.get('finetuned_spec', '?')}`"
            )
        elif model.fine_tuned:
            notes.append("fine-tuned")
        if model.same_weights_as:  # e.g. WiSE-FT at alpha 0: its base's weights
            notes.append("same weights as " + ", ".join(md(n) for n in model.same_weights_as))
        if model.history is not None:
            notes.append(f"{len(model.history)} epochs logged")
        for key in ("seed", "run_name"):
            if key in training:
                notes.append(f"{key} {training[key]}")
        rows.append(
            [
                md(model.name),
                f"`{_escape(model.spec)}`" if model.spec else "",
                f"`{_escape(_base_spec(model))}`" if _base_spec(model) else "",
                f"`{model.fingerprint[:12]}`",
                _escape(", ".join(notes)),
            ]
        )
    return [
        "## Models",
        "",
        _table(["Model", "Spec", "Fine-tuned from", "Fingerprint", "Notes"], rows, "lllll"),
    ]


def _short_hash(value: Any) -> str:
    return f"`{str(value)[:12]}`" if not is_missing(value) and value else MISSING


def _scored_at(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def provenance_warnings(data: ReportData) -> list[str]:
    """One line per benchmark whose compared runs scored different data or definitions."""
    warnings = []
    for benchmark in data.benchmarks:
        runs = data.runs[data.runs["benchmark"] == benchmark]
        for column, what in (
            ("data_manifest_hash", "data"),
            ("benchmark_hash", "benchmark definitions"),
        ):
            values = runs[column].fillna("none")
            if values.nunique() > 1:
                groups = "; ".join(
                    f"`{str(h)[:12]}`: " + ", ".join(map(md, runs.loc[values == h, "model_name"]))
                    for h in values.unique()
                )
                warnings.append(
                    f"⚠️ **{benchmark_label(benchmark)}**: the runs compared scored different "
                    f"{what} ({groups}); their differences may come from the {what}, not the "
                    "models, so their changes are not comparable (n/a); score them again on "
                    "the same data to compare like with like."
                )
    return warnings


def _provenance_section(data: ReportData) -> list[str]:
    rows = []
    for benchmark in data.benchmarks:
        for model in data.models:
            run = data.run_of(model, benchmark)
            if run is None:
                continue
            items = str(int(run["n_items"])) if not is_missing(run["n_items"]) else MISSING
            skipped = run["n_skipped"]
            if not is_missing(skipped) and int(skipped):
                items += f" ({int(skipped)} skipped)"
            rows.append(
                [
                    benchmark_label(benchmark),
                    md(model.name),
                    _short_hash(run["data_manifest_hash"]),
                    _short_hash(run["benchmark_hash"]),
                    f"`{_escape(run['code_version'])}`",
                    _scored_at(run["started_at"]),
                    items,
                    _escape(f"{run['device']} {run['precision']}"),
                    f"`{str(run['run_id'])[:8]}`",
                ]
            )
    lines = [
        "## Provenance",
        "",
        "The latest run of each model on each benchmark (times in UTC).",
        "",
        _table(
            [
                "Benchmark",
                "Model",
                "Data hash",
                "Benchmark hash",
                "Code version",
                "Scored at",
                "Items",
                "Device",
                "Run",
            ],
            rows,
            "lllllllll",
        ),
    ]
    skipped: dict[tuple[str, str, str], list[str]] = {}
    for model in data.models:
        for benchmark in data.benchmarks:
            found = data.skipped_tasks.get((model.name, benchmark), {})
            for task, reason in found.items():
                skipped.setdefault((benchmark, task, reason), []).append(model.name)
    if skipped:
        notes = [
            f"{benchmark_label(b)} · {task_label(t)} "
            f"({'all models' if len(names) == len(data.models) else ', '.join(names)}): "
            f"{reason}"
            for (b, t, reason), names in skipped.items()
        ]
        lines += ["", "Tasks skipped: " + "; ".join(_escape(n) for n in notes) + "."]
    versions = {str(v) for v in data.runs["code_version"].dropna()}
    if len(versions) > 1:
        lines += [
            "",
            f"Runs come from {len(versions)} code versions: "
            + ", ".join(f"`{v}`" for v in sorted(versions))
            + ".",
        ]
    return lines


def seed_table_of(data: ReportData) -> SeedTable:
    """The seed's table of the report's models (baseline first) and verdicts."""
    definition = load_seed_rows()
    skipped = {
        (benchmark, task): reason
        for (_, benchmark), tasks in data.skipped_tasks.items()
        for task, reason in tasks.items()
    }
    return build_seed_table(
        data.metrics, [m.name for m in data.models], data.comparisons,
        missing_benchmark_reasons(definition, data.metrics), definition, skipped,
    )  # fmt: skip


def training_costs(data: ReportData) -> list[TrainingCost]:
    """What each model's training cost, from its training.json (none for a base model)."""
    return [training_cost(model.name, model.training) for model in data.models]


def _seed_section(data: ReportData) -> list[str]:
    lines = ["## Results at a glance (the seed's table)", ""]
    lines += [seed_markdown(seed_table_of(data), summaries=False).rstrip("\n"), ""]
    lines += ["## Training cost", "", cost_markdown(training_costs(data)).rstrip("\n"), ""]
    return lines


def render_markdown(data: ReportData, figs: Figures, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(timezone.utc)
    single = len(data.models) == 1
    names = ", ".join(f"**{md(m.name)}**" for m in data.models)
    lines = ["# Fashion CLIP evaluation report", ""]
    lines.append(
        f"Models: {names}. "
        + ("" if single else f"Baseline: **{md(data.baseline.name)}**. ")
        + (f"Target benchmark: **{benchmark_label(data.target)}**. " if data.target else "")
        + f"Source: `{data.db_path}`, generated {generated:%Y-%m-%d %H:%M} UTC."
    )
    warnings = provenance_warnings(data)
    if warnings:
        lines += ["", *(f"> {w}" for w in warnings)]
    lines += ["", "## Summary", ""]
    if single:
        lines.append(
            f"Only one model (**{md(data.baseline.name)}**) has results in this database, "
            "so there is nothing to compare it with; its scores follow."
        )
    else:
        for model in data.models[1:]:
            lines += [summary_paragraph(data, model), ""]
        lines.append(
            "▲ significantly better, ▼ significantly worse than the baseline, ≈ no "
            "significant change (paired tests on the same items or queries, "
            f"{CORRECTION}-corrected, at the 5% level); n/a not comparable (a note says why). "
            "Fractions change in percentage points (pts), scores in points."
        )
    lines += ["", *_seed_section(data), "## Headline results", ""]
    header, align = _header(data, "Benchmark")
    notes = Notes()
    lines.append(_table(header, _metric_rows(data, headline_rows(data), True, notes), align))
    lines += notes.lines()
    lines += [
        "",
        f"Small print under a value: its 95% bootstrap interval. {MISSING}: not "
        "scored. “x / y”: points scored out of the maximum.",
        "",
        *_verdict_section(data),
    ]
    if figs.tradeoff or figs.benchmarks or figs.class_f1 or figs.training:
        lines += ["## Charts", ""]
    if figs.tradeoff:
        lines += [
            "### Gain vs forgetting",
            "",
            f"![Gain on the target against change elsewhere]({figs.tradeoff})",
            "",
            "Each point is a model, placed by its mean change against the baseline "
            "(at the origin) in primary scores: up = better on the target, left = worse "
            "on the other benchmarks. A dashed line joins WiSE-FT checkpoints in order "
            "of α, from the zero-shot model (α = 0) to the fine-tune (α = 1). Positions are "
            "plain means of changes; which changes are real is in the tables above.",
            "",
        ]
    if figs.benchmarks:
        lines += ["### Scores per benchmark", ""]
        for benchmark, rel in figs.benchmarks.items():
            lines += [f"![{benchmark_label(benchmark)}]({rel})", ""]
    if figs.class_f1:
        lines += ["### F1 per class", ""]
        for benchmark, task, rel, note in figs.class_f1:
            title = _task_title(data, benchmark, task)
            lines += [f"![{title}: F1 per class]({rel})", ""]
            if note:
                lines += [f"{title}: {note}.", ""]
    if figs.training:
        lines += ["### Training curves", ""]
        for group, rel in figs.training:
            lines += [f"![Training curves of {', '.join(md(m.name) for m in group)}]({rel})", ""]
    from evalsuite.report_sweep import sweep_section  # it reads ReportData: no cycle

    lines += [*sweep_section(data, figs.sweeps), "## All metrics", ""]
    for benchmark in data.benchmarks:
        rows = [
            (benchmark, task, metric)
            for task, _ in data.tasks[benchmark]
            for metric in data.metrics_of(benchmark, task)
        ]
        header, align = _header(data, "Task")
        notes = Notes()
        lines += [
            f"<details><summary>{benchmark_label(benchmark)}</summary>",
            "",
            _table(header, _metric_rows(data, rows, False, notes), align),
            *notes.lines(),
            "",
            "</details>",
            "",
        ]
    lines += [*_models_section(data), "", *_provenance_section(data), ""]
    return "\n".join(lines)


def write_report(
    db_path: Path,
    out_dir: Path,
    baseline: str | None = None,
    models: list[str] | None = None,
    *,
    target: str | None = None,
    n_resamples: int = N_RESAMPLES,
) -> Path:
    """Write ``out_dir/report.md`` and its charts in ``out_dir/figures/``; return the report's
    path. ``baseline`` and ``models`` take model names or fingerprints (``models`` also
    chooses the column order); ``target`` is the benchmark fine-tuning aimed at (default
    ``footwear`` when scored); ``n_resamples`` of the paired bootstrap (the default is
    ``evalsuite compare``'s, so both give the same verdicts). Raises :class:`ReportError`
    (or :class:`evalsuite.store.StoreMissingError`) with a message for the user."""
    data = load_report_data(db_path, baseline, models, target, n_resamples=n_resamples)
    return write_report_files(data, out_dir)


def write_report_files(data: ReportData, out_dir: Path) -> Path:
    """``out_dir/report.md`` and its charts, of data already loaded; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = draw_figures(data, out_dir)
    path = out_dir / REPORT_NAME
    _write_text(path, render_markdown(data, figs))
    return path
