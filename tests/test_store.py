"""The DuckDB results store: round trip, replace semantics, atomicity, lock retry, quoting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from evalsuite import store
from evalsuite.results import (
    ClassMetric,
    ConfusionCell,
    MetricValue,
    ModelInfo,
    Prediction,
    RetrievedItem,
    RunResult,
    SkippedImage,
)
from evalsuite.store import write as store_write

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def make_model(name: str = "o'clip", fingerprint: str = "fp-1", **overrides: Any) -> ModelInfo:
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "val_accuracy": 0.5, "lr": 1e-5,
         "seconds": 10.0, "grad_norm": 3.0},
        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": np.float64(0.6),
         "lr": 5e-6, "seconds": 9.5},
    ]  # fmt: skip
    fields: dict[str, Any] = dict(
        fingerprint=fingerprint, name=name, spec=f"checkpoint:runs/{name}", backend="open_clip",
        base_model="hf:patrickjohncyh/fashion-clip", base_fingerprint="fp-base",
        parameter_count=151_000_000, history=history,
        training={"seed": 7, "lr": np.float32(1e-5), "manifest": {"train": "abc"}, "nan": np.nan},
    )  # fmt: skip
    fields.update(overrides)
    return ModelInfo(**fields)


def make_run(
    model: ModelInfo | None = None, benchmark: str = "footwear", n_predictions: int = 6,
    **overrides: Any,
) -> RunResult:  # fmt: skip
    """A run with every row type; ``n_predictions`` scales the predictions table."""
    labels = ["Sandals", "Heels", "Casual Shoes"]
    preds = [
        Prediction("article_type", f"item{i}", labels[i % 3], labels[(i * 2) % 3],
                   labels[i % 3] == labels[(i * 2) % 3], 1.0 - i / (n_predictions + 1),
                   1 + (i % 3), f"images/{i}.jpg")
        for i in range(n_predictions)
    ]  # fmt: skip
    retrieved = [
        RetrievedItem("text_search", q, f"red {q}'s shoes", rank, f"item{rank}", 0.9 - rank / 10,
                      rank % 2 == 1, f"images/{rank}.jpg")
        for q in ("q1", "q2") for rank in (1, 2, 3)
    ]  # fmt: skip
    fields: dict[str, Any] = dict(
        model=model or make_model(), benchmark=benchmark, benchmark_version=2,
        benchmark_hash="bh-1", data_manifest_hash="dh-1", data_root="/data/footwear",
        code_version="v0.1.0-3-gabc", device="cpu", precision="fp32", seconds=12.5,
        n_items=n_predictions, started_at=T0, n_skipped_images=1,
        skipped=[SkippedImage("item99", "images/99.jpg", "cannot decode image")],
        metrics=[
            MetricValue("acc@1", 0.5, ci_low=0.4, ci_high=0.6, task="article_type"),
            MetricValue("ir_hits", 212, maximum=390, task="text_search"),
            MetricValue("pretest", np.float64(0.25), higher_is_better=False, task="article_type"),
        ],
        class_metrics=[ClassMetric("article_type", label, 0.5, 0.4, 0.44, np.int64(2))
                       for label in labels],
        confusion=[ConfusionCell("article_type", "Sandals", "Heels", 2),
                   ConfusionCell("article_type", "Heels", "Heels", 3)],
        predictions=preds, retrieved=retrieved, extra={"batch_size": 64, "when": T0},
    )  # fmt: skip
    fields.update(overrides)
    return RunResult(**fields)


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: equal snapshots mean an unchanged database."""
    with store.connect(db, read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in store.TABLES}


def python(script: str, *args: str) -> subprocess.Popen[str]:
    """A child interpreter that can import evalsuite and this test module."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    code = textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


HOLD_LOCK = """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "reports" / "results.duckdb"


