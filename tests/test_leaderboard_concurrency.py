"""A scorer writing while the leaderboard reads: neither crashes nor blocks the other.

A subprocess writes runs in a loop (``store.write_run``) into a copy of the sample database
while AppTest renders the app a few times with its cache cleared, so that every render opens
the database (and computes the paired verdicts again, which takes seconds: the writer keeps
writing until the renders are done, at most ``WRITE_SECONDS``). Each render shows either the
leaderboard or the "being written" notice, never an exception; the writer finishes every
write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest
from test_leaderboard_app import APP

WRITE_SECONDS = 120.0  # at most; the test stops the writer after RENDERS renders
RENDERS = 2

WRITER = r"""
import json, sys, time
from datetime import timedelta
sys.path.insert(0, sys.argv[3])
from tests.fixtures.leaderboard_sample import write_sample_results
from evalsuite import store
from pathlib import Path
db, seconds, stop = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[4])
scratch = db.with_name("writer-scratch.duckdb")
runs = write_sample_results(scratch, db.parent / "writer-data")["runs"]
print(json.dumps({"ready": True}), flush=True)
n, slowest, deadline = 0, 0.0, time.monotonic() + seconds
while time.monotonic() < deadline and not stop.exists():
    run = runs[n % len(runs)]
    run.started_at = run.started_at + timedelta(seconds=1)  # a newer run of the same model
    started = time.monotonic()
    store.write_run(db, run)
    slowest = max(slowest, time.monotonic() - started)
    n += 1
print(json.dumps({"writes": n, "slowest": slowest}), flush=True)
"""


def test_app_renders_while_a_scorer_writes(sample_db, tmp_path, monkeypatch):
    source, info = sample_db
    db = tmp_path / "results.duckdb"
    db.write_bytes(source.read_bytes())
    monkeypatch.setenv("EVALSUITE_DB", str(db))
    root = str(Path(__file__).resolve().parents[1])  # where tests.fixtures is imported from
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(WRITE_SECONDS), root, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(writer.stdout.readline()) == {"ready": True}, writer.stderr.read()
        renders, shown, busy = 0, 0, 0
        while writer.poll() is None and renders < RENDERS:
            st.cache_data.clear()  # every render reads the database again
            at = AppTest.from_file(str(APP), default_timeout=60).run()
            assert not at.exception, [e.value for e in at.exception]
            assert not at.error, [e.value for e in at.error]
            renders += 1
            if any("Model" in df.value.columns for df in at.dataframe):
                shown += 1
            elif any("being written" in i.value for i in at.info):
                busy += 1
            else:
                raise AssertionError(f"neither the leaderboard nor the notice: {at.markdown}")
        stop.touch()
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["writes"] >= 3, report
    assert report["slowest"] < 10, report  # readers never held the writer up for long
    print(f"renders={renders} shown={shown} busy={busy} writer={report}")
    assert renders >= 2 and shown >= 1, (renders, shown, busy)
    # after the writer stopped, the page shows the final state
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "Model" in df.value.columns)
    assert set(table["Model"]) == set(info["names"])
