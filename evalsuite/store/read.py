"""Read queries of the results database (or of a folder of exported runs, read in place):
each opens a read-only connection, runs one parameterised query and closes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from evalsuite.store.checks import check_schema, explain
from evalsuite.store.connection import connect
from evalsuite.store.exported import exported, is_export_folder
from evalsuite.store.identity import CURRENT_RUNS, MODELS, SAME_RUN, models_of
from evalsuite.store.schema import JSON_COLUMNS, SCHEMA_VERSION, column_names, ddl


def _read(
    db_path: str | Path, sql: str, params: Sequence[Any] = (), timeout_s: float | None = None,
    tables: Sequence[str] = ("runs",),
) -> pd.DataFrame:  # fmt: skip
    """Run one parameterised query read-only; a database without ``tables`` (empty, or of an
    older schema: readers never migrate) gives empty frames with the current columns."""
    frame = None
    opened = (
        exported(Path(db_path))
        if is_export_folder(db_path)
        else connect(db_path, read_only=True, timeout_s=timeout_s)
    )
    with opened as con:
        try:  # a foreign or damaged schema is refused, never read as if it were ours
            schema = check_schema(con, Path(db_path), column_names(), SCHEMA_VERSION)
            if schema.version is not None and schema.tables >= set(tables):
                frame = con.execute(models_of(sql, con, schema), list(params)).fetchdf()
        except duckdb.Error as exc:
            raise explain(Path(db_path), exc, writing=False) from exc
    if frame is None:  # same query on an empty in-memory schema: the right (empty) columns
        with duckdb.connect(":memory:") as empty:
            empty.execute("SET python_enable_replacements = false")
            for statement in ddl():
                empty.execute(statement)
            frame = empty.execute(sql.replace(MODELS, "models"), list(params)).fetchdf()
    for column in JSON_COLUMNS:
        if column in frame.columns:
            frame[column] = [json.loads(v) if isinstance(v, str) else v for v in frame[column]]
    return frame


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
        f"SELECT count(*) AS n FROM ({CURRENT_RUNS}) WHERE {SAME_RUN} AND status = 'ok'",
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
