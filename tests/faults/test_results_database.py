"""The results database (``--db``) when it is not what it should be: every reading and writing
command gives a message naming the file and the cause, within seconds, exit 2 (exit 1 means
"regression" to CI), and the file is left byte for byte as it was. Also: which model a name
picks in ``compare`` and the gate, and the leaderboard on a database without ranked lists.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from faultkit import run_script, write_benchmarks, write_images_csv
from test_store import T0, make_model, make_run

from evalsuite import store
from evalsuite.cli import main
from evalsuite.results import MetricValue, ModelInfo, Prediction, RunResult

BENCH = "colours"
FAST_S = 5.0  # "within a few seconds": no lock retries on a file that will never open


# ---------------------------------------------------------------- helpers


def good_db(path: Path) -> Path:
    store.write_run(path, make_run())
    return path


def state(path: Path) -> dict[str, tuple[int, bytes]]:
    """(mtime_ns, bytes) of every file in the database's folder: a WAL left behind, or a
    changed byte, shows."""
    folder = path.parent
    return {
        p.name: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.iterdir())
    }


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, float]:
    """(exit code, last stderr line, seconds) of one in-process `evalsuite` run."""
    start = time.monotonic()
    code = main(list(argv))
    seconds = time.monotonic() - start
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else "", seconds


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bench")
    csv = write_images_csv(work / "images", per_colour=2)
    return write_benchmarks(work / "benchmarks", csv, (BENCH,))


@pytest.fixture
def bench_dir(bench_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_root))
    return bench_root


def commands(db: Path, model: Path, tmp: Path) -> dict[str, list[str]]:
    """Reading and writing commands, each on ``db``."""
    return {
        "list": ["--db", str(db), "list", "models"],
        "compare": ["--db", str(db), "compare", "--baseline", "a", "--candidate", "b"],
        "report": ["--db", str(db), "report", "--out", str(tmp / "out")],
        "baseline": ["--db", str(db), "baseline", "o'clip"],
        "score": [
            "--db",
            str(db),
            "score",
            str(model),
            "--benchmarks",
            BENCH,
            "--workers",
            "0",
            "--bootstrap",
            "20",
            "--no-cache",
            "--json",
        ],
    }


# ---------------------------------------------------------------- item 9: broken files


def _text(db: Path) -> None:
    db.write_text("model,score\nbase,0.5\n")


def _zero(db: Path) -> None:
    db.write_bytes(b"")


def _truncated(db: Path) -> None:
    whole = good_db(db.with_name("whole.duckdb")).read_bytes()
    db.write_bytes(whole[: len(whole) // 3])
    db.with_name("whole.duckdb").unlink()


def _folder(db: Path) -> None:
    db.mkdir()
    (db / "keep.txt").write_text("a folder named like a database")


def _sql(*statements: str) -> Callable[[Path], None]:
    def build(db: Path) -> None:
        good_db(db)
        with duckdb.connect(str(db)) as con:
            for statement in statements:
                con.execute(statement)

    return build


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (builder, what the message says after the path)
    "text file": (_text, "it is not a DuckDB database file"),
    # DuckDB would refuse it too; an empty file is most likely a copy cut short, never reused
    "zero bytes": (_zero, "is an empty file (0 bytes)"),
    "truncated": (_truncated, "it is truncated or damaged"),
    "folder": (_folder, "is a folder, not a file"),
    "dropped column": (_sql("ALTER TABLE runs DROP COLUMN data_root"), "lacks runs.data_root"),
    "schema_version 0": (
        _sql("UPDATE schema_version SET version = 0"),
        "schema version 0 was never written by evalsuite",
    ),
    "schema_version empty": (_sql("DELETE FROM schema_version"), "records no schema version"),
    "schema_version missing": (_sql("DROP TABLE schema_version"), "records no schema version"),
    "another program's database": (
        lambda db: duckdb.connect(str(db)).execute("CREATE TABLE sales (x INT)").close(),
        "not an evalsuite results database (its tables: sales)",
    ),
}


@pytest.mark.parametrize("command", ["list", "compare", "report", "baseline", "score"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_unusable_database_names_file_and_cause_exit_2_file_unchanged(
    case: str, command: str, tmp_path: Path, tiny_hf_dir: Path, bench_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Reading (list, compare, report) and writing (baseline, score) commands alike. Schema
    version 0 or none, and a missing column, are refused rather than migrated: evalsuite never
    wrote version 0, and without a version the columns' meaning is a guess; a wrong guess is a
    silently wrong leaderboard. ``score`` refuses before scoring, not after minutes of work."""
    db = tmp_path / "db" / "results.duckdb"
    db.parent.mkdir()
    build, cause = BROKEN[case]
    build(db)
    before = state(db)
    code, error, seconds = cli(capsys, *commands(db, tiny_hf_dir, tmp_path)[command])
    assert code == 2, (code, error)
    assert error.startswith("error: ") and str(db) in error and cause in error, error
    assert seconds < FAST_S, f"{seconds:.1f} s: {error}"
    assert state(db) == before, "the database file (or its folder) was changed"


