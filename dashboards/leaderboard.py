"""Fashion CLIP leaderboard: is the fine-tuned model better, where, and at what cost?

    streamlit run dashboards/leaderboard.py -- --db reports/results.duckdb [--baseline NAME]
        [--target BENCHMARK/TASK/METRIC]
    evalsuite leaderboard --db reports/results.duckdb
    evalsuite leaderboard --db exported-runs/   # a folder of exported runs, read in place

Layout and widgets only: every number comes from ``evalsuite.store`` (read-only, short-lived
connections, retried while a scorer writes), every verdict from ``evalsuite.verdicts``, and
``dashboards.views`` / ``dashboards.overview`` shape them. The database path (a DuckDB file,
or a folder of exported runs) comes from ``--db``, else ``$EVALSUITE_DB``, else
reports/results.duckdb. A model is its name (two names with the same weights are two
models); its weights' fingerprint is provenance, and keys its training history. The baseline
and the target come from the URL (``?baseline=NAME&target=B/T/M``), else ``--baseline`` /
``--target``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

try:
    from dashboards import (
        charts,
        images,
        model_table,
        overview,
        page_tables,
        run_provenance,
        seed_view,
        sweep_view,
        table_columns,
        training,
        views,
    )
except ImportError:  # `streamlit run` puts dashboards/ on sys.path, not the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dashboards import (
        charts,
        images,
        model_table,
        overview,
        page_tables,
        run_provenance,
        seed_view,
        sweep_view,
        table_columns,
        training,
        views,
    )

from evalsuite import labels, store
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import md
from evalsuite.verdicts import ModelComparison, choose_baseline, compare_many, load_units
from evalsuite.verdicts import rank_bands as compute_rank_bands

DB_ENV = "EVALSUITE_DB"
READ_TIMEOUT_S = 3.0  # per read; the store retries while a scorer holds the lock
CACHE_TTL_S = 5
RETRY_EVERY_S = 3
PAGES = ("Overview", "Benchmark", "Retrieval", "Training")
N_EXAMPLES = 12
LAST_GOOD_MAX = 64  # reads kept per session to show while the database is locked
PLACEHOLDER = np.full((96, 96, 3), 228, dtype=np.uint8)
NO_BASELINE = (
    "No baseline is marked in this database, so no change is judged yet: choose one in the "
    "sidebar, or mark one with `evalsuite baseline NAME`."
)


def script_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--db``, ``--baseline`` and ``--target`` after ``--`` on the streamlit command line."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--db", "--baseline", "--target"):
        parser.add_argument(flag)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args


def db_path(argv: list[str] | None = None) -> Path:
    """``--db`` after ``--`` on the streamlit command line, else $EVALSUITE_DB, else default."""
    db = script_args(argv).db
    return Path(db or os.environ.get(DB_ENV) or store.DEFAULT_DB).expanduser()


def requested(name: str) -> str | None:
    """A page setting asked for in the URL (``?baseline=...``), else on the command line: a
    shared link shows what its sender saw."""
    return st.query_params.get(name) or getattr(script_args(), name, None) or None


# ---------------------------------------------------------------- reading


class Busy(Exception):
    """The database stayed locked by a writer and nothing was read before."""


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=512)
def _cached(function: str, db: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> Any:
    return getattr(store, function)(db, *args, timeout_s=READ_TIMEOUT_S, **dict(kwargs))


def _last_good(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``; while a scorer holds the lock, what it gave last time for ``key``."""
    last_good = st.session_state.setdefault("_last_good", {})
    try:
        value = compute()
    except store.StoreBusyError:
        st.session_state["_busy"] = True
        if key in last_good:
            return last_good[key]
        raise Busy from None
    last_good.pop(key, None)  # most recent last; the oldest goes when there are too many
    last_good[key] = value
    while len(last_good) > LAST_GOOD_MAX:
        del last_good[next(iter(last_good))]
    return value


def read(function: str, *args: Any, **kwargs: Any) -> Any:
    """A store read (cached a few seconds); while a scorer writes, the last data read."""
    key = (function, str(DB), args, tuple(sorted(kwargs.items())))
    return _last_good(key, lambda: _cached(*key))


@st.cache_data(show_spinner="Comparing every model with the baseline…", max_entries=32)
def _comparisons(
    db: str, stamp: tuple[int, ...], baseline: str, candidates: tuple[str, ...]
) -> dict[str, ModelComparison | str]:
    """Model name -> its :class:`ModelComparison` against ``baseline``, or why none."""
    metrics = store.latest_metrics(db, timeout_s=READ_TIMEOUT_S)
    return compare_many(db, metrics, baseline, candidates)