def test_round_trip(db: Path) -> None:
    run = make_run()
    store.write_run(db, run)
    models = store.list_models(db)
    assert models["name"].tolist() == ["o'clip"] and models["n_runs"].tolist() == [1]
    training = models["training"].iloc[0]
    assert training["seed"] == 7 and training["manifest"] == {"train": "abc"}
    assert training["nan"] is None and training["lr"] == pytest.approx(1e-5)
    runs = store.list_runs(db, model="o'clip")
    assert runs["run_id"].tolist() == [run.run_id]
    row = runs.iloc[0]
    assert row["benchmark_version"] == "2" and row["n_skipped"] == 1 and row["device"] == "cpu"
    assert row["started_at"] == T0.replace(tzinfo=None)
    assert row["finished_at"] == (T0 + timedelta(seconds=12.5)).replace(tzinfo=None)
    assert row["extra"] == {"batch_size": 64, "when": T0.isoformat()}

    metrics = store.metrics_table(db)
    assert len(metrics) == 3
    hits = metrics[metrics["metric"] == "ir_hits"].iloc[0]
    assert (hits["value"], hits["maximum"], hits["task"]) == (212, 390, "text_search")
    acc = metrics[metrics["metric"] == "acc@1"].iloc[0]
    assert (acc["ci_low"], acc["ci_high"], acc["model_name"]) == (0.4, 0.6, "o'clip")
    assert not metrics[metrics["metric"] == "pretest"]["higher_is_better"].iloc[0]
    assert store.latest_metrics(db).equals(metrics)

    assert len(store.class_metrics(db, [run.run_id], task="article_type")) == 3
    cells = store.confusion(db, run.run_id, "article_type")
    assert cells.values.tolist() == [["Heels", "Heels", 3], ["Sandals", "Heels", 2]]

    preds = store.predictions(db, run.run_id, "article_type", limit=None)
    assert len(preds) == 6 and preds["score"].is_monotonic_decreasing
    wrong = store.predictions(db, run.run_id, "article_type", only_wrong=True)
    assert len(wrong) == 4 and not wrong["correct"].any()
    assert len(store.predictions(db, run.run_id, "article_type", limit=2)) == 2
    assert len(store.predictions(db, run.run_id, "article_type", true_label="Heels")) == 2

    assert len(store.retrievals(db, run.run_id, "text_search")) == 6
    q2 = store.retrievals(db, run.run_id, "text_search", query_id="q2")
    assert q2["rank"].tolist() == [1, 2, 3] and q2["query_text"].iloc[0] == "red q2's shoes"
    queries = store.queries(db, run.run_id, "text_search")
    assert queries["n_relevant"].tolist() == [2, 2]
    assert queries["first_relevant_rank"].tolist() == [1, 1]

    hist = store.history(db, "fp-1")
    assert hist["epoch"].tolist() == [1, 2] and hist["val_accuracy"].tolist() == [0.5, 0.6]
    assert hist["extra"].tolist() == [{"grad_norm": 3.0}, {}]
    assert store.data_roots(db) == ["/data/footwear"]
    assert store.skipped_images(db, run.run_id).values.tolist() == [
        ["item99", "images/99.jpg", "cannot decode image"]
    ]
    assert store.run_exists(db, "o'clip", "fp-1", "footwear", "bh-1", "dh-1")
    assert not store.run_exists(db, "o'clip", "fp-1", "footwear", "bh-2", "dh-1")
    assert not store.run_exists(db, "other name", "fp-1", "footwear", "bh-1", "dh-1")


def test_replace_keeps_one_run_per_model_benchmark_and_hashes(db: Path) -> None:
    first = make_run(n_predictions=9)
    store.write_run(db, first)
    second = make_run(n_predictions=4, started_at=T0 + timedelta(hours=1))
    store.write_run(db, second)
    assert store.list_runs(db)["run_id"].tolist() == [second.run_id]
    assert store.predictions(db, first.run_id, "article_type").empty
    assert len(store.predictions(db, second.run_id, "article_type", limit=None)) == 4

    # A changed benchmark keeps the old run; "latest" then picks the newer one.
    third = make_run(benchmark_hash="bh-2", started_at=T0 + timedelta(hours=2))
    store.write_run(db, third)
    assert set(store.list_runs(db)["run_id"]) == {second.run_id, third.run_id}
    assert set(store.latest_metrics(db)["run_id"]) == {third.run_id}
    assert len(store.metrics_table(db, run_ids=[second.run_id])) == 3

    # replace=False keeps history; rewriting the very same run stays idempotent.
    fourth = make_run(benchmark_hash="bh-2", started_at=T0 + timedelta(hours=3))
    store.write_run(db, fourth, replace=False)
    store.write_run(db, fourth, replace=False)
    assert len(store.list_runs(db, benchmark="footwear")) == 3
    assert store.list_models(db)["n_runs"].tolist() == [3]


def test_model_upsert_keeps_history_when_none_given(db: Path) -> None:
    store.write_run(db, make_run())
    store.write_run(db, make_run(model=make_model(history=[]), benchmark="b2"))
    assert store.list_models(db)["name"].tolist() == ["o'clip"]
    assert len(store.history(db, "fp-1")) == 2  # an empty history means "unknown"


