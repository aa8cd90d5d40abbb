"""The results schema: its tables and keys, the DDL, the Arrow rows of bulk inserts, and
creating or migrating the tables of a database opened for writing.
Schema and example queries: docs/results-schema.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalsuite.store.checks import check_schema
from evalsuite.store.identity import models_by_name_select

# 2: per-query retrieval values (query_values) and the baseline mark (models.is_baseline),
# what paired comparisons need; a version-1 file gains both on its next write.
# 3: a model is the name the user gave it (models keyed by name); the fingerprint of its
# weights is provenance, kept per run. A v1/v2 file is migrated on its next write.
SCHEMA_VERSION = 3


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
RUN_TABLES = ("runs", *RUN_CHILDREN)  # a run's own rows; its model's rows travel with it
_ARROW = {"VARCHAR": pa.string(), "JSON": pa.string(), "DOUBLE": pa.float64(),
          "BIGINT": pa.int64(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_(),
          "TIMESTAMP": pa.timestamp("us")}  # fmt: skip


def column_types(table: str) -> list[tuple[str, str]]:
    """(name, base type) of each column of ``table``."""
    return [(col.split()[0], col.split()[1]) for col in TABLES[table].split(",")]


def column_names() -> dict[str, list[str]]:
    """Table -> its column names: the current schema, as :func:`check_schema` takes it."""
    return {table: [name for name, _ in column_types(table)] for table in TABLES}


def ddl() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({columns}"
        + (f", PRIMARY KEY ({KEYS[table]}))" if table in KEYS else ")")
        for table, columns in TABLES.items()
    ]


def arrow(table: str, rows: Sequence[Sequence[Any]]) -> pa.Table:
    columns = column_types(table)
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


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``'s rows (what an exported Parquet file must hold)."""
    return arrow(table, []).schema


def ensure_schema(con: duckdb.DuckDBPyConnection, path: str | Path = "") -> None:
    """Create the tables of a new database, migrate a v1 or v2 one; refuse any other schema."""
    found = check_schema(con, Path(path), column_names(), SCHEMA_VERSION).version
    for statement in ddl():
        con.execute(statement)
    # v1 -> v2: CREATE TABLE IF NOT EXISTS above added query_values; models gains a column.
    con.execute("ALTER TABLE models ADD COLUMN IF NOT EXISTS is_baseline BOOLEAN")
    if found is not None and found < 3:  # v2 -> v3: models keyed by name
        select = models_by_name_select(has_baseline=True)
        con.execute(f"CREATE TEMP TABLE models_v3 AS {select}")
        con.execute("DROP TABLE models")
        con.execute(ddl()[list(TABLES).index("models")])
        con.execute("INSERT INTO models BY NAME SELECT * FROM models_v3")
        con.execute("DROP TABLE models_v3")
    if found is None or found < SCHEMA_VERSION:
        con.execute("INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION, now()])


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
