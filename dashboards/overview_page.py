"""The Overview page: what changed for each model against the baseline, the seed table, the
per-metric grid, the ranks on the target metric and the trade-off chart."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, overview, reading, seed_view, sweep_view, table_columns, views
from dashboards.widgets import provenance
from evalsuite.formatting import md

NO_BASELINE = (
    "No baseline is marked in this database, so no change is judged yet: choose one in the "
    "sidebar, or mark one with `evalsuite baseline NAME`."
)


def show(ctx: dict[str, Any]) -> None:
    comp, models, columns = ctx["comparison"], ctx["models"], ctx["columns"]
    baseline_label = ctx["baseline"] or ""
    show_summary(ctx, baseline_label)
    seed_view.show_seed_table(ctx)
    with st.expander("Every metric, one column each (sortable, with fine-tuning cost)"):
        show_grid(comp, models, columns, baseline_label)
    show_ranks(ctx)
    show_tradeoff(ctx, models, baseline_label)
    provenance(ctx["runs"], models, ctx["baseline"])


def show_grid(
    comp: pd.DataFrame,
    models: pd.DataFrame,
    columns: list[table_columns.Column],
    baseline_label: str,
) -> None:
    """The wide per-model grid: one column per metric, sortable, and its CSV."""
    base = md(baseline_label)
    against = f"the change against **{base}**" if baseline_label else "no change"
    st.caption(
        f"Each cell: the score, then {against}: {overview.LEGEND}. Accuracy-like scores "
        "are in %, changes in points; hits and pretest scores are counts out of the maximum "
        "in the column title. Click a column title to sort."
    )
    _, styler = overview.styled_overview(comp, models, columns)
    hidden: dict[str, Any] = {overview.delta_name(c): None for c in columns}
    hidden["Model"] = st.column_config.TextColumn("Model", pinned=True)
    notes = overview.column_notes(comp)
    for label, note in notes.items():  # why a cell has no verdict, as its column's tooltip
        hidden[label] = st.column_config.Column(label, help=note)
    st.dataframe(styler, hide_index=True, column_config=hidden, key="overview_table")
    show_cell_notes(comp)
    csv = overview.csv_table(comp, baseline_label).to_csv(index=False).encode()
    st.download_button(
        "Download as CSV", csv, file_name="leaderboard.csv", mime="text/csv", key="download_csv"
    )


def show_summary(ctx: dict[str, Any], baseline_label: str) -> None:
    """Above the seed table: what changed significantly for each model, every loss
    included (how the verdicts were reached is under the table)."""
    if ctx["baseline"] is None:
        st.warning(NO_BASELINE, icon="⚖️")
    lines = overview.summary_lines(ctx["verdicts"], limit=1)  # the table below has the rest
    if lines:
        st.markdown(f"**Compared with {md(baseline_label)}:**")
        st.markdown("\n".join(f"- {line}" for line in lines))
    elif len(ctx["models"]) == 1:
        st.info("Only one model is scored so far: score another to compare.")


def show_cell_notes(comp: pd.DataFrame) -> None:
    """Why some cells carry no verdict, in words under the table."""
    reasons = comp[comp["status"] == overview.NOT_COMPARABLE]
    if not reasons.empty:
        lines = sorted(
            f"{md(r.model)} on {md(r.column)}: {md(r.reason)}"
            for r in reasons.drop_duplicates(["model", "column", "reason"]).itertuples()
        )
        st.caption("Not comparable (n/a), so neither better nor worse: " + "; ".join(lines))
    if (comp["status"] == overview.NOT_APPLICABLE).any():
        st.caption(
            "n/a without a score: the task does not apply to that run (hover the column "
            "title for why), e.g. text tasks on precomputed image embeddings without a text "
            "encoder; it is not a score of zero."
        )


def show_ranks(ctx: dict[str, Any]) -> None:
    target = ctx["target"]
    column = table_columns.find_column(ctx["all_columns"], target) if target else None
    if column is None:
        return
    title = views.short_label(*target)
    st.subheader(f"Ranks on {md(title)}")
    bands = reading.rank_bands(ctx["db"], target, ctx["baseline"])
    table = overview.rank_table(bands, target, ctx["verdicts"], column.count)
    st.caption(
        "Models not significantly different from the best of a rank (paired test, "
        "Benjamini-Hochberg-corrected over the comparisons with that best model alone, so a "
        "rank can differ from the baseline comparison's verdict above) share that rank: "
        "statistically tied. Models scored on other data than the baseline are not ranked. "
        "Detectable difference: the smallest change the comparison with the baseline would "
        "find four times in five; a smaller real change reads as a tie, because the "
        "benchmark is too small to tell."
    )
    st.dataframe(
        table, hide_index=True, key="rank_table",
        column_config={"Score": st.column_config.NumberColumn(format="%.1f")},
    )  # fmt: skip


def show_tradeoff(ctx: dict[str, Any], models: pd.DataFrame, baseline_label: str) -> None:
    st.subheader("Trade-off: gain on the target against change elsewhere")
    target, general = ctx["target"], ctx["general"]
    target_col = table_columns.find_column(ctx["all_columns"], target) if target else None
    pts = overview.tradeoff_points(ctx["all_comparison"], models, target, general)
    if target_col is None or not general or pts.empty:
        st.info(
            "The trade-off needs a baseline, a target metric and at least one other "
            "benchmark scored for the baseline and another model (choose them in the sidebar)."
        )
        return
    general_title = ctx["general_title"]
    target_title = views.short_label(*target)
    st.caption(
        f"One point per model, relative to {md(baseline_label)} (at 0, 0). Up: better "
        f"on {md(target_title)}; right: better on {md(general_title)}. Top right is "
        "better everywhere; top left is a specialist that forgot some general knowledge. "
        "WiSE-FT interpolations of one fine-tune are joined by a line (α = 0: base "
        "model, α = 1: fine-tuned). Differences in % points of the maximum score; whether "
        "each is significant is in the table above."
    )
    colour = ctx.get("colour_by")
    pts = sweep_view.colour_points(pts, colour)
    chart = charts.tradeoff_chart(pts, target_title, general_title, colour["key"] if colour else "")
    st.altair_chart(chart, width="stretch")
