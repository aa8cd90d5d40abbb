"""The Benchmark page: per-class F1, the confusion matrix and the most confident mistakes of
the chosen models on one classification task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, images, page_tables
from dashboards.reading import read
from dashboards.widgets import missing_images_note, provenance, show_image
from evalsuite import labels
from evalsuite.formatting import md

N_EXAMPLES = 12


def show(ctx: dict[str, Any]) -> None:
    chosen = choose_runs(ctx)
    if chosen is None:
        return
    task, models, run_ids = chosen
    db = ctx["db"]
    per_class = show_class_f1(db, task, run_ids)
    one = st.selectbox("Model for the confusion matrix and the examples", models, key="bm_one")
    run_id = next(r for r, label in run_ids.items() if label == one)
    cells = show_confusion(db, run_id, task, one, per_class)
    show_mistakes(ctx, run_id, task, one, cells)
    provenance(ctx["runs"][ctx["runs"]["run_id"].isin(run_ids)], ctx["models"], ctx["baseline"])


def choose_runs(ctx: dict[str, Any]) -> tuple[str, list[str], dict[str, str]] | None:
    """The task, the models picked (in the user's order) and their runs on it (run id ->
    model name), or None when there is nothing to show (said on the page)."""
    metrics = ctx["metrics"]
    tasks = page_tables.classification_tasks(metrics)
    if not tasks:
        st.info("No classification task scored yet.")
        return None
    names = [f"{labels.benchmark_label(b)} · {labels.task_label(b, t)}" for b, t in tasks]
    left, right = st.columns([1, 2])
    choice = left.selectbox("Benchmark and task", names, key="bm_task")
    benchmark, task = tasks[names.index(choice)]
    have = [m for m in ctx["order"] if page_tables.run_of(metrics, m, benchmark)]
    chosen = right.multiselect("Models", have, default=have[:2], key="bm_models")
    run_ids = {page_tables.run_of(metrics, m, benchmark): m for m in have if m in chosen}
    if not run_ids:
        st.info("Pick at least one model.")
        return None
    return task, chosen, run_ids


def show_class_f1(db: Path, task: str, run_ids: dict[str, str]) -> pd.DataFrame:
    """The per-class F1 chart and table of the chosen runs; returns the per-class rows."""
    st.subheader("Per-class F1")
    per_class = read(db, "class_metrics", tuple(run_ids), task=task)
    if per_class.empty:
        st.info("No per-class scores stored for this task.")
    else:
        st.caption(
            "F1 per class in % (harmonic mean of precision and recall); classes with "
            "few test items are noisy."
        )
        st.altair_chart(
            charts.class_f1_chart(page_tables.class_f1_long(per_class, run_ids)), width="stretch"
        )
        table = page_tables.class_f1_table(per_class, run_ids)
        st.dataframe(
            table,
            hide_index=True,
            key="class_f1_table",
            column_config={
                c: st.column_config.NumberColumn(format="%.1f")
                for c in table.columns
                if c not in ("Class", "Items")
            },
        )
    return per_class


def show_confusion(
    db: Path, run_id: str, task: str, one: str, per_class: pd.DataFrame
) -> pd.DataFrame:
    """The confusion matrix of one model's run and its most frequent mistakes; returns the
    non-empty cells."""
    st.subheader(f"Confusion matrix: {md(one)}")
    cells = read(db, "confusion", run_id, task)
    if cells.empty:
        st.info("No confusion matrix stored for this task.")
    else:
        classes = sorted(set(per_class["class_name"])) if not per_class.empty else None
        st.altair_chart(
            charts.confusion_chart(page_tables.confusion_grid(cells, classes)), width="stretch"
        )
        worst = page_tables.most_confused(cells)
        if not worst.empty:
            st.markdown(
                "Most frequent mistakes: "
                + "; ".join(
                    f"{md(r.true_label)} → {md(r.predicted_label)} ({r['count']})"
                    for _, r in worst.iterrows()
                )
            )
    return cells


def show_mistakes(
    ctx: dict[str, Any], run_id: str, task: str, one: str, cells: pd.DataFrame
) -> None:
    """The model's most confident mistakes, of one true class if the user picks one."""
    st.subheader(f"Misclassified examples: {md(one)}")
    true_classes = ["(all classes)", *sorted(set(cells["true_label"]))] if not cells.empty else []
    picked = st.selectbox("True class", true_classes, key="bm_class") if true_classes else None
    wrong = read(
        ctx["db"],
        "predictions",
        run_id,
        task,
        only_wrong=True,
        limit=N_EXAMPLES,
        true_label=None if picked in (None, "(all classes)") else picked,
    )
    if wrong.empty:
        st.success("No misclassified item.")
    else:
        st.caption("The model's most confident mistakes first: true class → predicted class.")
        root = ctx["runs"].set_index("run_id")["data_root"].get(run_id)
        paths = [images.safe_image_path(p, root, ctx["roots"]) for p in wrong["image_path"]]
        grid = st.columns(6)
        for i, (row, path) in enumerate(zip(wrong.itertuples(), paths, strict=True)):
            with grid[i % 6]:
                show_image(path, f"{row.true_label} → {row.predicted_label}")
        missing_images_note(list(wrong["image_path"]), paths)
