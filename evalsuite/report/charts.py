"""The report's charts of scores (PNG): the primary score of each task per benchmark, the
per-class F1 of a zero-shot task and a fine-tune's training curves. The trade-off chart:
:mod:`evalsuite.report.tradeoff`; the sweep's: :mod:`evalsuite.report.sweep_chart`."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from evalsuite.labels import benchmark_label, task_words
from evalsuite.report.chart_style import (
    error_bars,
    legend_below,
    legend_label,
    model_colours,
    shorten,
)
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.files import save_figure

MAX_CLASSES = 50  # per-class F1 chart: the classes with most items beyond this are dropped
MAX_HEIGHT_IN = 18.0  # per-class F1 chart: bars get thinner beyond this


def _task_tick(data: ReportData, benchmark: str, task: str) -> str:
    metric = data.primary_metric(benchmark, task)
    what = {"acc@1": "accuracy", "ir_hits": "IR hits", "MRR": "MRR"}.get(metric or "", metric)
    if len(data.tasks[benchmark]) == 1:  # the benchmark's only task: its name says little
        return str(what)
    return f"{task_words(task)}\n({what})"


def _primary_percents(
    data: ReportData, model: ModelEntry, benchmark: str, tasks: Sequence[str]
) -> tuple[list[float], list[float], list[float]]:
    """(values, lows, highs) of the model's primary score of each task, in percent; NaN
    where missing."""
    values, lows, highs = [], [], []
    for task in tasks:
        _, cell = data.primary(model, benchmark, task)
        value, low, high = cell.scaled() if cell else (math.nan, None, None)
        values.append(value * 100)
        lows.append(math.nan if low is None else low * 100)
        highs.append(math.nan if high is None else high * 100)
    return values, lows, highs


def _label_bars(
    ax: Any, offsets: np.ndarray, values: list[float], highs: list[float], rotate: bool
) -> float:
    """Each bar's value written above it (``n/a`` when missing); returns the highest top."""
    top = 0.0
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
            rotation=90 if rotate else 0,
        )
        top = max(top, above)
    return top


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
    colours = model_colours(data.models)
    x = np.arange(len(tasks))
    top = 0.0
    for i, model in enumerate(data.models):
        values, lows, highs = _primary_percents(data, model, benchmark, tasks)
        offsets = x - 0.4 + width * (i + 0.5)
        ax.bar(
            offsets,
            np.nan_to_num(values),
            width * 0.92,
            yerr=error_bars(values, lows, highs),
            capsize=3,
            color=colours[model.name],
            label=legend_label(data, model),
            error_kw={"elinewidth": 1, "alpha": 0.7},
        )
        top = max(top, _label_bars(ax, offsets, values, highs, rotate=n_models > 3))
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
    legend_below(fig, ax)
    save_figure(fig, path)
    return True


def _class_f1_rows(
    data: ReportData, benchmark: str, task: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The task's per-class rows of the runs shown, and model name -> its run's id."""
    frame = data.class_f1[
        (data.class_f1["benchmark"] == benchmark) & (data.class_f1["task"] == task)
    ]
    run_ids = {}
    for model in data.models:
        run = data.run_of(model, benchmark)
        if run is not None:
            run_ids[model.name] = run["run_id"]
    return frame[frame["run_id"].isin(run_ids.values())], run_ids


def _classes_shown(frame: pd.DataFrame) -> tuple[pd.Series, list[str], str]:
    """(items per class, the classes with most items, a note on those left out)."""
    support = frame.groupby("class_name")["support"].max().sort_values(ascending=False)
    classes = list(support.index[:MAX_CLASSES])
    note = ""
    if len(support) > MAX_CLASSES:
        note = f"{len(support) - MAX_CLASSES} classes with the fewest items left out"
    return support, classes, note


def class_f1_chart(data: ReportData, benchmark: str, task: str, path: Path) -> str | None:
    """Horizontal grouped bars of per-class F1, classes sorted by the baseline's F1; returns
    a note on dropped classes ("" when none), None when the task has no per-class rows."""
    frame, run_ids = _class_f1_rows(data, benchmark, task)
    if frame.empty:
        return None
    support, classes, note = _classes_shown(frame)
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
    colours = model_colours(data.models)
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
            label=legend_label(data, model),
        )
    labels = [f"{shorten(c)} (n={int(support[c])})" for c in classes]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(len(classes) - 0.5, -0.5)  # first class on top, no margins
    ax.set_xlim(0, 100)
    ax.set_xlabel("F1 (%)   (n = items of the class)")
    order = "the baseline" if base_run in pivot else "the mean"
    ax.set_title(
        f"{benchmark_label(benchmark)} · {task_words(task)}: F1 per class, sorted by {order}",
        fontsize=11,
    )
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    legend_below(fig, ax)
    save_figure(fig, path)
    return note


def history_key(history: pd.DataFrame) -> str:
    """A hash of the logged curves: models trained in the same run share one chart."""
    columns = [c for c in ("epoch", "train_loss", "val_loss", "val_accuracy") if c in history]
    return hashlib.sha256(history[columns].to_csv(index=False).encode()).hexdigest()


def _accuracy_panel(ax: Any, epochs: np.ndarray, series: dict[str, np.ndarray]) -> None:
    """Validation accuracy per epoch with its best epoch marked, or a note that none was
    logged."""
    if "val_accuracy" in series:
        ax.plot(epochs, series["val_accuracy"] * 100, marker="o", ms=3, color="#2ca02c")
        best = int(np.nanargmax(series["val_accuracy"]))
        ax.annotate(
            f"best {series['val_accuracy'][best] * 100:.1f}% (epoch {epochs[best]})",
            (epochs[best], series["val_accuracy"][best] * 100),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
        low, high = np.nanmin(series["val_accuracy"]), np.nanmax(series["val_accuracy"])
        pad = max((high - low) * 100 * 0.25, 1.0)
        ax.set_ylim(max(0, low * 100 - pad), min(100, high * 100 + pad * 1.6))
    else:
        ax.text(
            0.5,
            0.5,
            "no validation accuracy logged",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#666666",
        )
    ax.set_title("validation accuracy (%)", fontsize=10)
    ax.set_xlabel("epoch")


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
    _accuracy_panel(acc_ax, epochs, series)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(fontsize=8)
    names = ", ".join(shorten(m.name, 40) for m in models)
    fig.suptitle(f"Training curves: {names}", fontsize=11)
    save_figure(fig, path)
    return True
