"""Short-lived connections to a results database, opened with lock retry, and transactions.

DuckDB lets one process write a file at a time, and a writer also locks out read-only openers
in other processes. So every operation opens its own connection and closes it at once, and
opening retries with backoff while another process holds the lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from evalsuite.preflight import DEFAULT_DB, missing_results
from evalsuite.store.checks import (
    StoreBusyError,
    StoreError,
    StoreMissingError,
    check_path,
    explain,
)

WRITE_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 5.0
# Readers poll a held lock often: with two writers taking turns the free gaps are short.
MAX_READ_POLL_S = 0.05
ROLLED_BACK = "the write was rolled back, the file is as it was"
_BUSY_MARKERS = (
    "could not set lock",  # another process holds the file lock
    "conflicting lock",
    "different configuration",  # this process has it open with the other read_only flag
    "unique file handle conflict",  # two threads of this process opening it at once
)


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


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (tolerating one DuckDB already aborted)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
