"""Which weights a model name stands for: the SQL of model identity (results schema v3).

A model is the name it was scored under; the fingerprint of its weights is provenance, kept
per run. A name's *current* weights are those of its latest run (an ``ok`` run before any
other, then by ``started_at``, then ``run_id``); runs of its earlier weights are kept and shown
by no latest-run view. The one definition serves the latest-run views, writes and imports
(which model row a name keeps: the one of its latest run) and the v2 -> v3 migration.
Only :mod:`evalsuite.store` calls this module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from evalsuite.store.checks import Schema

# The order that picks a name's latest run; a NULL start sorts first, never "latest".
_LATEST = "(status = 'ok', coalesce(started_at, TIMESTAMP '0001-01-01'), run_id)"
# Per name: its current weights and its latest run.
CURRENT = f"""SELECT model_name, arg_max(model_fingerprint, {_LATEST}) AS fingerprint,
    arg_max(run_id, {_LATEST}) AS run_id FROM runs GROUP BY model_name"""
# The runs of each model's current weights.
CURRENT_RUNS = f"""SELECT r.* FROM runs r JOIN ({CURRENT}) c ON c.model_name = r.model_name
    AND c.fingerprint = r.model_fingerprint"""
# Model columns that describe particular weights (a spec, a training log), not the name.
# The runs that --skip-existing skips and write_run(replace=True) replaces: the same model
# (name) with the same weights on the same benchmark and data.
SAME_RUN = ("model_name = ? AND model_fingerprint = ? AND benchmark = ? AND benchmark_hash IS NOT "
         "DISTINCT FROM ? AND data_manifest_hash IS NOT DISTINCT FROM ?")  # fmt: skip
MODELS = "__MODELS__"  # in reader SQL: the v3 models rows, whatever the file's version
WEIGHTS_COLUMNS = ("spec", "backend", "base_model", "base_fingerprint", "parameter_count",
                   "training")  # fmt: skip


class Written(NamedTuple):
    """What storing a run changed besides adding it, for the user to be told.

    ``replaced``: run ids of the same model, weights, benchmark and data it replaced;
    ``superseded``: the fingerprint of the weights the name stood for until now, when other
    (their runs are kept, no longer current); ``history``: the run is of weights that are not
    the name's current ones (it started before the name's latest run), so no view shows it.
    """

    replaced: tuple[str, ...] = ()
    superseded: str | None = None
    history: bool = False


def models_by_name_select(has_baseline: bool) -> str:
    """The v3 ``models`` rows of a v1/v2 database, whose ``models`` was keyed by fingerprint:
    scoring some weights under a second name took over the first name's row and runs. One row
    per name runs were scored under, with its current weights; the columns that describe the
    weights come from the v2 row only when that row carried this name (else NULL: unknown, not
    another name's spec or training); the baseline mark stays with the names marked rows
    carried. Models without runs are kept."""
    marked = ("n.name IN (SELECT name FROM models WHERE is_baseline AND name IS NOT NULL)"
              if has_baseline else "false")  # fmt: skip
    own = ", ".join(f"own.{c}" for c in ("spec", "base_model", "base_fingerprint", "training"))
    return f"""WITH n AS (SELECT model_name AS name, arg_max(model_fingerprint, {_LATEST})
            AS fingerprint FROM runs WHERE model_name IS NOT NULL GROUP BY model_name)
        SELECT n.name, n.fingerprint, {own}, w.backend, w.parameter_count,
            coalesce(own.created_at, w.created_at) AS created_at,
            coalesce(own.updated_at, w.updated_at) AS updated_at, {marked} AS is_baseline
        FROM n LEFT JOIN models own ON own.fingerprint = n.fingerprint AND own.name = n.name
        LEFT JOIN models w ON w.fingerprint = n.fingerprint
        QUALIFY row_number() OVER (PARTITION BY n.name ORDER BY own.name NULLS LAST) = 1
        UNION ALL BY NAME
        SELECT *{"" if has_baseline else ", false AS is_baseline"} FROM models
        WHERE name IS NOT NULL
            AND name NOT IN (SELECT model_name FROM runs WHERE model_name IS NOT NULL)
            AND fingerprint NOT IN (SELECT model_fingerprint FROM runs
                                    WHERE model_fingerprint IS NOT NULL)
        QUALIFY row_number() OVER (PARTITION BY name ORDER BY updated_at DESC) = 1"""


def row_for_weights(fingerprint_param: str = "?") -> str:
    """SELECT list of a model row stating the weights of a run (``fingerprint_param``): the
    row's own columns when they are those weights, else NULL for what describes weights."""
    kept = ", ".join(
        f"CASE WHEN fingerprint = {fingerprint_param} THEN {c} END AS {c}" for c in WEIGHTS_COLUMNS
    )
    return f"* REPLACE ({fingerprint_param} AS fingerprint, {kept})"


def settle_model(
    con: duckdb.DuckDBPyConnection, run: dict[str, Any], row: pa.Table, now: Any
) -> tuple[str | None, bool]:
    """After ``run`` (its ``runs`` row, already inserted) was stored: make the name's model
    row ``row`` (one row, as the run's model described itself) when the run is the name's
    latest, keeping the baseline mark and first-write time there; a missing training log
    of the same weights keeps the stored one. Returns (the fingerprint the name stood for
    until now when other, whether the run is of weights that are not current)."""
    name, fingerprint = run["model_name"], run["model_fingerprint"]
    latest = con.execute(
        f"SELECT fingerprint, run_id FROM ({CURRENT}) WHERE model_name = ?", [name]
    ).fetchall()
    there = con.execute(
        "SELECT fingerprint, is_baseline, created_at, training FROM models WHERE name = ?", [name]
    ).fetchall()
    history = bool(latest) and latest[0][0] != fingerprint
    if there and latest and latest[0][1] != run["run_id"]:
        return None, history  # an older run: the row describes the latest run's weights
    old = there[0] if there else (None, None, None, None)
    con.register("_evalsuite_model", row)
    try:
        con.execute("DELETE FROM models WHERE name = ?", [name])
        con.execute(
            "INSERT INTO models SELECT * REPLACE (?::VARCHAR AS name, ?::BOOLEAN AS is_baseline, "
            "coalesce(?::TIMESTAMP, created_at) AS created_at, ?::TIMESTAMP AS updated_at, "
            "coalesce(training, ?::JSON) AS training) FROM _evalsuite_model",
            [name, old[1], old[2], now, old[3] if old[0] == fingerprint else None],
        )
    finally:
        con.unregister("_evalsuite_model")
    return (old[0] if old[0] not in (None, fingerprint) else None), history


def models_of(sql: str, con: duckdb.DuckDBPyConnection, schema: Schema) -> str:
    """``sql`` reading v3 ``models`` rows: a v1/v2 file (readers never migrate) is read
    through the migration's SELECT, so its names mean what they will after the next write."""
    if MODELS not in sql:
        return sql
    if schema.version is None or schema.version >= 3:
        return sql.replace(MODELS, "models")
    has_baseline = "is_baseline" in {
        r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                  "'models' AND schema_name = 'main'").fetchall()
    }  # fmt: skip
    return sql.replace(MODELS, f"({models_by_name_select(has_baseline)})")
