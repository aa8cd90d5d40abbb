"""report.md: the sections in order (title, summary, seed table, headline results,
verdicts, charts, sweeps, all metrics, models, provenance), and :func:`write_report`, the
entry point that loads, draws and writes it all."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from evalsuite.formatting import MISSING, md
from evalsuite.labels import benchmark_label
from evalsuite.report.data import ReportData
from evalsuite.report.figures import Figures, draw_figures
from evalsuite.report.files import write_text
from evalsuite.report.load import load_report_data
from evalsuite.report.provenance import models_section, provenance_section, provenance_warnings
from evalsuite.report.seed_section import seed_section
from evalsuite.report.sweep import sweep_section
from evalsuite.report.tables import (
    Notes,
    headline_rows,
    markdown_table,
    metric_rows,
    table_header,
    task_title,
)
from evalsuite.report.verdict_text import summary_paragraph, verdict_section
from evalsuite.verdicts import CORRECTION, N_RESAMPLES

REPORT_NAME = "report.md"


def _title(data: ReportData, generated: datetime) -> list[str]:
    """The heading, the models, baseline, target and source, and provenance warnings."""
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
    return lines


def _summary(data: ReportData) -> list[str]:
    lines = ["## Summary", ""]
    if len(data.models) == 1:
        return [
            *lines,
            f"Only one model (**{md(data.baseline.name)}**) has results in this database, "
            "so there is nothing to compare it with; its scores follow.",
        ]
    for model in data.models[1:]:
        lines += [summary_paragraph(data, model), ""]
    lines.append(
        "▲ significantly better, ▼ significantly worse than the baseline, ≈ no "
        "significant change (paired tests on the same items or queries, "
        f"{CORRECTION}-corrected, at the 5% level); n/a not comparable (a note says why). "
        "Fractions change in percentage points (pts), scores in points."
    )
    return lines


def _headline(data: ReportData) -> list[str]:
    header, align = table_header(data, "Benchmark")
    notes = Notes()
    rows = metric_rows(data, headline_rows(data), True, notes)
    return [
        "## Headline results",
        "",
        markdown_table(header, rows, align),
        *notes.lines(),
        "",
        f"Small print under a value: its 95% bootstrap interval. {MISSING}: not "
        "scored. “x / y”: points scored out of the maximum.",
        "",
    ]


TRADEOFF_CAPTION = (
    "Each point is a model, placed by its mean change against the baseline "
    "(at the origin) in primary scores: up = better on the target, left = worse "
    "on the other benchmarks. A dashed line joins WiSE-FT checkpoints in order "
    "of α, from the zero-shot model (α = 0) to the fine-tune (α = 1). Positions are "
    "plain means of changes; which changes are real is in the tables above."
)


def _charts(data: ReportData, figs: Figures) -> list[str]:
    """``## Charts``: the trade-off, scores per benchmark, F1 per class, training curves."""
    lines = []
    if figs.tradeoff or figs.benchmarks or figs.class_f1 or figs.training:
        lines += ["## Charts", ""]
    if figs.tradeoff:
        lines += ["### Gain vs forgetting", ""]
        lines += [f"![Gain on the target against change elsewhere]({figs.tradeoff})", ""]
        lines += [TRADEOFF_CAPTION, ""]
    if figs.benchmarks:
        lines += ["### Scores per benchmark", ""]
        for benchmark, rel in figs.benchmarks.items():
            lines += [f"![{benchmark_label(benchmark)}]({rel})", ""]
    if figs.class_f1:
        lines += ["### F1 per class", ""]
        for benchmark, task, rel, note in figs.class_f1:
            title = task_title(data, benchmark, task)
            lines += [f"![{title}: F1 per class]({rel})", ""]
            if note:
                lines += [f"{title}: {note}.", ""]
    if figs.training:
        lines += ["### Training curves", ""]
        for group, rel in figs.training:
            lines += [f"![Training curves of {', '.join(md(m.name) for m in group)}]({rel})", ""]
    return lines


def _all_metrics(data: ReportData) -> list[str]:
    """``## All metrics``: per benchmark, every metric of every task, folded."""
    lines = ["## All metrics", ""]
    for benchmark in data.benchmarks:
        rows = [
            (benchmark, task, metric)
            for task, _ in data.tasks[benchmark]
            for metric in data.metrics_of(benchmark, task)
        ]
        header, align = table_header(data, "Task")
        notes = Notes()
        lines += [
            f"<details><summary>{benchmark_label(benchmark)}</summary>",
            "",
            markdown_table(header, metric_rows(data, rows, False, notes), align),
            *notes.lines(),
            "",
            "</details>",
            "",
        ]
    return lines


def render_markdown(data: ReportData, figs: Figures, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(timezone.utc)
    lines = [*_title(data, generated), "", *_summary(data), "", *seed_section(data)]
    lines += [*_headline(data), *verdict_section(data), *_charts(data, figs)]
    lines += [*sweep_section(data, figs.sweeps), *_all_metrics(data)]
    lines += [*models_section(data), "", *provenance_section(data), ""]
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
    ``evalsuite compare``'s, so both give the same verdicts). Raises
    :class:`~evalsuite.report.data.ReportError` (or
    :class:`evalsuite.store.StoreMissingError`) with a message for the user."""
    data = load_report_data(db_path, baseline, models, target, n_resamples=n_resamples)
    return write_report_files(data, out_dir)


def write_report_files(data: ReportData, out_dir: Path) -> Path:
    """``out_dir/report.md`` and its charts, of data already loaded; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = draw_figures(data, out_dir)
    path = out_dir / REPORT_NAME
    write_text(path, render_markdown(data, figs))
    return path
