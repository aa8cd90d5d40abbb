"""Portable run files: a scored run written as Parquet files, and merged into a database.

A CI job scores on a fresh machine, so its results database stays there; ``evalsuite score
--export DIR`` (or ``evalsuite export``) writes each run as a folder ``DIR/<run_id>/``
holding one Parquet file per table (the run's rows, and its model's row and training
history) and ``manifest.json`` (format, schema version, what the run is, each file's
sha256). ``evalsuite import`` merges such folders into a database in one transaction:
a run already there with the same rows is skipped (importing twice lands once), a run id
already there with other rows, a file that does not match its manifest (truncated), a
manifest of a newer schema, two exports of different runs under one id are errors naming
the file, and nothing of a failed batch is written. An export of an older schema is
upgraded on import: a table or column it did not have is read as empty.

Parquet is written and read with pyarrow; the SQL stays in :mod:`evalsuite.store`.
"""

from __future__ import annotations

import glob
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from evalsuite import store
from evalsuite.data.manifest import sha256_file
from evalsuite.store import StoreError

FORMAT = "evalsuite-run/1"
MANIFEST = "manifest.json"
TABLES = (*store.RUN_TABLES, "models", "history")


# --- export ---------------------------------------------------------------------------------


def export_runs(db_path: str | Path, run_ids: Iterable[str], out: Path) -> list[Path]:
    """Write each run as ``out/<run_id>/`` (replacing an earlier export of it); the folders."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run_id in run_ids:
        tables = store.run_rows(db_path, run_id)
        if tables is None:
            raise StoreError(f"{db_path}: no run {run_id!r} to export")
        written.append(write_run_folder(tables, out / run_id))
    return written


def write_run_folder(tables: dict[str, pa.Table], folder: Path) -> Path:
    """The tables and manifest into a temp folder, then swapped in as ``folder``."""
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for table in TABLES:
            pq.write_table(tables[table], temp / f"{table}.parquet")
        run = tables["runs"].to_pylist()[0]
        model = tables["models"].to_pylist()
        manifest = {
            "format": FORMAT,
            "schema_version": store.SCHEMA_VERSION,
            "run_id": run["run_id"],
            "model": model[0]["name"] if model else run["model_name"],
            "fingerprint": run["model_fingerprint"],
            "benchmark": run["benchmark"],
            "files": {f"{t}.parquet": sha256_file(temp / f"{t}.parquet") for t in TABLES},
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        temp.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        temp.rename(folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return folder


# --- import ---------------------------------------------------------------------------------


def find_run_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders named by ``paths``: a run folder or its manifest, a folder holding run
    folders at any depth, or a glob of either; sorted, each once."""
    found: set[Path] = set()
    for given in paths:
        text = str(given)
        pattern = glob.has_magic(text)
        matches = [Path(m) for m in glob.glob(text, recursive=True)] if pattern else [Path(text)]
        for path in matches:
            if path.name == MANIFEST and path.is_file():
                found.add(path.parent.resolve())
            elif path.is_dir():
                found.update(m.parent.resolve() for m in path.rglob(MANIFEST))
            elif not pattern:  # a glob may also match other files (the database itself)
                raise StoreError(f"{path}: no such run folder, manifest or folder of runs")
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise StoreError(f"{shown}: no exported runs found (no {MANIFEST} in it)")
    return sorted(found)


def read_run_folder(folder: Path) -> dict[str, pa.Table]:
    """The tables of one exported run, checked against its manifest and upgraded to the
    current schema; a :class:`StoreError` naming the file otherwise."""
    manifest = read_manifest(folder / MANIFEST)
    tables = {}
    for table in TABLES:
        file = folder / f"{table}.parquet"
        expected = manifest["files"].get(file.name)
        if expected is None:  # an older schema without this table
            tables[table] = store.arrow_schema(table).empty_table()
            continue
        if not file.is_file():
            raise StoreError(f"{file}: missing (listed in {folder / MANIFEST})")
        if sha256_file(file) != expected:
            raise StoreError(f"{file}: its bytes do not match {MANIFEST} (truncated or changed)")
        try:
            data = pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{file}: not a readable Parquet file ({exc})") from None
        tables[table] = upgrade(file, table, data)
    if tables["runs"].num_rows != 1 or tables["runs"]["run_id"][0].as_py() != manifest["run_id"]:
        raise StoreError(f"{folder / 'runs.parquet'}: expected the one run {manifest['run_id']}")
    return tables


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the run manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path}: not an exported run (format {FORMAT!r} expected)")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise StoreError(f"{path}: schema_version {version!r} is not a version number")
    if version > store.SCHEMA_VERSION:
        raise StoreError(
            f"{path}: exported with results schema version {version}, newer than this "
            f"evalsuite's {store.SCHEMA_VERSION}: upgrade evalsuite to import it"
        )
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("run_id"), str):
        raise StoreError(f"{path}: manifest lacks its run_id or files")
    return manifest


def upgrade(file: Path, table: str, data: pa.Table) -> pa.Table:
    """``data`` in the current schema of ``table``: a column it lacks (an older schema) is
    null; a column the schema does not know, or of another type, is an error."""
    schema = store.arrow_schema(table)
    unknown = sorted(set(data.column_names) - set(schema.names))
    if unknown:
        raise StoreError(f"{file}: columns {unknown} are not in table {table}")
    columns = [
        data[field.name] if field.name in data.column_names else pa.nulls(data.num_rows, field.type)
        for field in schema
    ]
    try:
        return pa.table(columns, names=schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise StoreError(f"{file}: a column of another type than table {table}'s ({exc})") from None


def import_runs(db_path: str | Path, paths: Sequence[str | Path]) -> store.Merged:
    """Merge the exported runs under ``paths`` into ``db_path`` in one transaction (run ids
    added, run ids already there, names whose current weights changed). See the module doc
    for what is refused."""
    batch: dict[str, tuple[str, dict[str, pa.Table]]] = {}
    for folder in find_run_folders(paths):
        tables = read_run_folder(folder)
        run_id = tables["runs"]["run_id"][0].as_py()
        if run_id in batch:
            first, seen = batch[run_id]
            if not all(seen[t].equals(tables[t]) for t in store.RUN_TABLES):
                raise StoreError(
                    f"{folder}: run {run_id} is also exported in {first} with other rows: two "
                    "different runs share this id; nothing was imported"
                )
            continue
        batch[run_id] = (str(folder), tables)
    return store.merge_runs(db_path, list(batch.values()))
