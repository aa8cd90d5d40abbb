"""The leaderboard's first view: the seed's results table (``evalsuite.seed_table``) as an
HTML table that wraps instead of scrolling sideways, baseline first, each metric name with
its explanation (a tooltip, and a numbered footnote under the table).

``seed_html`` is pure (tested without Streamlit); ``show_seed_table`` lays it out. Every
change and verdict marker is the table's, which takes them from ``evalsuite.verdicts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboards.overview import CELL_CSS, method_notes
from evalsuite.seed_table import (
    STAND_IN,
    SeedCell,
    SeedRow,
    SeedTable,
    build_seed_table,
    load_seed_rows,
    missing_benchmark_reasons,
)
from evalsuite.verdicts.core import COLOURS

MAX_DEFAULT_MODELS = 4  # more models: the user adds them (the table stays readable)
TABLE_ID = "seed-table"
GREY = "color: #6b7280"
CELL = "padding: 0.35rem 0.6rem; border-bottom: 1px solid #e5e7eb; vertical-align: top"
NUMBER = f"{CELL}; text-align: right; white-space: nowrap"


# HTML's special characters, and the Markdown syntax a user's name may hold, as numeric
# entities in one pass: shown as themselves, never as markup, bold, a heading, a colour
# directive, an emoji shortcode or LaTeX.
_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"':$*#_`~[]\\"})


def _text(value: object) -> str:
    """Plain text inside HTML (see ``_ENTITIES``)."""
    return str(value).translate(_ENTITIES)


def _change(cell: SeedCell) -> str:
    if not cell.delta_text:
        return ""
    css = CELL_CSS.get(COLOURS.get(cell.verdict or "", "grey"), GREY)
    title = f' title="{_text(cell.reason)}"' if cell.reason else ""
    return (
        f'<br><span style="{css}; padding: 0 0.3rem; border-radius: 0.25rem; '
        f'font-size: 0.85em"{title}>{_text(cell.delta_text)}</span>'
    )


def _metric_cell(row: SeedRow, note: int) -> str:
    """The metric's name (its explanation as the tooltip, a link to its footnote); a demo
    stand-in says so under the name."""
    explain = row.explain + (f" Demo stand-in: {row.stand_in}." if row.stand_in else "")
    name = row.label.removesuffix(f" ({STAND_IN})") if row.stand_in else row.label
    weight = "600" if row.seed else "400"
    tag = f'<br><span style="{GREY}; font-size: 0.8em">{STAND_IN}</span>' if row.stand_in else ""
    return (
        f'<td style="{CELL}"><span title="{_text(explain)}" style="font-weight: {weight}; '
        f'border-bottom: 1px dotted #9ca3af; cursor: help">{_text(name)}</span>'
        f'<sup><a href="#{TABLE_ID}-note-{note}" style="text-decoration: none">{note}</a>'
        f"</sup>{tag}</td>"
    )


def _row(row: SeedRow, note: int, compared: bool) -> str:
    scored_on = _text(row.scored_on)
    style = CELL if row.scored else f"{CELL}; {GREY}; font-style: italic"
    cells = [_metric_cell(row, note), f'<td style="{style}">{scored_on}</td>']
    for i, cell in enumerate(row.cells):
        change = _change(cell) if i and compared else ""
        value_style = NUMBER if row.scored else f"{NUMBER}; {GREY}; font-style: italic"
        cells.append(f'<td style="{value_style}">{_text(cell.text)}{change}</td>')
    return f'<tr data-row="{_text(row.label)}">' + "".join(cells) + "</tr>"


def seed_html(table: SeedTable) -> str:
    """One HTML block (no blank line, so Markdown leaves it alone): the table, one column
    per model with its change under the value, then the rows' explanations as footnotes."""
    head = [f'<th style="{CELL}; text-align: left; width: 30%">Metric</th>',
            f'<th style="{CELL}; text-align: left; width: 22%">Scored on</th>']  # fmt: skip
    for i, name in enumerate(table.models):
        role = "baseline" if i == 0 and table.compared and len(table.models) > 1 else ""
        small = f'<br><span style="{GREY}; font-weight: 400; font-size: 0.8em">{role}</span>'
        head.append(
            f'<th data-model="{_text(name)}" style="{CELL}; text-align: right">'
            f"{_text(name)}{small if role else ''}</th>"
        )
    body = [_row(row, i + 1, table.compared) for i, row in enumerate(table.rows)]
    notes = [
        f'<li id="{TABLE_ID}-note-{i + 1}"><b>{_text(row.label)}</b>: {_text(row.explain)}'
        + (f" <i>Demo stand-in: {_text(row.stand_in)}.</i>" if row.stand_in else "")
        + "</li>"
        for i, row in enumerate(table.rows)
    ]
    return (
        f'<div id="{TABLE_ID}" style="max-width: 100%">'
        '<table style="width: 100%; border-collapse: collapse; table-layout: auto">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<ol style="{GREY}; font-size: 0.8em; margin-top: 0.6rem">{"".join(notes)}</ol></div>'
    )


def skipped_by_task(skipped: Mapping[tuple[str, str, str], str]) -> dict[tuple[str, str], str]:
    """``table_columns.skipped_tasks`` (model, benchmark, task) -> reason, by (benchmark, task)."""
    return {(benchmark, task): reason for (_, benchmark, task), reason in skipped.items()}


def default_models(order: Sequence[str]) -> list[str]:
    return list(order[:MAX_DEFAULT_MODELS])


def seed_table_for(
    metrics: pd.DataFrame,
    models: Sequence[str],
    verdicts: Mapping[str, Any],
    skipped: Mapping[tuple[str, str, str], str],
    compared: bool,
) -> SeedTable:
    definition = load_seed_rows()
    return build_seed_table(
        metrics, models, verdicts, missing_benchmark_reasons(definition, metrics), definition,
        skipped_by_task(skipped), compared=compared,
    )  # fmt: skip


def show_seed_table(ctx: dict[str, Any]) -> None:
    """The first view: the seed's rows for the chosen models, baseline first."""
    order: list[str] = ctx["order"]
    remembered = st.session_state.get("seed_models")
    if remembered is not None and not set(remembered) <= set(order):  # a model has gone
        del st.session_state["seed_models"]
    chosen = st.multiselect(
        "Models in the table", order, default=default_models(order), key="seed_models",
        help="The baseline always comes first; each other model's change against it is "
        "shown under its value.",
    )  # fmt: skip
    baseline = ctx["baseline"]
    models = [m for m in order if m in chosen or m == baseline]
    if not models:
        st.info("Pick a model.")
        return
    table = seed_table_for(ctx["metrics"], models, ctx["verdicts"], ctx["skipped"],
                           compared=baseline is not None and len(models) > 1)  # fmt: skip
    st.markdown(seed_html(table), unsafe_allow_html=True)
    if not table.compared:
        st.caption("Hover a metric name, or see its footnote, for what it measures.")
        return
    st.caption(
        "Under each value, its change against the baseline: ▲ significantly better, "
        "▼ significantly worse, ≈ no significant change (paired tests, "
        "Benjamini-Hochberg-corrected); n/a not comparable (hover it for why). Hover a "
        "metric name, or see its footnote, for what it measures.  \n"
        + "  \n".join(method_notes(ctx["verdicts"]))
    )
