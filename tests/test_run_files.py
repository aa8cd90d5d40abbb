"""Portable run files (issue 17, first step): runs exported as Parquet folders merge into
another database with every row unchanged, once however often they are imported, and bad
exports are refused naming the file with nothing of the batch written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.data.manifest import sha256_file
from evalsuite.run_files import MANIFEST, export_runs, import_runs
from evalsuite.store import StoreError
from tests.fixtures.leaderboard_sample import write_sample_results


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scored")
    write_sample_results(folder / "results.duckdb", folder / "data")
    return folder / "results.duckdb"


def all_rows(db: Path) -> dict[str, list]:
    """Every row of every table but schema_version, sorted, as text."""
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            table: sorted(map(str, con.execute(f"SELECT * FROM {table}").fetchall()))
            for table in store.TABLES
            if table != "schema_version"
        }


def run_ids(db: Path) -> list[str]:
    return list(store.list_runs(db)["run_id"])


def test_export_then_import_gives_the_same_rows_once(scored: Path, tmp_path: Path) -> None:
    store.mark_baseline(scored, store.list_models(scored)["name"].iloc[0])
    folders = export_runs(scored, run_ids(scored), tmp_path / "runs")
    assert len(folders) == len(run_ids(scored)) and all((f / MANIFEST).is_file() for f in folders)
    merged = tmp_path / "merged.duckdb"
    added, present, superseded = import_runs(merged, [tmp_path / "runs"])
    assert sorted(added) == sorted(run_ids(scored)) and present == [] and superseded == {}
    before = all_rows(merged)
    want = all_rows(scored)
    for table in want:
        if table == "models":  # created_at / updated_at: when the row was first written
            continue
        assert before[table] == want[table], table
    assert len(before["models"]) == len(want["models"])
    baselines = store.list_models(merged)["is_baseline"]
    assert not baselines.fillna(False).any()  # chosen here: `evalsuite baseline NAME`
    again = import_runs(merged, [str(tmp_path / "*")])  # a glob, also matching merged.duckdb
    assert again == ([], sorted(run_ids(scored)), {})
    assert all_rows(merged) == before


def test_cli_export_and_import(scored: Path, tmp_path: Path, capsys) -> None:
    name = store.list_models(scored)["name"].iloc[0]
    assert main(["--db", str(scored), "export", name, str(tmp_path / "out")]) == 0
    assert main(["--db", str(tmp_path / "m.duckdb"), "import", str(tmp_path / "out")]) == 0
    assert "imported" in capsys.readouterr().out
    assert set(store.list_runs(tmp_path / "m.duckdb")["model_name"]) == {name}


def one_export(scored: Path, folder: Path) -> Path:
    return export_runs(scored, run_ids(scored)[:1], folder)[0]


def test_a_truncated_parquet_file_is_refused_naming_it(scored: Path, tmp_path: Path) -> None:
    good = export_runs(scored, run_ids(scored)[1:3], tmp_path / "runs")
    bad = good[1] / "metrics.parquet"
    bad.write_bytes(bad.read_bytes()[:40])
    merged = tmp_path / "merged.duckdb"
    with pytest.raises(StoreError, match=str(bad)):
        import_runs(merged, [tmp_path / "runs"])
    assert not merged.exists()  # nothing of the batch: not even the good run


def test_a_newer_schema_is_refused(scored: Path, tmp_path: Path) -> None:
    folder = one_export(scored, tmp_path / "runs")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["schema_version"] = store.SCHEMA_VERSION + 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"newer than this evalsuite's .*upgrade evalsuite"):
        import_runs(tmp_path / "merged.duckdb", [folder])


def test_two_different_runs_under_one_id_are_refused(scored: Path, tmp_path: Path) -> None:
    first = one_export(scored, tmp_path / "a")
    second = tmp_path / "b" / first.name
    shutil.copytree(first, second)
    other = export_runs(scored, run_ids(scored)[1:2], tmp_path / "c")[0]
    for table in ("metrics", "class_metrics", "confusion"):  # another run's rows, first's id
        data = pq.read_table(other / f"{table}.parquet")
        ids = pa.array([first.name] * data.num_rows, pa.string())
        pq.write_table(data.set_column(0, "run_id", ids), second / f"{table}.parquet")

    manifest = json.loads((second / MANIFEST).read_text())
    manifest["files"] = {name: sha256_file(second / name) for name in manifest["files"]}
    (second / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="two different runs share this id"):
        import_runs(tmp_path / "merged.duckdb", [tmp_path / "a", tmp_path / "b"])
    merged = tmp_path / "merged.duckdb"
    import_runs(merged, [tmp_path / "a"])
    with pytest.raises(StoreError, match="already there with other"):
        import_runs(merged, [tmp_path / "b"])
    assert len(store.list_runs(merged)) == 1


def test_a_folder_without_runs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no exported runs found"):
        import_runs(tmp_path / "merged.duckdb", [tmp_path / "empty"])


def test_an_export_of_an_older_schema_is_upgraded(scored: Path, tmp_path: Path) -> None:
    """A version-1 export had no query_values table and no models.is_baseline column."""
    folder = one_export(scored, tmp_path / "runs")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["schema_version"] = 1
    del manifest["files"]["query_values.parquet"]
    (folder / "query_values.parquet").unlink()
    models = pq.read_table(folder / "models.parquet").drop_columns(["is_baseline"])
    pq.write_table(models, folder / "models.parquet")
    manifest["files"]["models.parquet"] = sha256_file(folder / "models.parquet")
    (folder / MANIFEST).write_text(json.dumps(manifest))
    merged = tmp_path / "merged.duckdb"
    assert import_runs(merged, [folder])[0] == [folder.name]
    assert store.list_models(merged)["is_baseline"].isna().all()


@pytest.mark.slow
def test_ci_jobs_export_and_import_equals_scoring_into_one_database(
    tiny_hf_dir: Path, tiny_open_clip_dir: Path, shared_data: Path, fmnist_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Two "CI jobs", each with its own database, score a model and export; importing both
    exports gives the rows of scoring both models into one database."""
    common = ["--benchmarks", "fmnist", "--data-root", str(shared_data), "--bootstrap", "100"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    models = {"base": tiny_hf_dir, "other": tiny_open_clip_dir}
    for name, model in models.items():
        job = ["--db", str(tmp_path / f"job-{name}.duckdb"), "score", str(model), "--name", name]
        assert main([*job, "--export", str(tmp_path / "artifacts" / name), *common]) == 0
        one = ["--db", str(tmp_path / "one.duckdb"), "score", str(model), "--name", name]
        assert main([*one, *common]) == 0
    merged = tmp_path / "merged.duckdb"
    assert main(["--db", str(merged), "import", str(tmp_path / "artifacts" / "*")]) == 0
    columns = ["model_name", "benchmark", "task", "metric", "value", "ci_low", "ci_high"]
    got, want = (
        store.latest_metrics(db)[columns].sort_values(columns[:4]).reset_index(drop=True)
        for db in (merged, tmp_path / "one.duckdb")
    )
    assert len(got) > 10 and set(got["model_name"]) == set(models)
    assert got.equals(want)


def test_readers_take_a_folder_of_exports_in_place(scored: Path, tmp_path: Path, capsys) -> None:
    """`list` and `compare` read a folder of exported runs as they read the database the
    runs came from (DuckDB reads the Parquet files in place; nothing is imported)."""
    export_runs(scored, run_ids(scored), tmp_path / "artifacts" / "job")
    models = store.list_models(scored)
    base, tuned = models["name"].iloc[0], models["name"].iloc[1]
    for source in (scored, tmp_path / "artifacts"):
        got = store.latest_metrics(source).sort_values(
            ["model_name", "benchmark", "task", "metric"]
        )
        if source == scored:
            want = got.reset_index(drop=True)
        else:
            assert got.reset_index(drop=True).equals(want)
    outputs = []
    for source in (scored, tmp_path / "artifacts"):
        pair = ["--results", str(source), "compare", "--baseline", base, "--candidate", tuned]
        main([*pair, "--json"])
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0]
    assert not (tmp_path / "artifacts" / "results.duckdb").exists()
    (tmp_path / "empty").mkdir()
    assert main(["--results", str(tmp_path / "empty"), "list", "runs"]) == 2
    assert "holds no exported runs" in capsys.readouterr().err
