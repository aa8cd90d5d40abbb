"""Moving runs between files: every row of one run (what an export writes), and merging
exported runs into a database in one transaction (what `evalsuite import` does)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from evalsuite.store.checks import StoreError, check_schema, explain
from evalsuite.store.connection import ROLLED_BACK, connect, transaction
from evalsuite.store.identity import MODELS, models_of, row_for_weights, settle_model
from evalsuite.store.schema import (
    RUN_TABLES,
    SCHEMA_VERSION,
    arrow,
    arrow_schema,
    column_names,
    column_types,
    ensure_schema,
    now,
)
from evalsuite.store.write import insert_table


def run_rows(db_path: str | Path, run_id: str, *, timeout_s: float | None = None):
    """Every row of one run, per table (``models`` and ``history``: its model's), as Arrow
    tables of the current schema; None when no such run."""
    with connect(db_path, read_only=True, timeout_s=timeout_s) as con:
        try:
            schema = check_schema(con, Path(db_path), column_names(), SCHEMA_VERSION)
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
            query = models_of(f"SELECT {row_for_weights('$fp')} FROM {MODELS} WHERE name = "
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
        with connect(db_path, timeout_s=timeout_s) as con, transaction(con):
            ensure_schema(con, db_path)
            for source, tables in runs:
                run_id = tables["runs"].column("run_id")[0].as_py()
                if _same_run_there(con, run_id, tables, f"{source} -> {db_path}"):
                    merged.present.append(run_id)
                    continue
                for table in RUN_TABLES:
                    insert_table(con, table, tables[table])
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
        row = arrow("models", [(name, fingerprint, *[None] * (len(column_types("models")) - 2))])
    row = row.set_column(row.schema.get_field_index("is_baseline"), "is_baseline",
                         pa.nulls(1, pa.bool_()))  # fmt: skip
    old, _ = settle_model(con, run, row, now())
    if old is not None:
        superseded[name] = (superseded.get(name, (old,))[0], fingerprint)
    has_history = con.execute(
        "SELECT 1 FROM history WHERE model_fingerprint = ? LIMIT 1", [fingerprint]
    ).fetchall()
    if not has_history:
        insert_table(con, "history", tables["history"])