def test_the_same_weights_under_two_names_are_two_models(db: Path) -> None:
    """A model is what the user named it: scoring its weights under another name (a copy, a
    WiSE-FT at alpha 0) adds a model, and takes over neither the first name nor its runs."""
    store.write_run(db, make_run())
    store.write_run(db, make_run(model=make_model(name="copy", history=[])))
    models = store.list_models(db).set_index("name")
    assert list(models.index) == ["copy", "o'clip"]
    assert models.loc["copy", "same_weights_as"] == ["o'clip"]
    assert models.loc["o'clip", "same_weights_as"] == ["copy"]
    assert models["n_runs"].tolist() == [1, 1]
    latest = store.latest_metrics(db)
    assert latest.groupby("model_name")["run_id"].nunique().to_dict() == {"copy": 1, "o'clip": 1}
    assert len(store.history(db, "fp-1")) == 2  # the training log of those weights, once


def _as_version_2(db: Path, rows: str) -> None:
    """Turn ``db`` into what schema v2 held: models keyed by fingerprint, with ``rows`` (a
    WHERE clause over the v3 rows) as its rows, marked as the baseline."""
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TEMP TABLE m AS SELECT * FROM models WHERE {rows}")
        con.execute("DROP TABLE models")
        con.execute(f"CREATE TABLE models ({store.TABLES['models']})".replace(
            "name VARCHAR PRIMARY KEY, fingerprint VARCHAR",
            "name VARCHAR, fingerprint VARCHAR PRIMARY KEY"))  # fmt: skip
        con.execute("INSERT INTO models SELECT * REPLACE (true AS is_baseline) FROM m")
        con.execute("UPDATE schema_version SET version = 2")


def test_a_version_2_database_gives_every_name_its_runs_back(db: Path) -> None:
    """Schema v2 keyed models by fingerprint: scoring the base's weights as "base-wise-0"
    renamed the base and took over its runs. Readers see it as v3 would (the file is not
    changed); the next write migrates: a row per name the runs were scored under, what
    describes the weights only where the v2 row carried that name, the baseline mark with
    the name its row had."""
    base = make_model(name="base", history=[], training=None, base_model=None,
                      base_fingerprint=None)  # fmt: skip
    wise = make_model(name="base-wise-0", training={"wise": {"alpha": 0.0}})
    store.write_run(db, make_run(model=base, started_at=T0))
    store.write_run(db, make_run(model=wise, started_at=T0 + timedelta(hours=1)))
    _as_version_2(db, "name = 'base-wise-0'")
    before = db.read_bytes()
    for _ in range(2):  # read as v3 would, then migrated by a write
        models = store.list_models(db).set_index("name")
        assert list(models.index) == ["base", "base-wise-0", *["other"] * _]
        models = models.loc[["base", "base-wise-0"]]
        assert models["n_runs"].tolist() == [1, 1]
        assert models.loc["base", "fingerprint"] == models.loc["base-wise-0", "fingerprint"]
        assert models["is_baseline"].fillna(False).tolist() == [False, True]
        assert pd.isna(models.loc["base", "training"])  # not base-wise-0's WiSE marks
        assert pd.isna(models.loc["base", "spec"]) and models.loc["base", "backend"] == "open_clip"
        assert models.loc["base-wise-0", "training"] == {"wise": {"alpha": 0.0}}
        assert db.read_bytes() == before or _ == 1
        store.write_run(db, make_run(model=make_model(name="other", fingerprint="fp-2"),
                                     started_at=T0 + timedelta(hours=2)))  # fmt: skip
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(3,)]


def test_a_version_2_baseline_rescored_with_other_weights_keeps_its_mark(db: Path) -> None:
    store.write_run(db, make_run(model=make_model(name="x", fingerprint="f1"), started_at=T0))
    later = T0 + timedelta(hours=1)
    store.write_run(db, make_run(model=make_model(name="x", fingerprint="f2"), started_at=later))
    with duckdb.connect(str(db)) as con:  # v2 kept a row per weights, both named x
        con.execute("INSERT INTO models SELECT * REPLACE ('x-f1' AS name, 'f1' AS fingerprint) "
                    "FROM models")  # fmt: skip
    _as_version_2(db, "true")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET name = 'x', is_baseline = (fingerprint = 'f1')")
    models = store.list_models(db)
    assert models[["name", "fingerprint", "n_runs", "n_earlier_runs"]].values.tolist() == [
        ["x", "f2", 1, 1]
    ]
    assert models["is_baseline"].tolist() == [True]


