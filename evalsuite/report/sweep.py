"""The sweep section of ``evalsuite report``: per study of ``finetune sweep``, the ITRA guide's
table (each value of each swept key -> the target score) and a chart of every trial's gain
on the target against its change elsewhere, with the study's soups and WiSE-FT curves
(drawn by :mod:`evalsuite.report.sweep_chart`).

The numbers come from the report's own data and helpers, so they agree with its other
tables and charts: a trial's target score is the metric its sweep optimised where the trial
records it (its gain: the change of that metric against the baseline), else the mean primary
score over the target benchmark's tasks and the gain of
:func:`evalsuite.report.tradeoff.tradeoff_point`; its change elsewhere is that function's (the
trade-off chart's position), and its regressions elsewhere are the significant regressions
of gated metrics in its :class:`~evalsuite.verdicts.ModelComparison` with the baseline. The
best trial is the best within the sweep's recorded constraint. Which trials belong to which
study: :mod:`evalsuite.sweeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from evalsuite.formatting import MISSING, md
from evalsuite.labels import benchmark_label, metric_label, task_words
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.tables import markdown_table
from evalsuite.report.tradeoff import tradeoff_point
from evalsuite.sweeps import (
    SweepTable,
    Trial,
    TrialScore,
    params_text,
    soups_of,
    sweep_table,
    trials,
    value_text,
)

VALUE_HEADER = ("Swept key", "Value", "Trials", "Mean target", "Best trial", "Best target",
                "Mean gain (pts)", "Mean change elsewhere (pts)")  # fmt: skip


def _models_frame(data: ReportData) -> pd.DataFrame:
    return pd.DataFrame(
        {"name": [m.name for m in data.models], "training": [m.training for m in data.models]}
    )


def target_score(data: ReportData, model: ModelEntry) -> float | None:
    """The mean primary score (0..1) over the target benchmark's tasks; None if unscored."""
    if data.target is None:
        return None
    scores = [
        cell.scaled()[0]
        for task, _ in data.tasks.get(data.target, [])
        for _, cell in [data.primary(model, data.target, task)]
        if cell is not None
    ]
    return float(np.mean(scores)) if scores else None


def target_label(data: ReportData) -> str:
    """``Footwear: lace (zero-shot accuracy)``, or ``Footwear (mean of 3 tasks)``."""
    if data.target is None:
        return "target"
    tasks = data.tasks.get(data.target, [])
    name = benchmark_label(data.target)
    if len(tasks) != 1:
        return f"{name} (mean primary score of {len(tasks)} tasks)"
    task, kind = tasks[0]
    metric = data.primary_metric(data.target, task) or ""
    return f"{name}: {task_words(task)} ({metric_label(metric, kind).lower()})"


def objective_of(data: ReportData, found: list[Trial]) -> tuple[str, str, str] | None:
    """The metric the study optimised (recorded by ``finetune sweep`` with each trial),
    where the report holds it for the baseline; else None (the report's target is used)."""
    goals = {t.objective for t in found}
    goal = goals.pop() if len(goals) == 1 else None
    base = data.cell(data.baseline, *goal) if goal is not None else None
    # the table's best trial is the highest score: a lower-is-better objective would invert it
    return goal if base is not None and base.higher_is_better else None


def objective_label(goal: tuple[str, str, str], data: ReportData) -> str:
    benchmark, task, metric = goal
    kind = dict(data.tasks.get(benchmark, [])).get(task, "")
    return (
        f"{benchmark_label(benchmark)}: {task_words(task)} "
        f"({metric_label(metric, kind).lower()}), the sweep's objective"
    )


def score_and_point(
    data: ReportData, model: ModelEntry, goal: tuple[str, str, str] | None
) -> tuple[float | None, float | None, float | None]:
    """(target score 0..1, gain on it in points, change elsewhere in points) of any model of
    the study (trial, soup, WiSE-FT point): on the sweep's objective where there is one,
    else on the report's target benchmark; the table and the chart both use this."""
    point = tradeoff_point(data, model) if model is not data.baseline else (0.0, 0.0)
    target, gain = target_score(data, model), point[1] if point else None
    if goal is not None:  # the study's own objective, against the baseline's value
        cell, base = data.cell(model, *goal), data.cell(data.baseline, *goal)
        target = cell.scaled()[0] if cell is not None else None
        gain = None if target is None or base is None else (target - base.scaled()[0]) * 100
    return target, gain, point[0] if point else None


def _trial_score(
    data: ReportData, model: ModelEntry, trial: Trial, goal: tuple[str, str, str] | None
) -> TrialScore:
    comparison = data.comparisons.get(model.name)
    regressions, violates = None, False
    if comparison is not None:
        regressions = sum(1 for v in comparison.regressions if v.benchmark != data.target)
        violates = any(v.benchmark in trial.no_regression_on for v in comparison.regressions)
    target, gain, general = score_and_point(data, model, goal)
    return TrialScore(
        trial=trial, target=target, gain=gain, general=general, regressions=regressions,
        violates=violates,
    )  # fmt: skip


