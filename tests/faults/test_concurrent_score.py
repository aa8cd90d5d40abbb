"""Two `evalsuite score` processes write one database at once while the leaderboard's reads
loop on it: every run lands, no lock error reaches a user, and the file stays valid.

Each writer holds its transaction open a little longer than it needs (a sleep after the
inserts, before COMMIT), so the two writers and the reader really wait on each other's lock
instead of passing by chance (their waits are printed and checked). The reader calls the
store functions the leaderboard calls, with the leaderboard's read timeout; a read that times
out is what the leaderboard turns into its "being written" notice over the last data read
(tests/test_leaderboard_app.py::test_busy_database_shows_a_notice_not_an_error), so it is
counted, not failed. Any other error fails the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from faultkit import ROOT, child_env, score_args, table_counts, write_benchmarks, write_images_csv

from evalsuite import store
from testkit.tiny import build_tiny_hf

BENCHMARKS = ("one", "two", "three")
HOSTILE_NAME = "x'); DROP TABLE runs; --\"🙂"  # stored verbatim: every value is a parameter
# What a user would see if a lock conflict escaped the store's retries.
LOCK_ERROR = re.compile(r"Traceback|could not set lock|conflicting lock|locked by another|Busy")
LEADERBOARD_READ_TIMEOUT_S = 3.0  # dashboards/reading.py READ_TIMEOUT_S
SLOW_WRITER = """
import sys, time
from evalsuite import store
from evalsuite.store import write as store_write
real_write, real_write_run = store_write._write, store.write_run
asked = []

def write(*args, **kwargs):
    # seconds between asking to write and holding the lock: the wait for the other writer
    print(f"fault-stats: waited {time.monotonic() - asked[-1]:.3f}", file=sys.stderr)
    written = real_write(*args, **kwargs)
    time.sleep(float(sys.argv[1]))  # the transaction stays open: the file stays locked
    return written

def write_run(*args, **kwargs):
    asked.append(time.monotonic())
    return real_write_run(*args, **kwargs)

store_write._write, store.write_run = write, write_run
import evalsuite.runner
evalsuite.runner.write_run = write_run
from evalsuite.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start_writer(args: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`evalsuite score ... --name NAME` whose transactions stay open 0.4 s longer."""
    argv = [sys.executable, "-c", textwrap.dedent(SLOW_WRITER), "0.4", *args, "--name", name]
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=pipe, stderr=pipe, text=True)


def leaderboard_reads(db: Path) -> int:
    """One round of the leaderboard's reads; returns the number of runs seen."""
    timeout = LEADERBOARD_READ_TIMEOUT_S
    metrics = store.latest_metrics(db, timeout_s=timeout)
    store.list_models(db, timeout_s=timeout)
    runs = store.list_runs(db, timeout_s=timeout)
    for run_id in runs["run_id"]:
        store.predictions(db, run_id, "colour", timeout_s=timeout)
        store.queries(db, run_id, "search", timeout_s=timeout)
    assert set(metrics["run_id"]) <= set(runs["run_id"])
    return len(runs)


@pytest.mark.slow
def test_two_scorers_and_a_reader_share_one_database(tiny_hf_dir: Path, tmp_path: Path) -> None:
    bench_dir = write_benchmarks(tmp_path / "benchmarks", write_images_csv(tmp_path / "data"),
                                 BENCHMARKS)  # fmt: skip
    other_model = build_tiny_hf(tmp_path / "tiny-b", seed=1)
    db = tmp_path / "results.duckdb"
    env = child_env(EVALSUITE_BENCHMARKS_DIR=str(bench_dir))
    jobs = ((tiny_hf_dir, "A"), (other_model, HOSTILE_NAME))
    writers = [
        start_writer(score_args(db, model, BENCHMARKS, tmp_path / f"cache-{i}"), name, env)
        for i, (model, name) in enumerate(jobs)
    ]
    reads, busy, seen, slowest_read = 0, 0, [], 0.0
    try:
        while any(w.poll() is None for w in writers):
            started = time.monotonic()
            try:
                seen.append(leaderboard_reads(db))
                reads += 1
            except store.StoreMissingError:  # before the first write: the app says so
                pass
            except store.StoreBusyError:  # the app shows its last data and a notice
                busy += 1
            slowest_read = max(slowest_read, time.monotonic() - started)
            time.sleep(0.05)
        outputs = [w.communicate(timeout=60) for w in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err[-3000:]
        assert not LOCK_ERROR.search(err), err[-3000:]
    assert reads >= 3 and seen == sorted(seen), seen  # runs only ever appear, never vanish
    waits = [float(w) for _, err in outputs for w in re.findall(r"fault-stats: waited (\S+)", err)]
    assert len(waits) == 2 * len(BENCHMARKS), waits
    # the locks were really contended (a writer or the reader waited for a held lock), so
    # the retries were exercised, not bypassed by lucky timing
    print(f"reads={reads} busy={busy} slowest read={slowest_read:.2f}s writer waits={waits}")
    assert max(waits) > 0.1 or slowest_read > 0.3, (waits, slowest_read)

    runs = store.list_runs(db)
    assert len(runs) == 2 * len(BENCHMARKS)
    assert sorted(set(runs["model_name"])) == sorted({"A", HOSTILE_NAME})
    counts = table_counts(db)
    assert "<orphan>" not in str(counts)
    assert all(len(by_bench) == len(BENCHMARKS) for t, by_bench in counts.items()
               if t != "skipped_images"), counts  # fmt: skip
    with duckdb.connect(str(db)) as con:  # the file opens read-write and checkpoints cleanly
        con.execute("CHECKPOINT")
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2 * len(BENCHMARKS)
