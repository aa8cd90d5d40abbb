"""The seed table (``evalsuite.seed_table``) and the training costs
(``evalsuite.training_cost``) written out: Markdown (report.md, a pull-request comment),
CSV, JSON, and rich tables for the terminal. Layout only: every text comes from the table.

Markdown, CSV and JSON hold the same rows: :meth:`SeedTable.header` and
:meth:`SeedTable.display_rows` (JSON adds the numbers and verdicts behind each cell).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from evalsuite.formatting import md
from evalsuite.seed_table import NOT_SCORED, SeedTable
from evalsuite.training_cost import COLUMNS as COST_COLUMNS
from evalsuite.training_cost import TrainingCost
from evalsuite.verdicts import CORRECTION
from evalsuite.verdicts.core import COLOURS

FORMATS = ("markdown", "csv", "json")
LEGEND = (
    "▲ significantly better, ▼ significantly worse than the baseline, ≈ no significant "
    f"change (paired tests, {CORRECTION}-corrected, 5% level); n/a not comparable. "
    "Percentages change in points (pts); scores are points out of the maximum (274 / 390)."
)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return lines


def _align(table: SeedTable) -> str:
    return "ll" + "r" * (len(table.header()) - 2)


def seed_markdown(table: SeedTable, summaries: bool = True, explanations: bool = True) -> str:
    """The summary line of each candidate (with ``summaries``), the table, its legend and
    notes; with ``explanations``, what each row measures."""
    lines = [f"- **{md(name)}**: {md(line)}" for name, line in table.summaries if summaries]
    if lines:
        lines.append("")
    lines += _md_table(table.header(), table.display_rows(), _align(table))
    lines += ["", LEGEND]
    notes = table.notes()
    if notes:
        lines += ["", *(f"- {md(note)}" for note in notes)]
    if explanations:
        lines += ["", "<details><summary>What the rows measure</summary>", ""]
        lines += [f"- **{md(row.label)}**: {md(row.explain)}" for row in table.rows if row.explain]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def seed_csv(table: SeedTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.header())
    writer.writerows(table.display_rows())
    return out.getvalue()


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def seed_json(table: SeedTable, costs: Sequence[TrainingCost] = ()) -> str:
    rows = []
    for row, display in zip(table.rows, table.display_rows(), strict=True):
        rows.append({
            "label": row.label, "explain": row.explain, "seed_row": row.seed,
            "benchmark": row.benchmark, "task": row.task, "metric": row.metric,
            "stand_in": row.stand_in or None, "status": "scored" if row.scored else NOT_SCORED,
            "reason": row.reason or None,
            "cells": {c.model: {k: _number(v) if isinstance(v, float) else v
                                for k, v in c.as_dict().items()} for c in row.cells},
            "display": display,
        })  # fmt: skip
    payload: dict[str, Any] = {
        "baseline": table.baseline,
        "models": list(table.models),
        "columns": table.header(),
        "rows": rows,
        "summaries": dict(table.summaries),
        "notes": table.notes(),
    }
    if costs:
        payload["training_cost"] = [c.as_dict() for c in costs]
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def render(table: SeedTable, fmt: str, costs: Sequence[TrainingCost] = ()) -> str:
    """The table in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "markdown":
        text = seed_markdown(table)
        return text + ("\n" + cost_markdown(costs) if costs else "")
    if fmt == "csv":
        return seed_csv(table)
    if fmt == "json":
        return seed_json(table, costs)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- training cost


def cost_rows(costs: Sequence[TrainingCost]) -> list[list[str]]:
    return [[c.model, *c.texts().values()] for c in costs if c.kind]


def untrained(costs: Sequence[TrainingCost]) -> list[str]:
    return [c.model for c in costs if not c.kind]


def cost_markdown(costs: Sequence[TrainingCost]) -> str:
    """The training-cost table of the models with a training record, and a line naming the
    others."""
    rows = cost_rows(costs)
    lines = []
    if rows:
        lines += _md_table(["Model", *COST_COLUMNS], rows, "l" + "r" * len(COST_COLUMNS))
        lines += ["", "From each checkpoint's training.json. Training time: the seconds "
                  "`finetune` logged per epoch (the training loops and the base model's first "
                  "validation; later validations and saving are not counted). Samples seen: "
                  "optimizer steps x batch size x accumulation steps x processes."]  # fmt: skip
    names = untrained(costs)
    if names:
        if lines:
            lines.append("")
        lines.append(
            "No training record (not fine-tuned with `finetune`): "
            + ", ".join(f"**{md(n)}**" for n in names) + "."
        )  # fmt: skip
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- terminal


def _delta_text(text: str, verdict: str | None) -> Text:
    colour = COLOURS.get(verdict or "", "")
    style = {"green": "bold green", "red": "bold red", "grey": "dim"}.get(colour, "")
    return Text(text, style=style)


def seed_rich(table: SeedTable) -> Group:
    """Summary lines, the table (changes in their verdict's colour), legend and notes."""
    grid = Table(show_lines=False, header_style="bold", expand=False)
    for i, column in enumerate(table.header()):
        grid.add_column(
            column, justify="left" if i < 2 else "right", overflow="fold",
            min_width=(22, 26)[i] if i < 2 else None,
        )  # fmt: skip
    for row, display in zip(table.rows, table.display_rows(), strict=True):
        cells: list[Any] = [Text(display[0], style="" if row.seed else "italic"),
                            Text(display[1], style="" if row.scored else "yellow")]  # fmt: skip
        at = 2
        for i, cell in enumerate(row.cells):
            cells.append(Text(display[at], style="" if row.scored else "yellow"))
            at += 1
            if i and table.compared:
                cells.append(_delta_text(display[at], cell.verdict))
                at += 1
        grid.add_row(*cells)
    parts: list[Any] = [
        Text.assemble((f"{name}: ", "bold"), line) for name, line in table.summaries
    ]
    parts += [grid, Text(LEGEND, style="dim")]
    parts += [Text(f"- {note}", style="dim") for note in table.notes()]
    return Group(*parts)


def cost_rich(costs: Sequence[TrainingCost]) -> Group:
    parts: list[Any] = []
    rows = cost_rows(costs)
    if rows:
        grid = Table(title="Training cost", header_style="bold")
        grid.add_column("Model", overflow="fold", min_width=16)
        for column in COST_COLUMNS:
            grid.add_column(column, justify="right", overflow="fold")
        for row in rows:
            grid.add_row(*row)
        parts.append(grid)
    names = untrained(costs)
    if names:
        parts.append(Text("No training record: " + ", ".join(names), style="dim"))
    return Group(*parts)
