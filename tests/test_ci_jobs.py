"""Results from many machines on one leaderboard (issue 17), end to end: three separate "CI
jobs" (subprocesses, each with its own empty database and embedding cache) score one model
each and export their runs into one artifacts folder; the leaderboard reads that folder in
place and shows all three; `evalsuite import` of the folder gives the same rows as scoring
the three models into one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from faults.faultkit import write_benchmarks, write_images_csv

from evalsuite import store
from evalsuite.cli import main
from evalsuite.store.schema import column_types
from testkit.tiny import build_tiny_hf

ROOT = Path(__file__).resolve().parents[1]
BENCH = "colours"
NAMES = ("FashionCLIP", "shoes-ft-a", "shoes-ft-b")
# what differs between two scorings of the same model on the same data: ids and clocks
VOLATILE = {"run_id", "seconds", "started_at", "finished_at", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three models scored by three subprocesses, each exporting into ``artifacts``."""
    work = tmp_path_factory.mktemp("ci")
    csv = write_images_csv(work / "images", per_colour=2)
    benchmarks = write_benchmarks(work / "benchmarks", csv, (BENCH,))
    models = {name: build_tiny_hf(work / "models" / name, seed=i) for i, name in enumerate(NAMES)}
    env = {**os.environ, "EVALSUITE_BENCHMARKS_DIR": str(benchmarks)}
    procs = []
    for name, model in models.items():
        job = work / f"job-{name}"  # a fresh runner: its own disk, database and cache
        job.mkdir()
        argv = [sys.executable, "-m", "evalsuite", "--db", str(job / "results.duckdb"), "score",
                str(model), "--name", name, "--benchmarks", BENCH, "--workers", "0",
                "--bootstrap", "20", "--cache-dir", str(job / "cache"),
                "--export", str(work / "artifacts")]  # fmt: skip
        job_env = {**env, "HOME": str(job)}
        pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        procs.append(subprocess.Popen(argv, env=job_env, cwd=ROOT, **pipe))
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()
    return {"work": work, "artifacts": work / "artifacts", "benchmarks": benchmarks, **models}


def comparable_rows(db: Path) -> dict[str, list]:
    """Every table's rows, a run named by (model, benchmark) instead of its id, without the
    columns that record when it ran; sorted, as text."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in store.TABLES:
            if table == "schema_version":
                continue
            columns = [c for c, _ in column_types(table) if c not in VOLATILE]
            key = "" if table in ("models", "history", "runs") else "r.model_name, r.benchmark, "
            join = " JOIN runs r USING (run_id)" if key else ""
            select = ", ".join(f"t.{c}" for c in columns)
            rows = con.execute(f"SELECT {key}{select} FROM {table} t{join}").fetchall()
            out[table] = sorted(map(str, rows))
    return out


def test_three_jobs_export_and_the_folder_is_one_leaderboard(
    jobs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    artifacts = jobs["artifacts"]
    assert len(list(artifacts.glob("*/manifest.json"))) == 3
    assert set(store.list_models(artifacts)["name"]) == set(NAMES)  # read in place
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(jobs["benchmarks"]))
    together = tmp_path / "together.duckdb"  # the same three, scored on one machine
    for name in NAMES:
        assert main(["--db", str(together), "score", str(jobs[name]), "--name", name,
                     "--benchmarks", BENCH, "--workers", "0", "--bootstrap", "20",
                     "--cache-dir", str(tmp_path / "cache")]) == 0  # fmt: skip
    merged = tmp_path / "merged.duckdb"
    assert main(["--db", str(merged), "import", str(artifacts)]) == 0
    assert comparable_rows(merged) == comparable_rows(together)
    assert main(["--db", str(merged), "import", str(artifacts / "*")]) == 0  # lands once
    assert "imported 0 run(s)" in capsys.readouterr().out
    assert len(store.list_runs(merged)) == 3

    verdicts = []
    for results in (artifacts, merged):  # every reader takes the folder or the database
        assert main(["--results", str(results), "compare", "--baseline", "FashionCLIP",
                     "--candidate", "shoes-ft-a", "--json"]) in (0, 1)  # fmt: skip
        verdicts.append(json.loads(capsys.readouterr().out)["metrics"])
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) > 2

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(artifacts))
    at = AppTest.from_file(str(ROOT / "dashboards" / "leaderboard.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    shown = " ".join(str(frame.value.to_csv()) for frame in at.dataframe)
    shown += " ".join(str(m.value) for m in at.markdown)
    for name in NAMES:
        assert name in shown, name