def _read_only(path: Path) -> Callable[[], None]:
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return lambda: path.chmod(mode)


@pytest.mark.parametrize("command", ["baseline", "score"])
@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_database_or_folder_refuses_writes_and_still_reads(
    what: str, command: str, tmp_path: Path, tiny_hf_dir: Path, bench_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The mode bits are checked, not only the OS's answer: root may write a read-only file,
    but whoever made it read-only meant "do not change it". Reading it stays allowed."""
    db = good_db(tmp_path / "db" / "results.duckdb")
    restore = _read_only(db if what == "file" else db.parent)
    try:
        before = state(db)
        code, error, seconds = cli(capsys, *commands(db, tiny_hf_dir, tmp_path)[command])
        assert code == 2 and str(db) in error and "read-only" in error, (code, error)
        assert seconds < FAST_S and state(db) == before
        assert store.list_models(db)["name"].tolist() == ["o'clip"]
    finally:
        restore()


DISK_FULL = """
    import os, resource, signal, sys
    from evalsuite import store
    from test_store import make_run
    db = sys.argv[1]
    size = os.path.getsize(db)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))  # no file may grow: a full disk
    try:
        store.write_run(db, make_run(benchmark="big", n_predictions=200_000))
    except store.StoreError as exc:
        print(exc)
        sys.exit(2)
