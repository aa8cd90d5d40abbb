"""The report's Markdown tables: cells escaped for a table, values with their interval,
changes with their verdict's marker and a numbered note when not comparable, and the
headline and all-metrics tables' rows (models as columns, baseline first)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from evalsuite.formatting import MISSING, format_interval, format_value, is_missing, md
from evalsuite.labels import PRIMARY_METRICS, benchmark_label, metric_label, task_words
from evalsuite.report.data import Cell, ReportData
from evalsuite.verdicts import NOT_COMPARABLE, MetricVerdict


def escape_cell(text: str) -> str:
    """Text in a table cell: a column separator not already escaped (model names come
    escaped by ``md``) gets a backslash."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(text)).replace("\n", " ")


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str]
) -> str:
    """A Markdown table; ``align`` holds one of ``l``, ``r``, ``c`` per column."""
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(escape_cell(h) for h in header) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def task_title(data: ReportData, benchmark: str, task: str) -> str:
    """``Footwear · article type``; the benchmark alone when it has one task."""
    if len(data.tasks[benchmark]) == 1:
        return benchmark_label(benchmark)
    return f"{benchmark_label(benchmark)} · {task_words(task)}"


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
            f"<sup>{i}</sup> {escape_cell(reason)}" for i, reason in enumerate(self.reasons, 1)
        )
        return ["", f"n/a: not comparable, because {notes}."]


def _delta_cell(verdict: MetricVerdict | None, notes: Notes) -> str:
    """``▼ -6.20 pts``: the change and its verdict's marker; a numbered note says why a
    change is not comparable."""
    if verdict is None or is_missing(verdict.baseline) or is_missing(verdict.candidate):
        return MISSING  # a model without the value: the "—" beside it says so already
    text = f"{verdict.marker} {verdict.delta_text}"
    return text + notes.mark(verdict.reason) if verdict.verdict == NOT_COMPARABLE else text


def metric_rows(
    data: ReportData, rows: Iterable[tuple[str, str, str]], label_task: bool, notes: Notes
) -> list[list[str]]:
    """One table row per (benchmark, task, metric): the task (named once per run of rows,
    with its benchmark when ``label_task``), the metric, then each model's value and, after
    the baseline, its change."""
    out, previous = [], None
    for benchmark, task, metric in rows:
        cells = []
        if label_task:
            what = task_title(data, benchmark, task)
            cells.append("" if what == previous else f"**{escape_cell(what)}**")
            previous = what
        else:
            task_text = task_words(task)
            cells.append("" if task == previous else escape_cell(task_text))
            previous = task
        cells.append(escape_cell(metric_label(metric, data.task_type(benchmark, task))))
        for i, model in enumerate(data.models):
            cells.append(_value_cell(data.cell(model, benchmark, task, metric)))
            if i:
                cells.append(_delta_cell(data.verdict(model, benchmark, task, metric), notes))
        out.append(cells)
    return out


def table_header(data: ReportData, first: str) -> tuple[list[str], list[str]]:
    """(header, alignment) of a table of :func:`metric_rows`."""
    header, align = [first, "Metric"], ["l", "l"]
    for i, model in enumerate(data.models):
        name = md(model.name)
        header.append(f"{name} (baseline)" if i == 0 and len(data.models) > 1 else name)
        align.append("r")
        if i:
            header.append(f"Δ {name}")
            align.append("r")
    return header, align


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
            if not chosen and (primary := data.primary_metric(benchmark, task)):
                chosen = [primary]
            rows += [(benchmark, task, m) for m in chosen]
    return rows
