"""The results database: DuckDB schema, atomic writes with lock retry, read queries.

DuckDB lets one process write a file at a time, and a writer also locks out read-only openers
in other processes. So every operation opens its own connection and closes it at once, and
opening retries with backoff while another process holds the lock. Each ``write_run`` is one
transaction: a failure or a killed process leaves the database exactly as it was.
Schema and example queries: docs/results-schema.md.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pandas as pd
import pyarrow as pa

from evalsuite.preflight import DEFAULT_DB, missing_results
from evalsuite.results import ModelInfo, RunResult
from evalsuite.store_checks import (
    Schema,
    StoreBusyError,
    StoreError,
    StoreMissingError,
    check_path,
    check_schema,
    explain,
)
from evalsuite.store_models import (
    CURRENT,
    CURRENT_RUNS,
    Written,
    models_by_name_select,
    row_for_weights,
    settle_model,
)

__all__ = ["StoreBusyError", "StoreError", "StoreMissingError"]  # re-exported: store.StoreError

# 2: per-query retrieval values (query_values) and the baseline mark (models.is_baseline),
# what paired comparisons need; a version-1 file gains both on its next write.
# 3: a model is the name the user gave it (models keyed by name); the fingerprint of its
# weights is provenance, kept per run. A v1/v2 file is migrated on its next write.
SCHEMA_VERSION = 3
WRITE_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 5.0
# Readers poll a held lock often: with two writers taking turns the free gaps are short.
MAX_READ_POLL_S = 0.05
ROLLED_BACK = "the write was rolled back, the file is as it was"


# name -> "column TYPE, ..."; the DDL and the Arrow schemas of bulk inserts derive from this.
TABLES: dict[str, str] = {
    "schema_version": "version INTEGER, created_at TIMESTAMP",
    "models": "name VARCHAR PRIMARY KEY, fingerprint VARCHAR, spec VARCHAR, backend VARCHAR, "
    "base_model VARCHAR, base_fingerprint VARCHAR, parameter_count BIGINT, training JSON, "
    "created_at TIMESTAMP, updated_at TIMESTAMP, is_baseline BOOLEAN",
    "runs": "run_id VARCHAR PRIMARY KEY, model_fingerprint VARCHAR, model_name VARCHAR, "
    "benchmark VARCHAR, benchmark_version VARCHAR, benchmark_hash VARCHAR, "
    "data_manifest_hash VARCHAR, data_root VARCHAR, code_version VARCHAR, device VARCHAR, "
    "precision VARCHAR, seconds DOUBLE, status VARCHAR, n_items BIGINT, n_skipped BIGINT, "
    "started_at TIMESTAMP, finished_at TIMESTAMP, extra JSON",
    "metrics": "run_id VARCHAR, task VARCHAR, name VARCHAR, value DOUBLE, maximum DOUBLE, "
    "ci_low DOUBLE, ci_high DOUBLE, higher_is_better BOOLEAN",
    "class_metrics": "run_id VARCHAR, task VARCHAR, class_name VARCHAR, precision DOUBLE, "
    "recall DOUBLE, f1 DOUBLE, support BIGINT",
    "confusion": "run_id VARCHAR, task VARCHAR, true_label VARCHAR, predicted_label VARCHAR, "
    "count BIGINT",
    "predictions": "run_id VARCHAR, task VARCHAR, item_id VARCHAR, true_label VARCHAR, "
    "predicted_label VARCHAR, correct BOOLEAN, score DOUBLE, true_rank INTEGER, "
    "image_path VARCHAR",
    "retrievals": "run_id VARCHAR, task VARCHAR, query_id VARCHAR, query_text VARCHAR, "
    "rank INTEGER, item_id VARCHAR, score DOUBLE, relevant BOOLEAN, image_path VARCHAR",
    "query_values": "run_id VARCHAR, task VARCHAR, query_id VARCHAR, metric VARCHAR, value DOUBLE",
    "skipped_images": "run_id VARCHAR, item_id VARCHAR, path VARCHAR, reason VARCHAR",
    "history": "model_fingerprint VARCHAR, epoch INTEGER, train_loss DOUBLE, val_loss DOUBLE, "
    "val_accuracy DOUBLE, lr DOUBLE, seconds DOUBLE, extra JSON",
}
KEYS = {  # composite keys catch duplicate rows from a runner bug
    "metrics": "run_id, task, name",
    "class_metrics": "run_id, task, class_name",
    "confusion": "run_id, task, true_label, predicted_label",
    "query_values": "run_id, task, query_id, metric",
    "history": "model_fingerprint, epoch",
}
RUN_CHILDREN = ("metrics", "class_metrics", "confusion", "predictions", "retrievals",
                "query_values", "skipped_images")  # fmt: skip
HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds")
JSON_COLUMNS = ("training", "extra")
_ARROW = {"VARCHAR": pa.string(), "JSON": pa.string(), "DOUBLE": pa.float64(),
          "BIGINT": pa.int64(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_(),
          "TIMESTAMP": pa.timestamp("us")}  # fmt: skip
# The runs that --skip-existing skips and write_run(replace=True) replaces: the same model
# (name) with the same weights on the same benchmark and data.
_SAME = ("model_name = ? AND model_fingerprint = ? AND benchmark = ? AND benchmark_hash IS NOT "
         "DISTINCT FROM ? AND data_manifest_hash IS NOT DISTINCT FROM ?")  # fmt: skip
_BUSY_MARKERS = (
    "could not set lock",  # another process holds the file lock
    "conflicting lock",
    "different configuration",  # this process has it open with the other read_only flag
    "unique file handle conflict",  # two threads of this process opening it at once
)


def _columns(table: str) -> list[tuple[str, str]]:
    """(name, base type) of each column of ``table``."""
    return [(col.split()[0], col.split()[1]) for col in TABLES[table].split(",")]


def _schema() -> dict[str, list[str]]:
    return {table: [name for name, _ in _columns(table)] for table in TABLES}


def _ddl() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({columns}"
        + (f", PRIMARY KEY ({KEYS[table]}))" if table in KEYS else ")")
        for table, columns in TABLES.items()
    ]


# ---------------------------------------------------------------- connections


def _is_busy(exc: Exception) -> bool:
    return isinstance(exc, duckdb.Error) and any(m in str(exc).lower() for m in _BUSY_MARKERS)


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException as exc:
        # This process already has the file open read-write (DuckDB shares one instance per
        # file and process and refuses a second config): reading through it is safe.
        if read_only and "different configuration" in str(exc).lower():
            con = duckdb.connect(str(path))
        else:
            raise
    # Off: a missing table name must be an error, not a Python variable of the caller's
    # module (store.retrievals, a function, was "scanned" for a missing retrievals table).
    con.execute("SET python_enable_replacements = false")
    return con


@contextmanager
def connect(
    db_path: str | Path = DEFAULT_DB, read_only: bool = False, timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, retried with backoff while another process holds the lock.

    Raises :class:`StoreBusyError` after ``timeout_s`` (default 30 s for writers, 5 s for
    readers) and :class:`StoreMissingError` for a read-only open of a missing file, which is
    never created.
    """
    path = Path(db_path)
    if timeout_s is None:
        timeout_s = READ_TIMEOUT_S if read_only else WRITE_TIMEOUT_S
    check_path(path, read_only)
    if read_only and not path.is_file():
        raise StoreMissingError(missing_results(path))
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of results database {path}: {exc}") from exc
    deadline, delay = time.monotonic() + timeout_s, 0.02
    while True:
        try:
            con = _open(path, read_only)
            break
        except duckdb.Error as exc:
            if not _is_busy(exc):
                raise explain(path, exc, writing=not read_only) from exc
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"results database {path} is locked by another process (waited "
                    f"{timeout_s:g} s; DuckDB allows one writer at a time): {exc}"
                ) from exc
            time.sleep(min(delay * random.uniform(0.5, 1.5), max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, MAX_READ_POLL_S if read_only else 0.5)
    try:
        yield con
    finally:
        con.close()


# ---------------------------------------------------------------- writing


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


def _arrow(table: str, rows: Sequence[Sequence[Any]]) -> pa.Table:
    columns = _columns(table)
    arrays = []
    values_by_column = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    for (_, sqltype), values in zip(columns, values_by_column, strict=True):
        kind = _ARROW[sqltype]
        try:
            arrays.append(pa.array(values, type=kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. int labels for a string column
            arrays.append(pa.array([_coerce(v, kind) for v in values], type=kind))
    return pa.table(arrays, names=[name for name, _ in columns])


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if kind == pa.string():
        return str(value)
    return value.item() if hasattr(value, "item") else value


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


def _insert_table(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
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


def _ensure_schema(con: duckdb.DuckDBPyConnection, path: str | Path = "") -> None:
    """Create the tables of a new database, migrate a v1 or v2 one; refuse any other schema."""
    found = check_schema(con, Path(path), _schema(), SCHEMA_VERSION).version
    for statement in _ddl():
        con.execute(statement)
    # v1 -> v2: CREATE TABLE IF NOT EXISTS above added query_values; models gains a column.
    con.execute("ALTER TABLE models ADD COLUMN IF NOT EXISTS is_baseline BOOLEAN")
    if found is not None and found < 3:  # v2 -> v3: models keyed by name
        select = models_by_name_select(has_baseline=True)
        con.execute(f"CREATE TEMP TABLE models_v3 AS {select}")
        con.execute("DROP TABLE models")
        con.execute(_ddl()[list(TABLES).index("models")])
        con.execute("INSERT INTO models BY NAME SELECT * FROM models_v3")
        con.execute("DROP TABLE models_v3")
    if found is None or found < SCHEMA_VERSION:
        con.execute("INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION, _now()])


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _delete_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> None:
    for table in (*RUN_CHILDREN, "runs"):
        con.execute(f"DELETE FROM {table} WHERE list_contains(?::VARCHAR[], run_id)", [run_ids])


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (tolerating one DuckDB already aborted)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _write(
    con: duckdb.DuckDBPyConnection, path: str | Path, run: RunResult,
    tables: dict[str, pa.Table], replace: bool,
) -> Written:  # fmt: skip
    _ensure_schema(con, path)
    model = run.model
    replaced = []
    if replace:
        key = [model.name, model.fingerprint, run.benchmark, run.benchmark_hash,
               run.data_manifest_hash]  # fmt: skip
        query = f"SELECT run_id FROM runs WHERE {_SAME} AND run_id <> ? ORDER BY run_id"
        replaced = [r[0] for r in con.execute(query, [*key, run.run_id]).fetchall()]
    _delete_runs(con, [run.run_id, *replaced])  # rewriting one run is idempotent
    for table, data in tables.items():
        _insert_table(con, table, data)
    superseded, history = settle_model(
        con, tables["runs"].to_pylist()[0], _model_row(model), _now()
    )
    # Same fingerprint = same weights = same log; an empty history means "unknown", not "none".
    if model.history:
        con.execute("DELETE FROM history WHERE model_fingerprint = ?", [model.fingerprint])
        _insert_table(con, "history", _arrow("history", _history_rows(model)))
    return Written(tuple(replaced), superseded, history)


def _model_row(model: ModelInfo) -> pa.Table:
    return _arrow("models", [(model.name, model.fingerprint, model.spec, model.backend,
                              model.base_model, model.base_fingerprint, model.parameter_count,
                              _json(model.training), _now(), _now(), None)])  # fmt: skip


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
                check_schema(con, path, _schema(), SCHEMA_VERSION)
            except duckdb.Error as exc:
                raise explain(path, exc, writing=True) from exc
    except StoreBusyError:
        pass  # write_run waits for the lock later


def mark_baseline(db_path: str | Path, model: str, *, timeout_s: float | None = None) -> str:
    """Mark the model named ``model`` as the baseline every comparison defaults to,
    unmarking any other; returns its name."""
    try:
        with connect(db_path, timeout_s=timeout_s) as con, _transaction(con):
            _ensure_schema(con, db_path)
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
    tables = {name: _arrow(name, rows) for name, rows in _run_rows(run).items()}
    timeout_s = WRITE_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with (
                connect(db_path, timeout_s=max(deadline - time.monotonic(), 0.0)) as con,
                _transaction(con),
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


# ---------------------------------------------------------------- reading


def _read(
    db_path: str | Path, sql: str, params: Sequence[Any] = (), timeout_s: float | None = None,
    tables: Sequence[str] = ("runs",),
) -> pd.DataFrame:  # fmt: skip
    """Run one parameterised query read-only; a database without ``tables`` (empty, or of an
    older schema: readers never migrate) gives empty frames with the current columns."""
    frame = None
    opened = (
        _exported(Path(db_path))
        if is_export_folder(db_path)
        else connect(db_path, read_only=True, timeout_s=timeout_s)
    )
    with opened as con:
        try:  # a foreign or damaged schema is refused, never read as if it were ours
            schema = check_schema(con, Path(db_path), _schema(), SCHEMA_VERSION)
            if schema.version is not None and schema.tables >= set(tables):
                frame = con.execute(_models_of(sql, con, schema), list(params)).fetchdf()
        except duckdb.Error as exc:
            raise explain(Path(db_path), exc, writing=False) from exc
    if frame is None:  # same query on an empty in-memory schema: the right (empty) columns
        with duckdb.connect(":memory:") as empty:
            empty.execute("SET python_enable_replacements = false")
            for statement in _ddl():
                empty.execute(statement)
            frame = empty.execute(sql.replace(_MODELS, "models"), list(params)).fetchdf()
    for column in JSON_COLUMNS:
        if column in frame.columns:
            frame[column] = [json.loads(v) if isinstance(v, str) else v for v in frame[column]]
    return frame


_MODELS = "__MODELS__"  # in reader SQL: the v3 models rows, whatever the file's version


def _models_of(sql: str, con: duckdb.DuckDBPyConnection, schema: Schema) -> str:
    """``sql`` reading v3 ``models`` rows: a v1/v2 file (readers never migrate) is read
    through the migration's SELECT, so its names mean what they will after the next write."""
    if _MODELS not in sql:
        return sql
    if schema.version is None or schema.version >= 3:
        return sql.replace(_MODELS, "models")
    has_baseline = "is_baseline" in {
        r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                  "'models' AND schema_name = 'main'").fetchall()
    }  # fmt: skip
    return sql.replace(_MODELS, f"({models_by_name_select(has_baseline)})")


def is_export_folder(path: str | Path) -> bool:
    """A folder holding exported runs (``<run_id>/manifest.json`` at any depth)."""
    path = Path(path)
    return path.is_dir() and next(path.rglob("manifest.json"), None) is not None


@contextmanager
def _exported(folder: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory database whose tables are views over a folder of exported runs, read in
    place by DuckDB's Parquet reader (no copy); a model or history row exported with several
    runs appears once. The manifests' schema versions must all be this one's."""
    runs = sorted({manifest.parent for manifest in folder.rglob("manifest.json")})
    versions = set()
    for run in runs:
        try:
            versions.add(json.loads((run / "manifest.json").read_text())["schema_version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{run / 'manifest.json'}: not a run manifest ({exc})") from None
    if versions != {SCHEMA_VERSION}:
        raise StoreError(
            f"{folder}: exports of schema version(s) {sorted(versions)}; reading in place needs "
            f"version {SCHEMA_VERSION}: `evalsuite import` them into a database instead"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET python_enable_replacements = false")
        for table in (*RUN_TABLES, "models", "history"):
            files = _sql_list([str(run / f"{table}.parquet") for run in runs])
            con.execute(f"CREATE VIEW {table}_files AS SELECT *, parse_dirpath(filename) AS "
                        f"folder FROM read_parquet({files}, filename = true)")  # fmt: skip
        for table in RUN_TABLES:
            con.execute(f"CREATE VIEW {table} AS SELECT * EXCLUDE (filename, folder) "
                        f"FROM {table}_files")  # fmt: skip
        con.execute(f"CREATE VIEW models AS {EXPORTED_MODELS}")
        con.execute("CREATE VIEW history AS SELECT DISTINCT * EXCLUDE (filename, folder) "
                    "FROM history_files")  # fmt: skip
        con.execute(f"CREATE VIEW schema_version AS SELECT {SCHEMA_VERSION} AS version, "
                    "NULL::TIMESTAMP AS created_at")  # fmt: skip
        yield con
    finally:
        con.close()


def _sql_list(values: Sequence[str]) -> str:
    """A SQL list of string literals (DDL takes no parameters; quotes doubled)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _eq(value: Any, times: int = 1) -> list[Any] | None:
    """Params of an optional filter: None (filter off) when ``value`` is None."""
    return None if value is None else [value] * times


def _where(*conditions: tuple[str, list[Any] | None]) -> tuple[str, list[Any]]:
    """AND of the (fragment, params) pairs whose params are not None."""
    used = [(sql, params) for sql, params in conditions if params is not None]
    sql = " AND ".join(f"({fragment})" for fragment, _ in used) or "TRUE"
    return sql, [p for _, params in used for p in params]


def run_exists(
    db_path: str | Path, model_name: str, model_fingerprint: str, benchmark: str,
    benchmark_hash: str, data_manifest_hash: str, *, timeout_s: float | None = None,
) -> bool:  # fmt: skip
    """Whether an ``ok`` run of this model with these weights on this exact benchmark and
    data is stored, and those weights are the model's current ones (scoring weights the name
    stood for before makes them current again, so it is never skipped)."""
    if not Path(db_path).is_file():
        return False
    frame = _read(
        db_path,
        f"SELECT count(*) AS n FROM ({CURRENT_RUNS}) WHERE {_SAME} AND status = 'ok'",
        [model_name, model_fingerprint, benchmark, benchmark_hash, data_manifest_hash],
        timeout_s,
    )
    return bool(frame["n"].iloc[0])


def list_models(db_path: str | Path, *, timeout_s: float | None = None) -> pd.DataFrame:
    """One row per model (name), with its number of runs of its current weights, its runs of
    earlier weights (kept, not current), the start of its latest run, and ``same_weights_as``:
    the other models with the same current weights (e.g. a WiSE-FT at alpha 0 and its base)."""
    sql = """WITH counts AS (SELECT r.model_name, count(*) FILTER (WHERE r.model_fingerprint =
            m.fingerprint) AS n_runs, count(*) FILTER (WHERE r.model_fingerprint IS DISTINCT FROM
            m.fingerprint) AS n_earlier_runs, max(r.started_at) AS last_run
            FROM runs r JOIN __MODELS__ m ON m.name = r.model_name GROUP BY r.model_name)
        SELECT m.*, coalesce(c.n_runs, 0) AS n_runs, coalesce(c.n_earlier_runs, 0)
            AS n_earlier_runs, c.last_run, coalesce((SELECT list(o.name ORDER BY o.name) FROM
            __MODELS__ o WHERE o.fingerprint = m.fingerprint AND o.name <> m.name), [])
            AS same_weights_as
        FROM __MODELS__ m LEFT JOIN counts c ON c.model_name = m.name ORDER BY m.name"""
    frame = _read(db_path, sql, (), timeout_s)
    frame["same_weights_as"] = [list(names) for names in frame["same_weights_as"]]
    return frame


def list_runs(
    db_path: str | Path, model: str | None = None, benchmark: str | None = None,
    *, timeout_s: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Runs, newest first; ``model`` matches a model name or a weights fingerprint.
    ``current``: whether the run is of its model's current weights (false: of weights the
    name was scored with before, kept as history)."""
    where, params = _where(
        ("model_fingerprint = ? OR model_name = ?", _eq(model, 2)),
        ("benchmark = ?", _eq(benchmark)),
    )  # fmt: skip
    sql = f"""SELECT *, run_id IN (SELECT run_id FROM ({CURRENT_RUNS})) AS current FROM runs
        WHERE {where} ORDER BY started_at DESC, run_id"""
    return _read(db_path, sql, params, timeout_s)


def metrics_table(
    db_path: str | Path, model: str | None = None, benchmark: str | None = None,
    run_ids: Sequence[str] | None = None, task: str | None = None, *,
    latest_only: bool = False, timeout_s: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Metrics in long format, one row per (run, task, metric), with the run's provenance
    (``fingerprint``: the weights the run scored). ``latest_only``: each model's latest
    ``ok`` run per benchmark, of its current weights."""
    latest = (f"SELECT run_id FROM ({CURRENT_RUNS}) WHERE status = 'ok' QUALIFY row_number() "
              "OVER (PARTITION BY model_name, benchmark ORDER BY started_at DESC, "
              "finished_at DESC, run_id) = 1")  # fmt: skip
    where, params = _where(
        ("r.model_fingerprint = ? OR r.model_name = ?", _eq(model, 2)),
        ("r.benchmark = ?", _eq(benchmark)),
        ("list_contains(?::VARCHAR[], r.run_id)", None if run_ids is None else [list(run_ids)]),
        ("m.task = ?", _eq(task)),
        (f"r.run_id IN ({latest})", [] if latest_only else None),
    )
    sql = f"""SELECT r.model_name, r.model_fingerprint AS
        fingerprint, r.benchmark, m.task, m.name AS metric, m.value, m.maximum, m.ci_low,
        m.ci_high, m.higher_is_better, r.run_id, r.started_at, r.data_manifest_hash,
        r.benchmark_hash, r.code_version, ((r.extra -> 'tasks') -> m.task) ->> 'type' AS task_type
        FROM metrics m JOIN runs r USING (run_id)
        WHERE {where} ORDER BY model_name, r.benchmark, m.task, metric, r.started_at DESC"""
    return _read(db_path, sql, params, timeout_s)


def latest_metrics(
    db_path: str | Path, benchmark: str | None = None, *, timeout_s: float | None = None
) -> pd.DataFrame:
    """:func:`metrics_table` restricted to the latest ``ok`` run per model x benchmark."""
    return metrics_table(db_path, benchmark=benchmark, latest_only=True, timeout_s=timeout_s)


def class_metrics(
    db_path: str | Path, run_ids: Sequence[str], task: str | None = None,
    *, timeout_s: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Per-class precision / recall / F1 of the given runs, with their model names."""
    where, params = _where(
        ("list_contains(?::VARCHAR[], c.run_id)", [list(run_ids)]), ("c.task = ?", _eq(task))
    )
    sql = f"""SELECT c.*, r.model_name, r.model_fingerprint, r.benchmark FROM class_metrics c
        JOIN runs r USING (run_id) WHERE {where} ORDER BY c.run_id, c.task, c.class_name"""
    return _read(db_path, sql, params, timeout_s)


def confusion(
    db_path: str | Path, run_id: str, task: str, *, timeout_s: float | None = None
) -> pd.DataFrame:
    """Non-empty confusion cells of one task: true_label, predicted_label, count."""
    sql = """SELECT true_label, predicted_label, count FROM confusion WHERE run_id = ? AND
        task = ? ORDER BY true_label, predicted_label"""
    return _read(db_path, sql, [run_id, task], timeout_s)


def predictions(
    db_path: str | Path, run_id: str, task: str, only_wrong: bool = False, limit: int | None = 500,
    *, true_label: str | None = None, predicted_label: str | None = None,
    timeout_s: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Per-item predictions, most confident first; ``limit=None`` returns them all."""
    where, params = _where(
        ("run_id = ?", [run_id]), ("task = ?", [task]), ("NOT correct", [] if only_wrong else None),
        ("true_label = ?", _eq(true_label)), ("predicted_label = ?", _eq(predicted_label)),
    )  # fmt: skip
    sql = f"""SELECT task, item_id, true_label, predicted_label, correct, score, true_rank,
        image_path FROM predictions WHERE {where} ORDER BY score DESC, item_id LIMIT ?"""
    return _read(db_path, sql, [*params, limit], timeout_s)


def retrievals(
    db_path: str | Path, run_id: str, task: str, query_id: str | None = None,
    *, timeout_s: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Retrieved items of a retrieval task (of one query when given), by query and rank."""
    where, params = _where(
        ("run_id = ?", [run_id]), ("task = ?", [task]), ("query_id = ?", _eq(query_id))
    )
    sql = f"""SELECT task, query_id, query_text, rank, item_id, score, relevant, image_path
        FROM retrievals WHERE {where} ORDER BY query_id, rank"""
    return _read(db_path, sql, params, timeout_s, tables=("retrievals",))


def queries(
    db_path: str | Path, run_id: str, task: str, *, timeout_s: float | None = None
) -> pd.DataFrame:
    """One row per query: its text, items retrieved, relevant ones and first relevant rank."""
    sql = """SELECT query_id, any_value(query_text) AS query_text, count(*) AS n_retrieved,
        count(*) FILTER (WHERE relevant) AS n_relevant,
        min(rank) FILTER (WHERE relevant) AS first_relevant_rank
        FROM retrievals WHERE run_id = ? AND task = ? GROUP BY query_id ORDER BY query_id"""
    return _read(db_path, sql, [run_id, task], timeout_s, tables=("retrievals",))


def query_values(
    db_path: str | Path, run_ids: Sequence[str], *, timeout_s: float | None = None
) -> pd.DataFrame:
    """Per-query retrieval values of the given runs: run_id, task, query_id, metric, value."""
    sql = """SELECT run_id, task, query_id, metric, value FROM query_values
        WHERE list_contains(?::VARCHAR[], run_id) ORDER BY run_id, task, metric, query_id"""
    return _read(db_path, sql, [list(run_ids)], timeout_s, tables=("query_values",))


def item_predictions(
    db_path: str | Path, run_ids: Sequence[str], *, timeout_s: float | None = None
) -> pd.DataFrame:
    """Every stored prediction of the given runs (all items, in item order): run_id, task,
    item_id, true_label, predicted_label, true_rank."""
    sql = """SELECT run_id, task, item_id, true_label, predicted_label, true_rank FROM predictions
        WHERE list_contains(?::VARCHAR[], run_id) ORDER BY run_id, task, item_id"""
    return _read(db_path, sql, [list(run_ids)], timeout_s)


def skipped_images(
    db_path: str | Path, run_id: str, *, timeout_s: float | None = None
) -> pd.DataFrame:
    """Items of a run whose image could not be read: item_id, path, reason."""
    sql = "SELECT item_id, path, reason FROM skipped_images WHERE run_id = ? ORDER BY item_id"
    return _read(db_path, sql, [run_id], timeout_s)


def history(
    db_path: str | Path, model_fingerprint: str, *, timeout_s: float | None = None
) -> pd.DataFrame:
    """The fine-tuning log of a model, one row per epoch; extra keys sit in ``extra``."""
    sql = """SELECT * EXCLUDE (model_fingerprint) FROM history WHERE model_fingerprint = ?
        ORDER BY epoch"""
    return _read(db_path, sql, [model_fingerprint], timeout_s)


def data_roots(db_path: str | Path, *, timeout_s: float | None = None) -> list[str]:
    """Distinct dataset folders recorded in runs: the only places thumbnails are served from."""
    sql = "SELECT DISTINCT data_root FROM runs WHERE data_root IS NOT NULL ORDER BY data_root"
    return [str(root) for root in _read(db_path, sql, (), timeout_s)["data_root"]]


# ---------------------------------------------------------------- moving runs between files

RUN_TABLES = ("runs", *RUN_CHILDREN)  # a run's own rows; its model's rows travel with it
# Exported runs read in place, as `evalsuite import` would merge them: one row per name, the
# one exported with its current weights' latest run, never marked as the baseline.
EXPORTED_MODELS = f"""SELECT m.* EXCLUDE (filename, folder) REPLACE (NULL::BOOLEAN AS
    is_baseline) FROM models_files m JOIN runs_files r ON r.folder = m.folder
    JOIN ({CURRENT}) c ON c.run_id = r.run_id"""


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``'s rows (what an exported Parquet file must hold)."""
    return _arrow(table, []).schema


def run_rows(db_path: str | Path, run_id: str, *, timeout_s: float | None = None):
    """Every row of one run, per table (``models`` and ``history``: its model's), as Arrow
    tables of the current schema; None when no such run."""
    with connect(db_path, read_only=True, timeout_s=timeout_s) as con:
        try:
            schema = check_schema(con, Path(db_path), _schema(), SCHEMA_VERSION)
            query = "SELECT model_name, model_fingerprint FROM runs WHERE run_id = ?"
            found = con.execute(query, [run_id]).fetchall()  # all: DuckDB 2 keeps a result open
            if not found:
                return None
            name, fingerprint = found[0]
            out = {}
            for table in RUN_TABLES:
                query = f"SELECT * FROM {table} WHERE run_id = ?"
                out[table] = (
                    con.sql(query, params=[run_id]).to_arrow_table().cast(arrow_schema(table))
                )
            # the model row describes its current weights: a run of earlier weights travels
            # with the name only (what described those weights was not kept)
            query = _models_of(f"SELECT {row_for_weights('$fp')} FROM {_MODELS} WHERE name = "
                               "$name", con, schema)  # fmt: skip
            found = con.sql(query, params={"fp": fingerprint, "name": name}).to_arrow_table()
            out["models"] = found.cast(arrow_schema("models"))
            query = "SELECT * FROM history WHERE model_fingerprint = ?"
            out["history"] = (
                con.sql(query, params=[fingerprint]).to_arrow_table().cast(arrow_schema("history"))
            )
        except duckdb.Error as exc:
            raise explain(Path(db_path), exc, writing=False) from exc
    return out


class Merged(NamedTuple):
    """What :func:`merge_runs` did: run ids added, run ids already there with the same rows,
    and each model name whose current weights the import changed: name -> (fingerprint it
    stood for until now, fingerprint it stands for now)."""

    added: list[str]
    present: list[str]
    superseded: dict[str, tuple[str, str]]


def merge_runs(
    db_path: str | Path, runs: Sequence[tuple[str, dict[str, pa.Table]]],
    *, timeout_s: float | None = None,
) -> Merged:  # fmt: skip
    """Add exported runs (``(source, tables)`` each, tables as :func:`run_rows` gives them)
    in one transaction. A run id already there with other rows is a :class:`StoreError`
    naming its source, and nothing of the batch is written."""
    merged = Merged([], [], {})
    try:
        with connect(db_path, timeout_s=timeout_s) as con, _transaction(con):
            _ensure_schema(con, db_path)
            for source, tables in runs:
                run_id = tables["runs"].column("run_id")[0].as_py()
                if _same_run_there(con, run_id, tables, f"{source} -> {db_path}"):
                    merged.present.append(run_id)
                    continue
                for table in RUN_TABLES:
                    _insert_table(con, table, tables[table])
                _merge_model(con, tables, merged.superseded)
                merged.added.append(run_id)
    except duckdb.Error as exc:
        raise explain(Path(db_path), exc, writing=True, note=ROLLED_BACK) from exc
    return merged


def _same_run_there(
    con: duckdb.DuckDBPyConnection, run_id: str, tables: dict[str, pa.Table], source: str
) -> bool:
    """True when the run is already stored with the same rows; another run under its id is
    an error (two exports of different runs cannot share an id)."""
    for table in RUN_TABLES:
        query = f"SELECT * FROM {table} WHERE run_id = ?"
        there = con.sql(query, params=[run_id]).to_arrow_table()
        mine = tables[table]
        if table == "runs" and there.num_rows == 0:
            return False
        if sorted(map(str, there.cast(mine.schema).to_pylist())) != sorted(
            map(str, mine.to_pylist())
        ):
            raise StoreError(
                f"{source}: run {run_id} is already there with other {table} rows: two "
                "different runs share this id; nothing of this import was written"
            )
    return True


def _merge_model(
    con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table],
    superseded: dict[str, tuple[str, str]],
) -> None:  # fmt: skip
    """The model row of the (already inserted) run's name, by the rule of writes (the row of
    the name's latest run), and its training history unless those weights have one. An
    imported model is never the baseline: two databases may each have marked one (the
    baseline is chosen where runs are merged, with `evalsuite baseline`); this database's
    mark stays. A name whose current weights change is added to ``superseded``."""
    run = tables["runs"].to_pylist()[0]
    name, fingerprint = run["model_name"], run["model_fingerprint"]
    row = tables["models"]
    if row.num_rows != 1 or row["fingerprint"][0].as_py() != fingerprint:
        # an older export without its model row, or one describing other weights
        row = _arrow("models", [(name, fingerprint, *[None] * (len(_columns("models")) - 2))])
    row = row.set_column(row.schema.get_field_index("is_baseline"), "is_baseline",
                         pa.nulls(1, pa.bool_()))  # fmt: skip
    old, _ = settle_model(con, run, row, _now())
    if old is not None:
        superseded[name] = (superseded.get(name, (old,))[0], fingerprint)
    has_history = con.execute(
        "SELECT 1 FROM history WHERE model_fingerprint = ? LIMIT 1", [fingerprint]
    ).fetchall()
    if not has_history:
        _insert_table(con, "history", tables["history"])