def test_exception_mid_transaction_leaves_db_unchanged(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_run(db, make_run())
    before = snapshot(db)
    real_insert = store_write.insert_table

    def failing_insert(con: duckdb.DuckDBPyConnection, table: str, data: Any) -> None:
        if table == "predictions":  # runs, metrics... are already in; the old run deleted
            raise RuntimeError("boom")
        real_insert(con, table, data)

    monkeypatch.setattr(store_write, "insert_table", failing_insert)
    changed = make_model(name="other name", history=[{"epoch": 1, "train_loss": 0.1}])
    with pytest.raises(RuntimeError, match="boom"):
        store.write_run(db, make_run(model=changed, started_at=T0 + timedelta(days=1)))
    assert snapshot(db) == before


SIGKILLED_WRITER = """
    import sys, time
    from evalsuite import store
    from evalsuite.store import write as store_write
    from test_store import make_run
    real_insert = store_write.insert_table

    def slow_insert(con, table, data):
        real_insert(con, table, data)
        if table == "predictions":  # >1 row group written to the file, transaction open
            print("inside", flush=True)
            time.sleep(60)

    store_write.insert_table = slow_insert
    store.write_run(sys.argv[1], make_run(n_predictions=150_000, seconds=1.0))
"""


def test_sigkilled_writer_leaves_db_unchanged_and_readable(db: Path) -> None:
    store.write_run(db, make_run())
    before = snapshot(db)
    child = python(SIGKILLED_WRITER, str(db))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "inside"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert snapshot(db) == before
    # Still writable, and the WAL of the dead transaction does not resurface on reopening.
    store.write_run(db, make_run(benchmark="other"))
    assert sorted(store.list_runs(db)["benchmark"]) == ["footwear", "other"]
    assert len(store.predictions(db, before["runs"][0][0], "article_type", limit=None)) == 6


def test_write_waits_for_another_writer(db: Path) -> None:
    store.write_run(db, make_run())
    holder = python(HOLD_LOCK, str(db), "1.0")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    store.write_run(db, make_run(benchmark="b2"), timeout_s=20)
    assert time.monotonic() - start > 0.3  # it really waited for the lock
    assert holder.wait(timeout=10) == 0
    assert len(store.list_runs(db)) == 2


def test_busy_database_times_out_naming_the_file(db: Path) -> None:
    store.write_run(db, make_run())
    holder = python(HOLD_LOCK, str(db), "30")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(store.StoreBusyError, match=str(db.name)) as caught:
            store.write_run(db, make_run(benchmark="b2"), timeout_s=0.3)
        assert str(db) in str(caught.value)
        with pytest.raises(store.StoreBusyError, match="locked"):  # readers are locked out too
            store.list_runs(db, timeout_s=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert len(store.list_runs(db)) == 1


def test_missing_and_empty_databases(db: Path) -> None:
    with pytest.raises(store.StoreMissingError, match="evalsuite score"):
        store.list_models(db)
    assert not store.run_exists(db, "o'clip", "fp-1", "footwear", "bh-1", "dh-1")
    assert not db.exists()  # reading never creates the file
    db.parent.mkdir(parents=True)
    duckdb.connect(str(db)).close()  # a file without tables
    assert store.list_models(db).empty and "n_runs" in store.list_models(db).columns
    assert store.latest_metrics(db).empty and store.data_roots(db) == []


def test_names_with_quotes_are_parameters_not_sql(db: Path) -> None:
    nasty = "x'); DROP TABLE runs; --"
    model = make_model(name=nasty, fingerprint="fp\"'2")
    store.write_run(db, make_run(model=model, benchmark="o'bench"))
    assert store.list_runs(db, model=nasty)["benchmark"].tolist() == ["o'bench"]
    assert len(store.metrics_table(db, model="fp\"'2", benchmark="o'bench")) == 3
    assert store.run_exists(db, nasty, "fp\"'2", "o'bench", "bh-1", "dh-1")


def test_reader_inside_process_holding_a_write_connection(db: Path) -> None:
    store.write_run(db, make_run())
    with store.connect(db) as con:  # DuckDB refuses a second config for the same file
        con.execute("SELECT 1")
        assert len(store.list_runs(db)) == 1


def test_newer_schema_is_refused(db: Path) -> None:
    store.write_run(db, make_run())
    with store.connect(db) as con:
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(store.StoreError, match="newer"):
        store.write_run(db, make_run(benchmark="b2"))


def test_a_run_that_started_before_the_latest_is_history_not_the_current_weights(
    db: Path,
) -> None:
    """Two jobs score one name with other weights; the slower one started first. Its run is
    stored as history: the model keeps the weights of its latest run, in every view."""
    hours = [T0 + timedelta(hours=h) for h in range(4)]
    new = store.write_run(db, make_run(model=make_model(fingerprint="f2"), started_at=hours[2]))
    old = store.write_run(db, make_run(model=make_model(fingerprint="f1", spec="old/path"),
                                       benchmark="b2", started_at=hours[1]))  # fmt: skip
    assert new == store.Written() and old == store.Written(history=True)
    models = store.list_models(db)
    assert models[["fingerprint", "spec", "n_runs", "n_earlier_runs"]].values.tolist() == [
        ["f2", "checkpoint:runs/o'clip", 1, 1]
    ]
    assert set(store.latest_metrics(db)["fingerprint"]) == {"f2"}
    assert not store.run_exists(db, "o'clip", "f1", "b2", "bh-1", "dh-1")  # scoring it again
    assert store.run_exists(db, "o'clip", "f2", "footwear", "bh-1", "dh-1")  # is not skipped
    later = store.write_run(db, make_run(model=make_model(fingerprint="f1"), benchmark="b2",
                                         started_at=hours[3]))  # fmt: skip
    assert later.superseded == "f2" and not later.history
    assert set(store.latest_metrics(db)["fingerprint"]) == {"f1"}


def test_an_export_of_earlier_weights_states_nothing_of_the_current_ones(
    db: Path, tmp_path: Path
) -> None:
    from evalsuite.run_files import export_runs, import_runs

    first = make_run(model=make_model(fingerprint="g1", parameter_count=111), started_at=T0)
    store.write_run(db, first)
    store.write_run(db, make_run(model=make_model(fingerprint="g2", base_model="other-base"),
                                 started_at=T0 + timedelta(hours=1)))  # fmt: skip
    export_runs(db, [first.run_id], tmp_path / "runs")
    row = pq.read_table(tmp_path / "runs" / first.run_id / "models.parquet").to_pylist()[0]
    assert row["fingerprint"] == "g1"
    assert all(row[c] is None for c in ("spec", "backend", "base_model", "base_fingerprint",
                                        "parameter_count", "training"))  # fmt: skip
    merged = import_runs(tmp_path / "m.duckdb", [tmp_path / "runs"])
    assert merged.superseded == {}
    assert store.list_models(tmp_path / "m.duckdb")["fingerprint"].tolist() == ["g1"]


def test_a_folder_read_in_place_and_its_import_keep_the_same_model_row(
    db: Path, tmp_path: Path
) -> None:
    """The row of a name is the one exported with its latest run, however often it is read,
    in place or imported, in any order; an import that changes a name's weights says so."""
    from evalsuite.run_files import export_runs, import_runs

    for hours, spec in ((0, "old/path"), (1, "new/path")):
        store.write_run(db, make_run(model=make_model(spec=spec), benchmark=f"b{hours}",
                                     started_at=T0 + timedelta(hours=hours)))  # fmt: skip
    runs = store.list_runs(db)["run_id"].tolist()
    export_runs(db, runs, tmp_path / "runs")
    with duckdb.connect(str(db)) as con:  # the source's row said old/path when b0 was scored
        con.execute("UPDATE models SET spec = 'old/path'")
    export_runs(db, runs[-1:], tmp_path / "runs")  # b0's folder, with the older row
    for _ in range(5):
        assert store.list_models(tmp_path / "runs")["spec"].tolist() == ["new/path"]
    imported = import_runs(tmp_path / "m.duckdb", [tmp_path / "runs"])
    assert store.list_models(tmp_path / "m.duckdb")["spec"].tolist() == ["new/path"]
    assert imported.superseded == {}
    other = make_run(model=make_model(fingerprint="fp-9"), started_at=T0 + timedelta(hours=5))
    store.write_run(tmp_path / "x.duckdb", other)
    export_runs(tmp_path / "x.duckdb", [other.run_id], tmp_path / "newer")
    merged = import_runs(tmp_path / "m.duckdb", [tmp_path / "newer"])
    assert merged.superseded == {"o'clip": ("fp-1", "fp-9")}