@st.cache_data(show_spinner="Ranking the models…", max_entries=32)
def _rank_bands(
    db: str, stamp: tuple[int, ...], target: tuple[str, str, str], baseline: str | None
) -> pd.DataFrame:
    metrics = store.latest_metrics(db, timeout_s=READ_TIMEOUT_S)
    runs = metrics.loc[(metrics["benchmark"] == target[0]) & (metrics["task"] == target[1]),
                       "run_id"]  # fmt: skip
    units = load_units(db, sorted(set(runs)))
    return compute_rank_bands(metrics, units, target, reference=baseline)


def comparisons(baseline: str | None, candidates: list[str]) -> dict[str, ModelComparison | str]:
    """Every candidate judged against the baseline, once per change of the database."""
    if baseline is None or not candidates:
        return {}
    key = ("_comparisons", str(DB), baseline, tuple(candidates))
    return _last_good(key, lambda: _comparisons(str(DB), run_provenance.db_stamp(DB), *key[2:]))


def rank_bands(target: tuple[str, str, str], baseline: str | None) -> pd.DataFrame:
    key = ("_rank_bands", str(DB), tuple(target), baseline)
    return _last_good(
        key, lambda: _rank_bands(str(DB), run_provenance.db_stamp(DB), tuple(target), baseline)
    )


def show_busy_notice(slot: Any) -> None:
    """Tell the user and rerun by itself a few seconds later."""
    slot.info(
        "Results are being written by a scorer right now; showing the last data read "
        "and retrying every few seconds.",
        icon="⏳",
    )
    started = time.monotonic()

    @st.fragment(run_every=RETRY_EVERY_S)
    def retry() -> None:
        if time.monotonic() - started > RETRY_EVERY_S - 0.5:
            st.rerun()

    retry()


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


# ---------------------------------------------------------------- shared widgets


def provenance(runs: pd.DataFrame, models: pd.DataFrame, baseline: str | None) -> None:
    """Expander with what was scored and how; a warning when compared runs differ."""
    messages = run_provenance.mismatch_messages(
        run_provenance.provenance_mismatches(runs, baseline), baseline or "the baseline"
    )
    for message in messages:
        st.warning(message, icon="⚠️")
    with st.expander("Provenance: data, benchmark and code behind these numbers"):
        st.caption(
            "Each row is one scoring run. Runs compare fairly when they share the data "
            "manifest hash (same test items and images) and the benchmark hash (same classes, "
            "prompts and queries)."
        )
        st.dataframe(run_provenance.provenance_table(runs, models), hide_index=True)


def show_image(path: Path | None, caption: str) -> None:
    if path is not None:
        st.image(str(path), caption=caption, width="stretch")
    else:
        st.image(PLACEHOLDER, caption=f"{caption} · no image", width="stretch")


def missing_images_note(image_paths: list[Any], shown: list[Path | None]) -> None:
    """One line explaining the grey squares, instead of a reason under every one."""
    blocked = sum(1 for raw, path in zip(image_paths, shown, strict=True) if raw and not path)
    in_memory = sum(1 for raw in image_paths if not raw)
    if blocked:
        st.caption(
            f"{blocked} image(s) not shown: the file is missing or lies outside the data "
            "folders recorded with the runs (thumbnails are only served from those)."
        )
    if in_memory:
        st.caption(f"{in_memory} item(s) have no image file (e.g. Fashion-MNIST pixels).")


# ---------------------------------------------------------------- pages


def overview_page(ctx: dict[str, Any]) -> None:
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
    bands = rank_bands(target, ctx["baseline"])
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


