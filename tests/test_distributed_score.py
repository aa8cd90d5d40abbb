"""Distributed evaluation: 2 CPU processes (gloo) split the encoding and gather it, giving
the same results as one process; only the main process writes the database.

debug_launcher forks this (pytest) process after it ran a single-process score: the children
inherit an OpenMP thread pool without its threads, and used to hang in their first parallel
op (the engine now runs forked children on one thread, see ``_single_thread_after_fork``).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import psutil
import pytest
from accelerate import debug_launcher

from evalsuite.data.fmnist import read_fashion_mnist
from evalsuite.embedding import EmbeddingEngine
from evalsuite.models import load_model
from evalsuite.runner import ScoreOptions, score_model

N_CACHED = 300  # items of the cache scenario


def _score_in_each_process() -> None:
    import torch
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, PartialState

    # The forked child inherits the parent's single-process state: start it afresh so that
    # it joins the 2-process gloo group that debug_launcher set up.
    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState()
    assert torch.get_num_threads() == 1  # forked after the parent used OpenMP
    opts = ScoreOptions(
        benchmarks=("fmnist",),
        db_path=Path(os.environ["T_DB"]),
        data_root=Path(os.environ["T_DATA"]),
        use_cache=False,
        n_bootstrap=50,
        progress=False,
    )
    runs = score_model(os.environ["T_MODEL"], opts)

    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2
    forwarded = [None, None]
    dist.all_gather_object(forwarded, runs[0].extra["images_forwarded"])
    # each process encoded its own share, and together they covered every image once
    assert min(forwarded) > 0 and sum(forwarded) == runs[0].extra["distinct_images"]
    metrics = {(m.task, m.name): m.value for m in runs[0].metrics}
    Path(os.environ["T_OUT"] + f".{rank}").write_text(repr(sorted(metrics.items())))

    # Processes whose caches differ (here: only rank 1 holds the first 100 vectors) must
    # still split one list of images, or rows that only one of them lacks are never encoded.
    reference = np.load(os.environ["T_REFERENCE"])
    items = read_fashion_mnist(Path(os.environ["T_FMNIST"]))[:N_CACHED]
    engine = EmbeddingEngine(
        load_model(os.environ["T_MODEL"]),
        num_workers=0,
        progress=False,
        cache_dir=Path(os.environ["T_CACHE"]) / str(rank),
    )
    if rank == 1:
        engine.cache.add(engine.content_hashes(items[:100]), reference[:100])
    out = engine.embed_items(items)
    assert len(out.ids) == N_CACHED
    np.testing.assert_allclose(out.vectors, reference, atol=1e-5)
    assert engine.images_forwarded == N_CACHED // 2  # the union of misses, split in two


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_match_one(
    tiny_hf_dir: Path,
    shared_data: Path,
    fmnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single = score_model(
        tiny_hf_dir,
        ScoreOptions(
            benchmarks=("fmnist",),
            db_path=None,
            data_root=shared_data,
            use_cache=False,
            n_bootstrap=50,
            progress=False,
        ),
    )[0]
    reference = EmbeddingEngine(load_model(tiny_hf_dir), use_cache=False, progress=False)
    items = read_fashion_mnist(fmnist_dir)[:N_CACHED]
    np.save(tmp_path / "reference.npy", reference.embed_items(items).vectors)
    env = {
        "T_DB": str(tmp_path / "r.duckdb"),
        "T_DATA": str(shared_data),
        "T_MODEL": str(tiny_hf_dir),
        "T_OUT": str(tmp_path / "metrics"),
        "T_REFERENCE": str(tmp_path / "reference.npy"),
        "T_FMNIST": str(fmnist_dir),
        "T_CACHE": str(tmp_path / "cache"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        debug_launcher(_score_in_each_process, num_processes=2)
    finally:  # a failed or timed-out launch must not leave its children behind
        for child in psutil.Process().children(recursive=True):
            if child.pid not in before:
                child.kill()
    expected = repr(sorted({(m.task, m.name): m.value for m in single.metrics}.items()))
    assert (tmp_path / "metrics.0").read_text() == expected
    assert (tmp_path / "metrics.1").read_text() == expected
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
