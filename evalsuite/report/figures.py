""":func:`draw_figures`: every chart of the report into ``out_dir/figures/``, and the
:class:`Figures` drawn, by section, for the Markdown to link."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.report.charts import benchmark_chart, class_f1_chart, history_key, training_chart
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.files import slug
from evalsuite.report.sweep_chart import draw_sweep_charts
from evalsuite.report.tradeoff import tradeoff_chart

FIGURES_DIR = "figures"


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


def _target(figures_dir: Path, name: str) -> tuple[Path, str]:
    """(where to write the chart, its path relative to the report)."""
    return figures_dir / name, f"{FIGURES_DIR}/{name}"


def _draw_benchmark_charts(data: ReportData, figures_dir: Path, figs: Figures) -> None:
    """Per benchmark, its primary scores and the per-class F1 of each zero-shot task."""
    for benchmark in data.benchmarks:
        path, rel = _target(figures_dir, f"benchmark-{slug(benchmark)}.png")
        if benchmark_chart(data, benchmark, path):
            figs.benchmarks[benchmark] = rel
        for task, kind in data.tasks[benchmark]:
            if kind != "zeroshot":
                continue
            path, rel = _target(figures_dir, f"class-f1-{slug(benchmark)}-{slug(task)}.png")
            note = class_f1_chart(data, benchmark, task, path)
            if note is not None:
                figs.class_f1.append((benchmark, task, rel, note))


def _draw_training_charts(data: ReportData, figures_dir: Path, figs: Figures) -> None:
    """One chart per training log: models with the same curves (a fine-tune and its copies)
    share it."""
    seen: dict[str, list[ModelEntry]] = {}
    for model in data.models:
        if model.history is not None:
            seen.setdefault(history_key(model.history), []).append(model)
    used: set[str] = set()
    for group in seen.values():
        name = slug(group[0].name)
        name = name if name not in used else f"{name}-{len(used)}"
        used.add(name)
        path, rel = _target(figures_dir, f"training-{name}.png")
        if training_chart(group, group[0].history, path):  # type: ignore[arg-type]
            figs.training.append((group, rel))


def draw_figures(data: ReportData, out_dir: Path) -> Figures:
    figures_dir = out_dir / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    figs = Figures()
    if len(data.models) > 1:
        path, rel = _target(figures_dir, "tradeoff.png")
        if tradeoff_chart(data, path):
            figs.tradeoff = rel
    _draw_benchmark_charts(data, figures_dir, figs)
    _draw_training_charts(data, figures_dir, figs)
    figs.sweeps = draw_sweep_charts(data, figures_dir, FIGURES_DIR)
    return figs