def benchmark_page(ctx: dict[str, Any]) -> None:
    metrics, models = ctx["metrics"], ctx["models"]
    tasks = page_tables.classification_tasks(metrics)
    if not tasks:
        st.info("No classification task scored yet.")
        return
    names = [f"{labels.benchmark_label(b)} · {labels.task_label(b, t)}" for b, t in tasks]
    left, right = st.columns([1, 2])
    choice = left.selectbox("Benchmark and task", names, key="bm_task")
    benchmark, task = tasks[names.index(choice)]
    have = [m for m in ctx["order"] if page_tables.run_of(metrics, m, benchmark)]
    chosen = right.multiselect("Models", have, default=have[:2], key="bm_models")
    run_ids = {page_tables.run_of(metrics, m, benchmark): m for m in have if m in chosen}
    if not run_ids:
        st.info("Pick at least one model.")
        return

    st.subheader("Per-class F1")
    per_class = read("class_metrics", tuple(run_ids), task=task)
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

    one = st.selectbox("Model for the confusion matrix and the examples", chosen, key="bm_one")
    run_id = next(r for r, label in run_ids.items() if label == one)
    st.subheader(f"Confusion matrix: {md(one)}")
    cells = read("confusion", run_id, task)
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

    st.subheader(f"Misclassified examples: {md(one)}")
    true_classes = ["(all classes)", *sorted(set(cells["true_label"]))] if not cells.empty else []
    picked = st.selectbox("True class", true_classes, key="bm_class") if true_classes else None
    wrong = read(
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
    provenance(ctx["runs"][ctx["runs"]["run_id"].isin(run_ids)], models, ctx["baseline"])


def retrieval_page(ctx: dict[str, Any]) -> None:
    metrics, models = ctx["metrics"], ctx["models"]
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
    queries_a, queries_b = read("queries", run_a, task), read("queries", run_b, task)
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
    data_root = ctx["runs"].set_index("run_id")["data_root"]
    query_text = queries_a["query_text"].iloc[options.index(picked)]
    if str(query_text) != str(query_id):  # image-to-image: the query text is an item id
        everything = read("retrievals", run_a, task)
        same = everything[everything["item_id"].astype(str) == str(query_text)]
        if not same.empty:
            path = images.safe_image_path(
                same["image_path"].iloc[0], data_root.get(run_a), ctx["roots"]
            )
            st.markdown("**Query image**")
            with st.columns(8)[0]:
                show_image(path, f"item {query_text}")
    sides = st.columns(2, gap="large")
    for side, label, run_id in ((sides[0], a, run_a), (sides[1], b, run_b)):
        rows = read("retrievals", run_id, task, query_id=query_id)
        score = page_tables.query_score(rows)
        with side:
            st.markdown(f"#### {md(label)}")
            st.markdown(
                f"**{score['hits']} / {score['k']}** relevant in the top {score['k']} · "
                f"by-position score **{score['by_position']:.1f} / {score['k']}**"
            )
            paths = [
                images.safe_image_path(p, data_root.get(run_id), ctx["roots"])
                for p in rows["image_path"]
            ]
            grid = st.columns(5)
            for i, (row, path) in enumerate(zip(rows.itertuples(), paths, strict=True)):
                mark = "✓ relevant" if row.relevant else "✗ not relevant"
                with grid[i % 5]:
                    show_image(path, f"#{row.rank} {mark}")
            missing_images_note(list(rows["image_path"]), paths)
    with st.expander("All queries: relevant hits per query"):
        st.dataframe(page_tables.query_comparison(queries_a, queries_b, a, b), hide_index=True)
    provenance(ctx["runs"][ctx["runs"]["run_id"].isin([run_a, run_b])], models, ctx["baseline"])


def training_page(ctx: dict[str, Any]) -> None:
    models = ctx["models"]
    tuned = models[models["kind"] != "base"]
    # a training log belongs to weights: read by the fingerprint, shown under the name
    histories = {
        name: read("history", fp)
        for name, fp in zip(tuned["name"], tuned["fingerprint"], strict=True)
        if isinstance(fp, str)
    }
    histories = {k: v for k, v in histories.items() if not v.empty}
    summary = training.training_summary(tuned)
    if not summary.empty:
        st.dataframe(summary, hide_index=True, key="training_summary")
    if not histories:
        st.info(
            "No fine-tuned model with a training history in this database. Fine-tune with "
            "`finetune ...` and score the checkpoint with `evalsuite score CHECKPOINT`."
        )
        return
    chosen = st.multiselect(
        "Fine-tuned models", list(histories), default=list(histories), key="tr_models"
    )
    long = training.history_long({k: histories[k] for k in chosen})
    if long.empty:
        st.info("Pick a model.")
        return
    st.caption(
        "Per-epoch log written by `finetune`: a validation loss that rises while the "
        "train loss falls means the model starts to overfit."
    )
    left, right = st.columns(2)
    left.altair_chart(
        training.history_chart(long, ["train_loss", "val_loss"], "Loss"), width="stretch"
    )
    right.altair_chart(
        training.history_chart(long, ["val_accuracy"], "Validation accuracy"), width="stretch"
    )
    if "lr" in set(long["key"]):
        left.altair_chart(training.history_chart(long, ["lr"], "Learning rate"), width="stretch")
    records = dict(zip(tuned["name"], tuned["training"], strict=True))
    show_epochs(chosen, histories, records)
    with st.expander("Training configuration (training.json)"):
        for name in chosen:
            record = records.get(name) or {}
            st.markdown(f"**{md(name)}**")
            shown = {k: v for k, v in record.items() if k != "history"}
            st.code(json.dumps(shown, indent=2, default=str), language="json")
    keep = set(tuned["name"]) | {ctx["baseline"]}
    provenance(ctx["runs"][ctx["runs"]["model_name"].isin(keep)], models, ctx["baseline"])


def show_epochs(
    chosen: list[str], histories: dict[str, pd.DataFrame], records: dict[str, Any]
) -> None:
    """Each chosen model's per-epoch validation metrics, the epoch saved as best/ marked."""
    st.subheader("Validation metrics per epoch")
    st.caption("Epoch 0, where present, is the base model before fine-tuning.")
    for i, name in enumerate(chosen):
        record = records.get(name) or {}
        st.markdown(f"**{md(name)}**")
        if training.data_summary(record):
            st.caption(f"Trained on {md(training.data_summary(record))}")
        table = training.history_table(histories[name], record.get("best_epoch"))
        st.dataframe(table, hide_index=True, key=f"tr_epochs_{i}")


# ---------------------------------------------------------------- sidebar and main


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


def select(
    container: Any, label: str, key: str, options: list[str], default: Any, format_func=str
) -> Any:
    """A selectbox whose remembered choice is dropped when it is no longer an option."""
    index = options.index(default) if default in options else 0
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return container.selectbox(label, options, index=index, key=key, format_func=format_func)


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


def share(name: str, value: str) -> None:
    """Put a choice in the URL, so that a copied link shows the same comparison."""
    if st.query_params.get(name) != value:
        st.query_params[name] = value


def main() -> None:
    st.set_page_config(page_title="Fashion CLIP leaderboard", page_icon="👟", layout="wide")
    st.session_state["_busy"] = False
    st.title("Fashion CLIP leaderboard")
    st.caption("Is the fine-tuned model better, where, and at what cost?")
    notice = st.empty()
    if st.sidebar.button("Reload results now", key="reload"):
        _cached.clear()
    st.sidebar.caption(f"Results: `{DB}`")
    try:
        metrics = read("latest_metrics")
        models_raw = read("list_models")
        runs = read("list_runs")
    except store.StoreMissingError:
        show_empty(DB, missing=True)
        return
    except Busy:
        show_busy_notice(notice)
        return
    except (store.StoreError, duckdb.Error, OSError) as exc:
        st.error(f"Cannot read the results database `{DB}`: {md(exc)}")
        return
    if metrics.empty:
        show_empty(DB, missing=False)
        return

    models = model_table.model_table(models_raw, metrics)
    runs_shown = run_provenance.latest_runs(runs, metrics)
    types = table_columns.task_types(runs_shown)
    try:
        ctx = sidebar(metrics, models, models_raw, types)
        baseline = ctx["baseline"]
        models, ctx["colour_by"] = sweep_view.hyperparameter_filter(st.sidebar, models, baseline)
        order = list(dict.fromkeys(n for n in [baseline, *models["name"]] if n is not None))
        models = models.set_index("name").loc[order].reset_index()
        verdicts = comparisons(baseline, order[1:] if baseline else [])
    except Busy:
        show_busy_notice(notice)
        return
    columns = table_columns.metric_columns(metrics, all_metrics=ctx["show_all"], task_types=types)
    skipped = table_columns.skipped_tasks(runs_shown)

    def table(cols: list[table_columns.Column]) -> pd.DataFrame:
        return overview.comparison(metrics, models, baseline, cols, verdicts, skipped)

    ctx.update(
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
    tabs = st.tabs(list(PAGES), key="page", on_change="rerun", bind="query-params")
    pages = (overview_page, benchmark_page, retrieval_page, training_page)
    try:
        for tab, page in zip(tabs, pages, strict=True):
            with tab:
                if tab.open is not False:
                    page(ctx)
    except Busy:
        notice.info("Results are being written; this page needs data not read yet.")
        show_busy_notice(notice)
        return
    if st.session_state.get("_busy"):
        show_busy_notice(notice)


DB = db_path()
main()
