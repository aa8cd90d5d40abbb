"""A damaged or unusable embedding cache never changes a score and never stops a run.

Each case scores a tiny model end to end (``score_model``) on generated images, damages the
cache the way a disk or a crash can, scores again and compares with a run that used no cache
at all: same numbers, one warning naming the shard (or folder) and the cause, the skip counted
in the run record, and a clean cache for the next run.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faultkit import write_benchmarks, write_images_csv

from evalsuite.cli import main as evalsuite_main
from evalsuite.embedding_cache import EmbeddingCache
from evalsuite.runner import ScoreOptions, score_model

BENCH = "cachebench"
Scores = dict[tuple[str, str], tuple[float, float | None, float | None]]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache-faults")
    return write_benchmarks(root / "benchmarks", write_images_csv(root / "data"), (BENCH,))


@pytest.fixture(autouse=True)
def _benchmarks_env(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_dir))


def _score(model: Path, cache: Path | None) -> tuple[Scores, dict]:
    opts = ScoreOptions(benchmarks=(BENCH,), db_path=None, cache_dir=cache,
                        use_cache=cache is not None, num_workers=0, n_bootstrap=20,
                        progress=False)  # fmt: skip
    (run,) = score_model(model, opts)
    return {(m.task, m.name): (m.value, m.ci_low, m.ci_high) for m in run.metrics}, run.extra


@pytest.fixture(scope="module")
def uncached(tiny_hf_dir: Path, bench_dir: Path) -> Scores:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_dir))
        return _score(tiny_hf_dir, None)[0]


def _image_shard(cache: Path) -> Path:
    """The shard holding the image vectors (texts are saved in shards of their own)."""
    for shard in cache.glob("*/*/shard-*.npz"):
        with np.load(shard) as data:
            if not str(data["keys"][0]).startswith("text:"):
                return shard
    raise AssertionError(f"no image shard under {cache}")


def _rewrite(shard: Path, edit: Callable[[np.ndarray, np.ndarray], tuple]) -> None:
    with np.load(shard) as data:
        keys, vectors = edit(data["keys"], data["vectors"].copy())
    with open(shard, "wb") as out:  # np.savez on a path would add ".npz"
        np.savez(out, keys=keys, vectors=vectors)


def _truncate(shard: Path) -> None:
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])


def _set(row: int, value: float) -> Callable[[np.ndarray, np.ndarray], tuple]:
    def edit(keys: np.ndarray, vectors: np.ndarray) -> tuple:
        vectors[row, 0] = value
        return keys, vectors

    return edit


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "not a readable shard"),
    "wrong_dim": (lambda s: _rewrite(s, lambda k, v: (k, v[:, :-1])), "dimensions"),
    "count_mismatch": (lambda s: _rewrite(s, lambda k, v: (k[:-1], v)), "rows but"),
    "nan": (lambda s: _rewrite(s, _set(2, np.nan)), "NaN or infinite"),
    "inf": (lambda s: _rewrite(s, _set(0, np.inf)), "NaN or infinite"),
    "zero_rows": (lambda s: _rewrite(s, lambda k, v: (k, np.zeros_like(v))), "all zeros"),
    "not_unit_length": (lambda s: _rewrite(s, lambda k, v: (k, v * 3)), "not unit length"),
}


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "evalsuite.embedding_cache"
    ]


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_bad_cache_shard_is_skipped_recomputed_and_replaced(
    kind: str,
    tiny_hf_dir: Path,
    uncached: Scores,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shard that fails the checks precomputed embeddings get (plus the cache's own: the
    model's dimension, unit length) is skipped as a whole: one bad row means the file is not
    what the engine wrote, so no row of it is trusted. It is moved aside (``corrupt-*``), not
    deleted: the next run is clean, and whoever suspects the disk can still look at it."""
    cache = tmp_path / "cache"
    _score(tiny_hf_dir, cache)
    shard = _image_shard(cache)
    damage, cause = DAMAGE[kind]
    damage(shard)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        scores, extra = _score(tiny_hf_dir, cache)
    assert scores == uncached
    (warning,) = _cache_warnings(caplog)
    assert str(shard) in warning and cause in warning
    assert extra["cache_shards_skipped"] == 1
    assert extra["images_forwarded"] == 12  # recomputed, not zero vectors or NaNs
    assert not shard.exists() and (shard.parent / f"corrupt-{shard.name}").exists()

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        scores, extra = _score(tiny_hf_dir, cache)  # the recomputed vectors were saved
    assert scores == uncached
    assert _cache_warnings(caplog) == []
    assert extra["cache_shards_skipped"] == 0 and extra["images_forwarded"] == 0


def test_unwritable_cache_folder_scores_without_caching_and_one_warning(
    tiny_hf_dir: Path, uncached: Scores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache only saves time: a folder that cannot be created or written (here a file
    stands where it should be, which stops root too) must not stop a scoring run. One warning
    for the run, not one per shard the engine would have written (images, then each task's
    texts)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        scores, extra = _score(tiny_hf_dir, blocker / "cache")
    assert scores == uncached
    (warning,) = _cache_warnings(caplog)
    assert str(blocker) in warning and "without saving" in warning
    assert extra["images_forwarded"] == 12


def test_full_disk_scores_without_caching_one_warning_no_partial_shard(
    tiny_hf_dir: Path,
    uncached: Scores,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC halfway through a shard: the run goes on, same scores, one warning, and the
    half-written temporary file is removed (a full disk must not be filled further by junk)."""

    def full_disk(file: str | os.PathLike, **arrays: np.ndarray) -> None:
        with open(file, "wb") as out:
            out.write(b"PK\x03\x04 half a shard")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))

    monkeypatch.setattr(np, "savez", full_disk)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        scores, _ = _score(tiny_hf_dir, cache)
    assert scores == uncached
    (warning,) = _cache_warnings(caplog)
    assert "No space left on device" in warning
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_cli_score_with_a_truncated_shard_exits_0_and_names_it(
    tiny_hf_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through ``evalsuite score``: before, every later run of the model died on BadZipFile."""
    cache = tmp_path / "cache"
    argv = ["--db", str(tmp_path / "r.duckdb"), "score", str(tiny_hf_dir), "--benchmarks", BENCH,
            "--workers", "0", "--bootstrap", "20", "--cache-dir", str(cache)]  # fmt: skip
    assert evalsuite_main(argv) == 0
    shard = _image_shard(cache)
    _truncate(shard)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert evalsuite_main(argv) == 0
    (warning,) = _cache_warnings(caplog)
    assert str(shard) in warning


def test_cache_without_a_known_dimension_still_checks_its_shards(tmp_path: Path) -> None:
    """``EmbeddingCache`` used on its own (no model to say the dimension): shards are still
    checked row by row, and keys that are not strings are refused."""
    np.savez(tmp_path / "shard-nan.npz", keys=np.array(["a"]), vectors=np.full((1, 4), np.nan))
    np.savez(tmp_path / "shard-int.npz", keys=np.array([7]), vectors=np.ones((1, 4)) / 2)
    cache = EmbeddingCache(tmp_path)
    assert cache.lookup(["a", "7"]) == [None, None]
    assert cache.shards_skipped == 2