def sweep_tables(data: ReportData) -> list[SweepTable]:
    """One table per study with a trial among the report's models, studies by name."""
    frame = _models_frame(data)
    by_name = {m.name: m for m in data.models}
    out = []
    for study, found in trials(frame).items():
        goal = objective_of(data, found)
        label = objective_label(goal, data) if goal else target_label(data)
        scores = [_trial_score(data, by_name[t.name], t, goal) for t in found]
        soups = soups_of(frame, study, [t.name for t in found])
        table = sweep_table(study, scores, soups, label)
        table.objective = goal
        out.append(table)
    return out


# ---------------------------------------------------------------- rows shown


def _pct(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.2f}%"


def _pts(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.2f}"


def value_rows(table: SweepTable) -> list[list[str]]:
    """The ITRA-style rows, one per (swept key, value), as :data:`VALUE_HEADER` says."""
    return [
        [row.key, value_text(row.value),
         str(row.n_trials) if row.n_scored == row.n_trials else f"{row.n_scored} of {row.n_trials}",
         _pct(row.mean_target), row.best.trial.name if row.best else MISSING,
         _pct(row.best.target if row.best else None), _pts(row.mean_gain),
         _pts(row.mean_general)]
        for row in table.rows
    ]  # fmt: skip


def trial_header(table: SweepTable) -> list[str]:
    return ["Trial", "Model", *table.keys, "Target", "Gain (pts)", "Change elsewhere (pts)",
            "Regressions elsewhere"]  # fmt: skip


def trial_rows(table: SweepTable) -> list[list[str]]:
    """One row per trial, by trial number: its params, target score, gain, change elsewhere
    and significant regressions of gated metrics elsewhere (— when not compared)."""
    return [
        [str(s.trial.number), s.trial.name,
         *(value_text(s.trial.params.get(k)) for k in table.keys), _pct(s.target),
         _pts(s.gain), _pts(s.general),
         MISSING if s.regressions is None else str(s.regressions) if s.regressions else "none"]
        for s in table.trials
    ]  # fmt: skip


def _summary(table: SweepTable, name: Callable[[str], str] = str) -> str:
    """One line: trials, target, the best trial; ``name`` escapes names (Markdown)."""
    best = table.best
    text = f"{len(table.trials)} trial(s) scored; target: {name(table.target_label)}."
    if best is not None:
        text += (
            f" Best trial: {name(best.trial.name)} ({name(params_text(best.trial.params))}) at "
            f"{_pct(best.target)}"
            + (f", {_pts(best.gain)} pts against the baseline" if best.gain is not None else "")
            + "."
        )
    if table.soups:
        text += f" Soups: {', '.join(name(s) for s in table.soups)}."
    return text


# ---------------------------------------------------------------- Markdown and terminal


def _md_rows(rows: list[list[str]]) -> list[list[str]]:
    return [[md(cell) for cell in row] for row in rows]  # names and keys hold "_", "|"...


def sweep_section(data: ReportData, charts: dict[str, str]) -> list[str]:
    """``## Sweeps``: per study, a summary line, the value table, the trial table and the
    chart; nothing when the report holds no sweep trial."""
    tables = sweep_tables(data)
    if not tables:
        return []
    lines = ["## Sweeps", ""]
    for table in tables:
        lines += [f"### Sweep {md(table.study)}", "", _summary(table, md), ""]
        lines += [markdown_table(VALUE_HEADER, _md_rows(value_rows(table)), "llrrlrrr"), ""]
        header = trial_header(table)
        align = "rl" + "r" * (len(header) - 2)
        lines += [markdown_table(header, _md_rows(trial_rows(table)), align), ""]
        if table.study in charts:
            lines += [f"![Sweep {md(table.study)}: gain against change]({charts[table.study]})",
                      ""]  # fmt: skip
    lines += [
        "Target: the metric the sweep optimised where its trials record it, else the mean "
        "primary score over the target benchmark's tasks; gain: its change against the "
        "baseline, in points. The best trial is the best within the sweep's constraint. Change "
        "elsewhere: the trade-off chart's position, in points against the baseline. "
        "Regressions elsewhere: significant regressions of gated metrics on the other "
        "benchmarks (the verdicts above).",
        "",
    ]
    return lines


def _rich_table(title: str, header: Sequence[str], rows: list[list[str]]) -> Table:
    grid = Table(title=title, header_style="bold", title_justify="left")
    for i, column in enumerate(header):
        grid.add_column(column, justify="left" if i < 2 else "right", overflow="fold")
    for row in rows:
        grid.add_row(*row)
    return grid


def sweep_rich(data: ReportData) -> Group | None:
    """The section's tables for the terminal; None when there is no sweep."""
    parts: list[Any] = []
    for table in sweep_tables(data):
        parts.append(Text(f"Sweep {table.study}: {_summary(table)}", style="bold"))
        parts.append(_rich_table("", VALUE_HEADER, value_rows(table)))
        parts.append(_rich_table("", trial_header(table), trial_rows(table)))
    return Group(*parts) if parts else None
