"""Writing the results database: a run, the baseline mark, and the check before scoring.

Each ``write_run`` is one transaction: a failure or a killed process leaves the database
exactly as it was. The rows are built before the database is opened, to keep locks short.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import suppress
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalsuite.results import ModelInfo, RunResult
from evalsuite.store.checks import StoreBusyError, StoreError, check_path, check_schema, explain
from evalsuite.store.connection import ROLLED_BACK, WRITE_TIMEOUT_S, connect, transaction
from evalsuite.store.identity import SAME_RUN, Written, settle_model
from evalsuite.store.schema import (
    HISTORY_KEYS,
    RUN_CHILDREN,
    SCHEMA_VERSION,
    arrow,
    column_names,
    ensure_schema,
    now,
)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, NaN/inf as null, paths as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(_jsonable(value))


def _utc(moment: datetime) -> datetime:
    """Naive UTC, as stored; a naive input is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _history_rows(model: ModelInfo) -> list[tuple[Any, ...]]:
    rows = []
    for entry in model.history:
        extra = {k: v for k, v in entry.items() if k not in HISTORY_KEYS}
        rows.append((model.fingerprint, *(entry.get(k) for k in HISTORY_KEYS), _json(extra)))
    return rows


def _run_rows(run: RunResult) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of every run table, built before the database is opened to keep locks short."""
    rid, started = run.run_id, _utc(run.started_at)
    finished = (
        _utc(run.finished_at) if run.finished_at else started + timedelta(seconds=run.seconds)
    )
    n_skipped = run.n_skipped_images or len(run.skipped)
    return {
        "runs": [(rid, run.model.fingerprint, run.model.name, run.benchmark,
                  str(run.benchmark_version), run.benchmark_hash, run.data_manifest_hash,
                  run.data_root, run.code_version, run.device, run.precision, run.seconds,
                  run.status, run.n_items, n_skipped, started, finished, _json(run.extra))],
        "metrics": [(rid, m.task, m.name, m.value, m.maximum, m.ci_low, m.ci_high,
                     m.higher_is_better) for m in run.metrics],
        "class_metrics": [(rid, c.task, c.class_name, c.precision, c.recall, c.f1, c.support)
                          for c in run.class_metrics],
        "confusion": [(rid, c.task, c.true_label, c.predicted_label, c.count)
                      for c in run.confusion],
        "predictions": [(rid, p.task, p.item_id, p.true_label, p.predicted_label, p.correct,
                         p.score, p.true_rank, p.image_path) for p in run.predictions],
        "retrievals": [(rid, r.task, r.query_id, r.query_text, r.rank, r.item_id, r.score,
                        r.relevant, r.image_path) for r in run.retrieved],
        "query_values": [(rid, v.task, v.query_id, v.metric, v.value) for v in run.query_values],
        "skipped_images": [(rid, *skip) for skip in run.skipped],
    }  # fmt: skip


def insert_table(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """Bulk insert: DuckDB scans the registered Arrow table, no per-row round trips."""
    if data.num_rows == 0:
        return
    columns = ", ".join(f'"{name}"' for name in data.column_names)
    con.register("_evalsuite_rows", data)
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _evalsuite_rows")
    finally:
        # On an aborted transaction (e.g. disk full) unregister raises too, hiding the real
        # error behind "transaction is aborted", which write_run retried as a conflict.
        with suppress(duckdb.Error):
            con.unregister("_evalsuite_rows")


def _delete_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> None:
    for table in (*RUN_CHILDREN, "runs"):
        con.execute(f"DELETE FROM {table} WHERE list_contains(?::VARCHAR[], run_id)", [run_ids])


def _write(
    con: duckdb.DuckDBPyConnection, path: str | Path, run: RunResult,
    tables: dict[str, pa.Table], replace: bool,
) -> Written:  # fmt: skip
    ensure_schema(con, path)
    model = run.model
    replaced = []
    if replace:
        key = [model.name, model.fingerprint, run.benchmark, run.benchmark_hash,
               run.data_manifest_hash]  # fmt: skip
        query = f"SELECT run_id FROM runs WHERE {SAME_RUN} AND run_id <> ? ORDER BY run_id"
        replaced = [r[0] for r in con.execute(query, [*key, run.run_id]).fetchall()]
    _delete_runs(con, [run.run_id, *replaced])  # rewriting one run is idempotent
    for table, data in tables.items():
        insert_table(con, table, data)
    superseded, history = settle_model(con, tables["runs"].to_pylist()[0], _model_row(model), now())
    # Same fingerprint = same weights = same log; an empty history means "unknown", not "none".
    if model.history:
        con.execute("DELETE FROM history WHERE model_fingerprint = ?", [model.fingerprint])
        insert_table(con, "history", arrow("history", _history_rows(model)))
    return Written(tuple(replaced), superseded, history)


def _model_row(model: ModelInfo) -> pa.Table:
    return arrow("models", [(model.name, model.fingerprint, model.spec, model.backend,
                              model.base_model, model.base_fingerprint, model.parameter_count,
                              _json(model.training), now(), now(), None)])  # fmt: skip


def check_writable(db_path: str | Path) -> None:
    """Raise :class:`StoreError` now if ``db_path`` could not take a write (a folder, not a
    database, read-only, an unknown schema), so that scoring fails before the work, not after.
    Changes nothing and never creates the file; a database busy now is not an error."""
    path = Path(db_path)
    check_path(path, read_only=False)
    if not path.exists():
        return
    try:
        with connect(path, read_only=True) as con:
            try:
                check_schema(con, path, column_names(), SCHEMA_VERSION)
            except duckdb.Error as exc:
                raise explain(path, exc, writing=True) from exc
    except StoreBusyError:
        pass  # write_run waits for the lock later


def mark_baseline(db_path: str | Path, model: str, *, timeout_s: float | None = None) -> str:
    """Mark the model named ``model`` as the baseline every comparison defaults to,
    unmarking any other; returns its name."""
    try:
        with connect(db_path, timeout_s=timeout_s) as con, transaction(con):
            ensure_schema(con, db_path)
            rows = con.execute("SELECT name FROM models WHERE name = ?", [model]).fetchall()
            if not rows:
                names = con.execute("SELECT name FROM models ORDER BY name").fetchall()
                known = [r[0] for r in names]
                raise StoreError(
                    f"cannot mark {model!r} as the baseline: no model is called that in "
                    f"{db_path}; known: {', '.join(known) or '(none)'}"
                )
            con.execute("UPDATE models SET is_baseline = (name = ?)", [model])
    except duckdb.Error as exc:  # e.g. a damaged file: the transaction was rolled back
        raise explain(Path(db_path), exc, writing=True, note=ROLLED_BACK) from exc
    return model


def write_run(
    db_path: str | Path, run: RunResult, replace: bool = True, *, timeout_s: float | None = None
) -> Written:
    """Store ``run`` in one transaction; with ``replace``, drop the model's earlier run with
    the same weights on the same benchmark, benchmark hash and data manifest hash (and all
    its rows) first. The model is ``run.model.name``: a run of other weights under that
    name is kept, and what was replaced or superseded is returned for the user to see."""
    tables = {name: arrow(name, rows) for name, rows in _run_rows(run).items()}
    timeout_s = WRITE_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with (
                connect(db_path, timeout_s=max(deadline - time.monotonic(), 0.0)) as con,
                transaction(con),
            ):
                written = _write(con, db_path, run, tables, replace)
            return written
        except duckdb.TransactionException as exc:
            if "conflict" not in str(exc).lower():  # e.g. aborted by an I/O error
                raise explain(Path(db_path), exc, writing=True, note=ROLLED_BACK) from exc
            if time.monotonic() >= deadline:  # a concurrent writer in this process
                raise StoreBusyError(f"results database {db_path}: write conflict: {exc}") from exc
            time.sleep(random.uniform(0.02, 0.1))
        except duckdb.Error as exc:  # disk full, I/O error: rolled back above
            raise explain(Path(db_path), exc, writing=True, note=ROLLED_BACK) from exc
