"""Is this path a results database we may read or write? Checks before DuckDB touches the file,
the schema check after it is open, and DuckDB's errors turned into messages naming the file
and the cause. The CLI prints a :class:`StoreError` and exits 2 (exit 1 means "regression").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

import duckdb

from evalsuite.errors import EvalSuiteError

# Columns schema v2 added to existing tables (it also added the query_values table): a
# version-1 file lacks them, and writing migrates it.
ADDED_IN_V2: dict[str, tuple[str, ...]] = {"models": ("is_baseline",)}
# (marker in DuckDB's message, the cause in words)
_CAUSES = (
    ("not a valid duckdb database", "it is not a DuckDB database file"),
    ("could not read enough bytes", "it is truncated or damaged"),
    ("corrupt", "it is damaged"),
    ("checksum", "it is damaged (checksum mismatch)"),
    ("no space left", "the disk is full"),
    ("file too large", "the file cannot grow (disk full or file size limit)"),
    ("read-only file system", "the file system is read-only"),
    ("permission denied", "permission denied"),
)


class Schema(NamedTuple):
    """What :func:`check_schema` found: the version (None: a database without any table) and
    the tables present, so a reader need not ask DuckDB again."""

    version: int | None
    tables: frozenset[str]


class StoreError(EvalSuiteError):
    """The results database cannot be used as asked."""


class StoreBusyError(StoreError):
    """Another process kept the database locked for longer than the timeout."""


class StoreMissingError(StoreError):
    """A read was asked of a results database that does not exist yet."""


def _read_only_mode(path: Path) -> bool:
    """No write permission bit at all, or no access for this user. Checked by the mode bits
    too: root may write anyway, but a file or folder made read-only says "do not modify"."""
    return not os.access(path, os.W_OK) or not path.stat().st_mode & (
        stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    )


def check_path(path: Path, read_only: bool) -> None:
    """Refuse, before DuckDB opens it, a path that cannot hold a results database as asked."""
    if path.is_dir():
        raise StoreError(
            f"results database {path} is a folder, not a file, and holds no exported runs: "
            f"pass a file path such as {path / 'results.duckdb'}"
        )
    if path.is_file() and path.stat().st_size == 0:
        # DuckDB refuses it anyway; an empty file is most likely a copy or download cut short
        # (or a results file emptied by mistake), so it is never silently made a new database.
        raise StoreError(
            f"results database {path} is an empty file (0 bytes), not a DuckDB database: "
            "restore it, or delete it to start a new database; it was left as it is"
        )
    if read_only:
        return
    if path.is_file() and _read_only_mode(path):
        raise StoreError(
            f"results database {path} is read-only: nothing was written; make it writable "
            f"(chmod u+w {path}) or pass another --db"
        )
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if folder is not None and folder.is_dir() and _read_only_mode(folder):
        raise StoreError(
            f"cannot write results database {path}: folder {folder} is read-only (DuckDB "
            "creates the file and its write-ahead log there); nothing was written"
        )


def explain(path: Path, exc: Exception, writing: bool, note: str = "") -> StoreError:
    """A DuckDB or OS error on ``path`` as a StoreError naming the file and the cause;
    ``note`` says what became of the file (e.g. "the write was rolled back")."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    cause = next((c for marker, c in _CAUSES if marker in text.lower()), None)
    cause = f"DuckDB: {first}" if cause is None else f"{cause} (DuckDB: {first})"
    what = "cannot write" if writing else "cannot read"
    if writing and not note:
        note = "nothing was written"
    return StoreError(f"{what} results database {path}: {cause}" + (f"; {note}" if note else ""))


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = 'main'"
    ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def check_schema(
    con: duckdb.DuckDBPyConnection, path: Path, tables: dict[str, list[str]], newest: int
) -> Schema:
    """The schema of an evalsuite database (version None for one without any table, which
    writers initialise and readers see as empty); refuses any other database.

    ``tables``: the current schema, table -> column names. A missing or empty schema_version,
    version 0 (never written by evalsuite) or a missing column other than what a known older
    version lacks is refused, not guessed: its rows could mean something else. A missing
    table holds no rows (readers see it empty, writers create it).
    """
    found = _columns(con)
    if not found:
        return Schema(None, frozenset())
    if not set(found) & set(tables):
        raise StoreError(
            f"{path} is a DuckDB database but not an evalsuite results database (its tables: "
            f"{', '.join(sorted(found))}); pass another --db"
        )
    rows = (
        con.execute("SELECT max(version) FROM schema_version").fetchone()
        if "schema_version" in found
        else None
    )
    version = rows[0] if rows else None
    if version is None:
        raise StoreError(
            f"results database {path} records no schema version (table schema_version is "
            "missing or empty), so its columns cannot be trusted; it was left as it is: "
            "re-score into a new --db"
        )
    if version > newest:
        raise StoreError(
            f"results database {path}: schema v{version} is newer than this evalsuite "
            f"(v{newest}); upgrade evalsuite"
        )
    if version < 1:
        raise StoreError(
            f"results database {path}: schema version {version} was never written by "
            "evalsuite (versions start at 1); it was left as it is: re-score into a new --db"
        )
    missing = []
    for table in set(tables) & set(found):  # a missing table holds no rows: read as empty
        added = (ADDED_IN_V2.get(table) or ()) if version < 2 else ()
        gone = [c for c in tables[table] if c not in found[table] and c not in added]
        missing += [f"{table}.{c}" for c in gone]
    if missing:
        raise StoreError(
            f"results database {path} (schema v{version}) lacks {', '.join(sorted(missing))}: "
            "it was edited or written by another program; it was left as it is"
        )
    return Schema(int(version), frozenset(found))
