"""`evalsuite score` killed with SIGKILL mid-run: the database holds only complete runs (no
partial run, no orphan rows), and the next run completes with the same rows and numbers as
a run that was never interrupted.

The kill point is drawn at random among: while embedding a benchmark's images, inside a task,
and inside the database transaction (after the predictions were inserted, before COMMIT);
in the first or the second of two benchmarks. FAULTS_SEED=<seed> replays a failing draw.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd
import pytest
from faultkit import (
    KILL_PREAMBLE,
    fault_rng,
    run_script,
    score_args,
    table_counts,
    write_benchmarks,
    write_images_csv,
)

from evalsuite import store
from evalsuite.cli import main

BENCHMARKS = ("first", "second")
KILLED_SCORE = (
    KILL_PREAMBLE
    + """
from evalsuite import embedding
from evalsuite.store import write as store_write
from evalsuite.tasks import retrieval

if MODE == "embed":  # before the AT-th benchmark's images are embedded
    real_embed = embedding.EmbeddingEngine.embed_items
    def embed_items(self, *args, **kwargs):
        die()
        return real_embed(self, *args, **kwargs)
    embedding.EmbeddingEngine.embed_items = embed_items
elif MODE == "task":  # inside the AT-th benchmark's retrieval task
    real_top_k = retrieval.top_k
    def top_k(*args, **kwargs):
        die()
        return real_top_k(*args, **kwargs)
    retrieval.top_k = top_k
elif MODE == "transaction":  # the AT-th run's rows half inserted, the transaction open
    real_insert = store_write.insert_table
    def insert_table(con, table, data):
        real_insert(con, table, data)
        if table == "predictions":
            die()
    store_write.insert_table = insert_table
from evalsuite.cli import main
sys.exit(main(sys.argv[3:]))
"""
)


def metric_values(db: Path) -> pd.DataFrame:
    frame = store.metrics_table(db)[["benchmark", "task", "metric", "value", "ci_low", "ci_high"]]
    return frame.sort_values(["benchmark", "task", "metric"]).reset_index(drop=True)


@pytest.mark.slow
def test_sigkilled_score_leaves_no_partial_run_and_the_next_run_completes(
    tiny_hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed, rng = fault_rng()
    mode, at = rng.choice(["embed", "task", "transaction"]), rng.choice([1, 2])
    why = f"FAULTS_SEED={seed}: SIGKILL at {mode} #{at}"
    bench_dir = write_benchmarks(tmp_path / "benchmarks", write_images_csv(tmp_path / "data"),
                                 BENCHMARKS)  # fmt: skip
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_dir))
    reference, db = tmp_path / "reference.duckdb", tmp_path / "results.duckdb"
    assert main(score_args(reference, tiny_hf_dir, BENCHMARKS, tmp_path / "ref-cache")) == 0
    expected = table_counts(reference)

    args = score_args(db, tiny_hf_dir, BENCHMARKS, tmp_path / "cache")
    done = run_script(KILLED_SCORE, mode, str(at), *args, EVALSUITE_BENCHMARKS_DIR=str(bench_dir))
    assert done.returncode == -signal.SIGKILL, f"{why}: exit {done.returncode}\n{done.stderr}"
    if at == 1:  # killed before the first run was committed: nothing at all in the database
        assert not db.exists() or store.list_runs(db).empty, why  # not even the tables
    else:  # only the first benchmark's run, complete to the last row
        counts = table_counts(db)
        assert counts == {t: {k: v for k, v in c.items() if k == "first"}
                          for t, c in expected.items()}, why  # fmt: skip
    assert main(args) == 0, why  # the next run: the same command, here in this process
    assert table_counts(db) == expected, why
    pd.testing.assert_frame_equal(metric_values(db), metric_values(reference), obj=why)
