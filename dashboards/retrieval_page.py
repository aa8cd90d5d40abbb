"""The Retrieval page: one query's ranked results from two models side by side, with the
query image for image-to-image search and every query's hits."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import images, page_tables
from dashboards.reading import read
from dashboards.widgets import missing_images_note, provenance, select, show_image
from evalsuite import labels
from evalsuite.formatting import md


def show(ctx: dict[str, Any]) -> None:
    metrics, models, db = ctx["metrics"], ctx["models"], ctx["db"]
    tasks = page_tables.retrieval_tasks(metrics)
    if not tasks:
        st.info("No retrieval task scored yet.")
        return
    names = [f"{labels.benchmark_label(b)} · {labels.task_label(b, t)}" for b, t in tasks]
    top = st.columns(3)
    choice = top[0].selectbox("Search task", names, key="rt_task")
    benchmark, task = tasks[names.index(choice)]
    have = [m for m in ctx["order"] if page_tables.run_of(metrics, m, benchmark)]
    a = select(top[1], "Model A", "rt_a", have, have[0])
    b = select(top[2], "Model B", "rt_b", have, have[1] if len(have) > 1 else have[0])
    run_a, run_b = (page_tables.run_of(metrics, x, benchmark) for x in (a, b))
    queries_a, queries_b = read(db, "queries", run_a, task), read(db, "queries", run_b, task)
    if queries_a.empty:  # e.g. a database written without the retrievals table
        st.info(
            "No retrieval results in this database for this task: the ranked lists of "
            "Model A's run are not stored (only its scores are)."
        )
        return
    options = [
        page_tables.query_label(q, t)
        for q, t in zip(queries_a["query_id"], queries_a["query_text"], strict=True)
    ]
    picked = st.selectbox("Query", options, key="rt_query")
    query_id = queries_a["query_id"].iloc[options.index(picked)]
    query_text = queries_a["query_text"].iloc[options.index(picked)]
    if str(query_text) != str(query_id):  # image-to-image: the query text is an item id
        show_query_image(ctx, run_a, task, query_text)
    sides = st.columns(2, gap="large")
    for side, label, run_id in ((sides[0], a, run_a), (sides[1], b, run_b)):
        with side:
            show_ranked(ctx, label, run_id, task, query_id)
    with st.expander("All queries: relevant hits per query"):
        st.dataframe(page_tables.query_comparison(queries_a, queries_b, a, b), hide_index=True)
    provenance(ctx["runs"][ctx["runs"]["run_id"].isin([run_a, run_b])], models, ctx["baseline"])


def show_query_image(ctx: dict[str, Any], run_a: str, task: str, query_text: Any) -> None:
    """The query item's image, found among Model A's retrieved items (image-to-image)."""
    data_root = ctx["runs"].set_index("run_id")["data_root"]
    everything = read(ctx["db"], "retrievals", run_a, task)
    same = everything[everything["item_id"].astype(str) == str(query_text)]
    if not same.empty:
        path = images.safe_image_path(
            same["image_path"].iloc[0], data_root.get(run_a), ctx["roots"]
        )
        st.markdown("**Query image**")
        with st.columns(8)[0]:
            show_image(path, f"item {query_text}")


def show_ranked(ctx: dict[str, Any], label: str, run_id: str, task: str, query_id: Any) -> None:
    """One model's ranked results for the query, its hits and by-position score."""
    data_root = ctx["runs"].set_index("run_id")["data_root"]
    rows = read(ctx["db"], "retrievals", run_id, task, query_id=query_id)
    score = page_tables.query_score(rows)
    st.markdown(f"#### {md(label)}")
    st.markdown(
        f"**{score['hits']} / {score['k']}** relevant in the top {score['k']} · "
        f"by-position score **{score['by_position']:.1f} / {score['k']}**"
    )
    paths = [
        images.safe_image_path(p, data_root.get(run_id), ctx["roots"]) for p in rows["image_path"]
    ]
    grid = st.columns(5)
    for i, (row, path) in enumerate(zip(rows.itertuples(), paths, strict=True)):
        mark = "✓ relevant" if row.relevant else "✗ not relevant"
        with grid[i % 5]:
            show_image(path, f"#{row.rank} {mark}")
    missing_images_note(list(rows["image_path"]), paths)
