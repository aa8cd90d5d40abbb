"""A folder of exported runs read in place, as an in-memory database of views over their
Parquet files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from evalsuite.store.checks import StoreError
from evalsuite.store.identity import CURRENT
from evalsuite.store.schema import RUN_TABLES, SCHEMA_VERSION

# Exported runs read in place, as `evalsuite import` would merge them: one row per name, the
# one exported with its current weights' latest run, never marked as the baseline.
EXPORTED_MODELS = f"""SELECT m.* EXCLUDE (filename, folder) REPLACE (NULL::BOOLEAN AS
    is_baseline) FROM models_files m JOIN runs_files r ON r.folder = m.folder
    JOIN ({CURRENT}) c ON c.run_id = r.run_id"""


def is_export_folder(path: str | Path) -> bool:
    """A folder holding exported runs (``<run_id>/manifest.json`` at any depth)."""
    path = Path(path)
    return path.is_dir() and next(path.rglob("manifest.json"), None) is not None


@contextmanager
def exported(folder: Path) -> Iterator[duckdb.DuckDBPyConnection]:
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