"""


def test_full_disk_fails_at_once_naming_the_cause_and_keeps_the_database(tmp_path: Path) -> None:
    """Was: 30 s of retries ending in "write conflict" (the cleanup of the aborted
    transaction raised and hid the I/O error). Simulated with a file size limit: every write
    past the current size fails as on a full disk."""
    db = good_db(tmp_path / "db" / "results.duckdb")
    before = state(db)
    start = time.monotonic()
    child = run_script(DISK_FULL, str(db), timeout=120,
                       PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]),
                                                   str(Path(__file__).parents[1])]))  # fmt: skip
    seconds = time.monotonic() - start
    assert child.returncode == 2, child.stderr[-2000:]
    message = child.stdout.strip()
    assert message.startswith(f"cannot write results database {db}: "), message
    assert "disk full" in message and "rolled back" in message, message
    assert "conflict" not in message and seconds < 20, (seconds, message)
    after = state(db)
    assert after.pop(db.name) == before.pop(db.name)
    assert not [name for name, (_, data) in after.items() if data]  # at most an empty WAL
    assert store.list_runs(db)["benchmark"].tolist() == ["footwear"]


def test_version_1_database_is_migrated_on_write_and_read_as_is(tmp_path: Path) -> None:
    """The one older schema evalsuite wrote: it lacks query_values and models.is_baseline.
    Readers read it unchanged; the next write migrates it (v2 recorded)."""
    db = _v1(tmp_path / "v1.duckdb")
    before = db.read_bytes()
    assert store.list_models(db)["name"].tolist() == ["o'clip"]
    assert store.query_values(db, ["run-x"]).empty
    assert db.read_bytes() == before
    store.write_run(db, make_run(benchmark="b2"))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 3


def _v1(db: Path) -> Path:
    good_db(db)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE query_values")
        con.execute("ALTER TABLE models DROP COLUMN is_baseline")
        con.execute("UPDATE schema_version SET version = 1")
    return db


# ---------------------------------------------------------------- item 8: names and prefixes


def _scored(model: ModelInfo, hours: float, correct: int, benchmark: str = "shoes") -> RunResult:
    preds = [Prediction("colour", f"i{i}", "a", "a" if i < correct else "b", i < correct, 0.5, 1)
             for i in range(10)]  # fmt: skip
    return RunResult(
        model=model, benchmark=benchmark, benchmark_version="1", benchmark_hash="bh",
        data_manifest_hash="dh", data_root=None, code_version="t", device="cpu",
        precision="fp32", seconds=1.0, n_items=10, started_at=T0 + timedelta(hours=hours),
        metrics=[MetricValue("acc@1", correct / 10, task="colour")], predictions=preds,
        extra={"tasks": {"colour": {"type": "zeroshot"}}},
    )  # fmt: skip


NAMED_1 = make_model(name="1", fingerprint="aa11" + "0" * 16)
PREFIX_1 = make_model(name="other", fingerprint="1b22" + "0" * 16)
CAND = make_model(name="cand", fingerprint="cc33" + "0" * 16)
BASE_A = make_model(name="demo-base", fingerprint="dd44" + "0" * 16)
BASE_B = make_model(name="demo-base", fingerprint="ee55" + "0" * 16)  # re-scored, new weights
COPY_B = make_model(name="demo-copy", fingerprint="ee55" + "0" * 16)  # its weights, another name
SHARED = "'ee55' is the fingerprint prefix of 2 scored models: demo-base (ee5500000000), demo-copy"


def names_db(db: Path, benchmark: str = "shoes") -> Path:
    for hours, (model, correct) in enumerate(
        [(NAMED_1, 6), (PREFIX_1, 9), (CAND, 7), (BASE_A, 5), (BASE_B, 8), (COPY_B, 8)]
    ):
        store.write_run(db, _scored(model, hours, correct, benchmark))
    return db


def test_compare_baseline_name_wins_over_fingerprint_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = names_db(tmp_path / "r.duckdb")
    assert main(["--db", str(db), "compare", "--baseline", "1", "--candidate", "cand",
                 "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (out["baseline"], out["candidate"]) == ("1", "cand")
    assert out["metrics"][0]["baseline"] == pytest.approx(0.6)  # not "other"'s 0.9
    assert main(["--db", str(db), "compare", "--baseline", "1b", "--candidate", "cand",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["baseline"] == "other"  # a prefix still works


def test_a_name_rescored_with_other_weights_and_a_shared_fingerprint_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model is its name: "demo-base" re-scored with other weights is still one model, its
    current weights the latest (its earlier run kept, not current); a fingerprint prefix that
    two names' weights share is refused, naming both."""
    db = names_db(tmp_path / "r.duckdb")
    assert main(["--db", str(db), "compare", "--baseline", "demo-base", "--candidate", "cand",
                 "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"][0]["baseline"] == pytest.approx(0.8)  # ee55's run, not dd44's 0.5
    runs = store.list_runs(db, "demo-base").set_index("model_fingerprint")["current"]
    assert runs.to_dict() == {"ee55" + "0" * 16: True, "dd44" + "0" * 16: False}
    for flags in (["--baseline", "ee55", "--candidate", "cand"],
                  ["--baseline", "cand", "--candidate", "ee55"]):  # fmt: skip
        code, error, _ = cli(capsys, "--db", str(db), "compare", *flags)
        assert code == 2, error
        assert SHARED in error and "pick one by its name" in error, error


def test_report_and_baseline_take_the_same_rule_and_its_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --baseline` and `baseline` resolve a model as `compare` does: a name, else
    a fingerprint prefix of one model's weights; a prefix two names share is refused."""
    db = names_db(tmp_path / "r.duckdb")
    code, error, _ = cli(capsys, "--db", str(db), "report", "--baseline", "ee55",
                         "--out", str(tmp_path / "rep"))  # fmt: skip
    assert code == 2 and "'ee55' is the fingerprint prefix of 2 scored models" in error, error
    assert "demo-base" in error and "demo-copy" in error, error
    assert not (tmp_path / "rep").exists()
    code, error, _ = cli(capsys, "--db", str(db), "baseline", "ee55")
    assert code == 2 and SHARED in error, error
    assert main(["--db", str(db), "baseline", "demo-copy"]) == 0
    marked = store.list_models(db)
    assert marked.loc[marked["is_baseline"], "name"].tolist() == ["demo-copy"]
    assert main(["--db", str(db), "baseline", "1"]) == 0  # the model named "1", not a prefix
    marked = store.list_models(db)
    assert marked.loc[marked["is_baseline"], "name"].tolist() == ["1"]
    assert main(["--db", str(db), "report", "--baseline", "1b", "--out", str(tmp_path / "r2")]) == 0


def test_score_gate_uses_the_model_named_baseline_and_refuses_an_ambiguous_name(
    tmp_path: Path, tiny_hf_dir: Path, bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``score --baseline`` goes through the same rule as ``compare``."""
    db = names_db(tmp_path / "r.duckdb", benchmark=BENCH)
    base = ["--db", str(db), "score", str(tiny_hf_dir), "--name", "tiny", "--benchmarks", BENCH,
            "--workers", "0", "--bootstrap", "20", "--no-cache"]  # fmt: skip
    assert main([*base, "--baseline", "1"]) == 0
    out = capsys.readouterr().out
    assert "tiny against 1" in out and "against other" not in out, out
    runs_before = len(store.list_runs(db))
    code, error, _ = cli(capsys, *base, "--baseline", "ee55")
    assert code == 2 and SHARED in error and "pick one by its name" in error, error
    code, error, _ = cli(capsys, *base, "--baseline", "nobody")
    assert code == 2 and "no scored model named 'nobody'" in error, error
    # refused before scoring (which can take hours), so nothing was stored
    assert len(store.list_runs(db)) == runs_before


# ---------------------------------------------------------------- item 10: no retrievals table


def test_retrieval_page_without_retrievals_table_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB resolved the missing table to the Python function store.retrievals (a
    replacement scan) and the page showed its exception."""
    from streamlit.testing.v1 import AppTest

    db = good_db(tmp_path / "r.duckdb")
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE retrievals")
    assert store.queries(db, "run", "text_search").empty  # empty, not a DuckDB error
    monkeypatch.setenv("EVALSUITE_DB", str(db))
    app = Path(__file__).resolve().parents[2] / "dashboards" / "leaderboard.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.query_params["page"] = "Retrieval"
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert any("No retrieval results in this database" in i.value for i in at.info)


def test_store_connections_never_scan_python_variables(tmp_path: Path) -> None:
    db = good_db(tmp_path / "r.duckdb")
    sales = pd.DataFrame({"x": [1, 2]})  # noqa: F841 - DuckDB would read it as a table
    with store.connect(db, read_only=True) as con, pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM sales")
