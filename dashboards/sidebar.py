"""The leaderboard's sidebar: the baseline, the target metric, what the trade-off chart
compares with, and how many metrics the table shows."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import model_table, table_columns, views
from dashboards.app_settings import requested, share
from dashboards.widgets import select
from evalsuite import labels
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import md
from evalsuite.verdicts import choose_baseline


def sidebar(
    metrics: pd.DataFrame,
    models: pd.DataFrame,
    models_raw: pd.DataFrame,
    types: dict[tuple[str, str], str],
) -> dict[str, Any]:
    bar = st.sidebar
    bar.header("Compare")
    baseline = choose_baseline_widget(bar, models, models_raw)
    all_columns = table_columns.metric_columns(metrics, all_metrics=True, task_types=types)
    bar.subheader("Target metric")
    target = choose_target_widget(bar, metrics, all_columns)
    general_cols = table_columns.general_columns(all_columns, target)
    options: dict[str, list[tuple[str, str, str]]] = {}
    if general_cols:
        names = " + ".join(labels.task_label(c.benchmark, c.task) for c in general_cols)
        options[f"Mean of general benchmarks ({names})"] = [c.key for c in general_cols]
    for col in general_cols:
        options[col.label] = [col.key]
    for col in table_columns.metric_columns(metrics, task_types=types):
        if col.key != target and col.label not in options:
            options[col.label] = [col.key]
    bar.subheader("Trade-off chart")
    general_label = (
        select(bar, "Compared with", "general", list(options), next(iter(options)))
        if options
        else None
    )
    general = options.get(general_label, []) if general_label else []
    if general_label and general_label.startswith("Mean of"):
        general_title = "general benchmarks (mean)"
    elif general:
        general_title = views.short_label(*general[0])
    else:
        general_title = ""

    bar.subheader("Table")
    show_all = bar.checkbox("Show every metric", value=False, key="all_metrics")
    return {
        "baseline": baseline,
        "target": target,
        "general": general,
        "general_title": general_title,
        "show_all": show_all,
        "all_columns": all_columns,
    }


def choose_baseline_widget(bar: Any, models: pd.DataFrame, models_raw: pd.DataFrame) -> str | None:
    """The baseline picker (a model name): by default the model asked for in the URL or on
    the command line, else the one ``evalsuite.verdicts.choose_baseline`` names (marked in
    the database, or the one base of the fine-tunes); else none, and the user chooses. Never
    guessed from names."""
    scored = models_raw[models_raw["name"].isin(set(models["name"]))]
    try:
        default = choose_baseline(scored, requested("baseline"))
    except EvalSuiteError as exc:
        asked = md(repr(requested("baseline")))
        bar.warning(f"Baseline {asked} not found: {md(exc)}", icon="⚠️")
        default = choose_baseline(scored)
    names = list(models["name"])
    if "baseline" in st.session_state and st.session_state["baseline"] not in names:
        del st.session_state["baseline"]
    same = model_table.same_weights_note(models)
    name = bar.selectbox(
        "Baseline (changes are judged against it)", names,
        index=names.index(default) if default in names else None,
        key="baseline", placeholder="Choose a baseline",
        help=f"A model is the name it was scored under: {same}, yet each is a model of its "
        "own." if same else None,
    )  # fmt: skip
    if name is None:
        return None
    share("baseline", name)
    return str(name)


def choose_target_widget(
    bar: Any, metrics: pd.DataFrame, all_columns: list[table_columns.Column]
) -> tuple[str, str, str]:
    """Benchmark, task and metric of the target (the URL's or command line's ``B/T/M`` by
    default): ranked in bands, and the trade-off chart's vertical axis."""
    default = table_columns.default_target(metrics) or (None, None, None)
    asked = requested("target")
    if asked:
        key = tuple(asked.split("/", 2))
        if table_columns.find_column(all_columns, key) is not None:
            default = key
        else:
            bar.warning(
                f"Target {md(repr(asked))} is not a scored BENCHMARK/TASK/METRIC.", icon="⚠️"
            )
    benchmarks = list(dict.fromkeys(c.benchmark for c in all_columns))
    b = select(
        bar, "Target benchmark", "target_benchmark", benchmarks, default[0], labels.benchmark_label
    )
    tasks = list(dict.fromkeys(c.task for c in all_columns if c.benchmark == b))
    t = select(
        bar,
        "Target task",
        "target_task",
        tasks,
        default[1],
        lambda task: labels.task_label(b, task),
    )
    metric_names = [c.metric for c in all_columns if c.benchmark == b and c.task == t]
    preferred = default[2] if tuple(default[:2]) == (b, t) else None
    if preferred is None:
        preferred = "acc@1" if "acc@1" in metric_names else "ir_hits"
    m = select(bar, "Target metric", "target_metric", metric_names, preferred, labels.metric_words)
    share("target", f"{b}/{t}/{m}")
    return (b, t, m)
