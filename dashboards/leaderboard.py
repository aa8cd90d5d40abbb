"""Fashion CLIP leaderboard: is the fine-tuned model better, where, and at what cost?

    streamlit run dashboards/leaderboard.py -- --db reports/results.duckdb [--baseline NAME]
        [--target BENCHMARK/TASK/METRIC]
    evalsuite leaderboard --db reports/results.duckdb
    evalsuite leaderboard --db exported-runs/   # a folder of exported runs, read in place

The Streamlit entry point: the page layout only. Every number comes from ``evalsuite.store``
(read-only, short-lived connections, retried while a scorer writes; ``dashboards.reading``),
every verdict from ``evalsuite.verdicts``, and ``dashboards.views`` / ``dashboards.overview``
shape them; each tab is a module (``overview_page``, ``benchmark_page``, ``retrieval_page``,
``training_page``), the sidebar is ``dashboards.sidebar``. The database path (a DuckDB file,
or a folder of exported runs) comes from ``--db``, else ``$EVALSUITE_DB``, else
reports/results.duckdb. A model is its name (two names with the same weights are two
models); its weights' fingerprint is provenance, and keys its training history. The baseline
and the target come from the URL (``?baseline=NAME&target=B/T/M``), else ``--baseline`` /
``--target``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

if importlib.util.find_spec("dashboards") is None:
    # `streamlit run` puts dashboards/ on sys.path, not the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards import (
    app_settings,
    benchmark_page,
    images,
    model_table,
    overview,
    overview_page,
    reading,
    retrieval_page,
    run_provenance,
    sidebar,
    sweep_view,
    table_columns,
    training_page,
)
from evalsuite import store
from evalsuite.formatting import md

PAGES = ("Overview", "Benchmark", "Retrieval", "Training")


def show_empty(db: Path, missing: bool) -> None:
    where = "does not exist yet" if missing else "has no results yet"
    st.info(f"The results database `{db}` {where}.", icon="📭")
    st.markdown(
        "Fill it by scoring models (each run adds one model on every benchmark whose data "
        "is found):\n\n"
        f"```sh\nevalsuite score patrickjohncyh/fashion-clip --db {db}\n"
        f"evalsuite score checkpoints/my-finetune --db {db}\n```\n\n"
        "or run the whole flow on tiny models in a minute:\n\n```sh\nmake demo\n```\n\n"
        "then reload this page."
    )


def read_results(notice: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """The latest metrics, the models and the runs; None when there is nothing to show (the
    page says why)."""
    try:
        metrics = reading.read(DB, "latest_metrics")
        models_raw = reading.read(DB, "list_models")
        runs = reading.read(DB, "list_runs")
    except store.StoreMissingError:
        show_empty(DB, missing=True)
        return None
    except reading.Busy:
        reading.show_busy_notice(notice)
        return None
    except (store.StoreError, duckdb.Error, OSError) as exc:
        st.error(f"Cannot read the results database `{DB}`: {md(exc)}")
        return None
    if metrics.empty:
        show_empty(DB, missing=False)
        return None
    return metrics, models_raw, runs


def page_context(
    metrics: pd.DataFrame, models_raw: pd.DataFrame, runs: pd.DataFrame
) -> dict[str, Any]:
    """The sidebar's choices and every frame the pages show, the verdicts included."""
    models = model_table.model_table(models_raw, metrics)
    runs_shown = run_provenance.latest_runs(runs, metrics)
    types = table_columns.task_types(runs_shown)
    ctx = sidebar.sidebar(metrics, models, models_raw, types)
    baseline = ctx["baseline"]
    models, ctx["colour_by"] = sweep_view.hyperparameter_filter(st.sidebar, models, baseline)
    order = list(dict.fromkeys(n for n in [baseline, *models["name"]] if n is not None))
    models = models.set_index("name").loc[order].reset_index()
    verdicts = reading.comparisons(DB, baseline, order[1:] if baseline else [])
    columns = table_columns.metric_columns(metrics, all_metrics=ctx["show_all"], task_types=types)
    skipped = table_columns.skipped_tasks(runs_shown)

    def table(cols: list[table_columns.Column]) -> pd.DataFrame:
        return overview.comparison(metrics, models, baseline, cols, verdicts, skipped)

    ctx.update(
        db=DB,
        metrics=metrics,
        models=models,
        order=order,
        runs=runs_shown,
        roots=images.allowed_roots(runs),
        columns=columns,
        verdicts=verdicts,
        skipped=skipped,
        comparison=table(columns),
        all_comparison=table(ctx["all_columns"]),
    )
    return ctx


def main() -> None:
    st.set_page_config(page_title="Fashion CLIP leaderboard", page_icon="👟", layout="wide")
    st.session_state["_busy"] = False
    st.title("Fashion CLIP leaderboard")
    st.caption("Is the fine-tuned model better, where, and at what cost?")
    notice = st.empty()
    if st.sidebar.button("Reload results now", key="reload"):
        reading.clear_cache()
    st.sidebar.caption(f"Results: `{DB}`")
    results = read_results(notice)
    if results is None:
        return
    try:
        ctx = page_context(*results)
    except reading.Busy:
        reading.show_busy_notice(notice)
        return
    tabs = st.tabs(list(PAGES), key="page", on_change="rerun", bind="query-params")
    pages = (overview_page.show, benchmark_page.show, retrieval_page.show, training_page.show)
    try:
        for tab, page in zip(tabs, pages, strict=True):
            with tab:
                if tab.open is not False:
                    page(ctx)
    except reading.Busy:
        notice.info("Results are being written; this page needs data not read yet.")
        reading.show_busy_notice(notice)
        return
    if st.session_state.get("_busy"):
        reading.show_busy_notice(notice)


DB = app_settings.db_path()
main()
