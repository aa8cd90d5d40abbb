"""The sweep section's chart: per study, every trial's gain on the target against its change
elsewhere (in points against the baseline at the origin), with the study's soups and
WiSE-FT curves, on the same axis as the section's table (:mod:`evalsuite.report.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from evalsuite.labels import benchmark_label, task_words
from evalsuite.report.chart_style import BASELINE_COLOUR, COLOURS, axis_limits, shorten
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.files import save_figure, slug
from evalsuite.report.sweep import score_and_point, sweep_tables
from evalsuite.report.tradeoff import wise_lines
from evalsuite.sweeps import SweepTable, value_text

Goal = tuple[str, str, str]  # (benchmark, task, metric) the sweep optimised


def _label(params: dict[str, Any]) -> str:
    """``lr=1e-05, epochs=2``: the last part of each dotted key keeps labels short."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={value_text(v)}" for k, v in params.items())


def chart_point(
    data: ReportData, model: ModelEntry, goal: Goal | None
) -> tuple[float, float] | None:
    """(change elsewhere, gain on the sweep's target) of any model of the study, in points;
    None when either cannot be measured."""
    _, gain, general = score_and_point(data, model, goal)
    return None if gain is None or general is None else (general, gain)


def _study_wise(data: ReportData, members: set[str]) -> list[list[tuple[ModelEntry, float]]]:
    """The WiSE-FT curves of the study's trials and soups."""
    fingerprints = {m.fingerprint for m in data.models if m.name in members}
    lines = []
    for line in wise_lines(data):
        linked = any(m.name in members for m, _ in line) or any(
            (m.wise or {}).get("finetuned_fingerprint") in fingerprints for m, _ in line
        )
        if linked:
            lines.append(line)
    return lines


def _draw_wise(ax: Any, data: ReportData, table: SweepTable, xs: list, ys: list) -> None:
    """The study's WiSE-FT curves dashed, inner checkpoints labelled by alpha; the points
    drawn are added to ``xs`` and ``ys``."""
    members = {s.trial.name for s in table.trials} | set(table.soups)
    for line in _study_wise(data, members):
        xy = [p for m, _ in line for p in [chart_point(data, m, table.objective)] if p]
        if len(xy) >= 2:
            ax.plot(*zip(*xy, strict=True), color="#555555", lw=1.2, ls="--", zorder=1,
                    label="WiSE-FT (by α)")  # fmt: skip
            xs += [p[0] for p in xy]
            ys += [p[1] for p in xy]
        for model, alpha in line:
            point = chart_point(data, model, table.objective) if 0 < alpha < 1 else None
            if point is not None:
                ax.annotate(f"α={alpha:g}", point, xytext=(6, -10), textcoords="offset points",
                            fontsize=7, color="#555555")  # fmt: skip


def _draw_soups(ax: Any, data: ReportData, table: SweepTable, xs: list, ys: list) -> None:
    """A labelled diamond per soup of the study with a position (added to ``xs``, ``ys``)."""
    by_name = {m.name: m for m in data.models}
    for name in table.soups:
        point = chart_point(data, by_name[name], table.objective) if name in by_name else None
        if point is not None:
            ax.scatter(*point, s=90, marker="D", zorder=4, color="#ffd43b", edgecolor="black",
                       linewidth=0.8, label="model soup")  # fmt: skip
            ax.annotate(shorten(name, 36), point, xytext=(6, -11), textcoords="offset points",
                        fontsize=8)  # fmt: skip
            xs.append(point[0])
            ys.append(point[1])


def _axes(ax: Any, data: ReportData, table: SweepTable, xs: list, ys: list) -> None:
    """Limits around every point and the origin, axes through it, labels, title, legend."""
    (x0, x1), (y0, y1) = axis_limits(xs), axis_limits(ys)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    others = [benchmark_label(b) for b in data.benchmarks if b != data.target]
    ax.set_xlabel(f"change elsewhere, pts (mean of {', '.join(others)})", fontsize=9)
    goal = table.objective
    aim = f"{benchmark_label(goal[0])}: {task_words(goal[1])}" if goal else None
    ax.set_ylabel(f"gain on {aim or benchmark_label(data.target or '')}, pts", fontsize=9)
    ax.set_title(f"Sweep {shorten(table.study, 40)}: target gain vs change elsewhere",
                 fontsize=11)  # fmt: skip
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(list(unique.values()), list(unique), fontsize=8, loc="lower right")


def sweep_chart(data: ReportData, table: SweepTable, path: Path) -> bool:
    """Gain on the target (y) against change elsewhere (x), both in points against the
    baseline at the origin: one dot per trial labelled by its params, a diamond per soup,
    WiSE-FT curves dashed; False (nothing drawn) when no trial has a position."""
    trial_xy = [(s, (s.general, s.gain)) for s in table.trials if s.gain is not None]
    if not trial_xy:
        return False
    fig = Figure(figsize=(7.5, 5.6), layout="constrained")
    ax = fig.add_subplot()
    xs, ys = [0.0], [0.0]
    _draw_wise(ax, data, table, xs, ys)
    for i, (score, (x, y)) in enumerate(trial_xy):
        ax.scatter(x, y, s=60, zorder=3, color=COLOURS[i % len(COLOURS)], edgecolor="black",
                   linewidth=0.6)  # fmt: skip
        ax.annotate(shorten(_label(score.trial.params), 40), (x, y), xytext=(6, 5),
                    textcoords="offset points", fontsize=8)  # fmt: skip
        xs.append(x)  # type: ignore[arg-type]
        ys.append(y)
    _draw_soups(ax, data, table, xs, ys)
    ax.scatter(0, 0, s=90, marker="s", zorder=3, color=BASELINE_COLOUR, edgecolor="black",
               linewidth=0.6, label=f"baseline ({shorten(data.baseline.name, 30)})")  # fmt: skip
    _axes(ax, data, table, xs, ys)
    save_figure(fig, path)
    return True


def draw_sweep_charts(data: ReportData, figures_dir: Path, rel_dir: str) -> dict[str, str]:
    """Study -> the chart's path relative to the report, for the studies drawn."""
    out = {}
    for table in sweep_tables(data):
        name = f"sweep-{slug(table.study)}.png"
        if sweep_chart(data, table, figures_dir / name):
            out[table.study] = f"{rel_dir}/{name}"
    return out
