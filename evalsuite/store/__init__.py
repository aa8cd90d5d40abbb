"""The results database: DuckDB schema, atomic writes with lock retry, read queries.

Only this package talks to DuckDB. Every operation opens its own short-lived connection
(:mod:`.connection`, retried while another process holds the lock) and closes it at once;
each ``write_run`` is one transaction (:mod:`.write`), so a failure or a killed process
leaves the file as it was. :mod:`.read` holds the read queries, :mod:`.merge` the export and
import of runs, :mod:`.schema` the tables, :mod:`.identity` which weights a model name stands
for, :mod:`.checks` the refusals and error messages. Callers use the names below
(``from evalsuite import store``; ``store.write_run(...)``).
Schema and example queries: docs/results-schema.md.
"""

from evalsuite.preflight import DEFAULT_DB
from evalsuite.store.checks import StoreBusyError, StoreError, StoreMissingError
from evalsuite.store.connection import READ_TIMEOUT_S, WRITE_TIMEOUT_S, connect
from evalsuite.store.exported import is_export_folder
from evalsuite.store.identity import Written
from evalsuite.store.merge import Merged, merge_runs, run_rows
from evalsuite.store.read import (
    class_metrics,
    confusion,
    data_roots,
    history,
    item_predictions,
    latest_metrics,
    list_models,
    list_runs,
    metrics_table,
    predictions,
    queries,
    query_values,
    retrievals,
    run_exists,
    skipped_images,
)
from evalsuite.store.schema import RUN_TABLES, SCHEMA_VERSION, TABLES, arrow_schema
from evalsuite.store.write import check_writable, mark_baseline, write_run

__all__ = [
    "DEFAULT_DB",
    "READ_TIMEOUT_S",
    "RUN_TABLES",
    "SCHEMA_VERSION",
    "TABLES",
    "WRITE_TIMEOUT_S",
    "Merged",
    "StoreBusyError",
    "StoreError",
    "StoreMissingError",
    "Written",
    "arrow_schema",
    "check_writable",
    "class_metrics",
    "confusion",
    "connect",
    "data_roots",
    "history",
    "is_export_folder",
    "item_predictions",
    "latest_metrics",
    "list_models",
    "list_runs",
    "mark_baseline",
    "merge_runs",
    "metrics_table",
    "predictions",
    "queries",
    "query_values",
    "retrievals",
    "run_exists",
    "run_rows",
    "skipped_images",
    "write_run",
]
